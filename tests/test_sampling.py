"""Sampler behaviour on the tiny checkpoint: seeds, batch independence, filters, CFG, masks, callbacks."""

import pytest
import torch

from janus_runtime import JanusError
from janus_runtime.processing import open_image
from janus_runtime.sampling import (filter_logits, generate_image_tokens, sample_rows, score_image_tokens,
                                    understand, understand_batch, make_generators)
from conftest import REFERENCE

PROMPT = "A photo of a cat sitting on a wooden table"


@pytest.fixture(scope="module")
def base(tiny_model):
    """Four images at seed 7 (temperature 1, cfg 5): the batch the other tests compare against."""
    return generate_image_tokens(tiny_model, PROMPT, n=4, seed=7)


def test_shape_dtype_and_range(tiny_model, base):
    assert base.shape == (4, 24, 24) and base.dtype == torch.int64
    assert 0 <= int(base.min()) and int(base.max()) < 16384
    assert len({tuple(g.flatten().tolist()) for g in base}) == 4  # images in a batch differ


def test_same_seed_same_grids(tiny_model, base):
    assert torch.equal(generate_image_tokens(tiny_model, PROMPT, n=4, seed=7), base)
    assert not torch.equal(generate_image_tokens(tiny_model, PROMPT, n=1, seed=8)[0], base[0])


def test_image_k_does_not_depend_on_batch_size(tiny_model, base):
    alone = generate_image_tokens(tiny_model, PROMPT, n=1, seed=7)
    assert torch.equal(alone[0], base[0])
    pair = generate_image_tokens(tiny_model, PROMPT, n=2, seed=7)
    assert torch.equal(pair, base[:2])


def test_global_rng_is_untouched(tiny_model):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate_image_tokens(tiny_model, PROMPT, n=1, seed=1, cfg_until=0.0)
    assert torch.equal(torch.rand(3), expected)


def test_temperature_zero_is_argmax_and_deterministic(tiny_model):
    a = generate_image_tokens(tiny_model, PROMPT, n=2, seed=1, temperature=0)
    b = generate_image_tokens(tiny_model, PROMPT, n=2, seed=999, temperature=0)
    assert torch.equal(a, b) and torch.equal(a[0], a[1])
    # greedy tokens are the argmax of the CFG logits at every step (seen through teacher forcing)
    _, logits = score_image_tokens(tiny_model, PROMPT, a[:1], return_logits_at=range(576))
    assert torch.equal(logits["cfg"][0].argmax(-1), a[0].flatten())
    top1 = generate_image_tokens(tiny_model, PROMPT, n=2, seed=5, temperature=1.0, top_k=1)
    assert torch.equal(top1, a)


def test_tiny_top_p_is_argmax(tiny_model):
    greedy = generate_image_tokens(tiny_model, PROMPT, n=1, temperature=0)
    nucleus = generate_image_tokens(tiny_model, PROMPT, n=1, seed=3, temperature=1.0, top_p=1e-6)
    assert torch.equal(greedy, nucleus)


def test_top_p_truncates_the_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = filter_logits(logits, 0, 0.8).isfinite()[0].tolist()
    assert kept == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    assert filter_logits(logits, 0, 0.81).isfinite()[0].tolist() == [True, True, True, False]
    gens = make_generators(0, 1, "cpu")
    draws = torch.stack([sample_rows(logits, gens, 1.0, 0, 0.8) for _ in range(400)])
    assert set(draws.flatten().tolist()) == {0, 1}
    draws = torch.stack([sample_rows(logits, gens, 1.0, 2, 1.0) for _ in range(200)])
    assert set(draws.flatten().tolist()) == {0, 1}


def test_temperature_changes_the_samples(tiny_model, base):
    cold = generate_image_tokens(tiny_model, PROMPT, n=1, seed=7, temperature=0.5)
    assert not torch.equal(cold[0], base[0])


def test_negative_prompt(tiny_model, base):
    default = generate_image_tokens(tiny_model, PROMPT, n=1, seed=7, negative_prompt="")
    assert torch.equal(default[0], base[0])
    blank = generate_image_tokens(tiny_model, PROMPT, n=1, seed=7, negative_prompt="   ")
    assert torch.equal(blank[0], base[0])
    negative = generate_image_tokens(tiny_model, PROMPT, n=1, seed=7, negative_prompt="blurry, low quality")
    assert not torch.equal(negative[0], base[0])


