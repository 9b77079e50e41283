"""The language model with its image-generation adapters: the part that runs every sampling step."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .config import GenHeadConfig, JanusConfig
from .llama import Llama
from .vit import MlpProjector


class GenHead(nn.Module):
    """Official ``vision_head``: hidden -> image-code logits."""

    def __init__(self, cfg: GenHeadConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.output_mlp_projector = ops.Linear(cfg.n_embed, cfg.image_token_embed, device=device, dtype=dtype)
        self.vision_head = ops.Linear(cfg.image_token_embed, cfg.image_token_size, device=device, dtype=dtype)

    def forward(self, h):
        return self.vision_head(F.gelu(self.output_mlp_projector(h)))


class JanusLM(nn.Module):
    """Llama + gen_embed/gen_aligner (image code -> LM input) + gen_head (LM hidden -> image-code logits)."""

    def __init__(self, cfg: JanusConfig, device=None, dtype=None, ops=nn):
        super().__init__()
        self.language_model = Llama(cfg.language, device, dtype, ops)
        self.gen_embed = ops.Embedding(cfg.vq.codebook_size, cfg.vq.embed_dim, device=device, dtype=dtype)
        self.gen_aligner = MlpProjector(cfg.gen_aligner, device, dtype, ops)
        self.gen_head = GenHead(cfg.gen_head, device, dtype, ops)

    def embed_text(self, ids):
        return self.language_model.model.embed_tokens(ids)

    def embed_image_codes(self, codes):
        return self.gen_aligner(self.gen_embed(codes))
