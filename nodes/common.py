"""Helpers shared by the node classes: seeds, progress, interruption, sampler inputs."""

from __future__ import annotations

SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                "tooltip": "Random seed. Image k of a batch depends only on (seed, k)."})


def sampler_inputs(temperature: float, top_p: float = 1.0) -> dict:
    return {
        "temperature": ("FLOAT", {"default": temperature, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip":
                        "Sampling temperature; 0 picks the most likely token every time (greedy)."}),
        "top_k": ("INT", {"default": 0, "min": 0, "max": 16384, "tooltip":
                  "Sample only among the k most likely tokens (0 = no limit)."}),
        "top_p": ("FLOAT", {"default": top_p, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip":
                  "Nucleus sampling: the smallest set of tokens whose probability reaches top_p (1 = off)."}),
    }


def step_hook(total: int, node_id, preview=None):
    """A runtime callback driving ComfyUI's progress bar (which also checks Cancel) once per step."""
    import comfy.model_management as mm
    import comfy.utils
    bar = comfy.utils.ProgressBar(total, node_id=node_id) if node_id is not None else comfy.utils.ProgressBar(total)

    def hook(step, _total, data):
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(step + 1, total, preview(step, data) if preview else None)
    return hook


def send_text(node_id, text: str):
    """Stream text into the node's preview area (ComfyUI's progress_text message), when a server runs."""
    if node_id is None:
        return
    try:
        from server import PromptServer
    except ImportError:
        return
    if getattr(PromptServer, "instance", None) is not None:
        PromptServer.instance.send_progress_text(text, node_id)
