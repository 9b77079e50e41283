"""JANUS_TOKENS: a discrete image-token grid travelling between nodes, with what is needed to check that a
grid belongs to a model's VQ codebook, and how masks map onto it (ComfyUI-free: only torch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..janus_runtime import JanusError
from ..janus_runtime.processing import MIN_SIZE

FITS = ("pad", "crop")


@dataclass(frozen=True)
class JanusTokens:
    """tokens: int64 [B, H, W] on the CPU; mask: optional bool [B, H, W] (True = to regenerate).

    prompt / negative_prompt: what the grids were generated from (None for encoded images), so Janus Score
    can rank them against it. fit: how the source image was fitted to a square by Janus VQ Encode ("pad"
    or "crop"; None for generated grids), so a mask drawn on that image lands on the same tokens.
    """
    tokens: torch.Tensor
    codebook_size: int
    codebook_id: str
    mask: torch.Tensor | None = None
    prompt: str | None = None
    negative_prompt: str = ""
    fit: str | None = None

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


def center_square(h: int, w: int) -> tuple[int, int, int]:
    """(top, left, side) of the centred square crop of an h x w image (Janus VQ Encode's "crop")."""
    s = min(w, h)
    return (h - s) // 2, (w - s) // 2, s


def fit_mask(mask: torch.Tensor, fit: str, size: int) -> torch.Tensor:
    """[B, H, W] float mask -> [B, size, size] placed as Janus VQ Encode places the image: "pad" scales the
    long side to ``size`` and centres it (the official resize-and-pad: int-truncated short side, at least 14
    px; the padding is not masked), "crop" takes the centred square."""
    b, h, w = mask.shape
    if fit == "crop":
        top, left, s = center_square(h, w)
        return F.interpolate(mask[:, None, top:top + s, left:left + s], size=(size, size), mode="area")[:, 0]
    if fit != "pad":
        raise JanusError(f"fit: {fit!r} is not one of {', '.join(FITS)}")
    m = max(w, h)
    nw, nh = max(int(w / m * size), MIN_SIZE), max(int(h / m * size), MIN_SIZE)
    scaled = F.interpolate(mask[:, None], size=(nh, nw), mode="area")[:, 0]
    canvas = mask.new_zeros(b, size, size)  # the long side is exactly ``size``
    top, left = ((nw - nh) // 2, 0) if nw > nh else (0, (nh - nw) // 2)
    canvas[:, top:top + nh, left:left + nw] = scaled
    return canvas


def mask_to_grid(mask: torch.Tensor, batch: int, grid: int, threshold: float, fit: str = "pad",
                 input_name: str = "mask"):
    """A ComfyUI MASK ([H, W] or [B, H, W], 1 = edit) -> bool [batch, grid, grid].

    The mask is fitted to the square image like the encoded image (``fit``), then each token covers a
    16 x 16 pixel cell; it is regenerated when the masked share of its cell is at least ``threshold``
    (0 = any masked pixel). A mask that selects no token is an error: it would return the input unchanged.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        raise JanusError(f"{input_name}: expected a MASK [B, H, W]; got "
                         f"{list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    if mask.ndim == 2:
        mask = mask[None]
    b, h, w = mask.shape
    if b == 0 or h == 0 or w == 0:
        raise JanusError(f"{input_name} is empty ({b} masks of {w}x{h} pixels); connect the MASK output of "
                         f"Load Image after painting the area to regenerate in its mask editor.")
    if b not in (1, batch):
        raise JanusError(f"{input_name} has {b} masks for {batch} token grids; give one mask or one per image.")
    if not torch.isfinite(mask).all():
        raise JanusError(f"{input_name} holds NaN or inf values; masks are 0..1 (1 = regenerate).")
    size = grid * 16
    coverage = F.adaptive_avg_pool2d(fit_mask(mask.float(), fit, size)[:, None], grid)[:, 0]
    cells = coverage > 0 if threshold <= 0 else coverage >= threshold
    if not cells.any():
        most = float(coverage.max())
        why = ("is empty (all zero)" if float(mask.max()) <= 0 else
               f"covers at most {most:.0%} of any 16x16 token cell, below mask_threshold {threshold:.2f}")
        raise JanusError(
            f"{input_name} selects no token to regenerate: it {why}, so the image would come back unchanged. "
            f"Paint the area to change in white: right-click Load Image > Open in MaskEditor (an image without "
            f"transparency gives an all-zero mask), or lower mask_threshold.")
    return cells.expand(batch, -1, -1).clone()
