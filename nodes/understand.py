"""Janus Understand: answers a question about images with the SigLIP understanding path."""

from __future__ import annotations

from ..janus_runtime import understand_batch
from ..janus_runtime.processing import SYSTEM_PROMPT

from .common import SEED, images_to_pil, sampler_inputs, send_text, step_hook
from .memory import LM, VISION, understanding_bytes

# ComfyUI caches a node's output by its input values, seed included, so a seed that changes on every run
# re-runs the node. At temperature 0 the answer cannot depend on the seed: keep it fixed by default, and
# the node is cached like any core node (the seed only matters once temperature > 0).
UNDERSTAND_SEED = (SEED[0], {**SEED[1], "control_after_generate": "fixed", "tooltip":
                   "Random seed for sampling; ignored at temperature 0 (greedy), where it stays fixed so "
                   "ComfyUI reuses the cached answer. Set it to randomize for varied answers at temperature > 0."})


class JanusUnderstand:
    DESCRIPTION = ("Ask the Janus model about an image (captioning, questions, OCR-like reading). A batch of "
                   "images gives one answer per image, or one answer about all of them together.")
    CATEGORY = "Janus"
    FUNCTION = "answer"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("answer",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("The answers, one per image (or one for all images together).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."}),
                "question": ("STRING", {"multiline": True, "default": "Describe this image in detail.",
                                        "tooltip": "What to ask about the image(s)."}),
                "images_in_one_prompt": ("BOOLEAN", {"default": False, "tooltip":
                                         "Off: one answer per image of the batch. On: all images go into one "
                                         "prompt, in batch order, and one answer compares or combines them."}),
                "max_new_tokens": ("INT", {"default": 512, "min": 1, "max": 4096,
                                           "tooltip": "Longest answer, in tokens."}),
                **sampler_inputs(0.0),
                "seed": UNDERSTAND_SEED,
            },
            "optional": {
                "image": ("IMAGE", {"tooltip": "Image(s) to ask about; leave unconnected for a text-only chat."}),
                "system_prompt": ("STRING", {"multiline": True, "default": SYSTEM_PROMPT,
                                             "tooltip": "The official system prompt; edit it to steer the style."}),
            },
            "hidden": {"node_id": "UNIQUE_ID"},
        }

    def answer(self, janus_model, question, images_in_one_prompt, max_new_tokens, temperature, top_k, top_p,
               seed, image=None, system_prompt=SYSTEM_PROMPT, node_id=None):
        pictures = images_to_pil(image) if image is not None else []
        if images_in_one_prompt or not pictures:
            items = [(pictures, question)]
        else:
            items = [([p], question) for p in pictures]
        n_images = max(1, len(pictures))
        parts = [LM, VISION] if pictures else [LM]
        janus_model.load(parts, understanding_bytes(janus_model, len(items), n_images, max_new_tokens))
        progress = step_hook(max_new_tokens, node_id)

        def stream(step, total, texts):
            progress(step, total, texts)
            if step % 4 == 0:
                send_text(node_id, "\n\n".join(texts))
        answers = understand_batch(janus_model.model, items, system_prompt=system_prompt,
                                   max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                   top_k=top_k, seed=seed, callback=stream)
        texts = [a.text for a in answers]
        send_text(node_id, "\n\n".join(texts))
        return {"ui": {"text": texts}, "result": (texts,)}
