"""The command line, run as users run it: make-tiny, then every subcommand on that checkpoint."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import REFERENCE, ROOT
from janus_runtime.cli import MANIFEST, _chunk_seed, main
from janus_runtime.sampling import make_generators

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


def test_generate_in_chunks_replaces_an_old_run_then_score(cli_model, tmp_path, capsys):
    out = tmp_path / "gen"
    out.mkdir()
    for name in ["image_000.png", "image_001.png", "image_002.png", "tokens.safetensors"]:
        (out / name).write_bytes(b"an earlier run")
    (out / "notes.txt").write_text("mine")
    args = ["generate", "--model", str(cli_model), "--prompt", "a red circle", "--n", "2", "--batch", "1",
            "--seed", "5", "--top-k", "100", "--top-p", "0.9", "--out", str(out), "--json"]
    assert main(args) == 2  # an old run is never overwritten silently
    assert "already holds the outputs of an earlier run" in capsys.readouterr().err
    assert (out / "image_002.png").read_bytes() == b"an earlier run"
    assert main(args + ["--overwrite"]) == 0
    result = json.loads(capsys.readouterr().out)
    # one consistent set: the two new images, their tokens, the manifest; nothing of the old run left
    assert sorted(p.name for p in out.iterdir()) == ["image_000.png", "image_001.png", MANIFEST, "notes.txt",
                                                     "tokens.safetensors"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and manifest["images"] == ["image_000.png", "image_001.png"]
    assert manifest["seed"] == 5 and manifest["prompt"] == "a red circle"
    assert len(result["images"]) == 2 and all(Image.open(p).size == (384, 384) for p in result["images"])
    tokens = load_file(result["tokens"])["tokens"]
    assert tokens.shape == (2, 24, 24)
    assert main(["score", "--model", str(cli_model), "--prompt", "a red circle", "--tokens", result["tokens"],
                 "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert len(scored["logprobs"]) == 2 and len(scored["logprobs"][0]) == 576
    assert scored["mean_logprob"][0] == pytest.approx(sum(scored["logprobs"][0]) / 576, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 5, 2**63 + 11])
def test_chunks_draw_the_images_of_one_unchunked_run(seed):
    """Chunk k of a --batch run seeds its images as images offset..offset+b of the whole run would be."""
    whole = [g.initial_seed() for g in make_generators(seed, 10, "cpu")]
    for offset in (0, 1, 4, 7):
        chunk = [g.initial_seed() for g in make_generators(_chunk_seed(seed, offset), 3, "cpu")]
        assert chunk == whole[offset:offset + 3]


def test_bad_token_file_is_a_clear_error(cli_model, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    save_file({"tokens": torch.zeros(1, 10, 10, dtype=torch.int64)}, str(bad))
    assert main(["decode", "--model", str(cli_model), "--tokens", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "tokens must have shape [B, 24, 24]" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path):
    proc = run_cli("decode", "--model", str(tmp_path / "nowhere"), "--tokens", "t", "--out", str(tmp_path))
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_make_tiny_refuses_a_model_folder(tmp_path, capsys):
    folder = tmp_path / "Janus-Pro-1B"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"real weights")
    (folder / "config.json").write_text('{"model_type": "multi_modality"}')
    assert main(["make-tiny", str(folder)]) == 2
    assert "the folder is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "pytorch_model.bin"]
    assert (folder / "config.json").read_text() == '{"model_type": "multi_modality"}'


def _bad_out_message(args, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_bad_out_is_refused_before_the_model_loads(tmp_path, capsys):
    """A missing --model would fail at loading: the --out message shows the check came first."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    gen = ["generate", "--model", str(tmp_path / "no-model"), "--prompt", "p", "--out"]
    assert "is a file; --out names a folder" in _bad_out_message(gen + [str(a_file)], capsys)
    assert f"its parent folder {tmp_path / 'missing'} does not exist" in _bad_out_message(
        gen + [str(tmp_path / "missing" / "out")], capsys)
    assert "--out is empty" in _bad_out_message(gen + [""], capsys)
    assert "no such folder" in _bad_out_message(gen + [str(tmp_path / "fine")], capsys)
    assert not (tmp_path / "fine").exists()  # the folder it created for the failed run is gone again
    enc = ["encode", "--model", str(tmp_path / "no-model"), "--image", "x.png", "--out"]
    assert "already exists; pass --overwrite" in _bad_out_message(enc + [str(a_file)], capsys)
    assert "is a folder; give a file name" in _bad_out_message(enc + [str(tmp_path)], capsys)
    assert f"the folder {tmp_path / 'missing'} does not exist" in _bad_out_message(
        enc + [str(tmp_path / "missing" / "t.safetensors")], capsys)
    assert a_file.read_text() == "x"


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a read-only /sys (Linux)")
def test_unwritable_out_is_refused_before_the_model_loads(tmp_path, capsys):
    gen = ["generate", "--model", str(tmp_path / "no-model"), "--prompt", "p", "--out"]
    assert "cannot write in /sys" in _bad_out_message(gen + ["/sys"], capsys)
    assert "cannot create the folder" in _bad_out_message(gen + ["/sys/janus-out"], capsys)
    enc = ["encode", "--model", str(tmp_path / "no-model"), "--image", "x.png", "--out"]
    assert "cannot write in /sys" in _bad_out_message(enc + ["/sys/t.safetensors"], capsys)


