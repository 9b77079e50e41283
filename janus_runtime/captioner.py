"""Captioning image sets: list, shard and plan a folder, caption it batch by batch, write sidecar files.

    from janus_runtime.captioner import CaptionOptions, plan_captions, caption_tasks
    plan = plan_captions("photos/", existing="skip")
    for result in caption_tasks(model, plan.tasks, CaptionOptions(question="Describe the image.")):
        print(result.key, result.status, result.text or result.error)

Only one batch of images is open at a time; files are captioned in listing order (sorted by path, or the
order of the list given). A caption file is written to a hidden temporary file and renamed over its target,
so a Cancel, crash or kill never leaves a half-written caption; rerunning with ``existing="skip"`` resumes.
Batches are formed from the plan alone (``batch_size`` consecutive tasks, whether or not an image then fails
to open), so every runner that executes the same plan with the same options -- this module, the CLI, the
ComfyUI node, a Ray actor pool -- computes exactly the same batches and captions.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import JanusError

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
CAPTION_SUFFIX = ".txt"
TMP_SUFFIX = ".janus.tmp"
EXISTING = ("error", "skip", "overwrite")
DEFAULT_QUESTION = "Describe this image in one detailed sentence."


# ------------------------------------------------------------------------------------------------------------
# files

def write_atomic(path: str | Path, data: str | bytes):
    """Write ``data`` to ``path`` through a hidden temporary file in the same folder and an atomic rename:
    readers see the old file or the complete new one, never a part. A kill leaves at most the temporary
    file (``.NAME.<random>.janus.tmp``), which ``remove_stale_temps`` clears on the next run."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(targets: Iterable[Path]) -> int:
    """Delete temporary files that an interrupted ``write_atomic`` left for these targets (and only these:
    other jobs' files in the same folders are left alone). One directory listing per folder."""
    by_dir: dict[Path, set[str]] = {}
    for t in targets:
        by_dir.setdefault(t.parent, set()).add(t.name)
    removed = 0
    for folder, names in by_dir.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") and e.name.endswith(TMP_SUFFIX):
                target = e.name[1:-len(TMP_SUFFIX)].rsplit(".", 1)[0]
                if target in names:
                    Path(e.path).unlink(missing_ok=True)
                    removed += 1
    return removed


def parse_extensions(extensions) -> tuple[str, ...]:
    """"png, jpg .webp" or a sequence -> ("png", "jpg", "webp"), lower case, without dots."""
    items = re.split(r"[\s,;]+", extensions) if isinstance(extensions, str) else list(extensions)
    exts = tuple(dict.fromkeys(e.strip().lower().lstrip(".") for e in items if e and e.strip(". ")))
    if not exts:
        raise JanusError(f"extensions: none given; list image file extensions such as "
                         f"{', '.join(IMAGE_EXTENSIONS)}")
    if CAPTION_SUFFIX.lstrip(".") in exts:
        raise JanusError(f"extensions: {CAPTION_SUFFIX} files are the captions; list image extensions only")
    return exts


def list_images(folder: str | Path, recursive: bool = False, extensions=IMAGE_EXTENSIONS) -> list[Path]:
    """Image files in ``folder`` (and its subfolders if ``recursive``), sorted by their path relative to the
    folder; hidden files and folders (names starting with '.') are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise JanusError(f"folder {folder}: not found or not a folder; give the folder holding the images")
    exts = {"." + e for e in parse_extensions(extensions)}
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        found += [Path(root) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in exts]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def parse_shard(shard) -> tuple[int, int] | None:
    """"2/4" -> (2, 4): the second of four disjoint parts (numbered 1..n). None or "" -> None (everything)."""
    if shard is None or shard == "" or isinstance(shard, tuple):
        return shard or None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise JanusError(f"shard {shard!r}: write i/n with 1 <= i <= n, e.g. 1/4, 2/4, 3/4, 4/4 for four "
                         f"processes that split the files between them")
    return int(m.group(1)), int(m.group(2))


def shard_of(key: str, count: int) -> int:
    """The shard (1..count) of a file, from a hash of its path relative to the folder: independent of the
    listing order, the batch size and of files added later, and the same on every machine."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % count + 1


def caption_file(image: Path, key: str, out_dir: Path | None) -> Path:
    """name.png -> name.txt next to the image, or under ``out_dir`` at the image's relative path."""
    if out_dir is None:
        return image.with_suffix(CAPTION_SUFFIX)
    return (out_dir / key).with_suffix(CAPTION_SUFFIX)


# ------------------------------------------------------------------------------------------------------------
# plan

@dataclass(frozen=True)
class CaptionTask:
    index: int               # position in the job's file list (seeds and output order)
    key: str                 # the path relative to the folder (or as given), also the shard key
    image: object            # a Path, or a PIL image for in-memory items
    target: Path | None      # caption file to write, or None to only return the text


@dataclass
class CaptionResult:
    key: str
    status: str              # "written", "captioned" (no file asked for), "skipped" or "failed"
    text: str | None = None
    target: str | None = None
    error: str | None = None
    index: int = -1


