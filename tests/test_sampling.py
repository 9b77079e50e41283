"""Sampler behaviour: the logits processors, argument checks, seeds and batches, CFG, masks, callbacks, NaN
and context guards, concurrent callers, and understanding.

Most tests run on SMALL, a tiny random checkpoint with 64 px images: a 4x4 token grid (16 steps per image)
and a 512-code codebook, so each property is shown in milliseconds rather than with 576-step runs.

Exactness rule (CI runs on Intel and AMD CPUs): two runs are compared bit for bit only when they perform
the same computation in the same order (same batch size, same path). Where the order differs (a batch of 1
vs 4, teacher-forced prefill vs step-by-step decoding) the logits differ by float noise, and the tokens
must agree up to the first step whose draw lay within that noise of a CDF bin edge (``draw_margins``).
"""

import copy
import json
import threading

import pytest
import torch

from conftest import REFERENCE
from janus_runtime import JanusError, load_model
from janus_runtime.generation import draw_margins, generate_image_tokens, score_image_tokens
from janus_runtime.lm_session import open_session
from janus_runtime.processing import open_image
from janus_runtime.sampling import (Guidance, apply_repetition_penalty, apply_temperature, draw_margin,
                                    filter_logits, inverse_cdf, make_generators, sample_rows, skip_draws,
                                    top_k_filter, top_p_filter)
from janus_runtime.tiny import TINY_OFFICIAL_CONFIG, official_state_dict, save_weights, write_tokenizer
from janus_runtime.understanding import understand, understand_batch

PROMPT = "A photo of a cat sitting on a wooden table"
GRID = 4                 # SMALL's token grid: 64 px / 16
CONTEXT = 1024           # SMALL's max_position_embeddings
# Float noise between computation orders, measured on the tiny model: <= 4.2e-7 in CDF units, <= 1.4e-5 in
# logits. A draw (or a greedy top-2 gap) farther than 25x that from flipping cannot flip.
CDF_NOISE, LOGIT_NOISE = 1e-5, 3e-4


def write_small(folder, seed=0):
    cfg = copy.deepcopy(TINY_OFFICIAL_CONFIG)
    cfg["vision_config"]["params"]["image_size"] = 16 * GRID
    cfg["gen_vision_config"]["params"]["image_token_size"] = 512
    cfg["gen_head_config"]["params"]["image_token_size"] = 512
    cfg["language_config"]["max_position_embeddings"] = CONTEXT
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    write_tokenizer(folder)
    save_weights(official_state_dict(cfg, seed), folder)
    return folder


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    return write_small(tmp_path_factory.mktemp("small") / "Janus-Small")


@pytest.fixture(scope="module")
def small(small_dir):
    return load_model(small_dir, dtype="fp32")


@pytest.fixture(scope="module")
def base(small):
    """Four images at seed 7 (temperature 1, cfg 5): the batch the other tests compare against."""
    return generate_image_tokens(small, PROMPT, n=4, seed=7)


def same_until_a_near_edge_draw(model, expected, actual, seed, index=0, **kw):
    """``actual`` [g, g] equals ``expected`` up to the first step whose draw was within float noise of
    flipping (see the module docstring); returns that first differing step (None: identical)."""
    diff = (expected.flatten() != actual.flatten()).nonzero()
    if not len(diff):
        return None
    step = int(diff[0])
    margin = float(draw_margins(model, kw.pop("prompt", PROMPT), expected, seed=seed, index=index, **kw)[step])
    noise = LOGIT_NOISE if kw.get("temperature") == 0 else CDF_NOISE
    assert margin < noise, f"first difference at step {step}, where the draw was {margin:.3g} from flipping"
    return step


# ---------------------------------------------------------------------------------------------------------
# sampling primitives

