"""The ComfyUI nodes, run through their declared inputs on tiny checkpoints.

The host is set up by tests/comfy_host.py (called from tests/conftest.py before the tests are collected):
real ComfyUI modules when tests/test_in_comfyui.py runs this file inside a ComfyUI tree (0.33.0 with dynamic
VRAM or the classic patcher, 0.3.64), else the stand-ins in comfy_standins/. ``host`` records what the nodes
sent to ComfyUI (loads, progress, previews, text) through spies that call the real functions. The fixtures
``pack``, ``handle`` and ``generated`` are in tests/conftest.py, ``call`` and ``result`` in comfy_host. The
pack is imported as ComfyUI imports it, so errors and runtime functions come from its own ``janus_runtime``
(``pack_module``): the copy the nodes use.
"""

import dataclasses
import shutil
import subprocess
import sys

import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy_host
import folder_paths
import pytest
import torch
from comfy_host import WIDGETS, call, pack_module, result

host = comfy_host.setup()  # made by tests/conftest.py before this module imported ComfyUI's modules
runtime = pack_module("janus_runtime")
JanusError = runtime.JanusError
make_tiny = pack_module("janus_runtime.tiny").make_tiny


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


def test_a_clone_under_any_folder_name_uses_its_own_runtime(pack, tmp_path):
    """ComfyUI imports custom_nodes/<folder> by path, whatever the folder is called (hyphens, dots); the nodes
    then use the runtime inside that folder, never a janus_runtime that is installed or on sys.path (a second
    copy would make JanusError and isinstance checks disagree)."""
    clone = tmp_path / "custom_nodes" / "janus-pro-nodes.v2"
    skip = shutil.ignore_patterns("__pycache__")
    for part in ("nodes", "janus_runtime"):
        shutil.copytree(comfy_host.ROOT / part, clone / part, ignore=skip)
    shutil.copy(comfy_host.ROOT / "__init__.py", clone)
    probe = f"""
import sys
from pathlib import Path
sys.path[:0] = {[str(comfy_host.ROOT / "tests"), str(comfy_host.ROOT / "tools")]!r}
import comfy_host
comfy_host.setup()
clone = Path({str(clone)!r})
pack = comfy_host.load_pack(clone)
assert pack.__name__ == str(clone).replace(".", "_x_"), pack.__name__
print("registered:", sorted(pack.NODE_CLASS_MAPPINGS))
ours = {{name for name, m in list(sys.modules.items()) if str(getattr(m, "__file__", None)).startswith(str(clone))}}
assert all(name.startswith(pack.__name__ + ".") for name in ours - {{pack.__name__}}), sorted(ours)
assert not [name for name in sys.modules if name.split(".")[0] == "janus_runtime"]
errors = {{comfy_host.pack_module(m, clone).JanusError for m in ("nodes.loader", "nodes.vq", "janus_runtime")}}
assert len(errors) == 1, errors
"""
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"registered: {sorted(pack)}" in proc.stdout.splitlines(), proc.stdout[-3000:]


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
    sampled = generated.tokens[:1]
    per_code = runtime.score_image_tokens(handle.model, "a red circle", sampled).view(24, 24)
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
