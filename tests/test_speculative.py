"""Speculative Jacobi decoding (SJD, and MC-SJD's coupled redrafting) is lossless: its samples follow exactly
the sequential sampler's distribution.

A tiny random model with a 4-code codebook and a 2x2 grid makes the joint distribution of a whole image
(4**4 = 256 outcomes) computable exactly by teacher forcing. Thousands of speculative samples (fixed seeds,
so each test is deterministic) are compared with it by a chi-square test at a false-alarm rate of 1e-3 per
configuration; a deliberately wrong acceptance rule, or a redrafting that keeps old drafts regardless of the
new distribution, must fail the same test.
"""

import itertools
import json
from pathlib import Path

import pytest
import torch

from janus_runtime import speculative
from janus_runtime.config import parse_config
from janus_runtime.generation import cfg_batch, generate_image_tokens
from janus_runtime.model import JanusModel, build_components
from janus_runtime.processing import TextProcessor
from janus_runtime.sampling import Guidance
from janus_runtime.tiny import TINY_OFFICIAL_CONFIG

CODES, GRID = 4, 2
PROMPT = "A red circle"
ALPHA = 1e-3


@pytest.fixture(scope="module")
def small(tiny_dir):
    """An LM + gen head of the tiny size whose image is 2x2 codes from a 4-code book (no VQ needed)."""
    raw = json.loads(json.dumps(TINY_OFFICIAL_CONFIG))
    raw["vision_config"]["params"]["image_size"] = 16 * GRID
    raw["gen_vision_config"]["params"]["image_token_size"] = CODES
    raw["gen_head_config"]["params"]["image_token_size"] = CODES
    cfg = parse_config(raw)
    lm = build_components(cfg, ("lm",), torch.float32, torch.nn)["lm"].to_empty(device="cpu")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif p.ndim >= 2:
                p.normal_(0, p.shape[-1] ** -0.5, generator=g)
            else:
                p.normal_(0, 0.1, generator=g)
        lm.gen_head.vision_head.weight.mul_(3)  # peaked enough that acceptance and rejection both happen
    return JanusModel(config=cfg, folder=Path(tiny_dir), text=TextProcessor(tiny_dir), dtype=torch.float32,
                      lm=lm.eval().requires_grad_(False))


def exact_joint(model, cfg, temperature, top_k, top_p) -> torch.Tensor:
    """P(image) for all CODES**(GRID*GRID) images, from one teacher-forced forward over every sequence."""
    total = GRID * GRID
    seqs = torch.tensor(list(itertools.product(range(CODES), repeat=total)))        # [S, N]
    batch = cfg_batch(model, [PROMPT])
    target = speculative.Target(Guidance(cfg), temperature, top_k, top_p, total)
    lm, llama = model.lm, model.lm.language_model
    ids = batch.ids                                                                   # [2, L]
    s, length = seqs.shape[0], ids.shape[1]
    with torch.inference_mode():
        embeds = torch.cat([lm.embed_text(ids).repeat_interleave(s, 0),
                            lm.embed_image_codes(seqs[:, :-1]).repeat(2, 1, 1)], 1)  # rows: cond S, uncond S
        t = embeds.shape[1]
        llama.setup_cache(2 * s, t, "cpu", torch.float32)
        slots = torch.arange(t)
        hidden = llama(embeds, slots, slots[None].expand(2 * s, -1), llama.attention_mask(slots, t), kv_len=t)
        llama.free_cache()
        logits = lm.gen_head(hidden[:, length - 1:])                                  # [2S, N, V]
        probs = torch.stack([target.probs(torch.stack([logits[i], logits[s + i]]), 0) for i in range(s)])
    return probs.gather(-1, seqs[..., None])[..., 0].prod(-1)                         # [S]


def chi_square_pvalue(counts: torch.Tensor, expected_p: torch.Tensor) -> float:
    """Pearson's chi-square test of ``counts`` against ``expected_p``; cells expecting < 5 are pooled."""
    n = counts.sum()
    exp = expected_p.double() * n
    big = exp >= 5
    obs = torch.cat([counts[big].double(), counts[~big].double().sum()[None]])
    exp = torch.cat([exp[big], exp[~big].sum()[None]])
    keep = exp > 0
    stat = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    dof = int(keep.sum()) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                         torch.tensor(stat / 2, dtype=torch.float64)))


def sample_counts(model, n, parallel, **kw) -> torch.Tensor:
    tokens = generate_image_tokens(model, PROMPT, n=n, seed=11, parallel=parallel, window=3, **kw)
    index = (tokens.flatten(1) * CODES ** torch.arange(GRID * GRID - 1, -1, -1)).sum(-1)
    return torch.bincount(index, minlength=CODES ** (GRID * GRID))


SETTINGS = [dict(cfg=1.0, temperature=1.0, top_k=0, top_p=1.0),
            dict(cfg=1.0, temperature=0.7, top_k=3, top_p=1.0),
            dict(cfg=5.0, temperature=1.0, top_k=0, top_p=1.0)]


