"""VQ-16 image tokenizer (LlamaGen VQModel): encoder, l2-normalised quantiser, decoder.

Parameter names follow the official checkpoint (``gen_vision_model.*``). Everything runs in the input's
dtype (the official Upsample forces bf16, which breaks fp16; we do not copy that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VQConfig

GN_GROUPS, GN_EPS = 32, 1e-6


def swish(x):
    return x * torch.sigmoid(x)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, device=None, dtype=None, ops=nn):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm1 = ops.GroupNorm(GN_GROUPS, cin, eps=GN_EPS, **kw)
        self.conv1 = ops.Conv2d(cin, cout, 3, padding=1, **kw)
        self.norm2 = ops.GroupNorm(GN_GROUPS, cout, eps=GN_EPS, **kw)
        self.conv2 = ops.Conv2d(cout, cout, 3, padding=1, **kw)
        self.nin_shortcut = ops.Conv2d(cin, cout, 1, **kw) if cin != cout else None

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions."""

    def __init__(self, c: int, device=None, dtype=None, ops=nn):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm = ops.GroupNorm(GN_GROUPS, c, eps=GN_EPS, **kw)
        self.q, self.k, self.v, self.proj_out = (ops.Conv2d(c, c, 1, **kw) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(b, c, h * w).transpose(1, 2)      # [b, hw, c]
        k = self.k(y).reshape(b, c, h * w)                      # [b, c, hw]
        v = self.v(y).reshape(b, c, h * w)
        attn = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)
        o = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj_out(o)


class Upsample(nn.Module):
    def __init__(self, c: int, device=None, dtype=None, ops=nn):
        super().__init__()
        self.conv = ops.Conv2d(c, c, 3, padding=1, device=device, dtype=dtype)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    def __init__(self, c: int, device=None, dtype=None, ops=nn):
        super().__init__()
        self.conv = ops.Conv2d(c, c, 3, stride=2, padding=0, device=device, dtype=dtype)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Level(nn.Module):
    """One resolution level: ``res`` blocks, optional ``attn`` after each, optional resampling."""

    def __init__(self, cin, cout, n_res, with_attn, resample, device=None, dtype=None, ops=nn):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(cin if j == 0 else cout, cout, device, dtype, ops) for j in range(n_res))
        self.attn = nn.ModuleList(AttnBlock(cout, device, dtype, ops) for _ in range(n_res if with_attn else 0))
        if resample == "down":
            self.downsample = Downsample(cout, device, dtype, ops)
        elif resample == "up":
            self.upsample = Upsample(cout, device, dtype, ops)

    def forward(self, h):
        for j, res in enumerate(self.res):
            h = res(h)
            if len(self.attn):
                h = self.attn[j](h)
        if hasattr(self, "downsample"):
            h = self.downsample(h)
        if hasattr(self, "upsample"):
            h = self.upsample(h)
        return h


def _mid(c, device, dtype, ops):
    return nn.ModuleList([ResBlock(c, c, device, dtype, ops), AttnBlock(c, device, dtype, ops),
                          ResBlock(c, c, device, dtype, ops)])


class Encoder(nn.Module):
    def __init__(self, cfg: VQConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        mult, n = cfg.encoder_ch_mult, len(cfg.encoder_ch_mult)
        self.conv_in = ops.Conv2d(3, cfg.ch, 3, padding=1, **kw)
        chans = [cfg.ch] + [cfg.ch * m for m in mult]
        self.conv_blocks = nn.ModuleList(
            Level(chans[i], chans[i + 1], cfg.num_res_blocks, i == n - 1, "down" if i != n - 1 else None,
                  device, dtype, ops)
            for i in range(n))
        top = chans[-1]
        self.mid = _mid(top, device, dtype, ops)
        self.norm_out = ops.GroupNorm(GN_GROUPS, top, eps=GN_EPS, **kw)
        self.conv_out = ops.Conv2d(top, cfg.z_channels, 3, padding=1, **kw)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = level(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VQConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        mult, n = cfg.decoder_ch_mult, len(cfg.decoder_ch_mult)
        top = cfg.ch * mult[-1]
        self.conv_in = ops.Conv2d(cfg.z_channels, top, 3, padding=1, **kw)
        self.mid = _mid(top, device, dtype, ops)
        chans = [top] + [cfg.ch * m for m in reversed(mult)]  # level 0 is the deepest
        self.conv_blocks = nn.ModuleList(
            Level(chans[i], chans[i + 1], cfg.num_res_blocks + 1, i == 0, "up" if i != n - 1 else None,
                  device, dtype, ops)
            for i in range(n))
        self.norm_out = ops.GroupNorm(GN_GROUPS, chans[-1], eps=GN_EPS, **kw)
        self.conv_out = ops.Conv2d(chans[-1], 3, 3, padding=1, **kw)

    def forward(self, z):
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for level in self.conv_blocks:
            h = level(h)
        return self.conv_out(swish(self.norm_out(h)))


class Quantizer(nn.Module):
    def __init__(self, cfg: VQConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.embedding = ops.Embedding(cfg.codebook_size, cfg.embed_dim, device=device, dtype=dtype)

    def codebook(self, device, dtype):
        return F.normalize(self.embedding.weight.to(device, dtype), p=2, dim=-1)

    def nearest(self, z):
        """z [B, C, H, W] -> code indices [B, H, W]: argmin distance after l2-normalising both sides."""
        b, c, h, w = z.shape
        zf = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, c), p=2, dim=-1)
        e = self.codebook(z.device, z.dtype)
        d = zf.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * zf @ e.t()
        return d.argmin(dim=1).view(b, h, w)

    def lookup(self, codes, dtype):
        """codes [B, H, W] -> normalised code vectors [B, C, H, W]."""
        return self.codebook(codes.device, dtype)[codes].permute(0, 3, 1, 2)


class VQModel(nn.Module):
    def __init__(self, cfg: VQConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.encoder = Encoder(cfg, device, dtype, ops)
        self.quant_conv = ops.Conv2d(cfg.z_channels, cfg.embed_dim, 1, **kw)
        self.quantize = Quantizer(cfg, device, dtype, ops)
        self.post_quant_conv = ops.Conv2d(cfg.embed_dim, cfg.z_channels, 1, **kw)
        self.decoder = Decoder(cfg, device, dtype, ops)

    def latent(self, pixels):
        """[-1, 1] pixels [B, 3, H, W] -> pre-quantisation latent [B, embed_dim, H/16, W/16]."""
        return self.quant_conv(self.encoder(pixels))

    def encode(self, pixels):
        """[-1, 1] pixels [B, 3, H, W] -> codes [B, H/16, W/16] (int64)."""
        return self.quantize.nearest(self.latent(pixels))

    def decode_latent(self, z):
        return self.decoder(self.post_quant_conv(z))

    def decode(self, codes, dtype):
        """codes [B, h, w] -> pixels [B, 3, 16h, 16w], about [-1, 1], unclamped."""
        return self.decode_latent(self.quantize.lookup(codes, dtype))
