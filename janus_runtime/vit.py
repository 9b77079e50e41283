"""SigLIP-L/16 vision tower (understanding path) and the MLP projectors (aligner, gen_aligner).

Parameter names follow the official checkpoint (``vision_model.vision_tower.*``, ``aligner.layers.*``).
The tower returns the final-LayerNorm features; the unused attention-pool head is never built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MlpConfig, VisionConfig

LN_EPS = 1e-6


class ViTAttention(nn.Module):
    def __init__(self, width: int, heads: int, device=None, dtype=None, ops=nn):
        super().__init__()
        self.heads = heads
        self.qkv = ops.Linear(width, 3 * width, bias=True, device=device, dtype=dtype)
        self.proj = ops.Linear(width, width, bias=True, device=device, dtype=dtype)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(b, n, c))


class ViTMlp(nn.Module):
    def __init__(self, width: int, hidden: int, device=None, dtype=None, ops=nn):
        super().__init__()
        self.fc1 = ops.Linear(width, hidden, device=device, dtype=dtype)
        self.fc2 = ops.Linear(hidden, width, device=device, dtype=dtype)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: VisionConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.norm1 = ops.LayerNorm(cfg.width, eps=LN_EPS, device=device, dtype=dtype)
        self.attn = ViTAttention(cfg.width, cfg.heads, device, dtype, ops)
        self.norm2 = ops.LayerNorm(cfg.width, eps=LN_EPS, device=device, dtype=dtype)
        self.mlp = ViTMlp(cfg.width, cfg.mlp_dim, device, dtype, ops)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: VisionConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.proj = ops.Conv2d(3, cfg.width, cfg.patch_size, stride=cfg.patch_size, bias=True,
                               device=device, dtype=dtype)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTower(nn.Module):
    """[B, 3, 384, 384] normalised pixels -> [B, 576, width] features (after the final LayerNorm)."""

    def __init__(self, cfg: VisionConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.patch_embed = PatchEmbed(cfg, device, dtype, ops)
        self.pos_embed = nn.Parameter(torch.empty(1, cfg.grid ** 2, cfg.width, device=device, dtype=dtype))
        self.blocks = nn.ModuleList(Block(cfg, device, dtype, ops) for _ in range(cfg.layers))
        self.norm = ops.LayerNorm(cfg.width, eps=LN_EPS, device=device, dtype=dtype)

    def forward(self, pixels):
        x = self.patch_embed(pixels) + self.pos_embed.to(pixels.device, pixels.dtype)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class MlpProjector(nn.Module):
    """Official "mlp_gelu" projector: ``layers`` = Linear, (GELU, Linear) x (depth-1)."""

    def __init__(self, cfg: MlpConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        mods = [ops.Linear(cfg.input_dim, cfg.n_embed, device=device, dtype=dtype)]
        for _ in range(cfg.depth - 1):
            mods += [nn.GELU(), ops.Linear(cfg.n_embed, cfg.n_embed, device=device, dtype=dtype)]
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return self.layers(x)


class VisionEncoder(nn.Module):
    """Understanding path: SigLIP tower + aligner, pixels -> LM-width image embeddings."""

    def __init__(self, vision: VisionConfig, aligner: MlpConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.vision_tower = VisionTower(vision, device, dtype, ops)
        self.aligner = MlpProjector(aligner, device, dtype, ops)

    def forward(self, pixels):
        return self.aligner(self.vision_tower(pixels))
