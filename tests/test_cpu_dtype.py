"""dtype "auto" on a CPU: bf16 where the CPU multiplies bf16 natively, fp32 elsewhere, the VQ model in fp32 either
way; and how bf16 agrees with fp32 on the reference checkpoint.

The rule reads torch's CPU capability probes; the tests patch them (they describe the machine, not the model),
so every case runs on any CPU: a CPU without native bf16 still computes bf16, only slower.
"""

import pytest
import torch

from conftest import REFERENCE, needs_reference
from janus_runtime import decode_tokens, encode_images, generate_image_tokens, load_model, open_image, understand
from janus_runtime.codebook import colour_table
from janus_runtime.edit import edit_embeddings, edit_rows
from janus_runtime.model import CPU_BF16_PROBES, COMPONENTS, component_dtypes, default_dtype
from reference_agreement import BF16_LOGITS_REL, bf16_agreement, load_reference, reference_outputs

BF16, FP32 = torch.bfloat16, torch.float32
AVX512_BF16, AMX = CPU_BF16_PROBES


def fail():
    raise RuntimeError("probe failed")


def set_probes(monkeypatch, **probes):
    """Each CPU probe returns the given bool, is missing (None), or raises ("raises")."""
    for name in CPU_BF16_PROBES:
        value = probes.get(name, False)
        if value is None:
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, fail if value == "raises" else (lambda v=value: v), raising=False)


@pytest.mark.parametrize("probes, expected", [
    ({AVX512_BF16: True, AMX: False}, BF16),
    ({AVX512_BF16: False, AMX: True}, BF16),
    ({AVX512_BF16: False, AMX: False}, FP32),
    ({AVX512_BF16: None, AMX: None}, FP32),            # a torch without the probes
    ({AVX512_BF16: "raises", AMX: None}, FP32),
    ({AVX512_BF16: "raises", AMX: True}, BF16),
])
def test_auto_on_a_cpu_follows_its_bf16_probes_and_keeps_the_vq_in_fp32(monkeypatch, probes, expected):
    set_probes(monkeypatch, **probes)
    assert default_dtype("cpu") == expected
    for auto in ("auto", None):
        assert component_dtypes(auto, "cpu") == {"lm": expected, "vision": expected, "vq": FP32}


@pytest.mark.parametrize("native", [True, False])
def test_explicit_dtypes_apply_to_every_component(monkeypatch, native):
    set_probes(monkeypatch, **{AVX512_BF16: native})
    for choice, dtype in (("bf16", BF16), ("fp16", torch.float16), ("fp32", FP32), (BF16, BF16)):
        assert component_dtypes(choice, "cpu") == dict.fromkeys(COMPONENTS, dtype)


@pytest.mark.parametrize("cuda_bf16", [True, False])
def test_auto_off_the_cpu_is_unchanged(monkeypatch, cuda_bf16):
    """CUDA: bf16 for every component (VQ included) where the GPU has bf16, else fp32; MPS: fp32. The CPU
    probes play no part."""
    set_probes(monkeypatch, **{AVX512_BF16: True, AMX: True})
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda_bf16)
    assert component_dtypes("auto", "cuda") == dict.fromkeys(COMPONENTS, BF16 if cuda_bf16 else FP32)
    assert component_dtypes("auto", "mps") == dict.fromkeys(COMPONENTS, FP32)


@pytest.mark.parametrize("native", [True, False])
def test_a_model_loaded_with_auto_on_a_cpu_generates_encodes_and_decodes(monkeypatch, tiny_dir, tiny_model, native):
    """Auto-loaded model: weights in the rule's dtypes, generation and understanding run, and every VQ path
    (decode, encode, the edit's encode, the preview colour table) computes in fp32 exactly as an fp32 model."""
    set_probes(monkeypatch, **{AVX512_BF16: native})
    model = load_model(tiny_dir, device="cpu", dtype="auto")
    lm_dtype = BF16 if native else FP32
    assert model.dtype == model.dtype_for("lm") == model.dtype_for("vision") == lm_dtype
    assert model.dtype_for("vq") == FP32
    for name, dtype in (("lm", lm_dtype), ("vision", lm_dtype), ("vq", FP32)):
        assert {p.dtype for p in getattr(model, name).parameters()} == {dtype}, name

    tokens = generate_image_tokens(model, "a red circle", n=1, seed=3)
    assert tokens.shape == (1, 24, 24) and int(tokens.min()) >= 0
    assert int(tokens.max()) < model.config.vq.codebook_size
    pixels = decode_tokens(model, tokens)
    assert pixels.dtype == FP32 and pixels.shape == (1, 3, 384, 384) and bool(pixels.isfinite().all())
    # the VQ model computes as the fp32 model's does: the same operations on the same fp32 weights
    assert torch.equal(pixels, decode_tokens(tiny_model, tokens))
    image = open_image(REFERENCE / "expected" / "test_image.png")
    codes = encode_images(model, [image])
    assert torch.equal(codes, encode_images(tiny_model, [image]))
    _, edit_codes = edit_embeddings(model, edit_rows(model, 1, "make it blue", 1), [image])
    assert torch.equal(edit_codes, codes)
    assert torch.equal(colour_table(model), colour_table(tiny_model))
    answer = understand(model, [image], "What is this?", max_new_tokens=4)
    assert 1 <= len(answer.token_ids) <= 4


# ---------------------------------------------------------------------------------------------------------
# bf16 against fp32 on the reference checkpoint (the logic benchmarks/gpu_check.py's parity phase runs too)

@pytest.fixture(scope="module")
def expected():
    return load_reference()


@pytest.fixture(scope="module")
def fp32_outputs(ref_model, expected):
    return reference_outputs(ref_model, expected)


def failed(checks: dict) -> dict:
    return {k: v for k, v in checks.items() if isinstance(v, dict) and not v["ok"]}


@needs_reference
def test_bf16_agrees_with_fp32_on_the_reference(expected, fp32_outputs):
    """Every component in bf16: greedy understanding ids equal the reference's (up to a near-tie), logits
    within 3 % of their scale, the VQ decode within its uint8 bounds."""
    model = load_model(REFERENCE / "checkpoint", device="cpu", dtype="bf16")
    checks = bf16_agreement(reference_outputs(model, expected), fp32_outputs,
                            expected["und"]["greedy_ids"][0].tolist())
    assert BF16_LOGITS_REL == 0.03  # the stated tolerance: a failure here is a bug, never a reason to widen it
    assert not failed(checks), failed(checks)


@needs_reference
def test_auto_with_native_bf16_agrees_and_decodes_pixels_as_fp32(monkeypatch, expected, fp32_outputs):
    """What a CPU with native bf16 runs under "auto": the same logit agreement, and pixels identical to
    fp32 (the VQ model stays fp32)."""
    set_probes(monkeypatch, **{AVX512_BF16: True})
    model = load_model(REFERENCE / "checkpoint", device="cpu", dtype="auto")
    assert (model.dtype, model.dtype_for("vq")) == (BF16, FP32)
    low = reference_outputs(model, expected)
    checks = bf16_agreement(low, fp32_outputs, expected["und"]["greedy_ids"][0].tolist())
    assert not failed(checks), failed(checks)
    for key in ("vq_pixels", "vq_uint8", "gen_uint8", "vq_indices"):
        assert torch.equal(low[key], fp32_outputs[key]), key
