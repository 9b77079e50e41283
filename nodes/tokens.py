"""JANUS_TOKENS: a discrete image-token grid travelling between nodes, with what is needed to check that a
grid belongs to a model's VQ codebook (ComfyUI-free: only torch)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from janus_runtime import JanusError


def codebook_fingerprint(codebook: torch.Tensor) -> str:
    """A short hash of the VQ codebook: grids decode correctly only with the codebook that made them."""
    data = codebook.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


@dataclass(frozen=True)
class JanusTokens:
    """tokens: int64 [B, H, W] on the CPU; mask: optional bool [B, H, W] (True = to regenerate)."""
    tokens: torch.Tensor
    codebook_size: int
    codebook_id: str
    mask: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.tokens.shape[0]

    def check_model(self, handle, input_name: str = "tokens"):
        """Raise a clear error when this grid cannot be decoded or continued by ``handle``'s model."""
        grid = handle.model.config.token_grid
        if tuple(self.tokens.shape[1:]) != (grid, grid):
            raise JanusError(f"{input_name}: the token grid is {list(self.tokens.shape[1:])} but this model "
                             f"uses {grid}x{grid}; connect tokens made by a Janus model of the same family.")
        if self.codebook_size != handle.model.config.vq.codebook_size or self.codebook_id != handle.codebook_id:
            raise JanusError(
                f"{input_name}: these tokens come from a different VQ codebook (codebook {self.codebook_id}, "
                f"{self.codebook_size} codes) than the loaded model's ({handle.codebook_id}, "
                f"{handle.model.config.vq.codebook_size} codes). Decode or edit them with the model that made "
                f"them, or re-encode the image with this model's Janus VQ Encode.")


def mask_to_grid(mask: torch.Tensor, batch: int, grid: int, threshold: float, input_name: str = "mask"):
    """A ComfyUI MASK ([H, W] or [B, H, W], 1 = edit) -> bool [batch, grid, grid].

    Each token covers a square cell of the (square) mask, whatever its resolution (a 384x384 mask gives 16x16
    pixel cells); it is regenerated when the masked share of its cell is at least ``threshold`` (0 = any
    masked pixel).
    """
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise JanusError(f"{input_name}: expected a MASK [B, H, W]; got shape {list(mask.shape)}")
    b, h, w = mask.shape
    if h != w:
        raise JanusError(f"{input_name} is {w}x{h} pixels but Janus images are square ({grid * 16}x{grid * 16}); "
                         f"use a square mask of the same size as the encoded image (e.g. from that image).")
    if b not in (1, batch):
        raise JanusError(f"{input_name} has {b} masks for {batch} token grids; give one mask or one per image.")
    coverage = F.adaptive_avg_pool2d(mask.float()[:, None], grid)[:, 0]
    cells = coverage > 0 if threshold <= 0 else coverage >= threshold
    return cells.expand(batch, -1, -1).clone()
