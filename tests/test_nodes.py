"""The ComfyUI nodes, run through their declared inputs on tiny checkpoints.

The host is set up by tests/comfy_host.py: real ComfyUI modules when tests/test_in_comfyui.py runs this file
inside a ComfyUI tree (0.33.0 with dynamic VRAM or the classic patcher, 0.3.64), else the stand-ins in
comfy_standins/. ``host`` records what the nodes sent to ComfyUI (loads, progress, previews, text) through
spies that call the real functions. Other node test files reuse ``pack``, ``handle``, ``generated``, ``call``
and ``result`` from here (``from test_nodes import ...``), and the pack's modules via ``pack_module``.
"""

import dataclasses
import shutil

import pytest
import torch

import comfy_host
from comfy_host import pack_module

host = comfy_host.setup()

import comfy.model_management as mm  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.ops  # noqa: E402
import folder_paths  # noqa: E402

from janus_runtime import JanusError  # noqa: E402
from janus_runtime.tiny import make_tiny  # noqa: E402

WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """The nodes package with a models folder holding two tiny checkpoints (different VQ codebooks)."""
    models = tmp_path_factory.mktemp("comfy") / "models"
    make_tiny(models / "janus" / "Janus-Tiny", seed=0)
    make_tiny(models / "janus" / "Janus-Tiny-B", layout="hf", seed=1)
    pack = comfy_host.load_pack()  # registers models/janus under ComfyUI's models folder, as at start-up
    # then only this test's models folder
    folder_paths.models_dir = str(models)
    folder_paths.folder_names_and_paths.pop("janus", None)
    pack_module("nodes").register_folder()
    return pack.NODE_CLASS_MAPPINGS


def call(cls, **given):
    """Run a node's FUNCTION with ``given`` plus the declared defaults of every other widget input."""
    spec = cls.INPUT_TYPES()
    kwargs = {}
    for section in ("required", "optional"):
        for name, (kind, opts) in spec.get(section, {}).items():
            if name in given:
                kwargs[name] = given[name]
            elif isinstance(kind, list):
                kwargs[name] = opts.get("default", kind[0])
            elif kind in WIDGETS:
                kwargs[name] = opts["default"]
            elif section == "required":
                raise AssertionError(f"{cls.__name__}: required input {name} ({kind}) not given")
    for name in spec.get("hidden", {}):
        if name in given:
            kwargs[name] = given[name]
    assert set(given) <= set(kwargs), f"{cls.__name__} has no input(s) {set(given) - set(kwargs)}"
    out = getattr(cls(), cls.FUNCTION)(**kwargs)
    result = out["result"] if isinstance(out, dict) else out
    assert isinstance(result, tuple) and len(result) == len(cls.RETURN_TYPES)
    for value, kind, is_list in zip(result, cls.RETURN_TYPES, getattr(cls, "OUTPUT_IS_LIST", (False,) * 9)):
        check_type(value[0] if is_list else value, kind)
    return out


def check_type(value, kind):
    expected = {"JANUS_MODEL": pack_module("nodes.memory").JanusHandle,
                "JANUS_TOKENS": pack_module("nodes.tokens").JanusTokens, "IMAGE": torch.Tensor, "STRING": str,
                "LATENT": dict}[kind]
    assert isinstance(value, expected), (kind, type(value))


def result(out):
    return out["result"] if isinstance(out, dict) else out


@pytest.fixture(scope="module")
def handle(pack):
    return result(call(pack["JanusModelLoader"], model="Janus-Tiny"))[0]


@pytest.fixture(scope="module")
def generated(pack, handle):
    return result(call(pack["JanusGenerate"], janus_model=handle, prompt="a red circle", batch_size=2, seed=3,
                       preview_every=96))[0]


def test_input_types_are_well_formed(pack):
    for name, cls in pack.items():
        spec = cls.INPUT_TYPES()
        assert cls.CATEGORY == "Janus" and cls.DESCRIPTION and hasattr(cls, cls.FUNCTION), name
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS), name
        for section in ("required", "optional"):
            for inp, entry in spec.get(section, {}).items():
                assert isinstance(entry, tuple) and len(entry) == 2, (name, inp)
                kind, opts = entry
                assert isinstance(kind, (str, list)) and opts.get("tooltip"), (name, inp)
                if isinstance(kind, list):
                    assert kind and opts.get("default", kind[0]) in kind, (name, inp)
                elif kind in WIDGETS:
                    assert "default" in opts, (name, inp)
                    if kind in ("INT", "FLOAT"):
                        assert opts["min"] <= opts["default"] <= opts["max"], (name, inp)
                else:
                    assert kind.isupper(), (name, inp)  # a link type


