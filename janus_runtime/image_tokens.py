"""Image-token grids: their checks, and the VQ decoder / encoder between grids and pixels."""

from __future__ import annotations

import torch

from .errors import JanusError
from .model import JanusModel
from .processing import pixels_from_pil


def check_tokens(model: JanusModel, tokens: torch.Tensor, name: str = "tokens") -> torch.Tensor:
    """Token grids [B, g, g] (or flat [B, g*g]) of this model's codebook, as int64 [B, g, g]."""
    g, v = model.config.token_grid, model.config.vq.codebook_size
    if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32, torch.int16):
        raise JanusError(f"{name} must be an integer tensor [B, {g}, {g}]; got "
                         f"{getattr(tokens, 'dtype', type(tokens).__name__)}")
    if tokens.ndim == 2 and tokens.shape[1] == g * g:
        tokens = tokens.view(-1, g, g)
    if tokens.ndim != 3 or tuple(tokens.shape[1:]) != (g, g) or tokens.shape[0] < 1:
        raise JanusError(f"{name} must have shape [B, {g}, {g}] for this model; got {list(tokens.shape)}")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= v:
        raise JanusError(f"{name} holds ids outside [0, {v}) (min {lo}, max {hi}); they come from a different "
                         f"codebook than this model's VQ ({v} codes)")
    return tokens.long()


def check_mask(mask: torch.Tensor, tokens: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A boolean mask [B, g, g] (or one [g, g] for every grid) shaped like ``tokens``."""
    if not isinstance(mask, torch.Tensor):
        raise JanusError(f"{name} must be a boolean tensor shaped like the token grid {list(tokens.shape)}")
    if mask.ndim == 2 and tuple(mask.shape) == tuple(tokens.shape[1:]):
        mask = mask.expand(tokens.shape[0], -1, -1)
    if tuple(mask.shape) != tuple(tokens.shape):
        raise JanusError(f"{name} has shape {list(mask.shape)} but the token grid is {list(tokens.shape)}; "
                         f"give one True/False per token ([B, H, W] or [H, W])")
    return mask.bool()


@torch.inference_mode()
def decode_tokens(model: JanusModel, tokens: torch.Tensor, batch_size: int = 4, callback=None) -> torch.Tensor:
    """Token grids [B, h, w] -> decoder pixels [B, 3, 16h, 16w] (about [-1, 1]) on the VQ's device."""
    vq = model.require("vq")
    tokens = check_tokens(model, tokens)
    device = model.device_for("vq")
    outs = []
    for i in range(0, tokens.shape[0], batch_size):
        outs.append(vq.decode(tokens[i:i + batch_size].to(device), model.dtype_for("vq")).float())
        if callback:
            callback(min(i + batch_size, tokens.shape[0]), tokens.shape[0])
    return torch.cat(outs)


@torch.inference_mode()
def encode_images(model: JanusModel, images: list, batch_size: int = 4) -> torch.Tensor:
    """PIL images -> token grids [B, g, g] with the official resize-and-pad to the model's image size."""
    if not len(images):
        raise JanusError("images: none given; pass at least one image to encode")
    vq = model.require("vq")
    device = model.device_for("vq")
    outs = []
    for i in range(0, len(images), batch_size):
        px = torch.stack([pixels_from_pil(im, model.config.image_size) for im in images[i:i + batch_size]])
        outs.append(vq.encode(px.to(device, model.dtype_for("vq"))))
    return torch.cat(outs)