@pytest.mark.parametrize("mode", ["sjd", "mc-sjd"])
@pytest.mark.parametrize("setting", SETTINGS, ids=["t1", "t0.7-topk3", "cfg5"])
def test_speculative_samples_follow_the_exact_distribution(small, setting, mode):
    expected = exact_joint(small, **setting)
    assert abs(float(expected.sum()) - 1) < 1e-4
    counts = sample_counts(small, 2000, mode, **setting)
    assert chi_square_pvalue(counts, expected) > ALPHA


def test_the_test_rejects_a_wrong_acceptance_rule(small, monkeypatch):
    """Always accepting the drafts (no p/q test) must be caught by the same statistics."""
    setting = SETTINGS[0]
    expected = exact_joint(small, **setting)
    right = speculative.verify

    def accept_everything(p, window, u, u_new, keep, kept):
        return right(p, window, torch.zeros_like(u), u_new, keep, kept)  # u = 0 < any ratio > 0
    monkeypatch.setattr(speculative, "verify", accept_everything)
    counts = sample_counts(small, 2000, "sjd", **setting)
    assert chi_square_pvalue(counts, expected) < ALPHA


def test_the_test_rejects_keeping_old_drafts(small, monkeypatch):
    """MC-SJD redrafting that always keeps a position's old draft (its marginal is then the old q, not the new
    one the verification divides by) must be caught too."""
    setting = SETTINGS[0]
    expected = exact_joint(small, **setting)
    monkeypatch.setattr(speculative, "redraft", lambda old, q_old, q_new, u, u_new: old)
    counts = sample_counts(small, 2000, "mc-sjd", **setting)
    assert chi_square_pvalue(counts, expected) < ALPHA


def test_sequential_sampler_passes_the_same_test(small):
    """Calibration: the one-token-per-pass sampler is judged by the same statistic."""
    setting = SETTINGS[2]
    counts = sample_counts(small, 2000, "off", **setting)
    assert chi_square_pvalue(counts, exact_joint(small, **setting)) > ALPHA


@pytest.mark.parametrize("mode", ["sjd", "mc-sjd"])
def test_greedy_speculative_equals_greedy(tiny_model, mode):
    a = generate_image_tokens(tiny_model, PROMPT, n=1, temperature=0)
    stats = {}
    b = generate_image_tokens(tiny_model, PROMPT, n=1, temperature=0, parallel=mode, window=8, stats=stats)
    # both are argmax chains of the same logits; different window shapes round differently, so a step whose
    # top-2 margin is within float noise may differ (none does on this model at fp32 today)
    assert torch.equal(a, b)
    assert stats["forward_passes"] < 575


@pytest.mark.parametrize("mode", ["sjd", "mc-sjd"])
def test_image_k_depends_only_on_seed_and_k(tiny_model, mode):
    pair = generate_image_tokens(tiny_model, PROMPT, n=2, seed=3, parallel=mode, window=8)
    again = generate_image_tokens(tiny_model, PROMPT, n=2, seed=3, parallel=mode, window=8)
    alone = generate_image_tokens(tiny_model, PROMPT, n=1, seed=3, parallel=mode, window=8)
    assert torch.equal(pair, again)
    assert torch.equal(pair[:1], alone)  # images run one at a time: the same computation, bit for bit


@pytest.mark.parametrize("mode", ["sjd", "mc-sjd"])
def test_masked_regeneration_keeps_tokens(tiny_model, mode):
    base = generate_image_tokens(tiny_model, PROMPT, n=1, seed=1)
    mask = torch.zeros(24, 24, dtype=torch.bool)
    mask[12:] = True
    mask[2, 3] = True
    out = generate_image_tokens(tiny_model, "A blue square", n=1, seed=2, init_tokens=base, mask=mask,
                                parallel=mode, window=8)
    assert torch.equal(out[:, ~mask], base[:, ~mask])
    assert bool((out[:, mask] != base[:, mask]).any())


@pytest.mark.parametrize("mode", ["sjd", "mc-sjd"])
def test_callback_and_cancel(tiny_model, mode):
    seen = []

    class Stop(Exception):
        pass

    def cb(step, total, tokens):
        seen.append(step)
        if step == 40:
            raise Stop
    with pytest.raises(Stop):
        generate_image_tokens(tiny_model, PROMPT, n=1, seed=1, parallel=mode, window=8, callback=cb)
    assert seen == list(range(41))
    assert tiny_model.lm.language_model.key_valid is None  # cache released


def test_bad_parallel_arguments(tiny_model):
    from janus_runtime import JanusError
    with pytest.raises(JanusError, match="parallel must be one of off, sjd, mc-sjd"):
        generate_image_tokens(tiny_model, PROMPT, parallel="fast")
    with pytest.raises(JanusError, match="window must be a whole number, at least 2"):
        generate_image_tokens(tiny_model, PROMPT, parallel="sjd", window=1)