def test_negative_prompt_rows_are_left_padded_correctly(tiny_model):
    """A padded unconditional row must score like the same prompt unpadded (positions and mask right)."""
    tokens = generate_image_tokens(tiny_model, PROMPT, n=1, seed=2)
    short = "cat"
    # cfg 0 keeps only the unconditional row: the negative prompt, here shorter than the prompt and padded
    padded = score_image_tokens(tiny_model, PROMPT, tokens, negative_prompt=short, cfg=0.0)
    alone = score_image_tokens(tiny_model, short, tokens, cfg=1.0)
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


def test_cfg_until_zero_is_unguided(tiny_model):
    unguided = generate_image_tokens(tiny_model, PROMPT, n=1, seed=4, cfg=5.0, cfg_until=0.0)
    cfg_one = generate_image_tokens(tiny_model, PROMPT, n=1, seed=4, cfg=1.0)
    assert torch.equal(unguided, cfg_one)


def test_partial_regeneration_keeps_unmasked_tokens(tiny_model, base):
    mask = torch.zeros(24, 24, dtype=torch.bool)
    mask[12:] = True  # regenerate the bottom half
    mask[3, 5] = True  # and one early token
    out = generate_image_tokens(tiny_model, "A red circle", n=4, seed=11, init_tokens=base, mask=mask)
    assert torch.equal(out[:, ~mask], base[:, ~mask])
    assert bool((out[:, mask] != base[:, mask]).any())


def test_regenerating_the_tail_with_the_same_seed_reproduces_the_original(tiny_model, base):
    """The kept prefix is teacher-forced at the right positions and the generators skip its draws."""
    mask = torch.zeros(24, 24, dtype=torch.bool)
    mask[10:] = True
    again = generate_image_tokens(tiny_model, PROMPT, n=4, seed=7, init_tokens=base, mask=mask)
    assert torch.equal(again, base)
    mask[3, 4] = True  # a masked token before the tail: sampled in the loop, prefix shorter
    assert torch.equal(generate_image_tokens(tiny_model, PROMPT, n=4, seed=7, init_tokens=base, mask=mask), base)


def test_partial_regeneration_of_nothing_returns_the_input(tiny_model, base):
    mask = torch.zeros(4, 24, 24, dtype=torch.bool)
    assert torch.equal(generate_image_tokens(tiny_model, PROMPT, n=4, init_tokens=base, mask=mask), base)


def test_full_mask_equals_fresh_generation(tiny_model, base):
    mask = torch.ones(24, 24, dtype=torch.bool)
    assert torch.equal(generate_image_tokens(tiny_model, PROMPT, n=4, seed=7, init_tokens=base.flip(0),
                                             mask=mask), base)


def test_callback_raising_stops_promptly_and_model_stays_usable(tiny_model, base):
    seen = []

    class Stop(Exception):
        pass

    def cb(step, total, tokens):
        seen.append((step, total, tokens.shape[1]))
        if step == 10:
            raise Stop
    with pytest.raises(Stop):
        generate_image_tokens(tiny_model, PROMPT, n=4, seed=7, callback=cb)
    assert seen[-1] == (10, 576, 11) and len(seen) == 11
    assert tiny_model.lm.language_model.key_valid is None  # cache released
    assert torch.equal(generate_image_tokens(tiny_model, PROMPT, n=4, seed=7), base)


def test_compile_off_cuda_runs_eagerly_and_releases_the_cache(tiny_model, base):
    assert torch.equal(generate_image_tokens(tiny_model, PROMPT, n=4, seed=7, compile=True), base)
    assert tiny_model.lm.language_model.key_valid is None  # kept only for captured CUDA graphs


def test_score_prefers_the_sampled_image_under_its_own_prompt(tiny_model, base):
    logprobs = score_image_tokens(tiny_model, PROMPT, base)
    assert logprobs.shape == (4, 576) and bool((logprobs <= 0).all())


