"""Image tokens with classifier-free guidance: sampling (``generate_image_tokens``) and scoring
(``score_image_tokens``).

The loop is LlamaGen's (FoundationVision/LlamaGen @ ce98ec4, autoregressive/models/generate.py, itself
gpt-fast's): ``prefill`` the prompts, then ``decode_one_token`` per step. Both CFG rows of an image run in one
batch and are fed the same sampled code. Row layout: rows [0, B) are the conditional rows of images 0..B-1,
rows [B, 2B) their unconditional partners (``logits[:B]`` / ``logits[B:]``).

Image k draws only from its own generator, seeded from (seed, k), one uniform per step. So the same
(seed, k, batch size) gives the same tokens; alone or in another batch size, image k follows the same draws
but the logits may differ in the last bits (matmul kernels depend on the batch size), which changes a token
only where a draw falls within that noise of a CDF bin edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .checks import check_generation_args, check_parallel, nonfinite_logits_error
from .errors import JanusError
from .image_tokens import check_mask, check_tokens
from .lm_session import LMSession, left_pad, open_session
from .model import JanusModel
from .sampling import Guidance, draw_margin, make_generators, sample_rows, sampling_cdf, skip_draws
from .speculative import Target, generate_speculative

StepCallback = Callable[[int, int, torch.Tensor], None]


@dataclass
class CFGBatch:
    ids: torch.Tensor    # [2B, L] prompt ids, left-padded
    valid: torch.Tensor  # [2B, L] False on pad slots


def cfg_batch(model: JanusModel, prompts: list[str], negative_prompt: str = "") -> CFGBatch:
    """Token rows for CFG: conditional prompts, then their unconditional partners.

    The unconditional row is the official one, [BOS, PAD..., BOI] as long as its prompt (pads attended, no
    mask; Janus generation_inference.py @ 1daa72fa), unless ``negative_prompt`` is non-empty: then it is that
    prompt's own template, and rows of different length are left-padded and masked.
    """
    text = model.text
    cond = [text.encode(text.generation_prompt(p)) for p in prompts]
    if negative_prompt and negative_prompt.strip():
        neg = text.encode(text.generation_prompt(negative_prompt))
        uncond = [list(neg) for _ in cond]
    else:
        uncond = [[r[0]] + [text.ids.pad] * (len(r) - 2) + [r[-1]] for r in cond]
    return CFGBatch(*left_pad(cond + uncond, text.ids.pad))


@dataclass
class ForcedTokens:
    """Masked regeneration: steps outside ``regen`` keep their token (teacher-forced), the rest are sampled."""
    ids: torch.Tensor    # [B, N] image codes in raster order
    regen: torch.Tensor  # [B, N] True = sample this step

    def to(self, device) -> "ForcedTokens":
        return ForcedTokens(self.ids.to(device), self.regen.to(device))

    def known_prefix(self) -> int:
        """Steps before the first one any image regenerates: fed in the prefill, never sampled."""
        first = self.regen.any(0).nonzero()
        return int(first[0]) if len(first) else self.ids.shape[1]


def forced_tokens(model: JanusModel, init_tokens, mask, n: int) -> ForcedTokens | None:
    if init_tokens is None and mask is None:
        return None
    if init_tokens is None or mask is None:
        raise JanusError("partial regeneration needs both init_tokens and mask")
    init_tokens = check_tokens(model, init_tokens, "init_tokens")
    if init_tokens.shape[0] == 1 and n > 1:
        init_tokens = init_tokens.expand(n, -1, -1)
    if init_tokens.shape[0] != n:
        raise JanusError(f"init_tokens has {init_tokens.shape[0]} grids for a batch of {n}")
    mask = check_mask(mask, init_tokens)
    return ForcedTokens(init_tokens.reshape(n, -1), mask.reshape(n, -1))


@dataclass
class ImageSampler:
    """What one step of one call samples: CFG, the draw's options, per-image generators, forced tokens."""
    lm: torch.nn.Module
    guidance: Guidance
    temperature: float
    top_k: int
    top_p: float
    gens: list
    total: int                       # image tokens per grid
    forced: ForcedTokens | None = None
    checked: bool = False            # the first logits were checked for NaN/inf

    def next_tokens(self, hidden: torch.Tensor, step: int) -> torch.Tensor:
        """Hidden states [2B, D] of step ``step`` -> the image codes [B] of that step."""
        logits = self.lm.gen_head(hidden)                              # [2B, V]
        if not self.checked:  # one host sync per call: NaN weights or fp16 overflow show here
            if not bool(torch.isfinite(logits).all()):
                raise nonfinite_logits_error(f"at image token {step}", logits.dtype)
            self.checked = True
        tok = sample_rows(self.guide(logits, step), self.gens, self.temperature, self.top_k, self.top_p)
        if self.forced is not None:
            tok = torch.where(self.forced.regen[:, step], tok, self.forced.ids[:, step])
        return tok

    rows_per_image = 2  # conditional, unconditional

    def guide(self, logits: torch.Tensor, step: int) -> torch.Tensor:
        """Logits of all rows [2B, V] at image step ``step`` -> the guided logits [B, V]."""
        n = logits.shape[0] // 2
        return self.guidance.combine(logits[:n, None], logits[n:, None], step, self.total)[:, 0]

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Image codes [B, T] -> LM inputs [rows_per_image x B, T, D]: each code feeds every row of its image."""
        x = self.lm.embed_image_codes(codes)
        return torch.cat([x] * self.rows_per_image)


def prefill(session: LMSession, sampler: ImageSampler, embeds: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Run the prompt rows' embeddings [R, L, D] and the known leading codes [B, K]; sample step K: codes [B]."""
    if known.shape[1]:
        embeds = torch.cat([embeds, sampler.embed(known)], 1)
    return sampler.next_tokens(session.prefill(embeds)[:, -1], known.shape[1])


