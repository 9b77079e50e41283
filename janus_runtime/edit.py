"""Instruction editing (text + image -> image) with the Janus-4o recipe.

Janus-4o-7B (FreedomIntelligence, arXiv 2506.18095) is Janus-Pro-7B fine-tuned on text-and-image-to-image
pairs. Its generation recipe (``text_and_image_to_image_generate`` in the README of
FreedomIntelligence/ShareGPT-4o-Image @ 19ac7d77) puts each input image into the user turn twice:

    <begin_of_image> 576 x <image_placeholder> <end_of_image>   SigLIP understanding features
    <begin_of_image> 576 x <｜▁pad▁｜>           <end_of_image>   VQ generation embeddings (or plain pads)

then the instruction, the SFT template and a final <begin_of_image>. Three rows guide each output image:
cond_full (SigLIP + VQ + text), cond_part (SigLIP + text, pad block left as pads) and uncond (BOS, pads,
<begin_of_image>; or the negative prompt's own template). Their logits combine as

    cond   = (full + w2 * part) / (1 + w2)
    logits = uncond + w * (cond - uncond)

The authors' inference code fills only the first image's pad block correctly; with several input images we do
what their training script (train_janus.py) does: image k's codes go into image k's own pad block. With one
input image both agree.

Row layout of a batch of B output images: rows [0, B) cond_full, [B, 2B) cond_part, [2B, 3B) uncond.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_generation_args, check_number
from .errors import JanusError
from .generation import ImageSampler, forced_tokens, sample_grids, score_rows
from .image_tokens import check_tokens
from .lm_session import left_pad, open_session
from .model import JanusModel
from .processing import BOI_TAG, EOI_TAG, IMAGE_TAG, Prompt, pixels_from_pil
from .sampling import Guidance, make_generators


@dataclass
class EditRows:
    ids: torch.Tensor         # [3B, L] token ids, left-padded
    valid: torch.Tensor       # [3B, L] False at left padding
    siglip: torch.Tensor      # [3B, L] True at the <image_placeholder> slots (cond rows)
    vq: torch.Tensor          # [3B, L] True at the pad blocks that receive VQ embeddings (cond_full rows)
    batch: int


def _check_inputs(images, instruction):
    if not images:
        raise JanusError("edit: give at least one input image (the picture to edit)")
    if not isinstance(instruction, str) or not instruction.strip():
        raise JanusError("instruction is empty: say how the image should change (e.g. 'make it a night scene')")


def edit_rows(model: JanusModel, n_images: int, instruction: str, batch: int,
              negative_prompt: str = "") -> EditRows:
    """Token rows for ``batch`` outputs conditioned on ``n_images`` input images and ``instruction``."""
    text = model.text
    n_tok = model.config.num_image_tokens
    block = ([(BOI_TAG, True)] + [(IMAGE_TAG, True)] * n_tok + [(EOI_TAG, True), (BOI_TAG, True)]
             + [(text.pad_text, True)] * n_tok + [(EOI_TAG, True)])
    cond = text.encode(text.generation_prompt(Prompt(block * n_images + [(instruction, False)])))
    if negative_prompt and negative_prompt.strip():
        uncond = text.encode(text.generation_prompt(negative_prompt))
    else:  # the recipe's unconditional row: BOS, pads, final <begin_of_image>
        uncond = [cond[0]] + [text.ids.pad] * (len(cond) - 2) + [cond[-1]]
    ids, valid = left_pad([cond] * (2 * batch) + [uncond] * batch, text.ids.pad)
    cond_rows = torch.arange(3 * batch)[:, None] < 2 * batch
    # user text is encoded as plain text, so pad and placeholder ids come only from the blocks above
    siglip = cond_rows & (ids == text.ids.image) & valid
    vq = (torch.arange(3 * batch)[:, None] < batch) & (ids == text.ids.pad) & valid
    return EditRows(ids=ids, valid=valid, siglip=siglip, vq=vq, batch=batch)


@torch.inference_mode()
def edit_embeddings(model: JanusModel, rows: EditRows, images: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The LM's first input [3B, L, n] (token embeddings, SigLIP features, VQ embeddings) and the input
    images' VQ codes [k, 24, 24]."""
    lm, vision, vq = model.require("lm"), model.require("vision"), model.require("vq")
    device = model.device_for("lm")
    pixels = torch.stack([pixels_from_pil(im, model.config.image_size) for im in images])   # [k, 3, 384, 384]
    if not torch.isfinite(pixels).all():
        raise JanusError("image: the input image holds NaN or infinite values")
    feats = vision(pixels.to(model.device_for("vision"), model.dtype_for("vision")))       # [k, 576, n]
    codes = vq.encode(pixels.to(model.device_for("vq"), model.dtype_for("vq")))             # [k, 24, 24]
    code_embeds = lm.embed_image_codes(codes.flatten(1).to(device))                         # [k, 576, n]
    embeds = lm.embed_text(rows.ids.to(device)).clone()
    feats = feats.to(device, embeds.dtype)
    embeds[rows.siglip.to(device)] = feats.reshape(-1, feats.shape[-1]).repeat(2 * rows.batch, 1)
    embeds[rows.vq.to(device)] = code_embeds.to(embeds.dtype).reshape(-1, feats.shape[-1]).repeat(rows.batch, 1)
    return embeds, codes