@pytest.mark.parametrize("kwargs, match", [
    ({"cfg": -1}, "cfg must be >= 0"),
    ({"top_p": 0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_k": -2}, "top_k must be >= 0"),
    ({"n": 0}, "batch size must be at least 1"),
])
def test_bad_sampler_arguments(tiny_model, kwargs, match):
    with pytest.raises(JanusError, match=match):
        generate_image_tokens(tiny_model, PROMPT, **kwargs)


def test_bad_prompt_tokens_and_mask(tiny_model, base):
    with pytest.raises(JanusError, match="prompt is empty"):
        generate_image_tokens(tiny_model, "  ")
    with pytest.raises(JanusError, match=r"tokens must have shape \[B, 24, 24\].*\[2, 16, 16\]"):
        score_image_tokens(tiny_model, PROMPT, torch.zeros(2, 16, 16, dtype=torch.long))
    with pytest.raises(JanusError, match=r"ids outside \[0, 16384\).*different codebook"):
        score_image_tokens(tiny_model, PROMPT, torch.full((1, 24, 24), 16384))
    with pytest.raises(JanusError, match=r"mask has shape \[12, 12\].*\[4, 24, 24\]"):
        generate_image_tokens(tiny_model, PROMPT, n=4, init_tokens=base, mask=torch.ones(12, 12, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------------------
# understanding

@pytest.fixture(scope="module")
def images():
    ref = REFERENCE / "expected"
    return [open_image(ref / "test_image.png"), open_image(ref / "gen_0.png"), open_image(ref / "vq_decoded.png")]


def test_batched_understanding_equals_one_at_a_time(tiny_model, images):
    items = [([images[0]], "What is in this image?"), ([images[1]], "Describe the colors."),
             ([], "Write a short poem about the sea."), ([images[2], images[0]], "Compare the two images.")]
    batched = understand_batch(tiny_model, items, max_new_tokens=12)
    for item, answer in zip(items, batched):
        alone = understand_batch(tiny_model, [item], max_new_tokens=12)[0]
        assert answer.token_ids == alone.token_ids
        assert answer.text == alone.text


def test_sampled_understanding_per_item_seeds(tiny_model, images):
    items = [([images[0]], "What is in this image?"), ([images[1]], "Describe it.")]
    kw = dict(max_new_tokens=10, temperature=0.8, top_p=0.9, top_k=50, repetition_penalty=1.2, seed=3)
    batched = understand_batch(tiny_model, items, **kw)
    assert batched[0].token_ids == understand_batch(tiny_model, items[:1], **kw)[0].token_ids
    assert batched[0].token_ids == understand_batch(tiny_model, items, **kw)[0].token_ids
    greedy = understand_batch(tiny_model, items, max_new_tokens=10)
    assert [a.token_ids for a in batched] != [a.token_ids for a in greedy]


def test_multi_image_placeholders_in_order(tiny_model, images):
    q = "<image_placeholder>\nFirst, then <image_placeholder>\nsecond. Which is brighter?"
    ab = understand(tiny_model, [images[0], images[1]], q, max_new_tokens=8)
    ba = understand(tiny_model, [images[1], images[0]], q, max_new_tokens=8)
    same = understand(tiny_model, [images[0], images[1]], q, max_new_tokens=8)
    assert ab.token_ids == same.token_ids
    assert ab.token_ids != ba.token_ids  # image order matters


def test_more_images_than_placeholders(tiny_model, images):
    with pytest.raises(JanusError, match=r"1 <image_placeholder> placeholder\(s\) but 2 image\(s\)"):
        understand(tiny_model, images[:2], "<image_placeholder>\nWhat is this?")


def test_history_and_system_prompt(tiny_model, images):
    first = understand(tiny_model, [images[0]], "What is this?", max_new_tokens=6)
    assert first.history == [("What is this?", first.text)]
    prompt = tiny_model.text.understanding_prompt("And the colors?", 0, system_prompt="Be brief.",
                                                  history=[("Hi", "Hello")])
    assert prompt == ("Be brief.\n\n<|User|>: Hi\n\n<|Assistant|>: Hello<｜end▁of▁sentence｜>"
                      "<|User|>: And the colors?\n\n<|Assistant|>:")
    follow = understand(tiny_model, [], "And the colors?", history=first.history, system_prompt="",
                        max_new_tokens=6)
    assert len(follow.history) == 2


def test_streaming_callback_and_eos(tiny_model, images):
    texts = []
    answer = understand(tiny_model, [images[0]], "What is this?", max_new_tokens=6,
                        callback=lambda step, total, t: texts.append(t[0]))
    assert texts and texts[-1] == answer.text and len(texts) <= 6
