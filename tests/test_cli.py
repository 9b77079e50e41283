"""The command line, run as users run it: make-tiny, then every subcommand on that checkpoint."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import REFERENCE, ROOT
from janus_runtime.cli import main

IMAGE = str(REFERENCE / "expected" / "test_image.png")


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "janus_runtime", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    return proc


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "tiny"
    proc = run_cli("make-tiny", str(folder), "--layout", "hf", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "janus"
    return folder


def test_understand_json(cli_model):
    proc = run_cli("understand", "--model", str(cli_model), "--image", IMAGE, "--question", "What is this?",
                   "--max-new-tokens", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert isinstance(out["text"], str) and 1 <= len(out["token_ids"]) <= 5
    assert {"load_s", "prefill_s", "decode_s"} <= set(out["timings"])


def test_encode_decode_round_trip(cli_model, tmp_path, capsys):
    tokens = tmp_path / "t.safetensors"
    assert main(["encode", "--model", str(cli_model), "--image", IMAGE, IMAGE, "--out", str(tokens)]) == 0
    grid = load_file(str(tokens))["tokens"]
    assert grid.shape == (2, 24, 24) and grid.dtype == torch.int64 and torch.equal(grid[0], grid[1])
    assert main(["decode", "--model", str(cli_model), "--tokens", str(tokens), "--out", str(tmp_path / "d")]) == 0
    pngs = sorted((tmp_path / "d").glob("*.png"))
    assert [p.name for p in pngs] == ["image_000.png", "image_001.png"]
    assert Image.open(pngs[0]).size == (384, 384)


def test_generate_then_score(cli_model, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "--model", str(cli_model), "--prompt", "a red circle", "--n", "2", "--seed", "5",
                 "--top-k", "100", "--top-p", "0.9", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["images"]) == 2 and all(Image.open(p).size == (384, 384) for p in result["images"])
    tokens = load_file(result["tokens"])["tokens"]
    assert tokens.shape == (2, 24, 24)
    assert main(["score", "--model", str(cli_model), "--prompt", "a red circle", "--tokens", result["tokens"],
                 "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert len(scored["logprobs"]) == 2 and len(scored["logprobs"][0]) == 576
    assert scored["mean_logprob"][0] == pytest.approx(sum(scored["logprobs"][0]) / 576, rel=1e-5)


def test_bad_token_file_is_a_clear_error(cli_model, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    save_file({"tokens": torch.zeros(1, 10, 10, dtype=torch.int64)}, str(bad))
    assert main(["decode", "--model", str(cli_model), "--tokens", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "tokens must have shape [B, 24, 24]" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path):
    proc = run_cli("decode", "--model", str(tmp_path / "nowhere"), "--tokens", "t", "--out", str(tmp_path))
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr
