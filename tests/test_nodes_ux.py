"""What a user meets in the first hour with the nodes: previews, caching, masks, the model list, prompts shared
by Generate and Score, latent coordinates, empty inputs and Cancel. Same fixtures as test_nodes.py
(tests/conftest.py)."""

import shutil

import comfy.model_management as mm
import comfy.utils
import comfy_host
import folder_paths
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from comfy_host import call, pack_module, result

host = comfy_host.setup()  # made by tests/conftest.py before this module imported ComfyUI's modules
JanusError = pack_module("janus_runtime").JanusError
codebook = pack_module("janus_runtime.codebook")  # the nodes' copy: its colour tables are theirs
colour_table = codebook.colour_table
make_tiny = pack_module("janus_runtime.tiny").make_tiny


@pytest.fixture
def previews(monkeypatch):
    """Every (step, preview tuple) handed to ComfyUI's progress bar."""
    seen = []
    original = comfy.utils.ProgressBar.update_absolute

    def spy(self, value, total=None, preview=None):
        if preview is not None:
            seen.append((value, preview))
        original(self, value, total, preview)
    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", spy)
    return seen


def test_default_preview_is_the_colour_table_of_the_tokens_so_far(pack, handle, previews):
    colour_table(handle.model)  # built once per model (timed in benchmarks/bench_preview.py)
    host.clear()
    tokens = result(call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=2))[0].tokens[0]
    assert [v for v, _ in previews] == list(range(24, 577, 24))  # every row by default
    table = colour_table(handle.model).numpy()
    for value, (fmt, image, max_size) in previews:
        assert fmt == "JPEG" and image.size == (384, 384) and max_size == 384  # shown at 384, not upscaled
        rows = value // 24
        pixels = np.asarray(image)
        expected = table[tokens[:rows].reshape(-1).numpy()].reshape(rows, 24, 3)
        assert np.array_equal(pixels[:rows * 16:16, ::16], expected)  # one colour per 16x16 token cell
        assert (pixels[rows * 16:] == 40).all()  # not generated yet: dark grey
    # sampling with colour-table previews needs only the language model on the device
    assert host.load_calls and all(handle.patchers["vq"] not in patchers for patchers, _ in host.load_calls)


def test_colour_table_is_learnt_once_per_model_from_its_own_decoder(pack, handle):
    table = colour_table(handle.model)
    assert table.shape == (16384, 3) and table.dtype == torch.uint8
    assert colour_table(handle.model) is table  # cached with the model: a preview is only a lookup
    del codebook._TABLES[handle.model.vq]
    assert torch.equal(colour_table(handle.model), table)  # deterministic: the same model, the same colours
    other = result(call(pack["JanusModelLoader"], model="Janus-Tiny-B"))[0]
    assert not torch.equal(colour_table(other.model), table)  # another decoder, other colours


def test_full_decoder_preview_stays_available(pack, handle, previews):
    call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=2, preview_every=288,
         preview_method="VQ decoder (slow)")
    assert [v for v, _ in previews] == [288, 576]
    assert all(p[1].size == (384, 384) and p[2] == 384 for _, p in previews)


def test_understand_at_temperature_0_keeps_its_seed_and_cache_key(pack, handle):
    seed_opts = pack["JanusUnderstand"].INPUT_TYPES()["required"]["seed"][1]
    # ComfyUI keys its output cache on the input values: a seed randomized on every run re-runs the node
    assert seed_opts["control_after_generate"] == "fixed"
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    answers = [result(call(pack["JanusUnderstand"], janus_model=handle, image=image, question="What is it?",
                            max_new_tokens=5, seed=s))[0] for s in (0, 12345)]
    assert answers[0] == answers[1]  # temperature 0: the seed cannot change the answer


@pytest.mark.parametrize("mask, match", [
    (torch.zeros(1, 384, 384), r"mask selects no token to regenerate: it is empty \(all zero\).*MaskEditor"),
    (F.pad(torch.ones(1, 4, 4), (0, 380, 0, 380)), r"mask selects no token.*below mask_threshold 0\.50"),
    (torch.zeros(0, 384, 384), r"mask is empty \(0 masks"),
])
def test_a_mask_that_selects_nothing_is_an_error(pack, handle, generated, mask, match):
    with pytest.raises(JanusError, match=match):
        call(pack["JanusRegenerateMasked"], janus_model=handle, tokens=generated, mask=mask, prompt="x")


