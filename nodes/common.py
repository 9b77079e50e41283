"""Helpers shared by the node classes: seeds, IMAGE inputs, progress, interruption, sampler inputs."""

from __future__ import annotations

import torch

from ..janus_runtime import JanusError
from ..janus_runtime.processing import pil_from_float

SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                "tooltip": "Random seed. Image k of a batch depends only on (seed, k)."})


def images_to_pil(image, name: str = "image") -> list:
    """A ComfyUI IMAGE [B, H, W, C] -> PIL images, refusing the empty cases with the input's name."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = list(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise JanusError(f"{name}: expected an IMAGE batch [B, H, W, C]; got {shape}")
    b, h, w = image.shape[:3]
    if b == 0:
        raise JanusError(f"{name}: the image batch is empty (0 images); connect a node that outputs at least "
                         f"one image (e.g. Load Image), or check the filter or batch node before it.")
    if h == 0 or w == 0:
        raise JanusError(f"{name}: the image is {w}x{h} pixels; connect a real image (at least 1x1 pixels, "
                         f"e.g. from Load Image) - a crop or resize node upstream may have produced an empty one.")
    return [pil_from_float(im) for im in image]


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
    """Stream the answer so far to the browser that queued the prompt, when a server runs.

    A "janus.text" message that web/js/janus_answer.js shows on the node's labelled answer widget; core's
    progress_text would make the frontend add a second, unlabelled copy of the same text under the node."""
    if node_id is None:
        return
    try:
        from server import PromptServer
    except ImportError:
        return
    server = getattr(PromptServer, "instance", None)
    if server is not None:
        server.send_sync("janus.text", {"node": node_id, "text": text}, server.client_id)
