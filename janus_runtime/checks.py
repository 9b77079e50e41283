"""Argument checks for the samplers: one place, one message per input, before any model work.

Each check raises ``JanusError`` naming the input, what was given and what would work. The entry points
(``generate_image_tokens``, ``score_image_tokens``, ``understand_batch``) call them first; callers that
want to fail before loading weights (the ComfyUI nodes, the CLI) can call ``check_generation_args`` /
``check_understanding_args`` themselves with the same arguments.
"""

from __future__ import annotations

import math
import operator

import torch

from .errors import JanusError

SEED_LIMIT = 2 ** 64  # seeds are 64-bit: ComfyUI's seed widget range, and what a torch.Generator takes


def check_number(value, name: str, *, low: float, high: float = math.inf, low_open: bool = False,
                 hint: str = "") -> float:
    """A finite real in [low, high] (or (low, high] with ``low_open``), as a float."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = None
    left = "(" if low_open else "["
    right = "]" if high != math.inf else ")"
    below = x is not None and (x <= low if low_open else x < low)
    if x is None or isinstance(value, bool) or not math.isfinite(x) or below or x > high:
        rule = f"must be in {left}{low:g}, {high:g}{right}" if high != math.inf else \
            f"must be a finite number {'>' if low_open else '>='} {low:g}"
        raise JanusError(f"{name} {rule}{' (' + hint + ')' if hint else ''}; got {value!r}")
    return x


def check_count(value, name: str, *, low: int = 0, hint: str = "") -> int:
    """A whole number (int-like, not a float or bool) >= low."""
    try:
        x = operator.index(value)
    except TypeError:
        x = None
    if x is None or isinstance(value, bool) or x < low:
        raise JanusError(f"{name} must be a whole number, at least {low}{' (' + hint + ')' if hint else ''}; "
                         f"got {value!r}")
    return x


def check_seed(seed) -> int:
    """Seeds are integers in [0, 2**64); larger ones would wrap silently onto smaller ones."""
    try:
        s = operator.index(seed)
    except TypeError:
        s = None
    if s is None or isinstance(seed, bool) or not 0 <= s < SEED_LIMIT:
        raise JanusError(f"seed must be a whole number in [0, 2**64); got {seed!r}")
    return s


def check_sampling(temperature, top_k, top_p, repetition_penalty=1.0, *, scoring: bool = False):
    """Temperature (0 = greedy, except when scoring), top-k (0 = off), top-p (1 = off), repetition penalty."""
    if scoring:
        check_number(temperature, "temperature", low=0, low_open=True,
                     hint="log-probabilities of an argmax are undefined, so scoring needs > 0")
    else:
        check_number(temperature, "temperature", low=0, hint="0 means greedy/argmax")
    check_count(top_k, "top_k", hint="0 disables it")
    check_number(top_p, "top_p", low=0, high=1, low_open=True, hint="1 disables it")
    check_number(repetition_penalty, "repetition_penalty", low=0, low_open=True, hint="1 disables it")


def check_guidance(cfg, cfg_until=1.0):
    check_number(cfg, "cfg", low=0, hint="1 = no guidance, official default 5")
    check_number(cfg_until, "cfg_until", low=0, high=1, hint="fraction of the steps with guidance")


def check_prompts(prompt, n: int) -> list[str]:
    """One prompt per image: a string (used n times) or a list of n strings, none empty."""
    n = check_count(n, "batch size", low=1)
    prompts = [prompt] * n if isinstance(prompt, str) else list(prompt)
    if len(prompts) != n:
        raise JanusError(f"prompt: got {len(prompts)} prompts for a batch of {n}; give one prompt or one per image")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise JanusError("prompt is empty; describe the image to generate")
    return prompts


def check_generation_args(prompt, n: int = 1, *, cfg=5.0, cfg_until=1.0, temperature=1.0, top_k=0, top_p=1.0,
                          seed=0, scoring: bool = False) -> list[str]:
    """Everything ``generate_image_tokens`` (and, with ``scoring``, ``score_image_tokens``: n = number of
    grids) checks before model work; returns the prompts, one per image."""
    if isinstance(prompt, (list, tuple)) and n == 1 and not scoring:  # a list of prompts sets the batch
        n = len(prompt)
    prompts = check_prompts(prompt, n)
    check_guidance(cfg, cfg_until)
    check_sampling(temperature, 0 if scoring else top_k, 1.0 if scoring else top_p, scoring=scoring)
    check_seed(seed)
    return prompts


def check_questions(questions) -> None:
    for i, q in enumerate(questions):
        if not isinstance(q, str) or not q.strip():
            where = f" (item {i})" if len(questions) > 1 else ""
            raise JanusError(f"question is empty{where}; ask something about the image(s)")


def check_understanding_args(questions, *, max_new_tokens=512, temperature=0.0, top_k=0, top_p=1.0,
                             repetition_penalty=1.0, seed=0):
    """Everything ``understand_batch`` checks before model work (the context bound needs the prompt, so it
    is checked when the prompt is built: see ``check_context``)."""
    if not questions:
        raise JanusError("understand: no (images, question) items given")
    check_questions(questions)
    check_count(max_new_tokens, "max_new_tokens", low=1)
    check_sampling(temperature, top_k, top_p, repetition_penalty)
    check_seed(seed)


def check_context(context: int, prompt_tokens: int, new_tokens: int, new_what: str, fix: str):
    """Refuse a run whose positions would exceed the model's context (max_position_embeddings)."""
    if prompt_tokens + new_tokens > context:
        raise JanusError(f"the prompt is {prompt_tokens} tokens + {new_tokens} {new_what} = "
                         f"{prompt_tokens + new_tokens} positions, more than this model's context of {context} "
                         f"(max_position_embeddings); {fix}")


def check_finite(x: torch.Tensor, name: str, fix: str = ""):
    """Refuse NaN or infinite values in a float tensor (pixels, latents) before they reach the model."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise JanusError(f"{name} holds {bad} NaN or infinite value(s){'; ' + fix if fix else ''}")


def nonfinite_logits_error(where: str, dtype: torch.dtype) -> JanusError:
    """The message for logits that are NaN or infinite: the inputs were checked, so the model is the cause."""
    cause = ("float16 overflows in this model's activations; load it with dtype bf16 or fp32"
             if dtype == torch.float16 else
             "the weights hold NaN or infinite values (a corrupt or badly converted checkpoint); "
             "re-download or re-convert it")
    return JanusError(f"the model produced NaN or infinite logits {where}: likely {cause}")


PARALLEL_MODES = ("off", "sjd", "mc-sjd")


def check_parallel(parallel, window):
    """Sampling mode: "off" (one token per forward pass), "sjd" (speculative Jacobi decoding) or "mc-sjd" (SJD
    with coupled redrafting)."""
    if parallel not in PARALLEL_MODES:
        raise JanusError(f"parallel must be one of {', '.join(PARALLEL_MODES)}; got {parallel!r}")
    if parallel != "off":
        check_count(window, "window", low=2, hint="positions per forward pass; 16-32 is typical")