def test_loader_lists_folders_and_known_repos(pack, tmp_path):
    choices = pack["JanusModelLoader"].INPUT_TYPES()["required"]["model"][0]
    assert choices[:2] == ["Janus-Tiny", "Janus-Tiny-B"]
    assert "deepseek-ai/Janus-Pro-7B (download)" in choices  # not downloaded: marked
    extra = tmp_path / "elsewhere"
    make_tiny(extra / "Janus-Extra")
    folder_paths.add_model_folder_path("janus", str(extra))  # what extra_model_paths.yaml does
    try:
        assert "Janus-Extra" in pack["JanusModelLoader"].INPUT_TYPES()["required"]["model"][0]
        loaded = result(call(pack["JanusModelLoader"], model="Janus-Extra"))[0]
        assert loaded.model.config.layout == "official"
    finally:
        folder_paths.folder_names_and_paths["janus"][0].remove(str(extra))


@pytest.mark.parametrize("name", ["../Janus-Tiny", "/etc", "Janus-Tiny/../../models"])
def test_loader_rejects_paths_outside_the_models_folders(pack, name):
    with pytest.raises(JanusError, match="only folders inside"):
        call(pack["JanusModelLoader"], model=name)


def test_loader_reports_missing_files(pack):
    root = folder_paths.get_folder_paths("janus")[0]
    broken = f"{root}/Janus-Broken"
    shutil.copytree(f"{root}/Janus-Tiny", broken)
    (__import__("pathlib").Path(broken) / "model.safetensors").unlink()
    try:
        with pytest.raises(JanusError, match=r"no weights found.*Download the model's weight files"):
            call(pack["JanusModelLoader"], model="Janus-Broken")
    finally:
        shutil.rmtree(broken)
    with pytest.raises(JanusError, match="no such model folder"):
        call(pack["JanusModelLoader"], model="Janus-Nowhere")


def test_the_host_is_the_one_asked_for():
    """Dynamic VRAM (real 0.33 mode a, and the stand-ins): comfy.ops Linear layers start without weights."""
    layer = comfy.ops.manual_cast.Linear(4, 4)
    if host.mode == "dynamic":
        assert layer.weight is None
        if host.real:
            assert comfy.model_patcher.CoreModelPatcher is comfy.model_patcher.ModelPatcherDynamic
    else:
        assert layer.weight is not None
    if host.real:
        assert mm.__file__.startswith(str(host.tree))


def test_loader_hands_components_to_the_memory_manager(handle):
    assert set(handle.patchers) == {"lm", "vision", "vq"}
    for name, patcher in handle.patchers.items():
        assert patcher.model is getattr(handle.model, name)
        assert patcher.load_device == mm.get_torch_device() and patcher.offload_device == mm.unet_offload_device()
        empty = [n for n, t in patcher.model.state_dict().items() if t is None or t.is_meta]
        assert not empty, f"{name}: weights not loaded: {empty[:5]}"
    linear = handle.model.lm.language_model.model.layers[0].mlp.down_proj
    assert getattr(linear, "comfy_cast_weights", False)  # built from comfy.ops, so ComfyUI can stream it


def test_loader_auto_on_a_cpu_follows_the_runtime_rule(pack, monkeypatch):
    """ComfyUI answers fp32 for any CPU device; "auto" there is the runtime's rule (bf16 where the CPU has
    native bf16, the VQ model in fp32), unless ComfyUI runs with --force-fp32."""
    from janus_runtime.model import component_dtypes
    cpu = torch.device("cpu")
    assert not mm.should_use_bf16(cpu) and not mm.should_use_fp16(cpu)
    pick = pack_module("nodes.loader").pick_dtype
    assert pick("auto", cpu) == "auto" and pick("fp16", cpu) == torch.float16
    if mm.get_torch_device().type == "cpu":
        out = call(pack["JanusModelLoader"], model="Janus-Tiny")
        model, rule = result(out)[0].model, component_dtypes("auto", "cpu")
        assert {c: model.dtype_for(c) for c in rule} == rule
        vq = "" if rule["vq"] == rule["lm"] else " (VQ float32)"
        assert f"compute {str(rule['lm']).replace('torch.', '')}{vq}, " in out["ui"]["text"][0]
    monkeypatch.setattr(mm, "FORCE_FP32", True, raising=False)
    assert pick("auto", cpu) == torch.float32