def test_top_p_truncates_the_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert top_p_filter(logits, 0.8).isfinite()[0].tolist() == [True, True, False, False]  # 0.5 + 0.3 = 0.8
    assert top_p_filter(logits, 0.81).isfinite()[0].tolist() == [True, True, True, False]
    assert top_p_filter(logits, 1e-6).isfinite()[0].tolist() == [True, False, False, False]
    gens = make_generators(0, 1, "cpu")
    draws = torch.stack([sample_rows(logits, gens, 1.0, 0, 0.8) for _ in range(400)])
    assert set(draws.flatten().tolist()) == {0, 1}


def test_top_k_keeps_the_k_largest_then_top_p():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0, 0.0]])
    assert top_k_filter(logits, 2).isfinite()[0].tolist() == [False, True, True, False, False]
    assert torch.equal(top_k_filter(logits, 0), logits) and torch.equal(top_k_filter(logits, 5), logits)
    # top-k first: of the two kept, 4.0 alone carries >= 0.7 of their mass, so top-p keeps it alone
    assert filter_logits(logits, 2, 0.7).isfinite()[0].tolist() == [False, True, False, False, False]


def test_temperature_and_repetition_penalty():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    assert torch.equal(apply_temperature(logits, 0.5), logits * 2)
    seen = torch.tensor([[0, 1, 1]])
    # positive logits are divided, negative ones multiplied; unseen ids untouched; repeats count once
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -4.0, 1.0, 0.5]]
    assert torch.equal(apply_repetition_penalty(logits, seen[:, :0], 2.0), logits)


def test_inverse_cdf_and_draw_margin():
    cdf = torch.tensor([[0.1, 0.4, 0.4, 1.0]])  # token 2 has zero probability
    for u, tok, margin in [(0.05, 0, 0.05), (0.35, 1, 0.05), (0.4, 3, 0.0), (0.99, 3, 0.01)]:
        assert int(inverse_cdf(cdf, torch.tensor([[u]]))) == tok
        assert float(draw_margin(cdf, torch.tensor([[u]]))) == pytest.approx(margin, abs=1e-6)


def test_rows_draw_from_their_own_generators():
    first = make_generators(5, 4, "cpu")
    assert torch.rand(1, generator=make_generators(5, 1, "cpu")[0]) == torch.rand(1, generator=first[0])
    assert torch.rand(1, generator=first[1]) != torch.rand(1, generator=first[2])
    skipped, drawn = make_generators(5, 2, "cpu"), make_generators(5, 2, "cpu")
    skip_draws(skipped, 3, "cpu")
    for _ in range(3):
        torch.rand(1, generator=drawn[1])
    assert torch.rand(1, generator=skipped[1]) == torch.rand(1, generator=drawn[1])


def test_guidance_over_a_window_equals_step_by_step():
    cond, uncond = torch.randn(2, 6, 9), torch.randn(2, 6, 9)
    g = Guidance(3.0, until=0.5)  # of 8 steps: 0..3 guided
    window = g.combine(cond, uncond, 1, 8)  # steps 1..6
    steps = [g.combine(cond[:, i:i + 1], uncond[:, i:i + 1], 1 + i, 8) for i in range(6)]
    assert torch.equal(window, torch.cat(steps, 1))
    assert torch.equal(window[:, :3], uncond[:, :3] + 3.0 * (cond[:, :3] - uncond[:, :3]))
    assert torch.equal(window[:, 3:], cond[:, 3:])
    assert torch.equal(Guidance(3.0, until=0.0).combine(cond, uncond, 0, 8), cond)


# ---------------------------------------------------------------------------------------------------------
# argument checks: one message naming the input, before any model work

