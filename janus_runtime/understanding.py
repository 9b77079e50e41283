"""Understanding: answer questions about images with the LM's text head (greedy or sampled).

The same prefill / decode-one-token split as image generation (gpt-fast's generate.py, meta-pytorch/gpt-fast
@ 6ecad9b), over a batch of independent items: rows are left-padded with an attention mask, and item i draws
only from its own generator, so its answer does not depend on the other items (up to last-bit differences
of batch-size-dependent matmul kernels, which move a greedy choice only between near-tied logits).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .checks import check_understanding_args, nonfinite_logits_error
from .errors import JanusError
from .lm_session import LMSession, left_pad, open_session
from .model import JanusModel
from .processing import IMAGE_TAG, pixels_from_pil
from .sampling import apply_repetition_penalty, make_generators, sample_rows

TextCallback = Callable[[int, int, list[str]], None]


@dataclass
class Answer:
    text: str
    token_ids: list[int]
    history: list[tuple[str, str]]
    finished: bool  # stopped at EOS (False: hit max_new_tokens)
    timings: dict = field(default_factory=dict)


def understanding_rows(model: JanusModel, items, system_prompt, histories):
    """Prompt id rows (image placeholders expanded) and the image lists of (images, question) items."""
    text = model.text
    rows, images = [], []
    for i, (imgs, question) in enumerate(items):
        imgs = list(imgs or [])
        n_tags = text.count_images(question)
        if n_tags and n_tags != len(imgs):
            raise JanusError(f"question {i} has {n_tags} {IMAGE_TAG} placeholder(s) but {len(imgs)} image(s) "
                             f"were given; use one placeholder per image, or none to put the images first")
        prompt = text.understanding_prompt(question, 0 if n_tags else len(imgs), system_prompt,
                                           histories[i] if histories else None)
        rows.append(text.expand_images(text.encode(prompt), model.config.num_image_tokens))
        images.append(imgs)
    return rows, images


def embed_prompt(model: JanusModel, ids: torch.Tensor, images: list) -> torch.Tensor:
    """Prompt ids [R, L] -> LM inputs [R, L, D], the image placeholders replaced by the images' features."""
    embeds = model.lm.embed_text(ids)
    flat = [im for imgs in images for im in imgs]
    if flat:
        vision = model.require("vision")
        px = torch.stack([pixels_from_pil(im, model.config.image_size) for im in flat])
        feats = vision(px.to(model.device_for("vision"), model.dtype_for("vision"))).to(ids.device, embeds.dtype)
        embeds[ids == model.text.ids.image] = feats.reshape(-1, feats.shape[-1])
    return embeds