def decode_one_token(session: LMSession, sampler: ImageSampler, previous: torch.Tensor, step: int) -> torch.Tensor:
    """Feed the codes [B] of step - 1 and sample step ``step``: codes [B]."""
    return sampler.next_tokens(session.step(sampler.embed(previous[:, None]))[:, -1], step)


def decode_n_tokens(session: LMSession, sampler: ImageSampler, tok: torch.Tensor, tokens: torch.Tensor,
                    start: int, callback: StepCallback | None = None):
    """Fill ``tokens`` [B, N] from step ``start`` (whose codes ``tok`` the prefill sampled) to the end."""
    for step in range(start, sampler.total):
        if step > start:
            tok = decode_one_token(session, sampler, tok, step)
        tokens[:, step] = tok
        if callback:  # after each step, before the next forward: raising from it stops the run at once
            callback(step, sampler.total, tokens[:, :step + 1])


@torch.inference_mode()
def generate_image_tokens(model: JanusModel, prompt, *, n: int = 1, negative_prompt: str = "",
                          cfg: float = 5.0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                          seed: int = 0, cfg_until: float = 1.0, init_tokens: torch.Tensor | None = None,
                          mask: torch.Tensor | None = None, callback: StepCallback | None = None,
                          compile: bool = False, parallel: str = "off", window: int = 16,
                          stats: dict | None = None) -> torch.Tensor:
    """Sample image-token grids [n, g, g] (int64, on the LM's device; g = 24 for 384 px) with CFG.

    ``cfg``: guidance weight w in uncond + w (cond - uncond); ``cfg_until``: fraction of the steps that use
    guidance (after it, the conditional logits alone). ``temperature`` 0 means argmax; ``top_k`` 0 and
    ``top_p`` 1 disable those filters. ``init_tokens`` + ``mask`` (True = regenerate): tokens outside the
    mask are kept and teacher-forced; only masked positions are sampled. ``callback(step, total, tokens)``
    runs after each step (tokens [n, steps done]); raising from it aborts. ``compile``: on CUDA, run the
    decode step as a compiled CUDA graph (the KV cache then stays allocated for reuse; ``free_cache()`` on
    the LM releases it); elsewhere, or if compilation fails, the eager step runs. ``parallel="sjd"``:
    speculative Jacobi decoding with ``window`` positions per forward pass (janus_runtime/speculative.py):
    the same distribution, a different sample; images are then decoded one after another. ``"mc-sjd"``: the
    same with coupled redrafting (drafts kept where the new distribution allows; fewer passes). ``stats``: a dict
    that receives the number of forward passes after the prefill(s).
    """
    prompts = check_generation_args(prompt, n, cfg=cfg, cfg_until=cfg_until, temperature=temperature,
                                    top_k=top_k, top_p=top_p, seed=seed)
    check_parallel(parallel, window)
    n, grid, total = len(prompts), model.config.token_grid, model.config.num_image_tokens
    forced = forced_tokens(model, init_tokens, mask, n)
    batch = cfg_batch(model, prompts, negative_prompt)
    if parallel != "off":
        target = Target(Guidance(cfg, cfg_until), temperature, top_k, top_p, total)
        gens = make_generators(seed, n, model.device_for("lm"))
        tokens, passes = generate_speculative(model, batch, n, target, gens, window, forced, callback,
                                              open_session, coupled=parallel == "mc-sjd")
        if stats is not None:
            stats["forward_passes"] = passes
        return tokens.view(n, grid, grid)
    with open_session(model, batch.valid, total, new_what="image tokens", fix="shorten the prompt",
                      compile=compile) as session:
        sampler = ImageSampler(model.lm, Guidance(cfg, cfg_until), temperature, top_k, top_p,
                               make_generators(seed, n, session.device), total)
        tokens, start = sample_grids(session, sampler, model.lm.embed_text(batch.ids.to(session.device)), forced,
                                     n, callback)
    if stats is not None:
        stats["forward_passes"] = max(total - start - 1, 0)
    return tokens.view(n, grid, grid)


def sample_grids(session: LMSession, sampler: ImageSampler, embeds: torch.Tensor, forced: ForcedTokens | None,
                 n: int, callback: StepCallback | None) -> tuple[torch.Tensor, int]:
    """Sample ``n`` grids after the prompt rows' ``embeds`` [R, L, D]: the known prefix of a masked regeneration
    is fed in the prefill (its draws skipped), the rest decoded step by step. Returns (codes [n, N], first
    sampled step)."""
    device, total = session.device, sampler.total
    tokens = torch.empty(n, total, dtype=torch.long, device=device)
    start = 0
    if forced is not None:
        sampler.forced = forced = forced.to(device)
        start = forced.known_prefix()
        tokens[:, :start] = forced.ids[:, :start]
        skip_draws(sampler.gens, start, device)
    if start == total:  # nothing to sample
        if callback:
            callback(total - 1, total, tokens)
    else:
        tok = prefill(session, sampler, embeds, tokens[:, :start])
        decode_n_tokens(session, sampler, tok, tokens, start, callback)
    return tokens, start


@torch.inference_mode()
def score_image_tokens(model: JanusModel, prompt, tokens: torch.Tensor, *, negative_prompt: str = "",
                       cfg: float = 5.0, temperature: float = 1.0, cfg_until: float = 1.0,
                       return_logits_at=None):
    """Per-token log-probabilities [B, N] of ``tokens`` under the CFG distribution (teacher forcing).

    Seed-free: with the same arguments as ``generate_image_tokens`` this is the log-probability the sampler
    (without top-k/top-p) gave each token. ``return_logits_at``: optional step list; then also returns
    {"cfg", "cond", "uncond"} logits [B, len(steps), V] at those steps.
    """
    tokens = check_tokens(model, tokens)
    n, total = tokens.shape[0], model.config.num_image_tokens
    prompts = check_generation_args(prompt, n, cfg=cfg, cfg_until=cfg_until, temperature=temperature,
                                    scoring=True)
    batch = cfg_batch(model, prompts, negative_prompt)
    guidance, steps = Guidance(cfg, cfg_until), list(return_logits_at or [])
    with open_session(model, batch.valid, total, new_what="image tokens", fix="shorten the prompt") as session:
        flat = tokens.reshape(n, total).to(session.device)

        def guide(logits):  # [2, N, V]: the conditional and unconditional rows of one image
            return guidance.combine(logits[0], logits[1], 0, total), {"cond": logits[0], "uncond": logits[1]}
        return score_rows(session, model, model.lm.embed_text(batch.ids.to(session.device)), flat, 2, guide,
                          temperature, steps)


