"""A compact Llama decoder (the Janus LM) with a preallocated static KV cache.

Numerically it follows transformers' LlamaForCausalLM (RMSNorm in fp32, RoPE tables in fp32 cast to the
activation dtype, SDPA attention); tests compare the two on the same weights. q/k/v and gate/up are fused
into one matmul each because at one token per step the launch count, not the FLOPs, sets the speed.
Checkpoints (official and transformers layouts alike) store the parts separately: a load_state_dict
pre-hook on the owning module concatenates them (the approach of gpt-fast's ``Attention.load_hook``), so
every loader passes checkpoint-named tensors and nothing fuses by hand.

Cache layout: every row of the batch shares the cache slots 0..S-1; left-padded rows mark their pad slots
invalid in ``key_valid`` and carry their own RoPE positions, so rows of different prompt lengths decode in
one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LlamaConfig


def fuse_on_load(module: nn.Module, fused: dict):
    """Register a load_state_dict pre-hook that concatenates checkpoint parts into fused Linear weights.

    ``fused``: {fused Linear name: ((part name, rows), ...)}, rows in concatenation order. Parts that are not
    all present are left alone, so strict loading reports them by their checkpoint names.
    """
    module.fused_weights = fused

    def hook(state_dict, prefix, *args):
        for target, parts in fused.items():
            keys = [f"{prefix}{name}.weight" for name, _ in parts]
            if all(k in state_dict for k in keys):
                state_dict[f"{prefix}{target}.weight"] = torch.cat([state_dict.pop(k) for k in keys])
    module._register_load_state_dict_pre_hook(hook)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim, device=device, dtype=dtype))

    def forward(self, x):
        # Normalise in fp32, round to the activation dtype, then scale: transformers' order of roundings.
        # The dtype/device checks skip no-op casts, a measurable share of a CPU decode step; F.rms_norm
        # would be one call but is several times slower on CPU at decode sizes.
        h = x if x.dtype == torch.float32 else x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if h.dtype != x.dtype:
            h = h.to(x.dtype)
        w = self.weight
        if w.dtype != x.dtype or w.device != x.device:
            w = w.to(x.device, x.dtype)
        return w * h


class KVCache(nn.Module):
    """Static per-layer key/value buffers [B, H_kv, S, D]; written in place at ``slots``."""

    def __init__(self, batch: int, heads: int, length: int, head_dim: int, device, dtype):
        super().__init__()
        shape = (batch, heads, length, head_dim)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype), persistent=False)

    def update(self, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        self.k.index_copy_(2, slots, k)
        self.v.index_copy_(2, slots, v)
        return self.k, self.v


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.qkv_proj = ops.Linear(cfg.hidden_size, q_dim + 2 * kv_dim, bias=False, device=device, dtype=dtype)
        self.o_proj = ops.Linear(q_dim, cfg.hidden_size, bias=False, device=device, dtype=dtype)
        self.cache: KVCache | None = None
        fuse_on_load(self, {"qkv_proj": (("q_proj", q_dim), ("k_proj", kv_dim), ("v_proj", kv_dim))})

    def forward(self, x, cos, sin, slots, mask, kv_len):
        b, t, _ = x.shape
        qkv = self.qkv_proj(x).view(b, t, self.heads + 2 * self.kv_heads, self.head_dim)
        n_qk = self.heads + self.kv_heads
        qk = qkv[:, :, :n_qk]
        # RoPE on q and k at once; roll(x, D/2) * [-sin, sin] is exactly rotate_half(x) * sin, in fewer ops
        qk = qk * cos + qk.roll(self.head_dim // 2, dims=-1) * sin
        q = qk[:, :, :self.heads].transpose(1, 2)
        k = qk[:, :, self.heads:].transpose(1, 2)
        v = qkv[:, :, n_qk:].transpose(1, 2)
        if self.cache is not None:
            k, v = self.cache.update(slots, k, v)
            if kv_len is not None:
                k, v = k[:, :, :kv_len], v[:, :, :kv_len]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           enable_gqa=self.kv_heads != self.heads)
        return self.o_proj(o.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.inter = cfg.intermediate_size
        self.gate_up_proj = ops.Linear(cfg.hidden_size, 2 * self.inter, bias=False, device=device, dtype=dtype)
        self.down_proj = ops.Linear(self.inter, cfg.hidden_size, bias=False, device=device, dtype=dtype)
        fuse_on_load(self, {"gate_up_proj": (("gate_proj", self.inter), ("up_proj", self.inter))})

    def forward(self, x):
        gate, up = self.gate_up_proj(x).split(self.inter, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device, dtype)
        self.self_attn = Attention(cfg, device, dtype, ops)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device, dtype)
        self.mlp = MLP(cfg, device, dtype, ops)

    def forward(self, x, cos, sin, slots, mask, kv_len):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, slots, mask, kv_len)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg: LlamaConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.embed_tokens = ops.Embedding(cfg.vocab_size, cfg.hidden_size, device=device, dtype=dtype)
        self.layers = nn.ModuleList(DecoderLayer(cfg, device, dtype, ops) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, device, dtype)


class Llama(nn.Module):
    """LlamaForCausalLM's parameters under the same names (after fusing), plus a static cache."""

    def __init__(self, cfg: LlamaConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg, device, dtype, ops)
        self.lm_head = ops.Linear(cfg.hidden_size, cfg.vocab_size, bias=False, device=device, dtype=dtype)
        self.cache_batch = 0
        self.cache_length = 0
        self.key_valid: torch.Tensor | None = None

    # -- cache ---------------------------------------------------------------------------------------------
    def setup_cache(self, batch: int, length: int, device, dtype):
        """(Re)allocate the KV cache for ``batch`` rows of up to ``length`` positions; keep it if big enough."""
        length = (length + 7) // 8 * 8
        layer0 = self.model.layers[0].self_attn.cache
        if (layer0 is not None and self.cache_batch == batch and self.cache_length >= length
                and layer0.k.device == torch.device(device) and layer0.k.dtype == dtype):
            self.key_valid.fill_(True)
            return
        self.free_cache()
        for layer in self.model.layers:
            a = layer.self_attn
            a.cache = KVCache(batch, a.kv_heads, length, a.head_dim, device, dtype)
        self.key_valid = torch.ones(batch, length, dtype=torch.bool, device=device)
        self.cache_batch, self.cache_length = batch, length
        # RoPE tables for every cache position, in fp32 as transformers computes them, then cast
        half = self.cfg.head_dim // 2
        inv_freq = 1.0 / (self.cfg.rope_theta ** (torch.arange(0, half, dtype=torch.int64, device=device).float()
                                                  * 2 / self.cfg.head_dim))
        freqs = torch.arange(length, device=device).float()[:, None] * inv_freq
        cos, sin = freqs.cos().to(dtype), freqs.sin().to(dtype)
        self._cos, self._sin = torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)

    def free_cache(self):
        for layer in self.model.layers:
            layer.self_attn.cache = None
        self.key_valid = None
        self.cache_batch = self.cache_length = 0

    def rope(self, positions: torch.Tensor):
        """cos and sign-folded sin [B, T, 1, D] for integer positions [B, T] (table lookups)."""
        return self._cos[positions][:, :, None], self._sin[positions][:, :, None]

    # -- forward -------------------------------------------------------------------------------------------
    def forward(self, embeds: torch.Tensor, slots: torch.Tensor, positions: torch.Tensor,
                mask: torch.Tensor | None, kv_len: int | None = None) -> torch.Tensor:
        """Run ``embeds`` [B, T, n] written at cache ``slots`` [T] with RoPE ``positions`` [B, T].

        Returns the final-norm hidden states [B, T, n]. ``mask`` [B, 1, T, S] (True = attend; see
        ``attention_mask``) may be None only for one new token with no padded rows. ``kv_len`` (a host int)
        limits attention to the first kv_len slots (eager speed-up); None attends over the whole cache
        (static shapes for CUDA graphs).
        """
        cos, sin = self.rope(positions)
        x = embeds
        for layer in self.model.layers:
            x = layer(x, cos, sin, slots, mask, kv_len)
        return self.model.norm(x)

    def attention_mask(self, slots: torch.Tensor, kv_len: int | None):
        s = self.cache_length if kv_len is None else kv_len
        keys = torch.arange(s, device=slots.device)[None, :]
        causal = (keys <= slots[:, None])[None] & self.key_valid[:, None, :s]   # [B, T, S]
        # A pad query sees no valid key; letting it see itself keeps its output finite (a NaN there
        # would reach the other rows through 0 * NaN in the attention product).
        return (causal | (keys == slots[:, None]))[:, None]                       # [B, 1, T, S]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