def generate(pack, handle, **kw):
    return result(call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", preview_every=0, **kw))[0]


def test_generate_decode_gives_images(pack, handle, generated):
    host.clear()
    image = result(call(pack["JanusVQDecode"], janus_model=handle, tokens=generated))[0]
    assert image.shape == (2, 384, 384, 3) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1 and float(image.std()) > 0
    (patchers, required), = host.load_calls
    assert patchers == [handle.patchers["vq"]] and required > 0
    assert generated.tokens.shape == (2, 24, 24) and generated.codebook_id == handle.codebook_id


def test_generate_reports_progress_with_previews_and_loads_first(pack, handle):
    host.clear()
    call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=1, preview_every=96, node_id="7")
    assert [u[1] for u in host.updates] == list(range(1, 577))
    assert {u[0] for u in host.updates} == {"7"}
    assert [u[1] for u in host.updates if u[3]] == [96, 192, 288, 384, 480, 576]
    # every preview went through the server's send_image and came out as an image
    assert len(host.previews) == 6 and {p[0] for p in host.previews} == {"7"}
    patchers, required = host.load_calls[-1]  # (a first call may load the VQ once, for the preview colours)
    assert handle.patchers["lm"] in patchers and required > 0


def test_cancel_mid_generation_then_an_identical_rerun(pack, handle):
    fresh = generate(pack, handle, seed=9)
    host.clear()
    host.interrupt_at = 50  # the Cancel button, pressed when the progress bar shows step 50
    with pytest.raises(mm.InterruptProcessingException):
        generate(pack, handle, seed=9)
    assert max(u[1] for u in host.updates) <= 51  # stopped at the next step
    assert not mm.processing_interrupted()  # ComfyUI clears the flag when it raises
    assert handle.model.lm.language_model.key_valid is None  # KV cache released
    again = generate(pack, handle, seed=9)
    assert torch.equal(again.tokens, fresh.tokens)


def test_unload_and_reload_between_runs(pack, handle, caplog):
    import logging
    first = generate(pack, handle, seed=11, batch_size=2)
    latent = result(call(pack["JanusTokensToLatent"], janus_model=handle, tokens=first))[0]
    image = result(call(pack["JanusVQDecode"], janus_model=handle, tokens=first))[0]
    with caplog.at_level(logging.INFO):
        mm.unload_all_models()  # the "Unload models" button
    assert not set(handle.patchers.values()) & set(mm.loaded_models())
    if host.real:  # real ComfyUI detaches unloaded patchers, and we say so at its default log level
        assert "Janus: unloaded Janus-Tiny (lm)" in caplog.text
    # the codebook is read while the VQ decoder is offloaded
    back = result(call(pack["JanusLatentToTokens"], janus_model=handle, latent=latent))[0]
    assert torch.equal(back.tokens, first.tokens)
    again = generate(pack, handle, seed=11, batch_size=2)
    assert handle.patchers["lm"] in mm.loaded_models()
    assert torch.equal(again.tokens, first.tokens)
    mm.unload_all_models()
    assert torch.equal(result(call(pack["JanusVQDecode"], janus_model=handle, tokens=again))[0], image)


def test_regenerate_masked_keeps_unmasked_tokens(pack, handle, generated):
    mask = torch.zeros(1, 384, 384)
    mask[:, 192:, :] = 1.0  # bottom half
    mask[:, 0:8, 0:8] = 1.0  # a quarter of token (0, 0): below the 0.5 threshold, kept
    out = result(call(pack["JanusRegenerateMasked"], janus_model=handle, tokens=generated, mask=mask,
                      prompt="a blue square", seed=5))[0]
    assert torch.equal(out.tokens[:, :12], generated.tokens[:, :12])
    assert not torch.equal(out.tokens[:, 12:], generated.tokens[:, 12:])