@pytest.mark.parametrize("kwargs, match", [
    ({"cfg": -1}, r"cfg must be a finite number >= 0"),
    ({"cfg": float("nan")}, r"cfg must be a finite number >= 0.*got nan"),
    ({"cfg": float("inf")}, r"cfg must be a finite number"),
    ({"cfg_until": 1.5}, r"cfg_until must be in \[0, 1\]"),
    ({"top_p": 0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": float("nan")}, r"top_p must be in \(0, 1\]"),
    ({"temperature": -0.1}, "temperature must be a finite number >= 0"),
    ({"temperature": float("nan")}, "temperature must be a finite number >= 0"),
    ({"temperature": float("inf")}, "temperature must be a finite number >= 0"),
    ({"top_k": -2}, "top_k must be a whole number, at least 0"),
    ({"top_k": 2.5}, "top_k must be a whole number"),
    ({"n": 0}, "batch size must be a whole number, at least 1"),
    ({"seed": -1}, r"seed must be a whole number in \[0, 2\*\*64\)"),
    ({"seed": 2 ** 64}, r"seed must be a whole number in \[0, 2\*\*64\)"),
    ({"seed": 2 ** 70}, r"seed must be a whole number in \[0, 2\*\*64\)"),
    ({"seed": 1.5}, "seed must be a whole number"),
])
def test_bad_sampler_arguments(small, kwargs, match):
    with pytest.raises(JanusError, match=match):
        generate_image_tokens(small, PROMPT, **kwargs)


def test_largest_seed_is_accepted(small):
    assert generate_image_tokens(small, PROMPT, seed=2 ** 64 - 1).shape == (1, GRID, GRID)


@pytest.mark.parametrize("kwargs, match", [
    ({"repetition_penalty": float("nan")}, "repetition_penalty must be a finite number > 0"),
    ({"repetition_penalty": 0}, "repetition_penalty must be a finite number > 0"),
    ({"max_new_tokens": 0}, "max_new_tokens must be a whole number, at least 1"),
    ({"temperature": float("nan")}, "temperature must be a finite number >= 0"),
    ({"seed": 2 ** 64}, r"seed must be a whole number in \[0, 2\*\*64\)"),
])
def test_bad_understanding_arguments(small, kwargs, match):
    with pytest.raises(JanusError, match=match):
        understand(small, [], "What is this?", **kwargs)


def test_encoding_no_images_is_refused(small):
    from janus_runtime import encode_images
    with pytest.raises(JanusError, match="images: none given"):
        encode_images(small, [])


def test_bad_prompt_tokens_and_mask(small, base):
    with pytest.raises(JanusError, match="prompt is empty"):
        generate_image_tokens(small, "  ")
    with pytest.raises(JanusError, match="question is empty"):
        understand(small, [], " ")
    with pytest.raises(JanusError, match=r"tokens must have shape \[B, 4, 4\].*\[2, 16, 16\]"):
        score_image_tokens(small, PROMPT, torch.zeros(2, 16, 16, dtype=torch.long))
    with pytest.raises(JanusError, match=r"ids outside \[0, 512\).*different codebook"):
        score_image_tokens(small, PROMPT, torch.full((1, GRID, GRID), 512))
    with pytest.raises(JanusError, match=r"temperature must be a finite number > 0 \(log-probabilities"):
        score_image_tokens(small, PROMPT, base, temperature=0)
    with pytest.raises(JanusError, match=r"mask has shape \[2, 2\].*\[4, 4, 4\]"):
        generate_image_tokens(small, PROMPT, n=4, init_tokens=base, mask=torch.ones(2, 2, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------------------
# bounds from the model, and non-finite values

def test_prompt_longer_than_the_context_is_refused_before_allocating(small):
    prompt = "the quick brown fox " * 300
    with pytest.raises(JanusError, match=rf"the prompt is \d+ tokens \+ 16 image tokens = \d+ positions, more "
                                         rf"than this model's context of {CONTEXT}.*shorten the prompt"):
        generate_image_tokens(small, prompt)
    assert small.lm.language_model.key_valid is None  # no cache was allocated
    with pytest.raises(JanusError, match=rf"\+ 1000000000 new tokens \(max_new_tokens\) = \d+ positions.*"
                                         rf"context of {CONTEXT}.*lower max_new_tokens"):
        understand(small, [], "What is this?", max_new_tokens=10 ** 9)


def test_nan_weights_are_reported_not_sampled(small_dir):
    model = load_model(small_dir, dtype="fp32")
    with torch.no_grad():
        model.lm.gen_head.vision_head.weight[3, 0] = float("nan")
        model.lm.language_model.lm_head.weight[3, 0] = float("nan")
    with pytest.raises(JanusError, match=r"NaN or infinite logits at image token 0: likely the weights hold NaN"):
        generate_image_tokens(model, PROMPT)
    with pytest.raises(JanusError, match=r"NaN or infinite logits while scoring"):
        score_image_tokens(model, PROMPT, torch.zeros(1, GRID, GRID, dtype=torch.long))
    with pytest.raises(JanusError, match=r"NaN or infinite logits at the first answer token"):
        understand(model, [], "What is this?")
    assert model.lm.language_model.key_valid is None


def test_fp16_overflow_is_named(small_dir):
    model = load_model(small_dir, dtype="fp16")
    with torch.no_grad():
        model.lm.gen_head.vision_head.bias.fill_(6.5e4)  # logits at fp16's edge (65504): some overflow
        model.lm.gen_head.vision_head.weight.mul_(1000)
    with pytest.raises(JanusError, match=r"float16 overflows.*load it with dtype bf16 or fp32"):
        generate_image_tokens(model, PROMPT)


# ---------------------------------------------------------------------------------------------------------
# seeds and batches

def test_shape_dtype_and_range(base):
    assert base.shape == (4, GRID, GRID) and base.dtype == torch.int64
    assert 0 <= int(base.min()) and int(base.max()) < 512
    assert len({tuple(g.flatten().tolist()) for g in base}) == 4  # images in a batch differ


def test_full_size_grid(tiny_model):
    out = generate_image_tokens(tiny_model, PROMPT, n=1, seed=1)
    assert out.shape == (1, 24, 24) and int(out.max()) < 16384


def test_same_seed_and_batch_size_give_identical_grids(small, base):
    assert torch.equal(generate_image_tokens(small, PROMPT, n=4, seed=7), base)
    assert not torch.equal(generate_image_tokens(small, PROMPT, n=4, seed=8), base)


def test_image_k_alone_or_in_a_batch_differs_only_at_near_edge_draws(small, base):
    """Image k follows the same draws in any batch; only matmul rounding (batch-size dependent) differs."""
    alone = generate_image_tokens(small, PROMPT, n=1, seed=7)
    pair = generate_image_tokens(small, PROMPT, n=2, seed=7)
    for k, got in [(0, alone[0]), (0, pair[0]), (1, pair[1])]:
        same_until_a_near_edge_draw(small, base[k], got, seed=7, index=k)


def test_global_rng_is_untouched(small):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate_image_tokens(small, PROMPT, n=2, seed=1)
    understand(small, [], "Hi", max_new_tokens=3, temperature=1.0)
    assert torch.equal(torch.rand(3), expected)


def test_temperature_zero_is_argmax_of_the_cfg_logits(small):
    a = generate_image_tokens(small, PROMPT, n=2, seed=1, temperature=0)
    assert torch.equal(a, generate_image_tokens(small, PROMPT, n=2, seed=999, temperature=0))
    assert torch.equal(a[0], a[1])
    # teacher-forced logits are a different computation order: equal argmax up to a near-tie
    _, logits = score_image_tokens(small, PROMPT, a[:1], return_logits_at=range(GRID * GRID))
    same_until_a_near_edge_draw(small, a[0], logits["cfg"][0].argmax(-1).view(GRID, GRID), seed=1,
                                temperature=0)
    assert torch.equal(generate_image_tokens(small, PROMPT, n=2, seed=5, top_k=1), a)
    assert torch.equal(generate_image_tokens(small, PROMPT, n=2, seed=3, top_p=1e-6), a)


def test_temperature_changes_the_samples(small, base):
    assert not torch.equal(generate_image_tokens(small, PROMPT, n=1, seed=7, temperature=0.5)[0], base[0])


def test_negative_prompt(small, base):
    default = generate_image_tokens(small, PROMPT, n=4, seed=7, negative_prompt="   ")
    assert torch.equal(default, base)  # blank = the official unconditional row
    negative = generate_image_tokens(small, PROMPT, n=4, seed=7, negative_prompt="blurry, low quality")
    assert not torch.equal(negative, base)


def test_negative_prompt_rows_are_left_padded_correctly(small, base):
    """A padded unconditional row must score like the same prompt unpadded (positions and mask right)."""
    # cfg 0 keeps only the unconditional row: the negative prompt, here shorter than the prompt and padded
    padded = score_image_tokens(small, PROMPT, base, negative_prompt="cat", cfg=0.0)
    alone = score_image_tokens(small, "cat", base, cfg=1.0)
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


def test_cfg_until(small, base):
    """Guidance applies to the first round(cfg_until x N) steps, in sampling and in scoring alike."""
    unguided = [generate_image_tokens(small, PROMPT, n=2, seed=4, cfg=w, cfg_until=0.0) for w in (5.0, 2.0)]
    assert torch.equal(*unguided)
    half = [score_image_tokens(small, PROMPT, base, cfg=w, cfg_until=0.5).view(4, -1) for w in (5.0, 2.0)]
    assert torch.equal(half[0][:, 8:], half[1][:, 8:])
    assert bool((half[0][:, :8] != half[1][:, :8]).all())


# ---------------------------------------------------------------------------------------------------------
# masked regeneration

def test_partial_regeneration_keeps_unmasked_tokens(small, base):
    mask = torch.zeros(GRID, GRID, dtype=torch.bool)
    mask[2:] = True  # regenerate the bottom half
    mask[0, 1] = True  # and one early token
    out = generate_image_tokens(small, "A red circle", n=4, seed=11, init_tokens=base, mask=mask)
    assert torch.equal(out[:, ~mask], base[:, ~mask])
    assert bool((out[:, mask] != base[:, mask]).any())


@pytest.mark.parametrize("early", [False, True])
def test_regenerating_the_tail_with_the_same_seed_reproduces_the_original(small, base, early):
    """Same seed and prompt: the kept prefix is teacher-forced at the right positions and the generators
    skip its draws, so the tail is the original one up to a near-edge draw (prefill rounds differently
    from step-by-step decoding)."""
    mask = torch.zeros(GRID, GRID, dtype=torch.bool)
    mask[2:] = True
    mask[0, 1] = early  # a masked token before the tail: sampled in the loop, shorter prefix
    again = generate_image_tokens(small, PROMPT, n=4, seed=7, init_tokens=base, mask=mask)
    assert torch.equal(again[:, ~mask], base[:, ~mask])
    for k in range(4):
        same_until_a_near_edge_draw(small, base[k], again[k], seed=7, index=k)


def test_partial_regeneration_of_nothing_returns_the_input(small, base):
    mask = torch.zeros(4, GRID, GRID, dtype=torch.bool)
    assert torch.equal(generate_image_tokens(small, PROMPT, n=4, init_tokens=base, mask=mask), base)


def test_full_mask_equals_fresh_generation(small, base):
    mask = torch.ones(GRID, GRID, dtype=torch.bool)
    out = generate_image_tokens(small, PROMPT, n=4, seed=7, init_tokens=base.flip(0), mask=mask)
    assert torch.equal(out, base)  # nothing known: the same computation as a fresh run


# ---------------------------------------------------------------------------------------------------------
# callbacks, sessions, concurrent callers

def test_callback_raising_stops_promptly_and_model_stays_usable(small, base):
    seen = []

    class Stop(Exception):
        pass

    def cb(step, total, tokens):
        seen.append((step, total, tokens.shape[1]))
        if step == 5:
            raise Stop
    with pytest.raises(Stop):
        generate_image_tokens(small, PROMPT, n=4, seed=7, callback=cb)
    assert seen == [(s, 16, s + 1) for s in range(6)]
    assert small.lm.language_model.key_valid is None  # cache released
    assert torch.equal(generate_image_tokens(small, PROMPT, n=4, seed=7), base)


def test_compile_off_cuda_runs_eagerly_and_releases_the_cache(small, base):
    assert torch.equal(generate_image_tokens(small, PROMPT, n=4, seed=7, compile=True), base)
    assert small.lm.language_model.key_valid is None  # kept only for captured CUDA graphs


def test_a_call_from_inside_a_callback_is_refused(small):
    def cb(step, total, tokens):
        generate_image_tokens(small, PROMPT)
    with pytest.raises(JanusError, match="started from inside a callback of another call on the same model"):
        generate_image_tokens(small, PROMPT, callback=cb)
    assert generate_image_tokens(small, PROMPT).shape == (1, GRID, GRID)


def test_concurrent_callers_of_different_batch_sizes_get_their_own_results(small):
    """The KV cache lives on the model: calls are serialised, so each equals the same call made alone."""
    jobs = [dict(n=1, seed=1), dict(n=2, seed=2), dict(n=3, seed=3, temperature=0.7, top_k=50)]
    alone = [generate_image_tokens(small, PROMPT, **j) for j in jobs]
    answer = understand(small, [], "Tell me a story.", max_new_tokens=8, temperature=1.0, seed=4).token_ids
    results, errors = {i: [] for i in range(len(jobs) + 1)}, []

    def work(i):
        try:
            for _ in range(3):
                if i < len(jobs):
                    results[i].append(generate_image_tokens(small, PROMPT, **jobs[i]))
                else:
                    results[i].append(understand(small, [], "Tell me a story.", max_new_tokens=8,
                                                 temperature=1.0, seed=4).token_ids)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, expected in enumerate(alone):
        assert all(torch.equal(r, expected) for r in results[i]) and len(results[i]) == 3
    assert results[len(jobs)] == [answer] * 3


@torch.inference_mode()
def test_session_positions_and_seeking_back(small):
    """Left-padded rows count positions from their first token; a rewound window is overwritten cleanly
    (what a speculative mode does with rejected drafts)."""
    lm = small.lm
    valid = torch.tensor([[True] * 6, [False] * 2 + [True] * 4])
    ids = torch.randint(0, 500, (2, 6))
    drafts, final = torch.randint(0, 500, (2, 3)), torch.randint(0, 500, (2, 3))
    with open_session(small, valid, 6) as s:
        assert s.positions(torch.arange(8)).tolist() == [list(range(8)), [0, 0, 0, 1, 2, 3, 4, 5]]
        s.prefill(lm.embed_text(ids))
        s.extend(lm.embed_text(drafts))
        s.seek(6)
        assert s.next_pos.tolist() == [[6], [4]]
        rewound = s.extend(lm.embed_text(final))
    with open_session(small, valid, 6) as s:
        straight = s.prefill(lm.embed_text(torch.cat([ids, final], 1)))[:, 6:]
    torch.testing.assert_close(rewound, straight, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# scoring

def test_score_is_the_log_probability_the_sampler_used(small):
    greedy = generate_image_tokens(small, PROMPT, temperature=0)
    logp, logits = score_image_tokens(small, PROMPT, greedy, return_logits_at=range(GRID * GRID))
    best = logits["cfg"][0].log_softmax(-1).max(-1).values
    # argmax tokens carry the top log-prob (up to a near-tie: decoding and scoring round differently)
    torch.testing.assert_close(logp[0], best, rtol=0, atol=LOGIT_NOISE)
    noise = torch.randint(0, 512, (3, GRID, GRID), generator=torch.Generator().manual_seed(0))
    ranked = score_image_tokens(small, PROMPT, torch.cat([noise, greedy])).mean(1)
    assert int(ranked.argmax()) == 3 and bool((ranked <= 0).all())


# ---------------------------------------------------------------------------------------------------------
# understanding

@pytest.fixture(scope="module")
def images():
    ref = REFERENCE / "expected"
    return [open_image(ref / "test_image.png"), open_image(ref / "gen_0.png"), open_image(ref / "vq_decoded.png")]


def answer_logits(model, item, token_ids):
    """Teacher-forced next-token logits [S, vocab] at each step of an answer to ``item``."""
    from janus_runtime.lm_session import left_pad
    from janus_runtime.understanding import embed_prompt, understanding_rows
    rows, imgs = understanding_rows(model, [item], None, None)
    ids, valid = left_pad([rows[0] + token_ids[:-1]], model.text.ids.pad)
    with torch.inference_mode(), open_session(model, valid, 0) as s:
        hidden = s.prefill(embed_prompt(model, ids, imgs))[0, len(rows[0]) - 1:]
        return model.lm.language_model.logits(hidden)


def test_batched_understanding_equals_one_at_a_time(small, images):
    items = [([images[0]], "What is in this image?"), ([images[1]], "Describe the colors."),
             ([], "Write a short poem about the sea."), ([images[2], images[0]], "Compare the two images.")]
    batched = understand_batch(small, items, max_new_tokens=12)
    eos = small.text.ids.eos
    for item, answer in zip(items, batched):
        alone = understand_batch(small, [item], max_new_tokens=12)[0]
        alone, got = [a.token_ids + [eos] * a.finished for a in (alone, answer)]
        d = next((i for i, (x, y) in enumerate(zip(alone, got)) if x != y), None)
        if d is None:
            assert got == alone
            continue
        top2 = answer_logits(small, item, alone)[d].topk(2).values  # greedy: a flip needs a near-tie
        assert float(top2[0] - top2[1]) < LOGIT_NOISE, f"item {item[1]!r} differs at step {d}"


def test_sampled_understanding_is_reproducible(small, images):
    items = [([images[0]], "What is in this image?"), ([images[1]], "Describe it.")]
    kw = dict(max_new_tokens=10, temperature=0.8, top_p=0.9, top_k=50, repetition_penalty=1.2, seed=3)
    batched = understand_batch(small, items, **kw)
    assert [a.token_ids for a in batched] == [a.token_ids for a in understand_batch(small, items, **kw)]
    greedy = understand_batch(small, items, max_new_tokens=10)
    assert [a.token_ids for a in batched] != [a.token_ids for a in greedy]


def test_multi_image_placeholders_in_order(small, images):
    q = "<image_placeholder>\nFirst, then <image_placeholder>\nsecond. Which is brighter?"
    ab = understand(small, [images[0], images[1]], q, max_new_tokens=8)
    assert ab.token_ids == understand(small, [images[0], images[1]], q, max_new_tokens=8).token_ids
    ids = ab.token_ids + [small.text.ids.eos] * ab.finished
    swapped = answer_logits(small, ([images[1], images[0]], q), ids)
    assert not torch.allclose(answer_logits(small, ([images[0], images[1]], q), ids), swapped)  # order matters


def test_more_images_than_placeholders(small, images):
    with pytest.raises(JanusError, match=r"1 <image_placeholder> placeholder\(s\) but 2 image\(s\)"):
        understand(small, images[:2], "<image_placeholder>\nWhat is this?")


def test_history_and_system_prompt(small, images):
    first = understand(small, [images[0]], "What is this?", max_new_tokens=6)
    assert first.history == [("What is this?", first.text)]
    prompt = small.text.understanding_prompt("And the colors?", 0, system_prompt="Be brief.",
                                             history=[("Hi", "Hello")])
    assert prompt == ("Be brief.\n\n<|User|>: Hi\n\n<|Assistant|>: Hello<｜end▁of▁sentence｜>"
                      "<|User|>: And the colors?\n\n<|Assistant|>:")
    follow = understand(small, [], "And the colors?", history=first.history, system_prompt="",
                        max_new_tokens=6)
    assert len(follow.history) == 2


def test_streaming_callback_and_eos(small, images):
    texts = []
    answer = understand(small, [images[0]], "What is this?", max_new_tokens=6,
                        callback=lambda step, total, t: texts.append(t[0]))
    assert texts and texts[-1] == answer.text and len(texts) <= 6
