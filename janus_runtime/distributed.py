"""Captioning and prompt lists on a Ray cluster: Ray Data ``map_batches`` over an actor pool, one model per
actor (per GPU). Needs the optional extra: ``pip install ".[ray]"`` (Ray Data).

    import ray
    from janus_runtime.distributed import caption_with_ray, generate_with_ray
    ray.init()                          # this machine; on a cluster: ray.init(address="auto")
    summary = caption_with_ray("deepseek-ai/Janus-Pro-7B", "/data/photos", actors=8, num_gpus=1,
                               batch_size=8, existing="skip")
    print(summary.text())
    generate_with_ray("deepseek-ai/Janus-Pro-7B", "prompts.txt", "/data/generated", actors=8, num_gpus=1)

The driver plans the job exactly as the single-process runners do (``captioner.plan_captions``,
``prompt_list.plan_prompts``) and hands Ray one row per batch, so every batch -- and therefore every caption
and image -- is the one the CLI computes for the same files, options and seed. Each actor writes its
results atomically (caption sidecars, or PNG + token files); a batch whose actor dies is run again by Ray on
a restarted actor and overwrites the same files with the same content, so nothing is lost or duplicated, and
the driver's result table (``jsonl``) holds each image once. Paths (model folder, images, outputs) must be
readable/writable from every node, e.g. on shared storage; a Hugging Face repo id downloads on each node.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from .captioner import (IMAGE_EXTENSIONS, CaptionOptions, CaptionResult, CaptionTask, caption_batch,
                        plan_captions, start_summary, write_atomic)
from .errors import JanusError
from .prompt_list import PromptOptions, PromptTask, plan_prompts, render_batch

MAX_BLOCKS = 1024  # smaller blocks: finer load balancing and less work repeated when an actor dies


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise JanusError("Ray Data is not installed: pip install \"janus-pro-nodes[ray]\" (or pip install "
                         "\"ray[data]\") to run jobs on a Ray cluster; the 'caption' command runs without it") from None
    if not ray.is_initialized():
        ray.init()
    return ray


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _load(model, device, dtype, components):
    from .model import default_device
    from .model import load_model
    return load_model(model, device=device or default_device(), dtype=dtype, components=components)


def _column(values) -> list:
    return [v.item() if hasattr(v, "item") else v for v in values]


class CaptionActor:
    """One model per actor; each input row is one caption batch (columns of lists)."""

    def __init__(self, model, device, dtype, options: dict):
        self.model = _load(model, device, dtype, ("lm", "vision"))
        self.options = CaptionOptions(**options)

    def __call__(self, rows: dict) -> dict:
        out = {k: [] for k in ("index", "key", "status", "text", "target", "error", "worker")}
        for index, key, image, target in zip(rows["index"], rows["key"], rows["image"], rows["target"]):
            tasks = [CaptionTask(int(i), str(k), Path(str(p)), Path(str(t)) if t else None)
                     for i, k, p, t in zip(_column(index), _column(key), _column(image), _column(target))]
            for r in caption_batch(self.model, tasks, self.options):
                for name in ("index", "key", "status", "text", "target", "error"):
                    out[name].append(getattr(r, name))
                out["worker"].append(_worker())
        return out


class PromptActor:
    """One model per actor; each input row is one prompt batch."""

    def __init__(self, model, device, dtype, options: dict):
        self.model = _load(model, device, dtype, ("lm", "vq"))
        self.options = PromptOptions(**options)

    def __call__(self, rows: dict) -> dict:
        out = {k: [] for k in ("index", "prompt", "status", "png", "tokens", "worker")}
        for index, prompt, png, tokens in zip(rows["index"], rows["prompt"], rows["png"], rows["tokens"]):
            batch = [PromptTask(int(i), str(p), Path(str(a)), Path(str(b)))
                     for i, p, a, b in zip(_column(index), _column(prompt), _column(png), _column(tokens))]
            for r in render_batch(self.model, batch, self.options):
                for name in ("index", "prompt", "status", "png", "tokens"):
                    out[name].append(getattr(r, name))
                out["worker"].append(_worker())
        return out


def _run(ray, rows: list[dict], actor, constructor: dict, actors: int, num_gpus: float, num_cpus: float):
    """Rows in, result rows out in input order, as they complete."""
    from ray.data import ActorPoolStrategy, DataContext
    if actors < 1:
        raise JanusError(f"actors must be at least 1; got {actors}")
    options = DataContext.get_current().execution_options
    keep, options.preserve_order = options.preserve_order, True  # results (and jsonl rows) in file order
    try:
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
        ds = ds.map_batches(actor, fn_constructor_kwargs=constructor, batch_size=1,
                            compute=ActorPoolStrategy(size=actors), num_gpus=num_gpus, num_cpus=num_cpus)
        yield from ds.iter_rows()
    finally:
        options.preserve_order = keep


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    import sys

    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr)


def caption_with_ray(model, source, *, out_dir=None, jsonl=None, sidecars: bool = True, recursive: bool = False,
                     extensions=IMAGE_EXTENSIONS, existing: str = "error", shard=None,
                     options: CaptionOptions | None = None, actors: int = 2, num_gpus: float = 0,
                     num_cpus: float = 1, device=None, dtype="auto", progress: bool = False,
                     on_result: Callable[[CaptionResult, str], None] | None = None):
    """Caption a folder (or a list of image paths) with ``actors`` model replicas; returns a CaptionSummary.

    ``num_gpus`` per actor (1 = one GPU each; 0 = CPU actors using ``num_cpus`` cores). ``sidecars``: write
    name.txt files (next to the images, or under ``out_dir``) as the CLI does; ``jsonl``: also write a table
    {"image", "caption", "status", "error"} in file order (atomically, when the job ends). ``on_result(result,
    worker)`` sees each result as it arrives. The other arguments are those of ``plan_captions`` and
    ``CaptionOptions``.
    """
    options = options or CaptionOptions()
    options.check()
    plan = plan_captions(source, out_dir=out_dir, recursive=recursive, extensions=extensions,
                         existing=existing if sidecars else "overwrite", shard=shard)
    summary = start_summary(plan)
    tasks = plan.tasks if sidecars else [CaptionTask(t.index, t.key, t.image, None) for t in plan.tasks]
    rows = [{"index": [t.index for t in b], "key": [t.key for t in b], "image": [str(t.image) for t in b],
             "target": [str(t.target) if t.target else "" for t in b]}
            for b in (tasks[i:i + options.batch_size] for i in range(0, len(tasks), options.batch_size))]
    lines = []
    if rows:
        ray = _ray()
        bar = _progress(len(tasks), progress, "captioning")
        for row in _run(ray, rows, CaptionActor, {"model": str(model), "device": device, "dtype": dtype,
                                                  "options": asdict(options)}, actors, num_gpus, num_cpus):
            result = CaptionResult(row["key"], row["status"], row["text"], row["target"] or None,
                                   row["error"], int(row["index"]))
            summary.add(result)
            if jsonl:
                lines.append(json.dumps({"image": result.key, "caption": result.text, "status": result.status,
                                         "error": result.error}, ensure_ascii=False))
            if on_result:
                on_result(result, row["worker"])
            if bar:
                bar.update(1)
        if bar:
            bar.close()
    if jsonl:
        write_atomic(jsonl, "".join(line + "\n" for line in lines))
    return summary.finish()


def generate_with_ray(model, prompts, out_dir, *, batch_size: int = 4, existing: str = "skip",
                      options: PromptOptions | None = None, actors: int = 2, num_gpus: float = 0,
                      num_cpus: float = 1, device=None, dtype="auto", progress: bool = False,
                      on_result=None) -> dict:
    """Generate one image per prompt (a list, or a text file with one prompt per line) into ``out_dir`` as
    NNNNN.png + NNNNN.safetensors, with ``actors`` model replicas (see ``prompt_list`` for batches and
    seeds). Returns {"written", "skipped_batches", "seconds"}."""
    import time
    t0 = time.perf_counter()
    options = options or PromptOptions()
    batches = plan_prompts(prompts, out_dir, batch_size, existing)
    rows = [{"index": [t.index for t in b], "prompt": [t.prompt for t in b], "png": [str(t.png) for t in b],
             "tokens": [str(t.tokens) for t in b]} for b in batches]
    written = 0
    if rows:
        ray = _ray()
        bar = _progress(sum(len(b) for b in batches), progress, "generating")
        for row in _run(ray, rows, PromptActor, {"model": str(model), "device": device, "dtype": dtype,
                                                 "options": asdict(options)}, actors, num_gpus, num_cpus):
            written += 1
            if on_result:
                on_result(row)
            if bar:
                bar.update(1)
        if bar:
            bar.close()
    return {"written": written, "batches": len(rows), "seconds": time.perf_counter() - t0}