@dataclass
class CaptionPlan:
    tasks: list[CaptionTask]                    # to caption, in file order
    skipped: list[CaptionTask]                  # caption file exists and existing="skip"
    failed: list[CaptionResult]                 # refused before captioning, with the reason
    found: int                                  # images in this shard
    stale_temps_removed: int = 0


def plan_captions(source, *, out_dir=None, recursive: bool = False, extensions=IMAGE_EXTENSIONS,
                  existing: str = "error", shard=None) -> CaptionPlan:
    """Which images of ``source`` (a folder, or a list of image paths) to caption and where to write.

    ``existing``: what to do with images whose caption file exists -- "skip" (resume), "overwrite", or
    "error" (refuse, naming the files, so hand-edited captions are never replaced by accident).
    ``shard``: "i/n" or (i, n) keeps the i-th of n disjoint parts (see ``shard_of``).
    """
    if existing not in EXISTING:
        raise JanusError(f"existing: {existing!r} is not one of {', '.join(EXISTING)}")
    shard = parse_shard(shard)
    out = Path(out_dir).expanduser() if out_dir else None
    if out is not None and out.exists() and not out.is_dir():
        raise JanusError(f"output folder {out}: is a file; give a folder for the caption files")
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source).expanduser()
        entries = [(p, p.relative_to(folder).as_posix()) for p in list_images(folder, recursive, extensions)]
    else:
        entries = [(Path(p), Path(p).as_posix()) for p in source]
        if out is not None:  # a flat output folder for a list of files from anywhere
            entries = [(p, p.name) for p, _ in entries]
    if shard:
        entries = [(p, k) for p, k in entries if shard_of(k, shard[1]) == shard[0]]
    tasks, skipped, failed, owners, existing_files = [], [], [], {}, []
    for path, key in entries:
        target = caption_file(path, key, out)
        if target in owners:
            failed.append(CaptionResult(key, "failed", target=str(target), error=(
                f"its caption file {target.name} is also the caption of {owners[target]}; rename one of the "
                f"two images")))
            continue
        owners[target] = key
        task = CaptionTask(len(tasks) + len(skipped), key, path, target)
        if existing != "overwrite" and target.exists():
            existing_files.append(target)
            if existing == "skip":
                skipped.append(task)
            continue
        tasks.append(task)
    if existing == "error" and existing_files:
        raise JanusError(f"{len(existing_files)} of {len(owners)} images already have a caption file (e.g. "
                         f"{existing_files[0]}); choose skip existing to caption only the others (resume) or "
                         f"overwrite to replace them")
    tasks = [CaptionTask(i, t.key, t.image, t.target) for i, t in enumerate(tasks)]
    plan = CaptionPlan(tasks, skipped, failed, found=len(entries))
    _check_writable(plan)
    plan.stale_temps_removed = remove_stale_temps(t.target for t in tasks + skipped)
    return plan


def _check_writable(plan: CaptionPlan):
    """Create the caption folders and try a write in each, so a read-only folder fails in the plan, not
    after its captions were computed."""
    refused = {}
    for folder in dict.fromkeys(t.target.parent for t in plan.tasks):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".janus-write-test-{secrets.token_hex(4)}"
            write_atomic(probe, b"")
            probe.unlink()
        except OSError as e:
            refused[folder] = f"cannot write caption files in {folder} ({e.strerror or e}); give an output folder"
    if refused:
        keep = [t for t in plan.tasks if t.target.parent not in refused]
        plan.failed += [CaptionResult(t.key, "failed", target=str(t.target), error=refused[t.target.parent])
                        for t in plan.tasks if t.target.parent in refused]
        plan.tasks = [CaptionTask(i, t.key, t.image, t.target) for i, t in enumerate(keep)]


# ------------------------------------------------------------------------------------------------------------
# captioning

