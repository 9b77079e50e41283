"""Janus VQ Encode / Decode and the LATENT bridge for image tokens."""

from __future__ import annotations

import torch

from janus_runtime import JanusError, decode_tokens, encode_images
from janus_runtime.processing import pil_from_float, to_unit_float

from .memory import VQ, vq_bytes

MODEL = ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."})
TOKENS = ("JANUS_TOKENS", {"tooltip": "Image-token grids [batch, 24, 24]."})


def _center_square(image):
    w, h = image.size
    s = min(w, h)
    return image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))


class JanusVQEncode:
    DESCRIPTION = "Image to Janus image tokens (the official resize to 384 and pad to a square, or a centre crop)."
    CATEGORY = "Janus"
    FUNCTION = "encode"
    RETURN_TYPES = ("JANUS_TOKENS",)
    RETURN_NAMES = ("tokens",)
    OUTPUT_TOOLTIPS = ("One 24x24 token grid per image.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "janus_model": MODEL,
            "image": ("IMAGE", {"tooltip": "Images to encode; any size, RGB or RGBA (alpha is dropped)."}),
            "fit": (["pad", "crop"], {"default": "pad", "tooltip":
                    "pad: official - scale the long side to 384 and pad with grey. crop: centre square crop."}),
        }}

    def encode(self, janus_model, image, fit):
        pictures = [pil_from_float(im) for im in image]
        if fit == "crop":
            pictures = [_center_square(p) for p in pictures]
        janus_model.load([VQ], vq_bytes(janus_model, min(4, len(pictures))))
        tokens = encode_images(janus_model.model, pictures)
        return (janus_model.tokens(tokens),)


class JanusVQDecode:
    DESCRIPTION = "Janus image tokens to IMAGE (384x384 RGB, 0..1)."
    CATEGORY = "Janus"
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("Decoded images [batch, 384, 384, 3].",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"janus_model": MODEL, "tokens": TOKENS}}

    def decode(self, janus_model, tokens):
        import comfy.model_management as mm
        tokens.check_model(janus_model)
        janus_model.load([VQ], vq_bytes(janus_model, min(4, tokens.batch)))
        pixels = decode_tokens(janus_model.model, tokens.tokens)
        return (to_unit_float(pixels).to(mm.intermediate_device()),)


class JanusTokensToLatent:
    DESCRIPTION = ("Image tokens to a LATENT of codebook vectors [batch, 8, 24, 24], so core latent nodes "
                   "(batch, from batch, composite, save/load) work on Janus images.")
    CATEGORY = "Janus"
    FUNCTION = "to_latent"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The l2-normalised codebook vector of every token.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"janus_model": MODEL, "tokens": TOKENS}}

    def to_latent(self, janus_model, tokens):
        tokens.check_model(janus_model)
        with torch.inference_mode():
            vectors = janus_model.model.vq.quantize.lookup(tokens.tokens.to(torch.device("cpu")), torch.float32)
        return ({"samples": vectors.contiguous()},)


class JanusLatentToTokens:
    DESCRIPTION = ("A LATENT of codebook vectors back to image tokens: every position snaps to the nearest code "
                   "(cosine distance), so blended or composited latents become valid tokens again.")
    CATEGORY = "Janus"
    FUNCTION = "to_tokens"
    RETURN_TYPES = ("JANUS_TOKENS",)
    RETURN_NAMES = ("tokens",)
    OUTPUT_TOOLTIPS = ("Token grids; unchanged vectors give back exactly the original tokens.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"janus_model": MODEL,
                             "latent": ("LATENT", {"tooltip": "From Janus Tokens to Latent (possibly edited)."})}}

    def to_tokens(self, janus_model, latent):
        cfg = janus_model.model.config
        samples = latent["samples"] if isinstance(latent, dict) and "samples" in latent else None
        grid = cfg.token_grid
        if samples is None or samples.ndim != 4 or tuple(samples.shape[1:]) != (cfg.vq.embed_dim, grid, grid):
            shape = None if samples is None else list(samples.shape)
            raise JanusError(f"latent: expected Janus token vectors [B, {cfg.vq.embed_dim}, {grid}, {grid}] "
                             f"(from Janus Tokens to Latent); got {shape}. Latents of diffusion models cannot be "
                             f"turned into Janus tokens.")
        with torch.inference_mode():
            tokens = janus_model.model.vq.quantize.nearest(samples.to("cpu", torch.float32))
        return (janus_model.tokens(tokens),)
