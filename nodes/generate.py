"""Janus Generate (CFG sampler), Janus Regenerate Masked and Janus Score: image tokens from text."""

from __future__ import annotations

import dataclasses

import torch
from PIL import Image

from janus_runtime import JanusError, generate_image_tokens, score_image_tokens
from janus_runtime.processing import to_uint8_official

from .common import SEED, sampler_inputs, step_hook
from .memory import LM, VQ, generation_bytes, vq_bytes
from .tokens import mask_to_grid

PROMPT = ("STRING", {"multiline": True, "default": "A lighthouse on a cliff at sunset, dramatic clouds, oil painting",
                     "tooltip": "What the image should show."})
NEGATIVE = ("STRING", {"multiline": True, "default": "", "tooltip":
                       "What to steer away from. Empty: the official unconditional prompt."})
CFG = ("FLOAT", {"default": 5.0, "min": 0.0, "max": 20.0, "step": 0.5, "tooltip":
                 "Classifier-free guidance weight: uncond + cfg x (cond - uncond). 1 = no guidance; "
                 "the official default is 5."})


def _generation_inputs() -> dict:
    return {"cfg": CFG, **sampler_inputs(1.0), "seed": SEED}


def _previewer(handle, every: int):
    """Every ``every`` steps, decode the finished rows of image 0 (cheap: only those rows) for the preview."""
    if every <= 0:
        return None
    grid = handle.model.config.token_grid
    side = handle.model.config.image_size

    def preview(step, tokens):
        rows = (step + 1) // grid
        if (step + 1) % every or rows == 0:
            return None
        codes = tokens[:1, :rows * grid].reshape(1, rows, grid)
        with torch.inference_mode():
            pixels = handle.model.vq.decode(codes.to(handle.model.compute_device), handle.model.dtype)
        canvas = Image.new("RGB", (side, side), (40, 40, 40))
        canvas.paste(Image.fromarray(to_uint8_official(pixels)[0].cpu().numpy()), (0, 0))
        return ("JPEG", canvas, 512)
    return preview


def _run(handle, prompt, n, node_id, preview_every, **kwargs):
    parts = [LM, VQ] if preview_every > 0 else [LM]
    handle.load(parts, generation_bytes(handle, n) + (vq_bytes(handle, 1) if preview_every > 0 else 0))
    total = handle.model.config.num_image_tokens
    hook = step_hook(total, node_id, _previewer(handle, preview_every))
    return generate_image_tokens(handle.model, prompt, n=n, callback=hook, **kwargs)


class JanusGenerate:
    DESCRIPTION = ("Text to image: samples the 576 image tokens (a 24x24 grid, 384x384 pixels) with "
                   "classifier-free guidance. Decode them with Janus VQ Decode.")
    CATEGORY = "Janus"
    FUNCTION = "generate"
    RETURN_TYPES = ("JANUS_TOKENS",)
    RETURN_NAMES = ("tokens",)
    OUTPUT_TOOLTIPS = ("The image-token grids [batch, 24, 24].",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."}),
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 16, "tooltip":
                           "Images per run (memory grows with it: two KV-cache rows per image)."}),
            **_generation_inputs(),
            "preview_every": ("INT", {"default": 48, "min": 0, "max": 576, "tooltip":
                              "Show a live preview every N tokens (0 = off)."}),
        }, "hidden": {"node_id": "UNIQUE_ID"}}

    def generate(self, janus_model, prompt, negative_prompt, batch_size, cfg, temperature, top_k, top_p, seed,
                 preview_every=48, node_id=None):
        if batch_size < 1:
            raise JanusError(f"batch_size must be at least 1; got {batch_size}")
        if not prompt.strip():
            raise JanusError("prompt is empty: describe the image to generate.")
        tokens = _run(janus_model, prompt, batch_size, node_id, preview_every, negative_prompt=negative_prompt,
                      cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        return (janus_model.tokens(tokens),)


class JanusRegenerateMasked:
    DESCRIPTION = ("Image editing: keeps the tokens outside the mask and samples new ones inside it, guided by "
                   "the prompt. Masks are reduced to the 24x24 token grid (one token = 16x16 pixels).")
    CATEGORY = "Janus"
    FUNCTION = "regenerate"
    RETURN_TYPES = ("JANUS_TOKENS",)
    RETURN_NAMES = ("tokens",)
    OUTPUT_TOOLTIPS = ("The edited token grids; unmasked tokens are unchanged.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."}),
            "tokens": ("JANUS_TOKENS", {"tooltip": "Token grids to edit (from Janus VQ Encode or Janus Generate)."}),
            "mask": ("MASK", {"tooltip": "White = regenerate. Square, the size of the encoded image (384x384)."}),
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            **_generation_inputs(),
            "mask_threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                               "A token is regenerated when at least this share of its 16x16 cell is masked "
                               "(0 = any masked pixel)."}),
            "preview_every": ("INT", {"default": 48, "min": 0, "max": 576,
                                      "tooltip": "Show a live preview every N tokens (0 = off)."}),
        }, "hidden": {"node_id": "UNIQUE_ID"}}

    def regenerate(self, janus_model, tokens, mask, prompt, negative_prompt, cfg, temperature, top_k, top_p, seed,
                   mask_threshold=0.5, preview_every=48, node_id=None):
        if not prompt.strip():
            raise JanusError("prompt is empty: describe what the masked area should show.")
        tokens.check_model(janus_model)
        grid_mask = mask_to_grid(mask, tokens.batch, janus_model.model.config.token_grid, mask_threshold)
        out = _run(janus_model, prompt, tokens.batch, node_id, preview_every, negative_prompt=negative_prompt,
                   cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                   init_tokens=tokens.tokens, mask=grid_mask)
        return (janus_model.tokens(out),)


class JanusScore:
    DESCRIPTION = ("Best-of-N: ranks token grids by how likely the model finds them for the prompt (mean CFG "
                   "log-probability per token) and keeps the best.")
    CATEGORY = "Janus"
    FUNCTION = "score"
    RETURN_TYPES = ("JANUS_TOKENS", "STRING")
    RETURN_NAMES = ("best_tokens", "scores")
    OUTPUT_TOOLTIPS = ("The best grids, best first.", "Mean log-probability per grid, in input order.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."}),
            "tokens": ("JANUS_TOKENS", {"tooltip": "A batch of token grids to rank (e.g. from Janus Generate)."}),
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "cfg": CFG,
            "keep": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "How many of the best grids to keep."}),
        }}

    def score(self, janus_model, tokens, prompt, negative_prompt, cfg, keep):
        if not prompt.strip():
            raise JanusError("prompt is empty: give the prompt the grids should be ranked against.")
        tokens.check_model(janus_model)
        janus_model.load([LM], generation_bytes(janus_model, tokens.batch))
        logprobs = score_image_tokens(janus_model.model, prompt, tokens.tokens, negative_prompt=negative_prompt,
                                      cfg=cfg).mean(1).cpu()
        order = torch.argsort(logprobs, descending=True)[:keep]
        best = dataclasses.replace(tokens, tokens=tokens.tokens[order])
        report = "\n".join(f"image {i}: {v:.4f}" + ("  <- kept" if i in order.tolist() else "")
                           for i, v in enumerate(logprobs.tolist()))
        return {"ui": {"text": [report]}, "result": (best, report)}
