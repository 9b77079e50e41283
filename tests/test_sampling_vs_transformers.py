"""Our sampling options against transformers' own logits processors, on the same logits.

transformers applies, in this order: RepetitionPenaltyLogitsProcessor, then the warpers TemperatureLogitsWarper,
TopKLogitsWarper, TopPLogitsWarper (temperature first). Our sampler must give the same distribution.
"""

import math

import pytest
import torch
from transformers.generation.logits_process import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

from janus_runtime import understand_batch
from janus_runtime.sampling import filter_logits, make_generators, sample_rows


def hf_warp(logits, temperature, top_k, top_p):
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1:
        warpers.append(TopPLogitsWarper(top_p))
    return warpers(torch.zeros(logits.shape[0], 0, dtype=torch.long), logits.clone())


def hf_probs(logits, temperature, top_k, top_p):
    return hf_warp(logits.double(), temperature, top_k, top_p).softmax(-1).float()


def near_top_p_edge(logits, temperature, top_k, top_p, eps=1e-5):
    """Rows where some token's preceding probability mass lies within ``eps`` of top_p (float order decides)."""
    if top_p >= 1:
        return torch.zeros(logits.shape[0], dtype=torch.bool)
    x = hf_warp(logits.double(), temperature, top_k, 1.0)
    probs = x.sort(-1, descending=True).values.softmax(-1)
    before = probs.cumsum(-1) - probs
    return ((before - top_p).abs() < eps).any(-1)


CASES = [(1.0, 0, 0.9), (0.7, 0, 0.8), (1.6, 0, 0.5), (1.0, 5, 1.0), (0.5, 12, 1.0), (0.8, 20, 0.9),
         (1.3, 3, 0.6), (1.0, 0, 0.05), (2.0, 50, 0.95)]


@pytest.mark.parametrize("temperature, top_k, top_p", CASES)
def test_filtered_support_and_values_match_transformers(temperature, top_k, top_p):
    g = torch.Generator().manual_seed(int(temperature * 100) + top_k * 7 + int(top_p * 1000))
    logits = torch.randn(64, 200, generator=g) * 3
    expected = hf_warp(logits, temperature, top_k, top_p)
    ours = filter_logits(logits / temperature, top_k, top_p)
    ok = ~near_top_p_edge(logits, temperature, top_k, top_p)
    assert int(ok.sum()) >= 60
    assert torch.equal(ours.isfinite()[ok], expected.isfinite()[ok])
    torch.testing.assert_close(ours[ok].softmax(-1), expected[ok].softmax(-1), rtol=1e-5, atol=1e-7)


def test_top_p_keeps_the_token_that_crosses_the_threshold():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    for top_p in (0.5, 0.79, 0.81, 0.95, 0.96):
        expected = hf_warp(probs.log(), 1.0, 0, top_p).isfinite()
        assert torch.equal(filter_logits(probs.log(), 0, top_p).isfinite(), expected), top_p


def empirical(logits, temperature, top_k, top_p, draws=4000, seed=0):
    gens = make_generators(seed, draws, "cpu")
    tokens = sample_rows(logits.expand(draws, -1).contiguous(), gens, temperature, top_k, top_p)
    return torch.bincount(tokens, minlength=logits.shape[-1]).float() / draws


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.5, 0, 0.8), (2.0, 0, 0.8), (0.5, 3, 1.0),
                                                       (2.0, 4, 0.7), (1.0, 0, 1.0), (0.25, 0, 1.0)])
def test_sampled_frequencies_follow_transformers_distribution(temperature, top_k, top_p):
    """sample_rows end to end: temperature, then top-k, then top-p, then the draw (not the other way round)."""
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.0, -1.0, -3.0, 0.5, 1.2]])
    p = hf_probs(logits, temperature, top_k, top_p)[0]
    f = empirical(logits, temperature, top_k, top_p)
    draws = 4000
    assert torch.equal(f > 0, p > 1e-4), (f, p)  # the same support: no filtered token drawn, none missing
    bound = 5 * (p * (1 - p) / draws).sqrt() + 1 / draws
    assert bool(((f - p).abs() <= bound).all()), (f, p)


def test_repetition_penalty_matches_transformers(tiny_model):
    """Greedy understanding with a penalty picks, at every step, the argmax of transformers' processed logits."""
    lm_head = tiny_model.lm.language_model.lm_head
    changed = 0
    # This random model never repeats a token greedily, so 1.5 changes nothing when right (and a reversed
    # penalty makes it repeat); 0.7 rewards repeats and changes the greedy choices.
    for penalty in (1.5, 0.7):
        raw = []
        handle = lm_head.register_forward_hook(lambda m, i, o, raw=raw: raw.append(o.detach().float().clone()))
        try:
            answer = understand_batch(tiny_model, [([], "Write a short poem about the sea.")], max_new_tokens=24,
                                      repetition_penalty=penalty, temperature=0)[0]
        finally:
            handle.remove()
        ids = answer.token_ids
        assert len(ids) >= 8, "too short to exercise the penalty"
        processor = RepetitionPenaltyLogitsProcessor(penalty)
        for s, tok in enumerate(ids):
            logits = raw[s].reshape(-1, raw[s].shape[-1])[-1:]
            seen = torch.tensor([ids[:s]], dtype=torch.long)
            expected = processor(seen, logits.clone()) if s else logits
            assert int(expected.argmax()) == tok, f"penalty {penalty}, step {s}"
            changed += int(expected.argmax()) != int(logits.argmax())
    assert changed, "the penalty never changed a greedy choice here; the check would be vacuous"


def test_temperature_is_a_division():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    for t in (0.3, 1.0, 3.0):
        p = hf_probs(logits, t, 0, 1.0)
        torch.testing.assert_close(filter_logits(logits / t, 0, 1.0).softmax(-1), p, rtol=1e-5, atol=1e-7)
        # and the draw follows it: with 4000 draws each frequency is within 5 sigma
        f = empirical(logits[:1], t, 0, 1.0)
        assert float((f - p[0]).abs().max()) <= 5 * math.sqrt(0.25 / 4000) + 1 / 4000
