"""Parity with the outputs DeepSeek's own Janus code produced on the shared tiny checkpoint (fp32).

Tolerances fit fp32 accumulation-order differences (about 1e-5 relative to each tensor's scale); integer
outputs must match exactly. The same checks run on every file form and key layout of that checkpoint.
"""

import json
import shutil

import pytest
import torch

from conftest import REFERENCE, load_expected, needs_reference
from janus_runtime import load_model
from janus_runtime.processing import open_image, pixels_from_pil, to_uint8_official
from janus_runtime import decode_tokens, score_image_tokens, understand
from janus_runtime.generation import cfg_batch
from janus_runtime.lm_session import open_session
from janus_runtime.tiny import save_weights
from janus_runtime.weights import CheckpointReader, official_to_hf_state_dict

pytestmark = needs_reference
QUESTION = "Describe the shapes and colors in this image."
GEN_PROMPT = "A red circle and a yellow triangle on a blue gradient background."


def close(actual, expected, rel=1e-5):
    """max |a - e| <= rel * max |e|: an fp32 tolerance relative to the tensor's magnitude."""
    scale = expected.abs().max().item()
    err = (actual.float() - expected.float()).abs().max().item()
    assert err <= rel * max(scale, 1.0), f"max abs error {err:.3g} exceeds {rel:g} x scale {scale:.3g}"


def _copy_side_files(dst):
    for f in (REFERENCE / "checkpoint").iterdir():
        if f.suffix == ".json" or f.name.startswith("tokenizer"):
            shutil.copy(f, dst / f.name)


@pytest.fixture(scope="module", params=["official-safetensors", "official-bin", "hf-safetensors", "sharded-index"])
def model(request, tmp_path_factory):
    """The reference checkpoint in each file form the loader accepts."""
    form = request.param
    src = REFERENCE / "checkpoint"
    if form == "official-safetensors":
        return load_model(src, dtype="fp32")
    folder = tmp_path_factory.mktemp(form)
    _copy_side_files(folder)
    reader = CheckpointReader([src / "model.safetensors"])
    sd = {k: reader.get(k) for k in reader.keys()}
    if form == "official-bin":  # the reference's pytorch_model.bin holds these tensors (torch.save of them)
        save_weights(sd, folder, "bin")
        return load_model(folder, dtype="fp32")
    if form == "hf-safetensors":
        from janus_runtime.tiny import hf_config
        official_cfg = json.loads((src / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(hf_config(official_cfg)))
        save_weights(official_to_hf_state_dict(sd), folder, "safetensors")
        m = load_model(folder, dtype="fp32")
        assert m.config.layout == "hf"
        return m
    save_weights(sd, folder, "sharded")
    assert not (folder / "model.safetensors").exists()
    return load_model(folder, dtype="fp32")


@pytest.fixture(scope="module")
def und():
    return load_expected("understanding.safetensors")


def test_image_preprocessing(und):
    px = pixels_from_pil(open_image(REFERENCE / "expected" / "test_image.png"))
    assert px.dtype == torch.float32
    close(px, und["pixel_values"][0, 0], rel=1.2e-7)


def test_vision_features_and_aligner(model, und):
    with torch.inference_mode():
        feats = model.vision.vision_tower(und["pixel_values"][:, 0])
        close(feats, und["vision_features"])
        close(model.vision.aligner(feats), und["image_embeds"])


def _inputs_embeds(model, und):
    ids = und["input_ids"]
    with torch.inference_mode():
        embeds = model.lm.embed_text(ids).clone()
        feats = model.vision(und["pixel_values"][:, 0])
        embeds[und["images_seq_mask"]] = feats.reshape(-1, feats.shape[-1])
    return embeds


def test_prompt_ids_and_inputs_embeds(model, und):
    meta = json.loads((REFERENCE / "expected" / "understanding.json").read_text())
    prompt = model.text.understanding_prompt(QUESTION)
    assert prompt == meta["sft_format"]
    ids = model.text.expand_images(model.text.encode(prompt), model.config.num_image_tokens)
    assert ids == und["input_ids"][0].tolist()
    close(_inputs_embeds(model, und), und["inputs_embeds"])


def test_last_logits(model, und):
    embeds = und["inputs_embeds"]
    with torch.inference_mode(), open_session(model, torch.ones(1, embeds.shape[1], dtype=torch.bool), 0) as s:
        logits = model.lm.language_model.logits(s.prefill(embeds)[:, -1])
    close(logits, und["last_logits"])


def test_greedy_tokens(model, und):
    image = open_image(REFERENCE / "expected" / "test_image.png")
    answer = understand(model, [image], QUESTION, max_new_tokens=16)
    assert answer.token_ids == und["greedy_ids"][0].tolist()
    meta = json.loads((REFERENCE / "expected" / "understanding.json").read_text())
    assert answer.text == meta["greedy_text"]


def test_vq_encode_indices(model):
    vq = load_expected("vq.safetensors")
    with torch.inference_mode():
        latent = model.vq.latent(vq["input"])
        close(latent, vq["latent"])
        indices = model.vq.quantize.nearest(latent)[0]
    differ = indices != vq["indices"]
    # only positions whose two nearest codes are within fp32 noise may differ
    assert bool((vq["dist_gap"][differ] < 1e-4).all()), vq["dist_gap"][differ]
    assert int(differ.sum()) <= 2


def test_vq_decode_pixels(model):
    vq = load_expected("vq.safetensors")
    pixels = decode_tokens(model, vq["indices"][None])
    # ~30 stacked fp32 convolutions: on this CPU the thread count alone moves our own output by up to
    # 1e-4 absolute (2.5e-5 of its scale), so this is the noise floor, not a widened tolerance.
    close(pixels, vq["decoded"], rel=3e-5)
    u8 = to_uint8_official(pixels)[0]
    diff = (u8.int() - vq["decoded_uint8"].int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 0.01


def test_teacher_forced_cfg_logits_and_logprobs(model):
    gen = load_expected("generation.safetensors")
    meta = json.loads((REFERENCE / "expected" / "generation.json").read_text())
    steps = meta["cfg_logits_steps"]
    tokens = gen["generated_tokens"].view(2, 24, 24)
    logprobs, logits = score_image_tokens(model, GEN_PROMPT, tokens, cfg=meta["cfg_weight"],
                                          temperature=meta["temperature"], return_logits_at=steps)
    for name in ("cfg", "cond", "uncond"):
        close(logits[name], gen[f"{name}_logits"])
    close(logprobs, gen["step_logprob"])
    # the official unconditional row is [BOS, PAD..., BOI], built from the tokenizer's ids
    batch = cfg_batch(model, [GEN_PROMPT])
    assert batch.ids.tolist() == gen["cfg_tokens"].tolist()


def test_generated_images_decode_like_official(model):
    gen = load_expected("generation.safetensors")
    u8 = to_uint8_official(decode_tokens(model, gen["generated_tokens"].view(2, 24, 24)))
    diff = (u8.int() - gen["images_uint8"].int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 0.01
