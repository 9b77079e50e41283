"""Bad input: every failure is a JanusError whose message names the file/key/argument and the fix."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from janus_runtime import JanusError, ModelFilesError, UnsupportedModelError, load_model
from janus_runtime.processing import open_image


@pytest.fixture
def folder(tiny_dir, tmp_path):
    """A fresh, writable copy of the tiny checkpoint."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_dir, dst)
    return dst


def test_missing_config(folder):
    (folder / "config.json").unlink()
    with pytest.raises(ModelFilesError, match=r"no config\.json.*download the whole repository"):
        load_model(folder)


def test_folder_without_weights(folder):
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFilesError, match=r"no weights found.*model\.safetensors.*pytorch_model\.bin"):
        load_model(folder)


def test_truncated_safetensors(folder):
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFilesError, match=r"model\.safetensors.*truncated or corrupt.*download it again"):
        load_model(folder)


def test_shard_listed_in_index_but_absent(folder):
    from janus_runtime.tiny import save_weights
    sd = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    save_weights(sd, folder, "sharded")
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ModelFilesError, match=r"model-00002-of-00003\.safetensors.*Download the missing"):
        load_model(folder)


def test_unknown_model_type(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "qwen2_vl"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match=r"'qwen2_vl' is not a Janus model.*Janus-Pro-1B"):
        load_model(folder)


def test_janusflow_config(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["vision_gen_enc_config"] = {"cls": "ShallowUViTEncoder"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match="JanusFlow"):
        load_model(folder)


def test_wrong_shape_names_key_and_both_shapes(folder):
    sd = load_file(str(folder / "model.safetensors"))
    key = "gen_aligner.layers.2.weight"
    sd[key] = torch.zeros(64, 32, dtype=torch.bfloat16)
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(ModelFilesError, match=r"gen_aligner\.layers\.2\.weight has shape \[64, 32\] "
                                              r"but config\.json implies \[64, 64\]"):
        load_model(folder)


def test_wrong_shape_in_fused_llama_weight_names_the_file_key(folder):
    sd = load_file(str(folder / "model.safetensors"))
    key = "language_model.model.layers.1.self_attn.k_proj.weight"
    sd[key] = torch.zeros(32, 64, dtype=torch.bfloat16)
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(ModelFilesError, match=r"layers\.1\.self_attn\.k_proj\.weight has shape \[32, 64\] "
                                              r"but config\.json implies \[64, 64\]"):
        load_model(folder)


def test_missing_and_unexpected_tensors_are_listed(folder):
    sd = load_file(str(folder / "model.safetensors"))
    del sd["gen_head.vision_head.bias"]
    sd["gen_head.extra.weight"] = torch.zeros(2)
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(ModelFilesError, match=r"Missing tensors \(1\): gen_head\.vision_head\.bias.*"
                                              r"Unexpected tensors \(1\): gen_head\.extra\.weight"):
        load_model(folder)


def test_known_unused_tensors_are_dropped_silently(tiny_dir):
    sd = load_file(str(tiny_dir / "model.safetensors"))
    assert "gen_vision_model.quantize.codebook_used" in sd and any("attn_pool" in k for k in sd)
    load_model(tiny_dir, components=("vision", "vq"))  # no error


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_bin_with_pickled_code_is_refused(folder, capsys):
    (folder / "model.safetensors").unlink()
    torch.save({"x": _Evil()}, folder / "pytorch_model.bin")
    with pytest.raises(ModelFilesError, match=r"weights_only=True"):
        load_model(folder)
    assert "pickled code ran" not in capsys.readouterr().out


def test_missing_tokenizer(folder):
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelFilesError, match=r"no tokenizer\.json"):
        load_model(folder)


def test_corrupt_image(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    with pytest.raises(JanusError, match=r"broken\.png cannot be read as an image"):
        open_image(bad)
    with pytest.raises(JanusError, match=r"file not found"):
        open_image(tmp_path / "absent.png")


def test_unknown_folder_or_repo(tmp_path):
    with pytest.raises(JanusError, match="no such folder"):
        load_model(tmp_path / "nope")


def test_offline_download_says_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from janus_runtime.hub import download
    with pytest.raises(JanusError, match=r"Could not download deepseek-ai/Janus-Pro-7B.*"
                                         r"pytorch_model-00001-of-00002\.bin.*put them in"):
        download("deepseek-ai/Janus-Pro-7B", tmp_path / "Janus-Pro-7B")