@dataclass
class EditSampler(ImageSampler):
    """ImageSampler over three rows per image: cond_full, cond_part, uncond."""
    image_cfg: float = 5.0
    rows_per_image = 3

    def blend(self, full: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """The condition: (full + w2 part) / (1 + w2), in the recipe's order of operations."""
        return (full + self.image_cfg * part) / (1 + self.image_cfg)

    def guide(self, logits: torch.Tensor, step: int) -> torch.Tensor:
        """[3B, V] logits of the three row groups -> [B, V]: the image-blended condition, then CFG."""
        b = logits.shape[0] // 3
        cond = self.blend(logits[:b], logits[b:2 * b])
        return self.guidance.combine(cond[:, None], logits[2 * b:, None], step, self.total)[:, 0]


def _prepare(model, images, instruction, n, negative_prompt, cfg, image_cfg, temperature, top_k, top_p, seed,
             scoring=False):
    _check_inputs(images, instruction)
    check_generation_args(instruction, n, cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p,
                          seed=seed, scoring=scoring)
    check_number(image_cfg, "image_cfg", low=0, hint="weight of the image-conditioned row; Janus-4o uses 5")
    return edit_rows(model, len(images), instruction, n, negative_prompt)


@torch.inference_mode()
def edit_image_tokens(model: JanusModel, images: list, instruction: str, *, n: int = 1,
                      negative_prompt: str = "", cfg: float = 5.0, image_cfg: float = 5.0,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                      init_tokens=None, mask=None, callback=None) -> torch.Tensor:
    """Janus-4o instruction editing: ``n`` token grids [n, g, g] of ``images`` (PIL, one or more) changed as
    ``instruction`` says. ``cfg`` is w, ``image_cfg`` w2 (both 5 in the recipe); the sampling options,
    seeds, masked regeneration and callback work as in ``generate_image_tokens``."""
    rows = _prepare(model, images, instruction, n, negative_prompt, cfg, image_cfg, temperature, top_k, top_p,
                    seed)
    total, grid = model.config.num_image_tokens, model.config.token_grid
    forced = forced_tokens(model, init_tokens, mask, n)
    embeds, _ = edit_embeddings(model, rows, images)
    with open_session(model, rows.valid, total, new_what="image tokens",
                      fix="use fewer or smaller input images, or a shorter instruction") as session:
        sampler = EditSampler(model.lm, Guidance(cfg), temperature, top_k, top_p,
                              make_generators(seed, n, session.device), total, image_cfg=image_cfg)
        tokens, _ = sample_grids(session, sampler, embeds.to(session.device), forced, n, callback)
    return tokens.view(n, grid, grid)


@torch.inference_mode()
def score_edit_tokens(model: JanusModel, images: list, instruction: str, tokens: torch.Tensor, *,
                      negative_prompt: str = "", cfg: float = 5.0, image_cfg: float = 5.0,
                      temperature: float = 1.0, return_logits_at=None):
    """Per-token log-probabilities [B, N] of ``tokens`` under the edit guidance (teacher forcing); with
    ``return_logits_at`` also {"cfg", "cond_full", "cond_part", "uncond"} logits [B, steps, V]."""
    tokens = check_tokens(model, tokens)
    n, total = tokens.shape[0], model.config.num_image_tokens
    rows = _prepare(model, images, instruction, n, negative_prompt, cfg, image_cfg, temperature, 0, 1.0, 0,
                    scoring=True)
    embeds, _ = edit_embeddings(model, rows, images)
    steps = list(return_logits_at or [])
    with open_session(model, rows.valid, total, new_what="image tokens",
                      fix="use fewer or smaller input images, or a shorter instruction") as session:
        sampler = EditSampler(model.lm, Guidance(cfg), temperature, 0, 1.0, [], total, image_cfg=image_cfg)

        def guide(logits):  # [3, N, V]: cond_full, cond_part and uncond rows of one image
            full, part, uncond = logits
            guided = sampler.guidance.combine(sampler.blend(full, part), uncond, 0, total)
            return guided, {"cond_full": full, "cond_part": part, "uncond": uncond}
        return score_rows(session, model, embeds.to(session.device), tokens.reshape(n, total).to(session.device),
                          3, guide, temperature, steps)