def test_encode_never_overwrites_without_asking(cli_model, tmp_path, capsys):
    out = tmp_path / "t.safetensors"
    out.write_bytes(b"keep me")
    args = ["encode", "--model", str(cli_model), "--image", IMAGE, "--out", str(out)]
    assert main(args) == 2 and out.read_bytes() == b"keep me"
    assert main(args + ["--overwrite"]) == 0
    assert load_file(str(out))["tokens"].shape == (1, 24, 24)
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]  # no temporary file left


def test_unavailable_device_is_a_clear_error(tmp_path, capsys):
    cases = {"tpu": r"--device tpu: not a device PyTorch knows.*use --device cpu"}
    if torch.cuda.is_available():
        cases["cuda:99"] = r"--device cuda:99: there are only \d+ cuda device\(s\).*use --device cpu"
    else:
        cases["cuda"] = r"--device cuda: (this PyTorch .* build has no CUDA support|no cuda device).*use --device cpu"
    for device, message in cases.items():
        assert main(["decode", "--model", str(tmp_path), "--tokens", "t", "--out", str(tmp_path / "o"),
                     "--device", device]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err, err
        assert not (tmp_path / "o").exists()


def test_ctrl_c_keeps_the_completed_chunks_consistent(cli_model, tmp_path):
    """SIGINT during a chunked decode: exit 130, one line, and exactly the images the manifest lists."""
    tokens = tmp_path / "t.safetensors"
    save_file({"tokens": torch.randint(0, 16384, (12, 24, 24), generator=torch.Generator().manual_seed(0))},
              str(tokens))
    out = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "janus_runtime", "decode", "--model", str(cli_model),
                             "--tokens", str(tokens), "--out", str(out), "--batch", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / MANIFEST).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().count("\n") == 0 and stderr.startswith("interrupted (Ctrl-C); ")
    manifest = json.loads((out / MANIFEST).read_text())
    on_disk = sorted(p.name for p in out.iterdir())
    assert on_disk == sorted(manifest["images"] + [MANIFEST])  # no partial file, no unlisted image
    assert 1 <= len(manifest["images"]) < 12 and not manifest["complete"]
    assert f"{len(manifest['images'])} complete image(s) kept" in stderr
    assert all(Image.open(out / name).size == (384, 384) for name in manifest["images"])


def test_animated_gif_frame_is_stated_in_the_cli_output(cli_model, tmp_path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    proc = run_cli("encode", "--model", str(cli_model), "--image", str(tmp_path / "anim.gif"),
                   "--out", str(tmp_path / "t.safetensors"))
    assert proc.returncode == 0, proc.stderr
    assert "anim.gif has 2 frames; using frame 0 only" in proc.stderr
    assert load_file(str(tmp_path / "t.safetensors"))["tokens"].shape == (1, 24, 24)


def test_edit_and_speculative_generate(cli_model, tmp_path, capsys):
    out = tmp_path / "edit"
    assert main(["edit", "--model", str(cli_model), "--image", IMAGE, "--prompt", "make it blue", "--n", "2",
                 "--seed", "3", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["images"]) == 2 and all(Image.open(p).size == (384, 384) for p in result["images"])
    assert json.loads((out / "janus_run.json").read_text())["command"] == "edit"
    fast = tmp_path / "sjd"
    assert main(["generate", "--model", str(cli_model), "--prompt", "a red circle", "--seed", "5",
                 "--parallel", "mc-sjd", "--window", "8", "--out", str(fast), "--json"]) == 0
    assert load_file(json.loads(capsys.readouterr().out)["tokens"])["tokens"].shape == (1, 24, 24)
