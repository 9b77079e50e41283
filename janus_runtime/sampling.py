"""Samplers: CFG image-token generation, image-token scoring, and text generation (understanding).

Row layout of the CFG batch: rows [0, B) are the conditional rows of images 0..B-1, rows [B, 2B) their
unconditional partners (``logits[:B]`` / ``logits[B:]``). Each image samples with its own generator seeded
from (seed, image index), so image k is the same whether generated alone or in a batch.

Callbacks are plain functions called once per step on the host; an exception raised there stops the loop
at once and the KV cache is released, so the model stays reusable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .errors import JanusError
from .model import JanusModel
from .processing import IMAGE_TAG, pixels_from_pil

log = logging.getLogger(__name__)

StepCallback = Callable[[int, int, torch.Tensor], None]


# ------------------------------------------------------------------------------------------------------------
# shared pieces

def image_seed(seed: int, index: int) -> int:
    """A 64-bit generator seed that depends only on (seed, index) (splitmix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + index + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def make_generators(seed: int, n: int, device) -> list[torch.Generator]:
    gens = []
    for k in range(n):
        g = torch.Generator(device=device)
        g.manual_seed(image_seed(int(seed), k))
        gens.append(g)
    return gens


def check_sampling_args(temperature: float, top_k: int, top_p: float):
    if temperature is None or temperature < 0:
        raise JanusError(f"temperature must be >= 0 (0 means greedy/argmax); got {temperature}")
    if top_k is None or top_k < 0:
        raise JanusError(f"top_k must be >= 0 (0 disables it); got {top_k}")
    if top_p is None or not 0 < top_p <= 1:
        raise JanusError(f"top_p must be in (0, 1] (1 disables it); got {top_p}")


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Keep the top_k largest logits and the smallest set whose probability reaches top_p; -inf elsewhere."""
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # mass before this token already reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def sample_rows(logits: torch.Tensor, gens: list[torch.Generator], temperature: float, top_k: int,
                top_p: float) -> torch.Tensor:
    """One token per row of ``logits`` [R, V]; row r draws only from ``gens[r]``. No host synchronisation."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float()
    if temperature != 1:
        logits = logits / temperature
    logits = filter_logits(logits, top_k, top_p)
    # Inverse-CDF draw: one uniform per row from that row's generator, found in the cumulative distribution
    # (no host sync; 4x cheaper on CPU than an exponential race or torch.multinomial). U is in [0, 1), and
    # searching to the right of U * total never lands on a zero-probability (filtered) token.
    cdf = logits.softmax(-1).cumsum(-1)
    u = torch.cat([torch.rand(1, generator=g, device=cdf.device) for g in gens])[:, None]
    return torch.searchsorted(cdf, u * cdf[:, -1:], right=True)[:, 0].clamp_(max=cdf.shape[-1] - 1)


def _skip_draws(gens, steps: int, device):
    """Advance each generator past ``steps`` sampling steps, as if they had been sampled, so that a token
    depends on (seed, image, step) only: regenerating from a kept prefix reproduces the original sample."""
    for g in gens:
        torch.rand(steps, generator=g, device=device)


def _left_pad(rows: list[list[int]], pad: int):
    """Left-pad id lists to one length. Returns ids [R, L], valid [R, L] bool, positions [R, L]."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    valid = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = torch.tensor(r, dtype=torch.long)
        valid[i, length - len(r):] = True
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    return ids, valid, positions


class _Session:
    """One use of the LM's static cache: prompt prefill then one position per step."""

    def __init__(self, model: JanusModel, valid: torch.Tensor, positions: torch.Tensor, max_len: int):
        self.lm = model.require("lm")
        self.llama = self.lm.language_model
        self.device = model.device_for("lm")
        self.dtype = model.dtype
        self.llama.setup_cache(valid.shape[0], max_len, self.device, self.dtype)
        self.llama.key_valid[:, :valid.shape[1]] = valid.to(self.device)
        self.padded = not bool(valid.all())
        self.length = 0

    def prefill(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        t = embeds.shape[1]
        slots = torch.arange(self.length, self.length + t, device=self.device)
        self.length += t
        # the next token's cache slot [1] and RoPE positions [R, 1], advanced in place
        self.slot = torch.tensor([self.length], device=self.device)
        self.next_pos = positions[:, -1:].to(self.device) + 1
        mask = self.llama.attention_mask(slots, self.length)
        return self.llama(embeds, slots, positions.to(self.device), mask, kv_len=self.length)

    def extend(self, embeds: torch.Tensor) -> torch.Tensor:
        """Append T positions (a decode step, or a forced chunk) after the current length."""
        t = embeds.shape[1]
        if t == 1:  # the hot path: no new index tensors, no mask unless rows are padded
            slots, positions = self.slot, self.next_pos
        else:
            slots = torch.arange(self.length, self.length + t, device=self.device)
            positions = self.next_pos + torch.arange(t, device=self.device)
        self.length += t
        mask = self.llama.attention_mask(slots, self.length) if t > 1 or self.padded else None
        hidden = self.llama(embeds, slots, positions, mask, kv_len=self.length)
        self.slot.add_(t)
        self.next_pos.add_(t)
        return hidden

    def compiled_extend(self):
        """A static-shape one-token step compiled with CUDA graphs, or None where that is unavailable."""
        step = _compiled_decode(self.llama) if self.device.type == "cuda" and not self.padded else None
        if step is None:
            return None

        def extend(embeds):
            hidden = step(embeds, self.slot, self.next_pos)
            self.length += 1
            self.slot.add_(1)  # in place: the graph reads these tensors' memory
            self.next_pos.add_(1)
            return hidden
        return extend

    def close(self, keep_cache: bool = False):
        if not keep_cache:
            self.llama.free_cache()


def _compiled_decode(llama):
    """torch.compile(mode="reduce-overhead") of one decode step over the whole static cache, cached on
    the module so later generations of the same batch size reuse the captured graphs; None once it has
    failed on this module (then the eager step runs, without compiling again)."""
    if getattr(llama, "_compiled_decode", None) is False:
        return None
    if getattr(llama, "_compiled_decode", None) is None:
        def step(x, slot, positions):
            keys = torch.arange(llama.cache_length, device=x.device)
            mask = (llama.key_valid & (keys <= slot))[:, None, None, :]
            return llama(x, slot, positions, mask, kv_len=None)
        llama._compiled_decode = torch.compile(step, mode="reduce-overhead", fullgraph=True)
    return llama._compiled_decode


# ------------------------------------------------------------------------------------------------------------
# CFG image tokens

@dataclass
class CFGBatch:
    ids: torch.Tensor        # [2B, L]
    valid: torch.Tensor      # [2B, L]
    positions: torch.Tensor  # [2B, L]


def _prompts(prompt, n: int) -> list[str]:
    prompts = [prompt] * n if isinstance(prompt, str) else list(prompt)
    if n < 1:
        raise JanusError(f"batch size must be at least 1; got {n}")
    if len(prompts) != n:
        raise JanusError(f"prompt: got {len(prompts)} prompts for a batch of {n}; give one prompt or one per image")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise JanusError("prompt is empty; describe the image to generate")
    return prompts


def cfg_batch(model: JanusModel, prompts: list[str], negative_prompt: str = "") -> CFGBatch:
    """Token rows for CFG: conditional prompts, then their unconditional partners.

    The unconditional row is the official one, [BOS, PAD..., BOI] as long as its prompt (pads attended, no
    mask), unless ``negative_prompt`` is non-empty: then it is that prompt's own template, and rows of
    different length are left-padded and masked.
    """
    text = model.text
    cond = [text.encode(text.generation_prompt(p)) for p in prompts]
    if negative_prompt and negative_prompt.strip():
        neg = text.encode(text.generation_prompt(negative_prompt))
        uncond = [list(neg) for _ in cond]
    else:
        uncond = [[r[0]] + [text.ids.pad] * (len(r) - 2) + [r[-1]] for r in cond]
    ids, valid, positions = _left_pad(cond + uncond, text.ids.pad)
    return CFGBatch(ids, valid, positions)


def check_tokens(model: JanusModel, tokens: torch.Tensor, name: str = "tokens") -> torch.Tensor:
    g, v = model.config.token_grid, model.config.vq.codebook_size
    if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32, torch.int16):
        raise JanusError(f"{name} must be an integer tensor [B, {g}, {g}]; got "
                         f"{getattr(tokens, 'dtype', type(tokens).__name__)}")
    if tokens.ndim == 2 and tokens.shape[1] == g * g:
        tokens = tokens.view(-1, g, g)
    if tokens.ndim != 3 or tuple(tokens.shape[1:]) != (g, g) or tokens.shape[0] < 1:
        raise JanusError(f"{name} must have shape [B, {g}, {g}] for this model; got {list(tokens.shape)}")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= v:
        raise JanusError(f"{name} holds ids outside [0, {v}) (min {lo}, max {hi}); they come from a different "
                         f"codebook than this model's VQ ({v} codes)")
    return tokens.long()


def check_mask(mask: torch.Tensor, tokens: torch.Tensor, name: str = "mask") -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise JanusError(f"{name} must be a boolean tensor shaped like the token grid {list(tokens.shape)}")
    if mask.ndim == 2 and tuple(mask.shape) == tuple(tokens.shape[1:]):
        mask = mask.expand(tokens.shape[0], -1, -1)
    if tuple(mask.shape) != tuple(tokens.shape):
        raise JanusError(f"{name} has shape {list(mask.shape)} but the token grid is {list(tokens.shape)}; "
                         f"give one True/False per token ([B, H, W] or [H, W])")
    return mask.bool()


@torch.inference_mode()
def generate_image_tokens(model: JanusModel, prompt, *, n: int = 1, negative_prompt: str = "",
                          cfg: float = 5.0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                          seed: int = 0, cfg_until: float = 1.0, init_tokens: torch.Tensor | None = None,
                          mask: torch.Tensor | None = None, callback: StepCallback | None = None,
                          compile: bool = False) -> torch.Tensor:
    """Sample image-token grids [n, 24, 24] (int64, on the LM's device) with classifier-free guidance.

    ``cfg``: guidance weight w in uncond + w (cond - uncond); ``cfg_until``: fraction of the steps that use
    guidance (after it, the conditional logits alone). ``temperature`` 0 means argmax; ``top_k`` 0 and
    ``top_p`` 1 disable those filters. ``init_tokens`` + ``mask`` (True = regenerate): tokens outside the
    mask are kept and teacher-forced; only masked positions are sampled. ``callback(step, total, tokens)``
    runs after each step (tokens [n, steps done]); raising from it aborts. ``compile``: on CUDA, run the
    decode step as a compiled CUDA graph (the KV cache then stays allocated for reuse; ``free_cache()`` on
    the LM releases it); elsewhere, or if compilation fails, the eager step runs.
    """
    if isinstance(prompt, (list, tuple)) and n == 1:
        n = len(prompt)
    prompts = _prompts(prompt, n)
    if cfg is None or cfg < 0:
        raise JanusError(f"cfg must be >= 0 (1 = no guidance, official default 5); got {cfg}")
    if not 0 <= cfg_until <= 1:
        raise JanusError(f"cfg_until must be in [0, 1] (fraction of steps with guidance); got {cfg_until}")
    check_sampling_args(temperature, top_k, top_p)
    lm = model.require("lm")
    total = model.config.num_image_tokens
    forced = None
    if init_tokens is not None or mask is not None:
        if init_tokens is None or mask is None:
            raise JanusError("partial regeneration needs both init_tokens and mask")
        init_tokens = check_tokens(model, init_tokens, "init_tokens")
        if init_tokens.shape[0] == 1 and n > 1:
            init_tokens = init_tokens.expand(n, -1, -1)
        if init_tokens.shape[0] != n:
            raise JanusError(f"init_tokens has {init_tokens.shape[0]} grids for a batch of {n}")
        mask = check_mask(mask, init_tokens)
        forced = (init_tokens.reshape(n, total), mask.reshape(n, total))

    batch = cfg_batch(model, prompts, negative_prompt)
    session = _Session(model, batch.valid, batch.positions, batch.ids.shape[1] + total)
    device = session.device
    gens = make_generators(seed, n, device)
    tokens = torch.empty(n, total, dtype=torch.long, device=device)
    completed, compiled = False, None
    guided_steps = int(round(cfg_until * total))
    try:
        embeds = lm.embed_text(batch.ids.to(device))
        start = 0
        if forced is not None:
            keep_ids, regen = forced[0].to(device), forced[1].to(device)
            # Positions before the first masked one are known: teacher-force them in the prefill.
            any_regen = regen.any(0).nonzero()
            start = int(any_regen[0]) if len(any_regen) else total
            tokens[:, :start] = keep_ids[:, :start]
            _skip_draws(gens, start, device)
            if start:
                known = lm.embed_image_codes(keep_ids[:, :min(start, total - 1)].repeat(2, 1))
                embeds = torch.cat([embeds, known], 1)
        valid_len = batch.ids.shape[1]
        positions = torch.cat([batch.positions, batch.positions[:, -1:] + 1 +
                               torch.arange(embeds.shape[1] - valid_len)], 1)
        hidden = session.prefill(embeds, positions)[:, -1]
        if start >= total:
            if callback:
                callback(total - 1, total, tokens)
            return tokens.view(n, model.config.token_grid, -1)
        compiled = session.compiled_extend() if compile else None
        extend = compiled or session.extend
        for step in range(start, total):
            logits = lm.gen_head(hidden)
            cond, uncond = logits[:n], logits[n:]
            guided = uncond + cfg * (cond - uncond) if step < guided_steps else cond
            tok = sample_rows(guided, gens, temperature, top_k, top_p)
            if forced is not None:
                tok = torch.where(regen[:, step], tok, keep_ids[:, step])
            tokens[:, step] = tok
            if callback:
                callback(step, total, tokens[:, :step + 1])
            if step + 1 < total:
                x = lm.embed_image_codes(tok)[:, None]
                x = torch.cat([x, x])  # the same code feeds the conditional and unconditional row
                try:
                    hidden = extend(x)[:, -1]
                except Exception as e:  # compilation problems surface on the first calls
                    if extend is session.extend:
                        raise
                    log.warning("compiled decode step failed (%s: %s); continuing eagerly", type(e).__name__, e)
                    lm.language_model._compiled_decode = False
                    extend, compiled = session.extend, None
                    hidden = extend(x)[:, -1]
        completed = True
        return tokens.view(n, model.config.token_grid, -1)
    finally:
        session.close(keep_cache=compiled is not None and completed)  # captured graphs read this cache


@torch.inference_mode()
def score_image_tokens(model: JanusModel, prompt, tokens: torch.Tensor, *, negative_prompt: str = "",
                       cfg: float = 5.0, temperature: float = 1.0, cfg_until: float = 1.0,
                       return_logits_at=None):
    """Per-token log-probabilities [B, 576] of ``tokens`` under the CFG distribution (teacher forcing).

    Seed-free: with the same arguments as ``generate_image_tokens`` this is the log-probability the sampler
    (without top-k/top-p) gave each token. ``return_logits_at``: optional step list; then also returns
    {"cfg", "cond", "uncond"} logits [B, len(steps), V] at those steps.
    """
    tokens = check_tokens(model, tokens)
    n = tokens.shape[0]
    prompts = _prompts(prompt, n)
    if cfg is None or cfg < 0:
        raise JanusError(f"cfg must be >= 0; got {cfg}")
    if temperature is None or temperature <= 0:
        raise JanusError(f"temperature must be > 0 to score (log-probs of an argmax are undefined); got {temperature}")
    lm = model.require("lm")
    total = model.config.num_image_tokens
    batch = cfg_batch(model, prompts, negative_prompt)
    session = _Session(model, batch.valid, batch.positions, batch.ids.shape[1] + total)
    device = session.device
    flat = tokens.reshape(n, total).to(device)
    try:
        embeds = torch.cat([lm.embed_text(batch.ids.to(device)),
                            lm.embed_image_codes(flat[:, :-1].repeat(2, 1))], 1)
        positions = torch.cat([batch.positions, batch.positions[:, -1:] + 1 + torch.arange(total - 1)], 1)
        hidden = session.prefill(embeds, positions)[:, -total:]     # the states that predict each token
        guided_steps = int(round(cfg_until * total))
        out = torch.empty(n, total, dtype=torch.float32, device=device)
        picked = {}
        steps = list(return_logits_at or [])
        for i in range(n):  # one image at a time bounds the [576, V] logits in memory
            logits = lm.gen_head(hidden[[i, n + i]])
            cond, uncond = logits[0], logits[1]
            guided = uncond + cfg * (cond - uncond)
            guided[guided_steps:] = cond[guided_steps:]
            logp = (guided.float() / temperature).log_softmax(-1)
            out[i] = logp.gather(-1, flat[i, :, None])[:, 0]
            if steps:
                for name, t in (("cfg", guided), ("cond", cond), ("uncond", uncond)):
                    picked.setdefault(name, []).append(t[steps].float())
        if steps:
            return out, {k: torch.stack(v) for k, v in picked.items()}
        return out
    finally:
        session.close()


# ------------------------------------------------------------------------------------------------------------
# VQ

@torch.inference_mode()
def decode_tokens(model: JanusModel, tokens: torch.Tensor, batch_size: int = 4, callback=None) -> torch.Tensor:
    """Token grids [B, h, w] -> decoder pixels [B, 3, 16h, 16w] (about [-1, 1]) on the VQ's device."""
    vq = model.require("vq")
    tokens = check_tokens(model, tokens)
    device = model.device_for("vq")
    outs = []
    for i in range(0, tokens.shape[0], batch_size):
        outs.append(vq.decode(tokens[i:i + batch_size].to(device), model.dtype).float())
        if callback:
            callback(min(i + batch_size, tokens.shape[0]), tokens.shape[0])
    return torch.cat(outs)


@torch.inference_mode()
def encode_images(model: JanusModel, images: list, batch_size: int = 4) -> torch.Tensor:
    """PIL images -> token grids [B, 24, 24] with the official resize-and-pad to the model's image size."""
    vq = model.require("vq")
    device = model.device_for("vq")
    outs = []
    for i in range(0, len(images), batch_size):
        px = torch.stack([pixels_from_pil(im, model.config.image_size) for im in images[i:i + batch_size]])
        outs.append(vq.encode(px.to(device, model.dtype)))
    return torch.cat(outs)


# ------------------------------------------------------------------------------------------------------------
# understanding

@dataclass
class Answer:
    text: str
    token_ids: list[int]
    history: list[tuple[str, str]]
    finished: bool  # stopped at EOS (False: hit max_new_tokens)
    timings: dict = field(default_factory=dict)


def _understanding_rows(model: JanusModel, items, system_prompt, histories):
    """Token rows and image list for a batch of (images, question) items."""
    text = model.text
    rows, images, questions = [], [], []
    for i, (imgs, question) in enumerate(items):
        imgs = list(imgs or [])
        if not isinstance(question, str) or not question.strip():
            raise JanusError(f"question {i}: empty; ask something about the image(s)")
        n_tags = text.count_images(question)
        if n_tags and n_tags != len(imgs):
            raise JanusError(f"question {i} has {n_tags} {IMAGE_TAG} placeholder(s) but {len(imgs)} image(s) "
                             f"were given; use one placeholder per image, or none to put the images first")
        prompt = text.understanding_prompt(question, 0 if n_tags else len(imgs), system_prompt,
                                           histories[i] if histories else None)
        rows.append(text.expand_images(text.encode(prompt), model.config.num_image_tokens))
        images.append(imgs)
        questions.append(question)
    return rows, images, questions


@torch.inference_mode()
def understand_batch(model: JanusModel, items, *, system_prompt: str | None = None, histories=None,
                     max_new_tokens: int = 512, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                     repetition_penalty: float = 1.0, seed: int = 0,
                     callback: Callable[[int, int, list[str]], None] | None = None) -> list[Answer]:
    """Answer a batch of independent (images, question) items; each item's answer does not depend on the
    others (left padding with an attention mask, one generator per item).

    ``images``: a list of PIL images, one ``<image_placeholder>`` each in the question (or none: the images
    then come first). ``histories``: per item, earlier (question, answer) turns. ``temperature`` 0 is
    greedy. ``callback(step, max_new_tokens, texts_so_far)`` streams text; raising from it aborts.
    """
    if not items:
        raise JanusError("understand: no (images, question) items given")
    if max_new_tokens < 1:
        raise JanusError(f"max_new_tokens must be >= 1; got {max_new_tokens}")
    if repetition_penalty is None or repetition_penalty <= 0:
        raise JanusError(f"repetition_penalty must be > 0 (1 disables it); got {repetition_penalty}")
    check_sampling_args(temperature, top_k, top_p)
    if histories is not None and len(histories) != len(items):
        raise JanusError(f"histories: got {len(histories)} for {len(items)} items")
    t0 = time.perf_counter()
    rows, images, questions = _understanding_rows(model, items, system_prompt, histories)
    lm = model.require("lm")
    text = model.text
    ids, valid, positions = _left_pad(rows, text.ids.pad)
    session = _Session(model, valid, positions, ids.shape[1] + max_new_tokens)
    device, b = session.device, len(rows)
    try:
        embeds = lm.embed_text(ids.to(device))
        flat = [im for imgs in images for im in imgs]
        if flat:
            vision = model.require("vision")
            px = torch.stack([pixels_from_pil(im, model.config.image_size) for im in flat])
            feats = vision(px.to(model.device_for("vision"), model.dtype)).to(device, embeds.dtype)
            slots = ids.to(device) == text.ids.image
            embeds[slots] = feats.reshape(-1, feats.shape[-1])
        t_prefill = time.perf_counter()
        hidden = session.prefill(embeds, positions)[:, -1]
        gens = make_generators(seed, b, device)
        out = torch.full((b, max_new_tokens), text.ids.eos, dtype=torch.long, device=device)
        done = torch.zeros(b, dtype=torch.bool, device=device)
        steps = 0
        for step in range(max_new_tokens):
            logits = lm.language_model.logits(hidden).float()
            if repetition_penalty != 1.0 and step:
                seen = out[:, :step]
                picked = logits.gather(1, seen)
                logits.scatter_(1, seen, torch.where(picked > 0, picked / repetition_penalty,
                                                     picked * repetition_penalty))
            tok = sample_rows(logits, gens, temperature, top_k, top_p)
            tok = torch.where(done, text.ids.eos, tok)
            out[:, step] = tok
            done |= tok == text.ids.eos
            steps = step + 1
            if callback:
                callback(step, max_new_tokens, [text.decode(r[:steps].tolist()) for r in out])
            if bool(done.all()):  # host sync once per token: the price of stopping at EOS
                break
            hidden = session.extend(lm.embed_text(tok)[:, None])[:, -1]
        t_end = time.perf_counter()
        answers = []
        out = out[:, :steps].tolist()
        for i, row in enumerate(out):
            n_tok = row.index(text.ids.eos) if text.ids.eos in row else len(row)
            answer = text.decode(row[:n_tok])
            history = list(histories[i]) if histories else []
            history.append((questions[i], answer))
            answers.append(Answer(text=answer, token_ids=row[:n_tok], history=history,
                                  finished=text.ids.eos in row,
                                  timings={"prefill_s": t_prefill - t0, "decode_s": t_end - t_prefill,
                                           "new_tokens": n_tok,
                                           "tokens_per_s": steps / max(t_end - t_prefill, 1e-9)}))
        return answers
    finally:
        session.close()


def understand(model: JanusModel, images, question: str, **kwargs) -> Answer:
    """Answer one question about zero or more PIL images (see ``understand_batch`` for the options)."""
    history = kwargs.pop("history", None)
    if history is not None:
        kwargs["histories"] = [history]
    return understand_batch(model, [(images, question)], **kwargs)[0]