@dataclass
class CaptionOptions:
    question: str = DEFAULT_QUESTION   # "{name}" and "{folder}" are replaced by the file's stem / folder name
    prefix: str = ""                   # added before each caption as typed (trigger words: "sks dog, ")
    suffix: str = ""                   # added after each caption as typed
    batch_size: int = 4
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0                      # batch starting at task i samples with seed + i (temperature > 0)
    system_prompt: str | None = None   # None: the official one

    def check(self):
        if not isinstance(self.question, str) or not self.question.strip():
            raise JanusError("question is empty: type what the captions should say, e.g. "
                             f"{DEFAULT_QUESTION!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise JanusError(f"batch_size must be at least 1; got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise JanusError(f"max_new_tokens must be at least 1; got {self.max_new_tokens}")

    def question_for(self, key: str) -> str:
        p = Path(key)
        return self.question.replace("{name}", p.stem).replace("{folder}", p.parent.name)


def _open(task: CaptionTask):
    """The task's PIL image, or the reason it cannot be used."""
    from PIL import Image

    from .processing import open_image, to_rgb
    if isinstance(task.image, Image.Image):
        return to_rgb(task.image), None
    try:
        return open_image(task.image), None
    except Exception as e:  # JanusError, DecompressionBombError, MemoryError on a huge file, ...
        return None, str(e)


def caption_batch(model, tasks: list[CaptionTask], options: CaptionOptions,
                  on_step: Callable[[int, int, list[str]], None] | None = None) -> list[CaptionResult]:
    """Caption one batch of tasks (one ``understand_batch`` call over the images that open) and write their
    caption files; results in task order. An image that cannot be read is a failed result, not an error."""
    from . import understand_batch
    opened = [_open(t) for t in tasks]
    errors = [error for _, error in opened]
    good = [(t, im) for t, (im, _) in zip(tasks, opened) if im is not None]
    del opened
    texts = iter(())
    if good:
        answers = understand_batch(model, [([im], options.question_for(t.key)) for t, im in good],
                                   system_prompt=options.system_prompt, max_new_tokens=options.max_new_tokens,
                                   temperature=options.temperature, top_p=options.top_p, top_k=options.top_k,
                                   repetition_penalty=options.repetition_penalty,
                                   seed=options.seed + tasks[0].index, callback=on_step)
        # one line per caption file, as training tools read them: line breaks and runs of spaces -> one space
        texts = iter([options.prefix + " ".join(a.text.split()) + options.suffix for a in answers])
    del good  # the batch's pixels go before the files are written
    results = []
    for t, error in zip(tasks, errors):
        target = str(t.target) if t.target is not None else None
        if error is not None:
            results.append(CaptionResult(t.key, "failed", target=target, error=error, index=t.index))
            continue
        text = next(texts)
        if t.target is None:
            results.append(CaptionResult(t.key, "captioned", text, index=t.index))
            continue
        try:
            write_atomic(t.target, text)
            results.append(CaptionResult(t.key, "written", text, target, index=t.index))
        except OSError as e:
            results.append(CaptionResult(t.key, "failed", text, target, index=t.index,
                                         error=f"cannot write {t.target} ({e.strerror or e})"))
    return results


def as_tasks(items: Iterable) -> Iterator[CaptionTask]:
    """CaptionTasks from tasks, paths (caption next to the image) or in-memory PIL images (text only)."""
    for i, item in enumerate(items):
        if isinstance(item, CaptionTask):
            yield item
        elif isinstance(item, (str, os.PathLike)):
            p = Path(item)
            yield CaptionTask(i, p.as_posix(), p, p.with_suffix(CAPTION_SUFFIX))
        else:
            yield CaptionTask(i, f"image {i}", item, None)


def caption_tasks(model, items: Iterable, options: CaptionOptions, *,
                  on_batch: Callable[[list[CaptionTask]], None] | None = None,
                  on_step: Callable[[int, int, list[str]], None] | None = None) -> Iterator[CaptionResult]:
    """Caption ``items`` (CaptionTasks from ``plan_captions``, image paths, or PIL images) ``batch_size`` at
    a time, pulling them lazily from the iterable, and yield each result as its batch finishes.

    ``on_batch(tasks)`` runs before each batch (progress with file names; raising there stops before the
    batch, e.g. on Cancel); ``on_step`` is ``understand_batch``'s per-token callback.
    """
    options.check()
    it = as_tasks(items)
    while batch := list(islice(it, options.batch_size)):
        if on_batch:
            on_batch(batch)
        yield from caption_batch(model, batch, options, on_step)


@dataclass
class CaptionSummary:
    """Counts and failures of a captioning job, without holding its captions."""
    found: int = 0
    written: int = 0
    captioned: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def add(self, r: CaptionResult):
        if r.status == "failed":
            self.failed.append((r.key, r.error))
        else:
            setattr(self, r.status, getattr(self, r.status) + 1)

    def finish(self) -> "CaptionSummary":
        self.seconds = time.perf_counter() - self.started
        return self

    @property
    def images_per_s(self) -> float:
        done = self.written + self.captioned
        return done / self.seconds if self.seconds > 0 and done else 0.0

    def text(self, max_failures: int = 20) -> str:
        lines = [f"{self.found} images: {self.written} captions written, {self.skipped} skipped (caption "
                 f"exists), {len(self.failed)} failed" + (f", {self.captioned} captioned" if self.captioned
                                                           else "")
                 + (f"; {self.images_per_s:.2f} images/s" if self.images_per_s else "")]
        for key, error in self.failed[:max_failures]:
            lines.append(f"failed: {key}: {error}")
        if len(self.failed) > max_failures:
            lines.append(f"... and {len(self.failed) - max_failures} more failures")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"found": self.found, "written": self.written, "captioned": self.captioned,
                "skipped": self.skipped, "failed": [{"image": k, "error": e} for k, e in self.failed],
                "seconds": round(self.seconds, 3), "images_per_s": round(self.images_per_s, 3)}


def start_summary(plan: CaptionPlan) -> CaptionSummary:
    summary = CaptionSummary(found=plan.found, skipped=len(plan.skipped))
    for r in plan.failed:
        summary.add(r)
    return summary
