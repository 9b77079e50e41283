"""Parity of the CACHED decode path with DeepSeek's own outputs, at every step, in fp32.

tests/test_parity.py checks the prefill (one forward over a whole sequence). These tests prefill the prompt and
then feed the reference tokens one at a time through the KV cache, so a bug that only the decode step has (RoPE
position, cache slot, mask of a padded row, cond/uncond rows, the forced-prefix hand-over) moves logits here.
Same tolerance as tests/test_parity.py (``close``: 1e-5 of each tensor's scale); never widen it.
"""

import json
from contextlib import contextmanager

import torch

from conftest import REFERENCE, load_expected, needs_reference
from janus_runtime.processing import open_image
from janus_runtime import generate_image_tokens, score_image_tokens, understand_batch
from test_parity import GEN_PROMPT, QUESTION, close

pytestmark = needs_reference


@contextmanager
def decode_session(model, valid, new_tokens):
    """The samplers' own KV-cache session for prompt rows ``valid`` [R, L]: ``prefill(embeds)`` once, then
    ``step(embeds)`` appends one position. (The one place these tests touch the session API.)"""
    from janus_runtime.lm_session import open_session
    with open_session(model, valid, new_tokens) as session:
        yield session


class Capture:
    """Records ``keep(output)`` for every call of ``module`` (a forward hook; the computation is unchanged)."""

    def __init__(self, module, keep=lambda o: o.detach().float().clone()):
        self.outputs = []
        self._handle = module.register_forward_hook(lambda m, i, o: self.outputs.append(keep(o)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.remove()


def test_understanding_logits_at_every_greedy_step_through_the_cache(ref_model):
    und = load_expected("understanding.safetensors")
    embeds, ids, expected = und["inputs_embeds"], und["greedy_ids"], und["greedy_step_logits"]
    t, steps = embeds.shape[1], ids.shape[1]
    llama = ref_model.lm.language_model
    with torch.inference_mode(), decode_session(ref_model, torch.ones(1, t, dtype=torch.bool), steps) as session:
        hidden = session.prefill(embeds)[:, -1]
        for s in range(steps):
            logits = llama.logits(hidden)[0]
            try:
                close(logits, expected[s])
            except AssertionError as e:
                raise AssertionError(f"decode step {s}: {e}") from None
            assert int(logits.argmax()) == int(ids[0, s])
            if s + 1 < steps:  # teacher forcing: the reference token, not ours
                hidden = session.step(ref_model.lm.embed_text(ids[:, s:s + 1]))[:, -1]


def test_understanding_in_a_left_padded_batch_matches_at_every_step(ref_model):
    """The reference item next to a longer one (so it is left-padded and masked) still decodes like DeepSeek."""
    und = load_expected("understanding.safetensors")
    image = open_image(REFERENCE / "expected" / "test_image.png")
    other = open_image(REFERENCE / "expected" / "gen_0.png")
    items = [([image], QUESTION), ([other, image], "Compare <image_placeholder> and <image_placeholder> please.")]
    with Capture(ref_model.lm.language_model.lm_head) as cap:
        answers = understand_batch(ref_model, items, max_new_tokens=16)
    assert answers[0].token_ids == und["greedy_ids"][0].tolist()
    assert len(cap.outputs) == 16  # one lm_head call per step (prefill's last position, then each decode)
    for s, out in enumerate(cap.outputs):
        try:
            close(out.reshape(2, -1, out.shape[-1])[0, -1], und["greedy_step_logits"][s])
        except AssertionError as e:
            raise AssertionError(f"decode step {s}: {e}") from None


def _generation_reference():
    gen = load_expected("generation.safetensors")
    meta = json.loads((REFERENCE / "expected" / "generation.json").read_text())
    return gen, meta


def test_generation_cfg_logits_at_every_step_through_the_cache(ref_model):
    """The official CFG batch fed the official sampled tokens one step at a time through our cache."""
    gen, meta = _generation_reference()
    tokens, w, temp = gen["generated_tokens"], meta["cfg_weight"], meta["temperature"]
    n, total = tokens.shape
    cond_ids, uncond_ids = gen["cfg_tokens"][0], gen["cfg_tokens"][1]
    ids = torch.stack([cond_ids] * n + [uncond_ids] * n)  # our row layout: conditional rows, then unconditional
    lm = ref_model.lm
    saved = {s: i for i, s in enumerate(meta["cfg_logits_steps"])}
    with torch.inference_mode(), decode_session(ref_model, torch.ones(ids.shape, dtype=torch.bool), total) as session:
        hidden = session.prefill(lm.embed_text(ids))[:, -1]
        for s in range(total):
            logits = lm.gen_head(hidden)
            cond, uncond = logits[:n], logits[n:]
            cfg = uncond + w * (cond - uncond)
            if s in saved:
                for name, t in (("cond", cond), ("uncond", uncond), ("cfg", cfg)):
                    try:
                        close(t, gen[f"{name}_logits"][:, saved[s]])
                    except AssertionError as e:
                        raise AssertionError(f"step {s} {name}: {e}") from None
            logp = (cfg / temp).log_softmax(-1).gather(-1, tokens[:, s:s + 1])[:, 0]
            try:
                close(logp, gen["step_logprob"][:, s])
            except AssertionError as e:
                raise AssertionError(f"step {s} log-prob: {e}") from None
            if s + 1 < total:
                x = lm.embed_image_codes(tokens[:, s])[:, None]
                hidden = session.step(torch.cat([x, x]))[:, -1]


def _regenerate_with_reference(model, images, mask, **kw):
    """Run the public generation loop with the official tokens forced outside ``mask`` and greedy inside it.

    Inside the mask the official sampled token equals the official argmax (``step_argmax``; the smallest
    top-1/top-2 margin there is 0.046, far above fp32 noise), so a correct loop reproduces the official tokens
    exactly and every decode step sees the official context. Returns (tokens, gen_head outputs per step).
    """
    gen, meta = _generation_reference()
    tokens = gen["generated_tokens"][images].view(len(images), 24, 24)
    n, w, temp = len(images), meta["cfg_weight"], meta["temperature"]
    step = iter(range(576 - int(mask.view(n, -1).any(0).nonzero()[0]), 0, -1))

    def keep(logits):  # the official-token log-prob of every step, full logits at the saved steps only
        s = 576 - next(step)
        cond, uncond = logits[:n].float(), logits[n:].float()
        logp = ((uncond + w * (cond - uncond)) / temp).log_softmax(-1).gather(-1, tokens.view(n, -1)[:, s:s + 1])
        return s, logp[:, 0], (cond, uncond) if s in meta["cfg_logits_steps"] else None
    with Capture(model.lm.gen_head, keep) as cap:
        out = generate_image_tokens(model, GEN_PROMPT, n=len(images), cfg=meta["cfg_weight"], temperature=0,
                                    init_tokens=tokens, mask=mask.view(len(images), 24, 24), **kw)
    return out.view(len(images), -1), cap.outputs


def _check_loop_logits(images, outputs, start):
    gen, meta = _generation_reference()
    saved = {s: i for i, s in enumerate(meta["cfg_logits_steps"])}
    assert len(outputs) == 576 - start, f"{len(outputs)} gen_head calls for {576 - start} sampled steps"
    for s, (step, logp, full) in zip(range(start, 576), outputs):
        assert step == s
        if full is not None:
            close(full[0], gen["cond_logits"][images, saved[s]])
            close(full[1], gen["uncond_logits"][images, saved[s]])
        try:
            close(logp, gen["step_logprob"][images, s])
        except AssertionError as e:
            raise AssertionError(f"step {s}: {e}") from None


def test_generation_loop_decode_steps_match_official(ref_model):
    """generate_image_tokens itself: both images, the loop runs from step 0 (forced and greedy steps)."""
    gen, _ = _generation_reference()
    images = [0, 1]
    mask = gen["generated_tokens"] == gen["step_argmax"]
    assert bool(mask[:, 0].any())  # the loop starts at step 0
    out, outputs = _regenerate_with_reference(ref_model, images, mask)
    assert torch.equal(out, gen["generated_tokens"])
    _check_loop_logits(images, outputs, 0)


def test_generation_loop_after_a_forced_prefix_matches_official(ref_model):
    """A kept prefix goes through the prefill (prompt + 108 codes), then the loop continues at step 108."""
    gen, _ = _generation_reference()
    images = [0]
    mask = gen["generated_tokens"][:1] == gen["step_argmax"][:1]
    mask[:, :108] = False
    start = int(mask[0].nonzero()[0])
    assert start == 108
    out, outputs = _regenerate_with_reference(ref_model, images, mask)
    assert torch.equal(out, gen["generated_tokens"][:1])
    _check_loop_logits(images, outputs, start)


def test_scoring_honours_cfg_until(ref_model):
    """cfg_until 0.5: guidance for steps < 288, then the conditional logits alone (as the sampler does)."""
    gen, meta = _generation_reference()
    steps = meta["cfg_logits_steps"]  # [0, 1, 287, 575]
    tokens = gen["generated_tokens"].view(2, 24, 24)
    logprobs, logits = score_image_tokens(ref_model, GEN_PROMPT, tokens, cfg=meta["cfg_weight"],
                                          temperature=meta["temperature"], cfg_until=0.5, return_logits_at=steps)
    expected = gen["cfg_logits"].clone()
    expected[:, 3] = gen["cond_logits"][:, 3]
    close(logits["cfg"], expected)
    guided = score_image_tokens(ref_model, GEN_PROMPT, tokens, cfg=meta["cfg_weight"], cfg_until=1.0)
    close(logprobs[:, :288], gen["step_logprob"][:, :288])
    close(guided, gen["step_logprob"])
    unguided_last = gen["cond_logits"][:, 3].log_softmax(-1).gather(-1, tokens.view(2, -1)[:, 575:])[:, 0]
    close(logprobs[:, 575], unguided_last)


def test_generation_honours_cfg_until(ref_model):
    """Greedy generation with cfg_until 0.5 takes the argmax of exactly the logits the scorer uses."""
    tokens = generate_image_tokens(ref_model, GEN_PROMPT, n=1, temperature=0, cfg_until=0.5).view(-1, 1)

    def shortfall(logits):  # how far below each step's maximum the greedy token's logit lies
        return logits.max(-1).values - logits.gather(-1, tokens[-logits.shape[0]:])[:, 0]
    _, scored = score_image_tokens(ref_model, GEN_PROMPT, tokens.view(1, 24, 24), cfg_until=0.5,
                                   return_logits_at=range(576))
    cfg = scored["cfg"][0]
    noise = 1e-5 * cfg.abs().max().item()  # prefill vs step-by-step: compare within fp32 noise, not bits
    assert shortfall(cfg).max().item() <= noise
    # and the unguided tail is not what full guidance would have picked there
    _, guided = score_image_tokens(ref_model, GEN_PROMPT, tokens.view(1, 24, 24), cfg_until=1.0,
                                   return_logits_at=range(288, 576))
    assert int((shortfall(guided["cfg"][0]) > 100 * noise).sum()) >= 10
