"""The VQ codebook as the rest of the world sees it: code vectors, nearest-code lookup, a fingerprint that
says which codebook made a grid, and cheap previews of a grid being generated.

Previews use a per-code colour table, the discrete-codebook version of the linear "latent to RGB" factors
that ComfyUI uses to preview diffusion latents (``latent_preview.Latent2RGBPreviewer``): a 3 x (embed_dim + 1)
linear map from a code's (l2-normalised) vector to the mean colour the model's own decoder paints in that
code's 16 x 16 cell. It is fitted once per model by least squares on one decode of a grid of random codes
(neighbours independent of the centre code, so the fitted slope is not biased by them; the border cells,
where the decoder sees zero padding, are left out) and applied to all codes, giving a [codebook_size, 3]
uint8 table. A preview is then a table lookup and an upscale. Fitting a few dozen numbers from hundreds of
cells needs a single decode; estimating each of the 16384 codes' colour on its own would need ~16384 / 576
decodes (or 16384 tiny 1 x 1 decodes whose border effects dominate).
"""

from __future__ import annotations

import hashlib
import weakref

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import JanusError
from .model import JanusModel
from .processing import to_uint8_official

FIT_GRID = 12  # side of the random-code grid decoded once to fit the colour map: 144 cells, 100 inner
UNFINISHED = (40, 40, 40)  # colour of the not-yet-generated part of a preview
_TABLES: "weakref.WeakKeyDictionary[torch.nn.Module, torch.Tensor]" = weakref.WeakKeyDictionary()


def _embedding(model: JanusModel) -> torch.Tensor:
    return model.require("vq").quantize.embedding.weight


def codebook_fingerprint(model: JanusModel) -> str:
    """A short hash of the VQ codebook: grids decode correctly only with the codebook that made them."""
    data = _embedding(model).detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


def code_vectors(model: JanusModel, codes: torch.Tensor) -> torch.Tensor:
    """Code grids [B, H, W] -> their l2-normalised codebook vectors [B, embed_dim, H, W], float32 on the CPU."""
    with torch.inference_mode():
        return model.require("vq").quantize.lookup(codes.to("cpu").long(), torch.float32).contiguous()


def nearest_codes(model: JanusModel, vectors, name: str = "latent") -> torch.Tensor:
    """Vectors [B, embed_dim, H, W] (e.g. edited ``code_vectors``) -> the nearest code of each position
    (cosine distance) [B, H, W]; unchanged code vectors give back exactly their codes."""
    cfg = model.config
    g, c = cfg.token_grid, cfg.vq.embed_dim
    if not isinstance(vectors, torch.Tensor) or vectors.ndim != 4 or tuple(vectors.shape[1:]) != (c, g, g):
        shape = list(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
        raise JanusError(f"{name}: expected Janus token vectors [B, {c}, {g}, {g}] (from Janus Tokens to Latent); "
                         f"got {shape}. Latents of diffusion models cannot be turned into Janus tokens.")
    if vectors.shape[0] == 0 or not torch.isfinite(vectors).all():
        raise JanusError(f"{name}: the vectors are empty or hold NaN/inf values; pass the output of Janus Tokens "
                         f"to Latent (possibly blended or composited), not an empty or broken latent.")
    with torch.inference_mode():
        return model.require("vq").quantize.nearest(vectors.to("cpu", torch.float32))


def _fit_colour_table(model: JanusModel) -> torch.Tensor:
    vq, g = model.require("vq"), FIT_GRID
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, model.config.vq.codebook_size, (1, g, g), generator=gen)
    with torch.inference_mode():
        pixels = vq.decode(codes.to(model.device_for("vq")), model.dtype_for("vq")).float().cpu()  # [1, 3, 16g, 16g]
        colour = F.avg_pool2d(((pixels + 1) / 2).clamp(0, 1), 16)[0]   # [3, g, g]: mean colour per cell
        vectors = code_vectors(model, codes)[0]                         # [embed_dim, g, g]
        inner = (slice(None), slice(1, -1), slice(1, -1))
        x = vectors[inner].reshape(vectors.shape[0], -1).T              # [cells, embed_dim]
        y = colour[inner].reshape(3, -1).T                              # [cells, 3]
        x1 = torch.cat([x, torch.ones(len(x), 1)], 1).double()
        w = torch.linalg.lstsq(x1, y.double()).solution.float()         # [embed_dim + 1, 3]
        book = vq.quantize.codebook("cpu", torch.float32)               # [codebook_size, embed_dim]
        rgb = book @ w[:-1] + w[-1]
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8)


def colour_table(model: JanusModel) -> torch.Tensor:
    """[codebook_size, 3] uint8: each code's preview colour. Built on first use (one VQ decode on the
    component's compute device) and kept for as long as the model's VQ module lives."""
    vq = model.require("vq")
    table = _TABLES.get(vq)
    if table is None:
        table = _TABLES[vq] = _fit_colour_table(model)
    return table


def has_colour_table(model: JanusModel) -> bool:
    return model.vq is not None and model.vq in _TABLES


def preview_image(model: JanusModel, codes: torch.Tensor) -> Image.Image:
    """The codes generated so far of one image (1-D, row-major, any length up to the grid) as a full-size
    RGB preview from the colour table; the rest of the image is dark grey."""
    g, side = model.config.token_grid, model.config.image_size
    table = colour_table(model)
    canvas = torch.tensor(UNFINISHED, dtype=torch.uint8).repeat(g * g, 1)
    done = codes.reshape(-1)[:g * g].to("cpu").long()
    canvas[:len(done)] = table[done]
    small = Image.fromarray(np.ascontiguousarray(canvas.view(g, g, 3).numpy()), "RGB")
    return small.resize((side, side), Image.NEAREST)


def decoder_preview_image(model: JanusModel, codes: torch.Tensor) -> Image.Image | None:
    """The finished rows of one image's codes decoded with the full VQ decoder (costly: about a full decode
    per call on CPU); None before the first row is done."""
    g, side = model.config.token_grid, model.config.image_size
    rows = codes.reshape(-1).shape[0] // g
    if rows == 0:
        return None
    grid = codes.reshape(-1)[:rows * g].reshape(1, rows, g)
    with torch.inference_mode():
        vq = model.require("vq")
        pixels = vq.decode(grid.to(model.device_for("vq")), model.dtype_for("vq"))
    canvas = Image.new("RGB", (side, side), UNFINISHED)
    canvas.paste(Image.fromarray(to_uint8_official(pixels)[0].cpu().numpy()), (0, 0))
    return canvas