def score_rows(session: LMSession, model: JanusModel, embeds: torch.Tensor, flat: torch.Tensor,
               rows_per_image: int, guide, temperature: float, steps: list):
    """Teacher-forced log-probabilities [B, N] of the codes ``flat`` [B, N] after the prompt rows' ``embeds``
    [rows_per_image x B, L, D]. ``guide(logits [rows_per_image, N, V])`` -> (guided [N, V], {row name: [N, V]}).
    With ``steps``, also {"cfg" and each row name: logits [B, len(steps), V]} at those steps."""
    lm, (n, total) = model.lm, flat.shape
    codes = lm.embed_image_codes(flat[:, :-1].repeat(rows_per_image, 1))
    hidden = session.prefill(torch.cat([embeds, codes], 1))[:, -total:]  # [R, N, D]: the states predicting each code
    out = torch.empty(n, total, dtype=torch.float32, device=session.device)
    picked = {}
    for i in range(n):  # one image at a time bounds the [rows_per_image, N, V] logits in memory
        guided, rows = guide(lm.gen_head(hidden[i::n]))
        out[i] = (guided.float() / temperature).log_softmax(-1).gather(-1, flat[i, :, None])[:, 0]
        if steps:
            for name, t in {"cfg": guided, **rows}.items():
                picked.setdefault(name, []).append(t[steps].float())
    if not bool(torch.isfinite(out).all()):
        raise nonfinite_logits_error("while scoring", model.dtype)
    if steps:
        return out, {k: torch.stack(v) for k, v in picked.items()}
    return out


def draw_margins(model: JanusModel, prompt: str, grid: torch.Tensor, *, seed: int = 0, index: int = 0,
                 negative_prompt: str = "", cfg: float = 5.0, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, cfg_until: float = 1.0) -> torch.Tensor:
    """How close each step of image ``index`` of a run with ``seed`` came to drawing another token: [N]
    distances of the draw from its CDF bin's nearest edge (temperature 0: the top-2 CFG logit gap),
    from teacher-forced logits of ``grid`` [g, g].

    Runs whose logits differ only by float noise (another batch size, another CPU) produce ``grid`` up to
    the first step whose margin is within that noise (about 1e-6 here); tests and tools/batch_invariance.py
    use it to tell a rounding flip from a bug.
    """
    grid = check_tokens(model, grid.reshape(1, -1))
    n = grid.shape[1] * grid.shape[2]
    _, logits = score_image_tokens(model, prompt, grid, negative_prompt=negative_prompt, cfg=cfg,
                                   cfg_until=cfg_until, return_logits_at=range(n))
    guided = logits["cfg"][0]                                                     # [N, V]
    if temperature == 0:
        top2 = guided.topk(2, dim=-1).values
        return top2[:, 0] - top2[:, 1]
    g = make_generators(seed, index + 1, guided.device)[index]  # the draws image ``index`` made, step by step
    u = torch.cat([torch.rand(1, generator=g, device=guided.device) for _ in range(n)])[:, None]
    return draw_margin(sampling_cdf(guided, temperature, top_k, top_p), u)
