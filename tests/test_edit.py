"""Janus-4o instruction editing against the outputs of the authors' recipe run with DeepSeek's Janus code
(tiny reference checkpoint, fp32; shipped in tests/data/reference/janus4o from ../shared/reference/janus4o)."""

import pytest
import torch

from conftest import REFERENCE, needs_reference
from janus_runtime import JanusError
from janus_runtime.edit import edit_embeddings, edit_image_tokens, edit_rows, score_edit_tokens
from janus_runtime.processing import open_image, to_uint8_official
from janus_runtime.image_tokens import decode_tokens

pytestmark = needs_reference
J4O = REFERENCE / "janus4o"
INSTRUCTION = "Turn the image into a nighttime scene."


@pytest.fixture(scope="module")
def ref():
    from safetensors.torch import load_file
    return load_file(str(J4O / "janus4o.safetensors"))


@pytest.fixture(scope="module")
def image():
    return open_image(REFERENCE / "expected" / "test_image.png")


def close(actual, expected, atol):
    err = (actual.float() - expected.float()).abs().max().item()
    assert err <= atol, f"max abs error {err:.3g} > {atol:g}"


def test_rows_masks_and_vq_codes_are_exact(ref_model, ref, image):
    rows = edit_rows(ref_model, 1, INSTRUCTION, 1)
    assert torch.equal(rows.ids, ref["tokens"])
    assert torch.equal(rows.ids[0], ref["prompt_input_ids"])
    assert torch.equal(rows.siglip, ref["images_seq_mask"])
    assert torch.equal(rows.vq, ref["vq_insert_mask"])
    embeds, codes = edit_embeddings(ref_model, rows, [image])
    differ = codes.flatten() != ref["vq_indices"][0]
    assert bool((ref["vq_dist_gap"][0][differ] < 1e-4).all()) and int(differ.sum()) <= 2  # fp32 near-ties only
    close(embeds, ref["inputs_embeds"], 1e-5)


def test_teacher_forced_logits_and_logprobs(ref_model, ref, image):
    steps = ref["cfg_logits_steps"].tolist()
    logprobs, logits = score_edit_tokens(ref_model, [image], INSTRUCTION, ref["generated_tokens"].view(1, 24, 24),
                                         cfg=5.0, image_cfg=5.0, return_logits_at=steps)
    for name in ("cond_full", "cond_part", "uncond", "cfg"):
        close(logits[name], ref[f"{name}_logits"], 1e-4)
    close(logprobs, ref["step_logprob"], 1e-4)


def test_generated_tokens_decode_like_the_recipe(ref_model, ref):
    u8 = to_uint8_official(decode_tokens(ref_model, ref["generated_tokens"].view(1, 24, 24)))
    diff = (u8.int() - ref["images_uint8"].int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 0.01


def test_greedy_edit_follows_the_argmax_of_its_own_scores(ref_model, image):
    tokens = edit_image_tokens(ref_model, [image], INSTRUCTION, temperature=0)
    _, logits = score_edit_tokens(ref_model, [image], INSTRUCTION, tokens, return_logits_at=range(576))
    top2 = logits["cfg"][0].topk(2, -1).values
    settled = (top2[:, 0] - top2[:, 1]) > 1e-3  # steps whose argmax float noise cannot flip
    assert torch.equal(logits["cfg"][0].argmax(-1)[settled], tokens.flatten()[settled])


def test_two_input_images_each_fill_their_own_pad_block(ref_model, image):
    rows = edit_rows(ref_model, 2, INSTRUCTION, 1)
    full, part = rows.ids[0], rows.ids[1]
    assert torch.equal(full, part) and int(rows.vq[0].sum()) == 2 * 576 and not rows.vq[1:].any()
    second = open_image(REFERENCE / "expected" / "vq_decoded.png")
    embeds, codes = edit_embeddings(ref_model, rows, [image, second])
    vq_slots = rows.vq[0].nonzero()[:, 0]
    gen = ref_model.lm.embed_image_codes(codes.flatten(1))                  # [2, 576, D]
    close(embeds[0, vq_slots[:576]], gen[0], 1e-6)
    close(embeds[0, vq_slots[576:]], gen[1], 1e-6)


def test_batch_seeds_and_bad_input(ref_model, image):
    a = edit_image_tokens(ref_model, [image], INSTRUCTION, n=2, seed=3)
    assert a.shape == (2, 24, 24) and not torch.equal(a[0], a[1])
    with pytest.raises(JanusError, match="instruction is empty"):
        edit_image_tokens(ref_model, [image], "  ")
    with pytest.raises(JanusError, match="at least one input image"):
        edit_image_tokens(ref_model, [], INSTRUCTION)
    with pytest.raises(JanusError, match="image_cfg must be a finite number"):
        edit_image_tokens(ref_model, [image], INSTRUCTION, image_cfg=float("nan"))