def test_latent_round_trip_and_core_style_composite(pack, handle, generated):
    latent = result(call(pack["JanusTokensToLatent"], janus_model=handle, tokens=generated))[0]
    assert latent["samples"].shape == (2, 8, 48, 48)  # 8 px per latent cell, as core latents
    back = result(call(pack["JanusLatentToTokens"], janus_model=handle, latent=latent))[0]
    assert torch.equal(back.tokens, generated.tokens)
    # what core LatentComposite / LatentFromBatch do: move vectors around, then snap back
    mixed = latent["samples"].clone()
    mixed[0, :, :, 24:] = latent["samples"][1, :, :, 24:]
    snapped = result(call(pack["JanusLatentToTokens"], janus_model=handle, latent={"samples": mixed}))[0]
    assert torch.equal(snapped.tokens[0, :, 12:], generated.tokens[1, :, 12:])
    with pytest.raises(JanusError, match=r"latent: expected Janus token vectors \[B, 8, 48, 48\].*\[1, 4, 64, 64\]"):
        call(pack["JanusLatentToTokens"], janus_model=handle, latent={"samples": torch.zeros(1, 4, 64, 64)})


def test_vq_encode_then_decode(pack, handle):
    image = torch.rand(2, 300, 500, 3)
    tokens = result(call(pack["JanusVQEncode"], janus_model=handle, image=image))[0]
    assert tokens.tokens.shape == (2, 24, 24)
    cropped = result(call(pack["JanusVQEncode"], janus_model=handle, image=image, fit="crop"))[0]
    assert not torch.equal(cropped.tokens, tokens.tokens)
    assert result(call(pack["JanusVQDecode"], janus_model=handle, tokens=tokens))[0].shape == (2, 384, 384, 3)


def test_understand_one_answer_per_image_or_one_for_all(pack, handle):
    images = torch.rand(2, 384, 384, 3)
    host.clear()
    out = call(pack["JanusUnderstand"], janus_model=handle, image=images, question="What is this?",
               max_new_tokens=6, node_id="3")
    answers = out["result"][0]
    assert len(answers) == 2 and out["ui"]["text"] == answers
    assert host.texts and host.texts[-1] == ("3", "\n\n".join(answers))
    (patchers, required), *_ = host.load_calls
    assert handle.patchers["lm"] in patchers and handle.patchers["vision"] in patchers and required > 0
    together = result(call(pack["JanusUnderstand"], janus_model=handle, image=images, question="Compare them.",
                           images_in_one_prompt=True, max_new_tokens=6))[0]
    assert len(together) == 1
    text_only = result(call(pack["JanusUnderstand"], janus_model=handle, question="Hello?", max_new_tokens=4))[0]
    assert len(text_only) == 1


def test_score_keeps_the_best(pack, handle, generated):
    """A grid the model sampled for the prompt beats one made of codes it finds unlikely, whatever the order."""
    from janus_runtime import score_image_tokens
    sampled = generated.tokens[:1]
    per_code = score_image_tokens(handle.model, "a red circle", sampled).view(24, 24)
    unlikely = sampled.clone().view(-1)
    unlikely[:] = sampled.view(-1)[per_code.view(-1).argmin()]  # the least likely code, everywhere
    for order in ((unlikely[None].view(1, 24, 24), sampled), (sampled, unlikely[None].view(1, 24, 24))):
        grids = dataclasses.replace(generated, tokens=torch.cat(order))
        best, report = call(pack["JanusScore"], janus_model=handle, tokens=grids, prompt="a red circle",
                            keep=1)["result"]
        assert torch.equal(best.tokens, sampled) and report.count("<- kept") == 1


def test_tokens_from_another_codebook_are_refused(pack, handle, generated):
    other = result(call(pack["JanusModelLoader"], model="Janus-Tiny-B"))[0]
    assert other.codebook_id != handle.codebook_id
    with pytest.raises(JanusError, match="tokens: these tokens come from a different VQ codebook"):
        call(pack["JanusVQDecode"], janus_model=other, tokens=generated)


@pytest.mark.parametrize("mask, match", [
    (torch.ones(3, 384, 384), r"mask has 3 masks for 2 token grids"),
])
def test_bad_masks(pack, handle, generated, mask, match):
    with pytest.raises(JanusError, match=match):
        call(pack["JanusRegenerateMasked"], janus_model=handle, tokens=generated, mask=mask, prompt="x")


def test_empty_prompt_and_zero_batch(pack, handle):
    with pytest.raises(JanusError, match="prompt is empty"):
        call(pack["JanusGenerate"], janus_model=handle, prompt="   ")
    with pytest.raises(JanusError, match="batch size must be a whole number, at least 1"):
        call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", batch_size=0)
    with pytest.raises(JanusError, match="question.*empty"):
        call(pack["JanusUnderstand"], janus_model=handle, question="")