@pytest.mark.parametrize("fit", ["pad", "crop"])
def test_non_square_masks_follow_the_encoders_fit(pack, handle, fit):
    image = torch.rand(1, 300, 600, 3, generator=torch.Generator().manual_seed(1))  # H 300, W 600
    encoded = result(call(pack["JanusVQEncode"], janus_model=handle, image=image, fit=fit))[0]
    mask = torch.zeros(1, 300, 600)
    mask[:, :, 400:] = 1.0  # the right third of the picture
    out = result(call(pack["JanusRegenerateMasked"], janus_model=handle, tokens=encoded, mask=mask,
                      prompt="a blue square", seed=4, preview_every=0))[0]
    changed = (out.tokens != encoded.tokens)[0]
    if fit == "pad":  # 600x300 -> 384x192, centred: rows 6..17; right third -> columns from 256 px = token 16
        region = torch.zeros(24, 24, dtype=torch.bool)
        region[6:18, 16:] = True
    else:  # centre 300x300 crop (columns 150..450) -> right 50 px of it = 64 px of 384: columns 20..23
        region = torch.zeros(24, 24, dtype=torch.bool)
        region[:, 20:] = True
    assert not changed[~region].any() and changed[region].any()
    assert out.fit == fit


def test_score_ranks_against_the_generation_prompt_when_its_own_is_empty(pack, handle, generated):
    own = result(call(pack["JanusScore"], janus_model=handle, tokens=generated, prompt="", keep=2))[1]
    typed = result(call(pack["JanusScore"], janus_model=handle, tokens=generated, prompt="a red circle",
                        keep=2))[1]
    other = result(call(pack["JanusScore"], janus_model=handle, tokens=generated, prompt="a green field",
                        keep=2))[1]
    assert own == typed and own != other
    encoded = result(call(pack["JanusVQEncode"], janus_model=handle, image=torch.rand(1, 64, 64, 3)))[0]
    with pytest.raises(JanusError, match="prompt is empty and these tokens carry no prompt"):
        call(pack["JanusScore"], janus_model=handle, tokens=encoded, prompt="")


