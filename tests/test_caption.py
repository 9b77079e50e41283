"""Captioning image sets: planning, sharding, streaming in batches, atomic sidecar files, resume, the CLI."""

import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from janus_runtime import JanusError
from janus_runtime.captioner import (TMP_SUFFIX, CaptionOptions, caption_tasks, parse_shard, plan_captions,
                                     shard_of, write_atomic)
from janus_runtime.cli import main

OPTIONS = dict(max_new_tokens=6, batch_size=3)


def make_images(folder: Path, n: int, start: int = 0, size: int = 24) -> list[Path]:
    """n small images that differ in content and size (so their captions differ)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        arr = rng.integers(0, 256, (size + i % 5, size + 3 * (i % 3), 3), dtype=np.uint8)
        p = folder / f"img_{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def caption_files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes().decode("utf-8") for p in sorted(folder.rglob("*.txt"))}


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(TMP_SUFFIX) or p.name.startswith(".janus")]


def test_listing_filters_sorts_and_recurses(tmp_path):
    make_images(tmp_path, 2)
    Image.new("RGB", (20, 20)).save(tmp_path / "b.JPG")
    Image.new("RGB", (20, 20)).save(tmp_path / ".hidden.png")
    (tmp_path / "notes.txt").write_text("not an image")
    make_images(tmp_path / "sub", 1, start=5)
    make_images(tmp_path / ".cache", 1, start=6)
    flat = plan_captions(tmp_path)
    assert [t.key for t in flat.tasks] == ["b.JPG", "img_000.png", "img_001.png"]
    assert [t.index for t in flat.tasks] == [0, 1, 2]
    deep = plan_captions(tmp_path, recursive=True, extensions="png, .webp")
    assert [t.key for t in deep.tasks] == ["img_000.png", "img_001.png", "sub/img_005.png"]
    assert deep.tasks[2].target == tmp_path / "sub" / "img_005.txt"
    out = plan_captions(tmp_path, recursive=True, out_dir=tmp_path / "captions")
    assert out.tasks[-1].target == tmp_path / "captions" / "sub" / "img_005.txt"
    with pytest.raises(JanusError, match="caption"):
        plan_captions(tmp_path, extensions="png, txt")
    with pytest.raises(JanusError, match="not found or not a folder"):
        plan_captions(tmp_path / "nowhere")


def test_two_images_with_one_caption_name_fail_clearly(tmp_path):
    make_images(tmp_path, 1)
    Image.new("RGB", (20, 20)).save(tmp_path / "img_000.jpg")
    plan = plan_captions(tmp_path)
    assert [t.key for t in plan.tasks] == ["img_000.jpg"]
    (failed,) = plan.failed
    assert failed.key == "img_000.png" and "also the caption of img_000.jpg" in failed.error


def test_shards_are_disjoint_complete_and_stable():
    keys = [f"dir{i % 3}/photo_{i:04d}.jpg" for i in range(300)]
    parts = [{k for k in keys if shard_of(k, 4) == i} for i in range(1, 5)]
    assert set().union(*parts) == set(keys) and sum(map(len, parts)) == len(keys)
    assert all(50 <= len(p) <= 100 for p in parts)  # a hash split, roughly even
    assert [shard_of(k, 4) for k in reversed(keys)] == [shard_of(k, 4) for k in keys][::-1]
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None
    for bad in ("0/4", "5/4", "1-4", "a/b"):
        with pytest.raises(JanusError, match="write i/n with 1 <= i <= n"):
            parse_shard(bad)


def test_existing_captions_error_skip_or_overwrite(tmp_path):
    make_images(tmp_path, 3)
    (tmp_path / "img_001.txt").write_text("hand-written caption")
    with pytest.raises(JanusError, match=r"1 of 3 images already have a caption file .*img_001.txt.*skip"):
        plan_captions(tmp_path)
    skip = plan_captions(tmp_path, existing="skip")
    assert [t.key for t in skip.tasks] == ["img_000.png", "img_002.png"]
    assert [t.key for t in skip.skipped] == ["img_001.png"]
    assert [t.key for t in plan_captions(tmp_path, existing="overwrite").tasks] == [
        "img_000.png", "img_001.png", "img_002.png"]


def test_atomic_write_never_leaves_part_of_a_file(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    target.write_text("old caption")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(target, "new caption")
    monkeypatch.undo()
    assert target.read_text() == "old caption" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    # what a kill between the write and the rename leaves behind is cleared by the next plan
    make_images(tmp_path, 1)
    stale = tmp_path / f".img_000.txt.0123abcd{TMP_SUFFIX}"
    stale.write_text("half a capt")
    other = tmp_path / f".unrelated.txt.0123abcd{TMP_SUFFIX}"
    other.write_text("another job's file")
    plan = plan_captions(tmp_path, existing="skip")
    assert plan.stale_temps_removed == 1 and not stale.exists() and other.exists()


def test_stream_writes_captions_and_reports_unreadable_images(tiny_model, tmp_path):
    make_images(tmp_path, 5)
    (tmp_path / "img_002.png").write_bytes(b"\x89PNG broken")
    plan = plan_captions(tmp_path)
    options = CaptionOptions(prefix="sks, ", suffix=" [end]", **OPTIONS)
    results = list(caption_tasks(tiny_model, plan.tasks, options))
    assert [r.key for r in results] == [f"img_{i:03d}.png" for i in range(5)]
    assert [r.status for r in results] == ["written", "written", "failed", "written", "written"]
    assert "img_002.png cannot be read as an image" in results[2].error
    files = caption_files(tmp_path)
    assert sorted(files) == ["img_000.txt", "img_001.txt", "img_003.txt", "img_004.txt"]
    for r in results:
        if r.status == "written":
            assert files[Path(r.target).name] == r.text
            assert "\n" not in r.text and "\r" not in r.text and "  " not in r.text[5:-6]
            assert r.text.startswith("sks, ") and r.text.endswith(" [end]") and len(r.text) > len("sks,  [end]")
    assert len(set(files.values())) > 1  # the images differ, so do (some of) their captions
    assert not leftovers(tmp_path)


def test_stream_pulls_one_batch_at_a_time_and_frees_it(tiny_model, tmp_path):
    """From an iterable of in-memory images, at most one batch is taken and alive at any time."""
    pulled, alive = [], []

    def images():
        for i in range(5):
            rng = np.random.default_rng(i)
            im = Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
            alive.append(weakref.ref(im))
            pulled.append(i)
            yield im
            del im

    seen = []

    def on_batch(batch):
        gc.collect()
        seen.append((len(pulled), sum(r() is not None for r in alive)))
    options = CaptionOptions(max_new_tokens=2, batch_size=2)
    results = list(caption_tasks(tiny_model, images(), options, on_batch=on_batch))
    assert [r.status for r in results] == ["captioned"] * 5 and all(r.text for r in results)
    assert seen == [(2, 2), (4, 2), (5, 1)]


def test_cli_caption_resumes_after_a_kill(tiny_dir, tmp_path):
    """Kill the CLI while it captions (SIGKILL, no cleanup), rerun with --skip-existing: one complete caption
    per image, the same as an uninterrupted run, and no partial or temporary files."""
    images = tmp_path / "images"
    make_images(images, 10)
    common = ["--model", str(tiny_dir), "--batch", "2", "--max-new-tokens", "12"]
    assert main(["caption", str(images), "--out", str(tmp_path / "reference"), *common]) == 0
    reference = caption_files(tmp_path / "reference")
    assert len(reference) == 10

    cmd = [sys.executable, "-m", "janus_runtime", "caption", str(images), *common]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    deadline = time.time() + 120
    while len(list(images.glob("*.txt"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = caption_files(images)
    assert 2 <= len(partial) < 10, ("the run was not killed in the middle; make the job longer",
                                    proc.returncode, proc.stderr.read().decode(errors="replace")[-2000:])
    assert all(reference[k] == v for k, v in partial.items())  # what was written is complete

    assert main(["caption", str(images), *common]) == 2  # refuses to overwrite without a choice
    assert main(["caption", str(images), "--skip-existing", *common]) == 0
    assert caption_files(images) == reference
    assert not leftovers(images)


def test_cli_shards_equal_the_single_process_run(tiny_dir, tmp_path, capsys):
    """Two shards together caption every image exactly once, with the captions of one process. Batch 1, so
    both runs compute each caption the same way (batches of different images may round differently)."""
    make_images(tmp_path / "images" / "a", 3)
    make_images(tmp_path / "images" / "b", 3, start=3)
    (tmp_path / "images" / "b" / "broken.png").write_bytes(b"nope")
    common = [str(tmp_path / "images"), "--model", str(tiny_dir), "--batch", "1", "--max-new-tokens", "5",
              "--recursive", "--json", "--question", "Describe {name} from {folder}."]
    assert main(["caption", *common, "--out", str(tmp_path / "single")]) == 1  # one image failed
    single = __import__("json").loads(capsys.readouterr().out)
    assert single["written"] == 6 and [f["image"] for f in single["failed"]] == ["b/broken.png"]
    written = []
    for i in (1, 2):
        assert main(["caption", *common, "--out", str(tmp_path / "sharded"), "--shard", f"{i}/2"]) in (0, 1)
        written.append(__import__("json").loads(capsys.readouterr().out)["written"])
    assert all(written) and sum(written) == 6
    assert caption_files(tmp_path / "sharded") == caption_files(tmp_path / "single")
    assert len(caption_files(tmp_path / "single")) == 6


def test_cli_caption_arguments(tiny_dir, tmp_path, capsys):
    make_images(tmp_path, 1)
    assert main(["caption", str(tmp_path), "--model", str(tiny_dir), "--skip-existing", "--overwrite"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main(["caption", str(tmp_path), "--model", str(tiny_dir), "--shard", "3/2"]) == 2
    assert "write i/n" in capsys.readouterr().err
    assert main(["caption", str(tmp_path), "--model", str(tiny_dir), "--batch", "0"]) == 2
    assert "batch_size must be at least 1" in capsys.readouterr().err


def test_prompt_list_batches_are_fixed_and_resume_by_batch(tmp_path):
    from janus_runtime.prompt_list import plan_prompts
    (tmp_path / "prompts.txt").write_text("a cat\n\n  a dog  \na fox\na owl\na bee\n")
    out = tmp_path / "out"
    batches = plan_prompts(tmp_path / "prompts.txt", out, batch_size=2)
    assert [[(t.index, t.prompt) for t in b] for b in batches] == [
        [(0, "a cat"), (1, "a dog")], [(2, "a fox"), (3, "a owl")], [(4, "a bee")]]
    for t in batches[0] + batches[1][:1]:  # batch 0 finished, batch 1 cut short by a kill
        t.png.write_bytes(b"png")
        t.tokens.write_bytes(b"tokens")
    stale = out / f".00003.png.0badf00d{TMP_SUFFIX}"
    stale.write_bytes(b"half")
    again = plan_prompts(tmp_path / "prompts.txt", out, batch_size=2)
    assert [[t.index for t in b] for b in again] == [[2, 3], [4]] and not stale.exists()
    assert len(plan_prompts(tmp_path / "prompts.txt", out, batch_size=2, existing="overwrite")) == 3
    with pytest.raises(JanusError, match="the list is empty"):
        plan_prompts(["", "  "], out)