@dataclass
class TextSampler:
    """What one step of one call samples: the draw's options, per-item generators, and EOS handling."""
    lm: torch.nn.Module
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    gens: list
    eos: int
    checked: bool = False  # the first logits were checked for NaN/inf

    def next_tokens(self, hidden: torch.Tensor, generated: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Hidden states [R, D] -> next ids [R] (EOS for finished rows); ``generated`` [R, S] so far."""
        logits = self.lm.language_model.logits(hidden).float()             # [R, vocab]
        if not self.checked:  # one host sync per call: NaN weights or fp16 overflow show here
            if not bool(torch.isfinite(logits).all()):
                raise nonfinite_logits_error("at the first answer token", hidden.dtype)
            self.checked = True
        logits = apply_repetition_penalty(logits, generated, self.repetition_penalty)
        tok = sample_rows(logits, self.gens, self.temperature, self.top_k, self.top_p)
        return torch.where(done, self.eos, tok)


def decode_text(session: LMSession, sampler: TextSampler, hidden: torch.Tensor, max_new_tokens: int,
                on_step: Callable[[int, torch.Tensor], None] | None) -> torch.Tensor:
    """Sample up to ``max_new_tokens`` ids per row from the prefill's last hidden states [R, D], stopping
    when every row has produced EOS. Returns the ids [R, steps] (EOS after a row's end)."""
    out = torch.full((hidden.shape[0], max_new_tokens), sampler.eos, dtype=torch.long, device=hidden.device)
    done = torch.zeros(hidden.shape[0], dtype=torch.bool, device=hidden.device)
    for step in range(max_new_tokens):
        if step:  # feed the previous step's ids
            hidden = session.step(sampler.lm.embed_text(out[:, step - 1])[:, None])[:, -1]
        out[:, step] = sampler.next_tokens(hidden, out[:, :step], done)
        done |= out[:, step] == sampler.eos
        if on_step:
            on_step(step, out[:, :step + 1])
        if bool(done.all()):  # host sync once per token: the price of stopping at EOS
            return out[:, :step + 1]
    return out


def make_answers(model: JanusModel, out: torch.Tensor, items, histories, timings: dict) -> list[Answer]:
    text, answers = model.text, []
    for i, row in enumerate(out.tolist()):
        n_tok = row.index(text.ids.eos) if text.ids.eos in row else len(row)
        answer = text.decode(row[:n_tok])
        history = list(histories[i]) if histories else []
        history.append((items[i][1], answer))
        answers.append(Answer(text=answer, token_ids=row[:n_tok], history=history,
                              finished=text.ids.eos in row, timings=dict(timings, new_tokens=n_tok)))
    return answers


@torch.inference_mode()
def understand_batch(model: JanusModel, items, *, system_prompt: str | None = None, histories=None,
                     max_new_tokens: int = 512, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                     repetition_penalty: float = 1.0, seed: int = 0,
                     callback: TextCallback | None = None) -> list[Answer]:
    """Answer a batch of independent (images, question) items.

    ``images``: a list of PIL images, one ``<image_placeholder>`` each in the question (or none: the images
    then come first). ``histories``: per item, earlier (question, answer) turns. ``temperature`` 0 is
    greedy. ``callback(step, max_new_tokens, texts_so_far)`` streams text; raising from it aborts.
    """
    items = list(items or [])
    check_understanding_args([q for _, q in items], max_new_tokens=max_new_tokens, temperature=temperature,
                             top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed)
    if histories is not None and len(histories) != len(items):
        raise JanusError(f"histories: got {len(histories)} for {len(items)} items")
    t0 = time.perf_counter()
    rows, images = understanding_rows(model, items, system_prompt, histories)
    ids, valid = left_pad(rows, model.text.ids.pad)
    fix = (f"shorten the question or history, give fewer images ({model.config.num_image_tokens + 2} positions "
           f"each) or lower max_new_tokens")
    with open_session(model, valid, max_new_tokens, new_what="new tokens (max_new_tokens)", fix=fix) as session:
        hidden = session.prefill(embed_prompt(model, ids.to(session.device), images))[:, -1]
        t_prefill = time.perf_counter()
        sampler = TextSampler(model.lm, temperature, top_k, top_p, repetition_penalty,
                              make_generators(seed, len(rows), session.device), model.text.ids.eos)
        on_step = None
        if callback:
            def on_step(step, out):
                callback(step, max_new_tokens, [model.text.decode(r) for r in out.tolist()])
        out = decode_text(session, sampler, hidden, max_new_tokens, on_step)
    t_end = time.perf_counter()
    timings = {"prefill_s": t_prefill - t0, "decode_s": t_end - t_prefill,
               "tokens_per_s": out.shape[1] / max(t_end - t_prefill, 1e-9)}
    return make_answers(model, out, items, histories, timings)


def understand(model: JanusModel, images, question: str, **kwargs) -> Answer:
    """Answer one question about zero or more PIL images (see ``understand_batch`` for the options)."""
    history = kwargs.pop("history", None)
    if history is not None:
        kwargs["histories"] = [history]
    return understand_batch(model, [(images, question)], **kwargs)[0]
