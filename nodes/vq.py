"""Janus VQ Encode / Decode and the LATENT bridge for image tokens."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ..janus_runtime import JanusError, decode_tokens, encode_images
from ..janus_runtime.codebook import code_vectors, nearest_codes
from ..janus_runtime.processing import to_unit_float

from .common import images_to_pil
from .memory import VQ, vq_bytes
from .tokens import FITS, center_square

MODEL = ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."})
TOKENS = ("JANUS_TOKENS", {"tooltip": "Image-token grids [batch, 24, 24]."})
# Core latent nodes (LatentComposite, LatentCrop, ...) count 8 pixels per latent cell; a Janus token covers
# 16 x 16 pixels, so each token is written as 2 x 2 cells and core pixel coordinates land where they should.
CELLS_PER_TOKEN = 2


def _crop_square(image):
    top, left, s = center_square(image.size[1], image.size[0])
    return image.crop((left, top, left + s, top + s))


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
            "fit": (list(FITS), {"default": "pad", "tooltip":
                    "pad: official - scale the long side to 384 and pad with grey. crop: centre square crop. "
                    "Janus Regenerate Masked fits its mask the same way."}),
        }}

    def encode(self, janus_model, image, fit):
        if fit not in FITS:
            raise JanusError(f"fit: {fit!r} is not one of {', '.join(FITS)}")
        pictures = images_to_pil(image)
        if fit == "crop":
            pictures = [_crop_square(p) for p in pictures]
        janus_model.load([VQ], vq_bytes(janus_model, min(4, len(pictures))))
        tokens = encode_images(janus_model.model, pictures)
        return (dataclasses.replace(janus_model.tokens(tokens), fit=fit),)


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
    DESCRIPTION = ("Image tokens to a LATENT of codebook vectors [batch, 8, 48, 48], so core latent nodes "
                   "(batch, from batch, composite, crop, save/load) work on Janus images. Like core latents, "
                   "one latent cell is 8 pixels (each 16-pixel token is 2x2 cells), so pixel coordinates in "
                   "core nodes are image pixels; use multiples of 16 to move whole tokens.")
    CATEGORY = "Janus"
    FUNCTION = "to_latent"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The l2-normalised codebook vector of every token, on 2x2 cells of 8 pixels.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"janus_model": MODEL, "tokens": TOKENS}}

    def to_latent(self, janus_model, tokens):
        tokens.check_model(janus_model)
        vectors = code_vectors(janus_model.model, tokens.tokens)
        cells = vectors.repeat_interleave(CELLS_PER_TOKEN, 2).repeat_interleave(CELLS_PER_TOKEN, 3)
        return ({"samples": cells.contiguous()},)


class JanusLatentToTokens:
    DESCRIPTION = ("A LATENT of codebook vectors back to image tokens: each token's 2x2 cells are averaged and "
                   "snap to the nearest code (cosine distance), so blended or composited latents become valid "
                   "tokens again.")
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
        c, side = cfg.vq.embed_dim, cfg.token_grid * CELLS_PER_TOKEN
        samples = latent.get("samples") if isinstance(latent, dict) else None
        # [B, 8, 24, 24] (one cell per token) is what earlier versions saved: still accepted
        if not (isinstance(samples, torch.Tensor) and samples.ndim == 4 and samples.shape[1] == c
                and samples.shape[-2:] in ((side, side), (cfg.token_grid, cfg.token_grid))):
            shape = list(samples.shape) if isinstance(samples, torch.Tensor) else None
            raise JanusError(f"latent: expected Janus token vectors [B, {c}, {side}, {side}] (from Janus Tokens "
                             f"to Latent); got {shape}. Latents of diffusion models cannot be turned into Janus "
                             f"tokens, and core nodes that resize latents do not keep this size.")
        if samples.shape[-1] == side:
            # the mean of each token's 2x2 cells: unchanged cells give back exactly the token's vector
            samples = F.avg_pool2d(samples.float(), CELLS_PER_TOKEN)
        tokens = nearest_codes(janus_model.model, samples, name="latent")
        return (janus_model.tokens(tokens),)