def test_latent_cells_are_8_pixels_like_core_latents(pack, handle, generated):
    latent = result(call(pack["JanusTokensToLatent"], janus_model=handle, tokens=generated))[0]["samples"]
    assert latent.shape[-2:] == (384 // 8, 384 // 8)
    # core LatentComposite pastes at pixel (x, y) as latent cell (x // 8, y // 8): paste image 1 at y = 192 px
    y = 192 // 8
    composite = latent[:1].clone()
    composite[:, :, y:] = latent[1:, :, : latent.shape[-2] - y]
    tokens = result(call(pack["JanusLatentToTokens"], janus_model=handle, latent={"samples": composite}))[0]
    assert torch.equal(tokens.tokens[0, :12], generated.tokens[0, :12])  # above pixel row 192: unchanged
    assert torch.equal(tokens.tokens[0, 12:], generated.tokens[1, :12])  # from pixel row 192: pasted
    legacy = F.avg_pool2d(latent, 2)  # [B, 8, 24, 24], saved by earlier versions
    back = result(call(pack["JanusLatentToTokens"], janus_model=handle, latent={"samples": legacy}))[0]
    assert torch.equal(back.tokens, generated.tokens)


@pytest.mark.parametrize("image, match", [
    (torch.zeros(1, 0, 0, 3), r"image: the image is 0x0 pixels"),
    (torch.zeros(0, 64, 64, 3), r"image: the image batch is empty"),
])
def test_empty_images_are_named_errors(pack, handle, image, match):
    with pytest.raises(JanusError, match=match):
        call(pack["JanusVQEncode"], janus_model=handle, image=image)
    with pytest.raises(JanusError, match=match):
        call(pack["JanusUnderstand"], janus_model=handle, image=image, question="What is it?", max_new_tokens=2)


def _choices(pack, name):
    return pack["JanusModelLoader"].INPUT_TYPES()["required"][name][0]


def test_loader_defaults_to_an_installed_model_and_marks_downloads(pack):
    spec = pack["JanusModelLoader"].INPUT_TYPES()["required"]["model"]
    assert spec[1]["default"] == "Janus-Tiny"
    downloads = [c for c in spec[0] if c.endswith(" (download)")]
    assert "deepseek-ai/Janus-Pro-1B (download)" in downloads
    assert not any(c.startswith("Janus-Tiny") and c.endswith(" (download)") for c in spec[0])
    validate = pack["JanusModelLoader"].VALIDATE_INPUTS
    for name in ("Janus-Tiny", "deepseek-ai/Janus-Pro-1B", "deepseek-ai/Janus-Pro-1B (download)"):
        assert validate(model=name, weight_storage="same as compute") is True, name  # saved workflows stay valid
    assert "only folders inside" in validate(model="/etc", weight_storage="same as compute")


def test_fp8_storage_is_neither_offered_nor_accepted_off_cuda(pack):
    if mm.get_torch_device().type == "cuda":
        pytest.skip("fp8 storage is offered on CUDA")
    assert _choices(pack, "weight_storage") == ["same as compute"]
    error = pack["JanusModelLoader"].VALIDATE_INPUTS(model="Janus-Tiny", weight_storage="fp8_e4m3fn")
    assert "weight_storage: fp8_e4m3fn needs a CUDA GPU" in error and "same as compute" in error


def test_offline_download_error_says_what_to_do_without_hub_internals(pack, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(JanusError) as err:
        call(pack["JanusModelLoader"], model="deepseek-ai/Janus-1.3B (download)")
    message = str(err.value)
    assert "not downloaded yet" in message and "huggingface.co/deepseek-ai/Janus-1.3B" in message
    assert "Janus-1.3B" in message and "HF_HUB_OFFLINE" not in message


def test_symlinked_model_folders_are_listed_and_load(pack, tmp_path):
    root = folder_paths.get_folder_paths("janus")[0]
    outside = make_tiny(tmp_path / "elsewhere" / "Janus-Linked-Src")
    link = __import__("pathlib").Path(root) / "Janus-Linked"
    link.symlink_to(outside, target_is_directory=True)
    try:
        assert "Janus-Linked" in _choices(pack, "model")
        loaded = result(call(pack["JanusModelLoader"], model="Janus-Linked"))[0]
        assert loaded.model.config.token_grid == 24
    finally:
        link.unlink()
        shutil.rmtree(outside)


class Cancel(BaseException):
    """What ComfyUI >= 0.20 raises on Cancel: not an Exception, so `except Exception` cannot swallow it."""


def test_a_base_exception_cancel_during_previews_propagates_and_leaves_the_node_clean(pack, handle, monkeypatch):
    colour_table(handle.model)
    before = result(call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=9))[0]
    original = comfy.utils.ProgressBar.update_absolute

    def cancel_at_a_preview(self, value, total=None, preview=None):
        if value == 48:
            raise Cancel()
        original(self, value, total, preview)
    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", cancel_at_a_preview)
    with pytest.raises(Cancel):
        call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=9)
    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", original)
    assert handle.model.lm.language_model.key_valid is None  # KV cache released
    after = result(call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=9))[0]
    assert torch.equal(after.tokens, before.tokens)


def test_edit_node_runs_the_janus4o_recipe(pack, handle):
    image = torch.rand(1, 200, 300, 3)
    out = result(call(pack["JanusEdit"], janus_model=handle, image=image, instruction="make it blue", seed=4,
                      preview_every=0))[0]
    assert out.tokens.shape == (1, 24, 24) and out.codebook_id == handle.codebook_id
    decoded = result(call(pack["JanusVQDecode"], janus_model=handle, tokens=out))[0]
    assert decoded.shape == (1, 384, 384, 3)
    with pytest.raises(JanusError, match="instruction is empty"):
        call(pack["JanusEdit"], janus_model=handle, image=image, instruction=" ", preview_every=0)


def test_speculative_sampling_option(pack, handle):
    fast = result(call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=2, preview_every=0,
                       sampling="speculative (lossless)"))[0]
    again = result(call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=2, preview_every=0,
                        sampling="speculative (lossless)"))[0]
    exact = result(call(pack["JanusGenerate"], janus_model=handle, prompt="a cat", seed=2, preview_every=0,
                        sampling="exact sequential"))[0]
    assert fast.tokens.shape == (1, 24, 24) and torch.equal(fast.tokens, again.tokens)
    assert not torch.equal(fast.tokens, exact.tokens)  # another sample of the same distribution
