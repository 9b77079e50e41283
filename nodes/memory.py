"""The JANUS_MODEL handle: the runtime model plus one ModelPatcher per component, and the memory estimates
handed to ComfyUI's memory manager before each computation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..janus_runtime import JanusModel

from .tokens import JanusTokens

# Which components each kind of work needs on the compute device.
LM, VISION, VQ = "lm", "vision", "vq"


@dataclass
class JanusHandle:
    model: JanusModel
    patchers: dict
    codebook_id: str

    def get_models(self) -> list:
        """The ModelPatchers, for ComfyUI's output cache and per-prompt model tracking (core calls this)."""
        return list(self.patchers.values())

    def load(self, parts, memory_required: int = 0):
        """Have ComfyUI load ``parts`` (evicting other models as needed) and return the compute device."""
        import comfy.model_management as mm
        patchers = [self.patchers[p] for p in parts]
        mm.load_models_gpu(patchers, memory_required=memory_required)
        return self.model.set_compute_device(patchers[0].load_device)

    def tokens(self, grid: torch.Tensor) -> JanusTokens:
        """Wrap token grids made with this model's codebook, on ComfyUI's intermediate device."""
        import comfy.model_management as mm
        return JanusTokens(tokens=grid.to(mm.intermediate_device()),
                           codebook_size=self.model.config.vq.codebook_size, codebook_id=self.codebook_id)


def _itemsize(handle: JanusHandle, part: str = "lm") -> int:
    return torch.empty((), dtype=handle.model.dtype_for(part)).element_size()


def kv_cache_bytes(handle: JanusHandle, rows: int, length: int) -> int:
    c = handle.model.config.language
    return 2 * c.num_hidden_layers * rows * length * c.num_key_value_heads * c.head_dim * _itemsize(handle)


def generation_bytes(handle: JanusHandle, batch: int, prompt_tokens: int = 96, rows_per_image: int = 2) -> int:
    """KV cache for rows_per_image x batch rows (2 for CFG; 3 for Janus-4o editing, whose prompt holds about
    1,200 tokens per input image), the prefill activations and the per-step logits (fp32 copies)."""
    cfg = handle.model.config
    c = cfg.language
    rows, length = rows_per_image * batch, prompt_tokens + cfg.num_image_tokens
    prefill = rows * length * (4 * c.hidden_size + 2 * c.intermediate_size) * _itemsize(handle)
    logits = rows * cfg.gen_head.image_token_size * 4 * 4
    return kv_cache_bytes(handle, rows, length) + prefill + logits


def understanding_bytes(handle: JanusHandle, rows: int, images: int, max_new_tokens: int) -> int:
    cfg = handle.model.config
    c = cfg.language
    length = 96 + images * (cfg.num_image_tokens + 2) + max_new_tokens
    prefill = rows * length * (4 * c.hidden_size + 2 * c.intermediate_size) * _itemsize(handle)
    vision = images * cfg.num_image_tokens * cfg.vision.mlp_dim * 4 * _itemsize(handle, "vision")
    return kv_cache_bytes(handle, rows, length) + prefill + vision + rows * c.vocab_size * 4 * 2


def vq_bytes(handle: JanusHandle, batch: int) -> int:
    """The decoder's largest activations: a few copies of [batch, ch, 384, 384]."""
    cfg = handle.model.config
    return 8 * batch * cfg.vq.ch * cfg.image_size ** 2 * _itemsize(handle, "vq")
