"""The Ray Data entry points on a local Ray cluster (2 CPU actors, tiny model): the same captions and images
as the single-process runners, and an actor killed mid-job loses and duplicates nothing. Skipped when Ray
is not installed (pip install ".[ray]").

Ray starts each 1-CPU actor with one thread (OMP_NUM_THREADS=1); the single-process runs here use one
thread too, so both compute in the same order and their outputs can be compared byte for byte."""

import json
import os
import signal
import socket

import pytest
import torch

ray = pytest.importorskip("ray")

from janus_runtime.captioner import CaptionOptions  # noqa: E402
from janus_runtime.cli import main  # noqa: E402
from janus_runtime.distributed import caption_with_ray, generate_with_ray  # noqa: E402
from janus_runtime.prompt_list import PromptOptions, plan_prompts, render_prompts  # noqa: E402
from test_caption import caption_files, leftovers, make_images  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_captions_equal_the_cli_and_survive_a_killed_actor(local_ray, tiny_dir, tmp_path, capsys):
    torch.set_num_threads(1)
    images = tmp_path / "images"
    make_images(images, 8)
    (images / "broken.png").write_bytes(b"not a png")
    assert main(["caption", str(images), "--model", str(tiny_dir), "--batch", "2", "--max-new-tokens", "6",
                 "--out", str(tmp_path / "cli"), "--seed", "4"]) == 1  # the broken file
    killed = []

    def kill_first_worker(result, worker):
        host, pid = worker.rsplit(":", 1)
        if not killed and host == socket.gethostname():
            os.kill(int(pid), signal.SIGKILL)  # the actor dies with its next batches in flight
            killed.append(int(pid))
    summary = caption_with_ray(tiny_dir, images, out_dir=tmp_path / "ray", jsonl=tmp_path / "ray.jsonl",
                               options=CaptionOptions(batch_size=2, max_new_tokens=6, seed=4), actors=2,
                               on_result=kill_first_worker)
    assert killed
    assert summary.written == 8 and [k for k, _ in summary.failed] == ["broken.png"]
    assert caption_files(tmp_path / "ray") == caption_files(tmp_path / "cli")
    assert len(caption_files(tmp_path / "ray")) == 8 and not leftovers(tmp_path / "ray")
    rows = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert [r["image"] for r in rows] == sorted(p.name for p in images.iterdir())  # each once, in order
    cli = caption_files(tmp_path / "cli")
    for r in rows:
        if r["status"] == "written":
            assert cli[r["image"].replace(".png", ".txt")] == r["caption"]
        else:
            assert r["image"] == "broken.png" and "cannot be read as an image" in r["error"]


def test_ray_prompt_list_equals_the_local_run(local_ray, tiny_dir, tmp_path):
    from janus_runtime import load_model
    torch.set_num_threads(1)
    prompts = ["a red circle", "a blue square", "a red circle", "a green line"]
    options = PromptOptions(seed=7, cfg=3.0)
    model = load_model(tiny_dir, device="cpu", dtype="fp32", components=("lm", "vq"))
    local = list(render_prompts(model, plan_prompts(prompts, tmp_path / "local", batch_size=2), options))
    assert [r.index for r in local] == [0, 1, 2, 3]
    out = generate_with_ray(tiny_dir, prompts, tmp_path / "ray", batch_size=2, options=options, actors=2,
                            dtype="fp32")  # as the local model (auto may be bf16 on this CPU)
    assert out["written"] == 4
    for i in range(4):
        for ext in ("safetensors", "png"):
            a = (tmp_path / "local" / f"{i:05d}.{ext}").read_bytes()
            assert a == (tmp_path / "ray" / f"{i:05d}.{ext}").read_bytes(), (i, ext)
    # the same prompt at another place in the list gets its own seed
    assert (tmp_path / "ray" / "00000.png").read_bytes() != (tmp_path / "ray" / "00002.png").read_bytes()
    assert generate_with_ray(tiny_dir, prompts, tmp_path / "ray", batch_size=2, options=options)["written"] == 0
