"""Command line: ``python -m janus_runtime`` / ``janus-runtime``.

  make-tiny DIR [--layout official|hf] [--seed S] [--weights safetensors|bin|sharded|sharded-bin]
  understand --model M --image IMG... --question Q [sampling options] [--json]
  generate   --model M --prompt P [--negative N] [--n N] [--batch B] [--seed S] [--cfg W] [--temperature T]
             [--top-k K] [--top-p P] --out DIR [--overwrite]
  score      --model M --prompt P --tokens T [--cfg W] [--temperature T] [--json]
  encode     --model M --image IMG... --out tokens.safetensors [--overwrite]
  decode     --model M --tokens T --out DIR [--overwrite]
  caption    DIR --model M [--out DIR] [--batch N] [--skip-existing | --overwrite] [--shard i/n]
             [--question Q] [--prefix P] [--suffix S] [--recursive] [--extensions png,jpg] [--json]

Token files are safetensors holding one int64 tensor ``tokens`` [B, 24, 24].

Outputs never replace existing ones unless ``--overwrite`` is given, and ``--out`` is checked before the model
loads. An output folder holds one run: files appear under their final names only when complete (written to a
temporary name, then renamed), a chunk of images at a time, and ``janus_run.json`` lists the files of the run
so far ("complete": true at the end). Ctrl-C stops with exit status 130, keeping the completed chunks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from .captioner import DEFAULT_QUESTION, IMAGE_EXTENSIONS
from .checks import PARALLEL_MODES
from .errors import JanusError
from .model import check_device

log = logging.getLogger("janus_runtime")


MANIFEST = "janus_run.json"
PARTIAL = ".partial"
OUTPUT_NAME = re.compile(r"^(image_\d+\.png|tokens\.safetensors|janus_run\.json)$")


def _load(args, components):
    from .model import load_model
    return load_model(args.model, device=args.device, dtype=args.dtype, components=components)


def _read_tokens(path: str) -> torch.Tensor:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        data = load_file(path)
    except (SafetensorError, OSError, FileNotFoundError) as e:
        raise JanusError(f"--tokens {path}: cannot read a safetensors token file ({e})") from e
    if "tokens" not in data:
        raise JanusError(f"--tokens {path}: no tensor named 'tokens' (found {sorted(data)})")
    return data["tokens"]


def _write_tokens(tokens: torch.Tensor, path: Path):
    from safetensors.torch import save_file
    save_file({"tokens": tokens.detach().to("cpu", torch.int64).contiguous()}, str(path))


def _write_png(pixels, path: Path):
    from PIL import Image
    Image.fromarray(pixels).save(path, format="PNG")


def _probe_writable(folder: Path, what: str):
    try:
        fd, probe = tempfile.mkstemp(prefix=".janus-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise JanusError(f"{what}: cannot write in {folder} ({e.strerror or e}); choose a folder you can "
                         f"write to.") from None


def _out_path(path: str) -> Path:
    if not path.strip():
        raise JanusError("--out is empty; give the path to write to")
    return Path(path).expanduser()


def check_out_file(path: str, overwrite: bool) -> Path:
    """A file ``--out`` that may be written: its folder exists and is writable, and it is new (or
    ``overwrite``)."""
    out = _out_path(path)
    if out.is_dir():
        raise JanusError(f"--out {path} is a folder; give a file name such as {out / 'tokens.safetensors'}")
    if not out.parent.is_dir():
        raise JanusError(f"--out {path}: the folder {out.parent} does not exist; create it or fix the path")
    if out.exists() and not overwrite:
        raise JanusError(f"--out {path} already exists; pass --overwrite to replace it, or choose another name")
    _probe_writable(out.parent, f"--out {path}")
    return out


def write_file(path: Path, write):
    """``write(tmp)`` then rename onto ``path``: the file is either the old one or the complete new one."""
    tmp = path.with_name(f".{path.name}{PARTIAL}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class RunFolder:
    """The output folder of one run (see the module docstring). Created and checked before any model work;
    ``commit`` adds one complete chunk of files and rewrites the manifest; ``close`` removes what an
    interrupted chunk left behind."""

    def __init__(self, path: str, overwrite: bool, info: dict, keep=()):
        out = _out_path(path)
        self.path, self.info, self.files, self.committed = out, dict(info), [], 0
        if out.exists() and not out.is_dir():
            raise JanusError(f"--out {path} is a file; --out names a folder for the images")
        if not out.exists() and not out.parent.is_dir():
            raise JanusError(f"--out {path}: its parent folder {out.parent} does not exist; create it or fix "
                             f"the path")
        keep = {Path(k).resolve() for k in keep}
        self.old = sorted(f for f in out.iterdir() if OUTPUT_NAME.match(f.name) and f.resolve() not in keep) \
            if out.is_dir() else []
        if self.old and not overwrite:
            names = ", ".join(f.name for f in self.old[:3]) + (", ..." if len(self.old) > 3 else "")
            raise JanusError(f"--out {path} already holds the outputs of an earlier run ({names}); pass "
                             f"--overwrite to replace them, or choose another folder")
        self.created = not out.exists()
        try:
            out.mkdir(exist_ok=True)
        except OSError as e:
            raise JanusError(f"--out {path}: cannot create the folder ({e.strerror or e}); choose a folder you "
                             f"can write to.") from None
        _probe_writable(out, f"--out {path}")
        self.partial = []

    def commit(self, files: dict, total: int):
        """Write ``files`` ({name: write(path)}) under temporary names, rename them all, update the manifest."""
        staged = []
        for name, write in files.items():
            tmp = self.path / f".{name}{PARTIAL}"
            self.partial.append(tmp)
            write(tmp)
            staged.append((tmp, self.path / name))
        with _no_interrupt():  # publish the chunk and its manifest entry together
            if not self.committed:  # the first complete chunk replaces the earlier run (--overwrite)
                for f in self.old:
                    f.unlink(missing_ok=True)
            for tmp, final in staged:
                os.replace(tmp, final)
            self.files += [name for name in files if name not in self.files]
            self.committed += 1
            self.write_manifest(complete=len(self.images) >= total)
        self.partial = []

    @property
    def images(self) -> list[str]:
        return [f for f in self.files if f.endswith(".png")]

    def write_manifest(self, complete: bool):
        manifest = {**self.info, "complete": complete, "images": self.images, "files": self.files}
        write_file(self.path / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=1) + "\n"))

    def status(self) -> str:
        if not self.committed:
            return f"nothing was written to {self.path}"
        return f"{len(self.images)} complete image(s) kept in {self.path} (listed in {self.path / MANIFEST})"

    def close(self):
        for tmp in self.partial:
            tmp.unlink(missing_ok=True)
        if self.created and not self.committed:
            with contextlib.suppress(OSError):
                self.path.rmdir()


_GOLDEN = 0x9E3779B97F4A7C15  # the odd multiplier of sampling.image_seed


def _chunk_seed(seed: int, offset: int) -> int:
    """The seed whose image j is image ``offset + j`` of ``seed``, so chunked runs give the same images.

    The sampler seeds image k from (seed * G + k + 1) mod 2**64 (``sampling.image_seed``); G is odd, so
    adding offset / G mod 2**64 to the seed shifts the image index by ``offset``.
    """
    if offset == 0:
        return seed
    return (seed + offset * pow(_GOLDEN, -1, 2 ** 64)) % 2 ** 64


class _Progress:
    """One terminal progress bar over a whole run (stderr; silent when not a terminal)."""

    def __init__(self, enabled: bool, total: int, desc: str, unit: str):
        self.enabled, self.total, self.desc, self.unit = enabled, total, desc, unit
        self.bar = None

    def update(self, done: int):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _no_interrupt():
    """Hold Ctrl-C back for a moment (the renames that publish a chunk), then deliver it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def _image_names(start: int, count: int, total: int) -> list[str]:
    width = max(3, len(str(total - 1)))
    return [f"image_{i:0{width}d}.png" for i in range(start, start + count)]


def cmd_make_tiny(args):
    from .tiny import make_tiny
    path = make_tiny(args.dir, layout=args.layout, seed=args.seed, weights=args.weights)
    print(f"wrote a tiny random {args.layout}-layout Janus checkpoint to {path}")


def cmd_understand(args):
    from .processing import open_image
    from .understanding import understand
    images = [open_image(p) for p in args.image]
    model = _load(args, ("lm", "vision") if images else ("lm",))
    t0 = time.perf_counter()

    def stream(step, total, texts):
        if args.stream:
            sys.stderr.write("\r" + texts[0][-200:])
    answer = understand(model, images, args.question, system_prompt=args.system_prompt,
                        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                        top_k=args.top_k, repetition_penalty=args.repetition_penalty, seed=args.seed,
                        callback=stream if args.stream else None)
    if args.stream:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps({"text": answer.text, "token_ids": answer.token_ids, "finished": answer.finished,
                          "timings": {"load_s": model.load_seconds, "total_s": time.perf_counter() - t0,
                                      **answer.timings}}))
    else:
        print(answer.text)


def _sample_run(args, info: dict, components, sample):
    """Sample ``args.n`` grids in chunks of ``args.batch`` with ``sample(model, k, seed, callback)``, decode
    them and commit each chunk's PNGs and the tokens to ``args.out`` (see RunFolder)."""
    from .image_tokens import decode_tokens
    from .processing import to_uint8_official
    info = {**info, "n": args.n, "seed": args.seed, "cfg": args.cfg, "temperature": args.temperature,
            "top_k": args.top_k, "top_p": args.top_p, "model": str(args.model), "tokens": "tokens.safetensors"}
    run = args.run = RunFolder(args.out, args.overwrite, info)
    model = _load(args, components)
    steps = model.config.num_image_tokens
    progress = _Progress(not args.json and sys.stderr.isatty(), args.n * steps, f"{info['command']} {args.n}", "tok")
    chunks, t_tokens, t_decode = [], 0.0, 0.0
    try:
        for offset in range(0, args.n, args.batch):
            k = min(args.batch, args.n - offset)
            t0 = time.perf_counter()
            tokens = sample(model, k, _chunk_seed(args.seed, offset),
                            lambda step, total, _, offset=offset, k=k: progress.update(offset * total + (step + 1) * k))
            t1 = time.perf_counter()
            pixels = to_uint8_official(decode_tokens(model, tokens)).cpu().numpy()
            t_tokens, t_decode = t_tokens + t1 - t0, t_decode + time.perf_counter() - t1
            chunks.append(tokens.cpu())
            files = {name: (lambda path, arr=arr: _write_png(arr, path))
                     for name, arr in zip(_image_names(offset, k, args.n), pixels, strict=True)}
            grid = torch.cat(chunks)
            files["tokens.safetensors"] = lambda path, grid=grid: _write_tokens(grid, path)
            run.commit(files, args.n)
    finally:
        progress.close()
    paths = [str(run.path / name) for name in run.images]
    result = {"images": paths, "tokens": str(run.path / "tokens.safetensors"), "manifest": str(run.path / MANIFEST),
              "seed": args.seed, "timings": {"load_s": model.load_seconds, "tokens_s": t_tokens,
                                             "decode_s": t_decode}}
    print(json.dumps(result) if args.json else "\n".join(paths))


def cmd_generate(args):
    from .generation import generate_image_tokens
    info = {"command": "generate", "prompt": args.prompt, "negative": args.negative, "cfg_until": args.cfg_until,
            "parallel": args.parallel, "window": args.window}

    def sample(model, k, seed, callback):
        return generate_image_tokens(model, args.prompt, n=k, negative_prompt=args.negative, cfg=args.cfg,
                                     temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=seed,
                                     cfg_until=args.cfg_until, callback=callback, parallel=args.parallel,
                                     window=args.window)
    _sample_run(args, info, ("lm", "vq"), sample)


def cmd_edit(args):
    from .edit import edit_image_tokens
    from .processing import open_image
    images = [open_image(p) for p in args.image]
    info = {"command": "edit", "images": [str(p) for p in args.image], "prompt": args.prompt,
            "negative": args.negative, "image_cfg": args.image_cfg}

    def sample(model, k, seed, callback):
        return edit_image_tokens(model, images, args.prompt, n=k, negative_prompt=args.negative, cfg=args.cfg,
                                 image_cfg=args.image_cfg, temperature=args.temperature, top_k=args.top_k,
                                 top_p=args.top_p, seed=seed, callback=callback)
    _sample_run(args, info, ("lm", "vision", "vq"), sample)


def cmd_score(args):
    from .generation import score_image_tokens
    tokens = _read_tokens(args.tokens)
    model = _load(args, ("lm",))
    t0 = time.perf_counter()
    logprobs = score_image_tokens(model, args.prompt, tokens, negative_prompt=args.negative, cfg=args.cfg,
                                  temperature=args.temperature).cpu()
    result = {"logprobs": logprobs.tolist(), "mean_logprob": logprobs.mean(1).tolist(),
              "timings": {"load_s": model.load_seconds, "score_s": time.perf_counter() - t0}}
    if args.json:
        print(json.dumps(result))
    else:
        for i, v in enumerate(result["mean_logprob"]):
            print(f"image {i}: mean log-prob {v:.4f}")


def cmd_encode(args):
    from .processing import open_image
    from .image_tokens import encode_images
    out = check_out_file(args.out, args.overwrite)
    images = [open_image(p) for p in args.image]
    model = _load(args, ("vq",))
    tokens = encode_images(model, images)
    write_file(out, lambda path: _write_tokens(tokens, path))
    print(f"wrote tokens {list(tokens.shape)} to {out}")


def cmd_decode(args):
    from .processing import to_uint8_official
    from .image_tokens import check_tokens, decode_tokens
    tokens = _read_tokens(args.tokens)
    info = {"command": "decode", "tokens": str(Path(args.tokens).resolve()), "model": str(args.model)}
    run = args.run = RunFolder(args.out, args.overwrite, info, keep=[args.tokens])
    model = _load(args, ("vq",))
    tokens = check_tokens(model, tokens)  # the whole file, before the first chunk is written
    n = tokens.shape[0]
    progress = _Progress(sys.stderr.isatty(), n, "decoding", "img")
    try:
        for offset in range(0, n, args.batch):
            pixels = to_uint8_official(decode_tokens(model, tokens[offset:offset + args.batch])).cpu().numpy()
            run.commit({name: (lambda path, arr=arr: _write_png(arr, path))
                        for name, arr in zip(_image_names(offset, len(pixels), n), pixels, strict=True)}, n)
            progress.update(offset + len(pixels))
    finally:
        progress.close()
    print("\n".join(str(run.path / name) for name in run.images))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def cmd_caption(args):
    from .captioner import CaptionOptions, caption_tasks, plan_captions, start_summary
    if args.skip_existing and args.overwrite:
        raise JanusError("--skip-existing and --overwrite contradict each other; give one of them")
    existing = "skip" if args.skip_existing else "overwrite" if args.overwrite else "error"
    options = CaptionOptions(question=args.question, prefix=args.prefix, suffix=args.suffix,
                             batch_size=args.batch, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                             repetition_penalty=args.repetition_penalty, seed=args.seed,
                             system_prompt=args.system_prompt)
    options.check()
    plan = plan_captions(args.dir, out_dir=args.out, recursive=args.recursive, extensions=args.extensions,
                         existing=existing, shard=args.shard)
    summary = start_summary(plan)
    if plan.tasks:
        model = _load(args, ("lm", "vision"))
        summary.started = time.perf_counter()  # throughput without the model load
        bar = None
        if not args.json and sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(total=len(plan.tasks), desc="captioning", unit="img", file=sys.stderr)
        try:
            for result in caption_tasks(model, plan.tasks, options,
                                        on_batch=lambda b: bar and bar.set_postfix_str(b[0].key[-40:])):
                summary.add(result)
                if result.status == "failed":
                    log.warning("failed: %s: %s", result.key, result.error)
                if bar:
                    bar.update(1)
        finally:
            if bar:
                bar.close()
    summary.finish()
    print(json.dumps(summary.as_dict()) if args.json else summary.text())
    return 1 if summary.failed else 0


def _model_args(sp):
    sp.add_argument("--model", required=True,
                    help="model folder; a known repository name (deepseek-ai/Janus-Pro-1B, ...) or "
                         "hf:owner/name to download from Hugging Face")
    sp.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    sp.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                    help="auto (bf16 on CUDA GPUs with bf16 and on CPUs with native bf16 (AVX512-BF16 or "
                         "AMX), where it is faster, the VQ decoder staying fp32 on CPUs; else fp32), bf16, "
                         "fp16, fp32")

def _sampling_args(sp, temperature):
    sp.add_argument("--temperature", type=float, default=temperature, help="0 = greedy/argmax")
    sp.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    sp.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    sp.add_argument("--seed", type=int, default=0)


def _add_make_tiny(sub):
    sp = sub.add_parser("make-tiny", help="write a tiny random-weight checkpoint in a real layout")
    sp.add_argument("dir")
    sp.add_argument("--layout", choices=["official", "hf"], default="official")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--weights", choices=["safetensors", "bin", "sharded", "sharded-bin"], default="safetensors")
    sp.set_defaults(func=cmd_make_tiny)


def _add_understand(sub):
    sp = sub.add_parser("understand", help="answer a question about images")
    _model_args(sp)
    sp.add_argument("--image", nargs="*", default=[], help="image file(s), in placeholder order")
    sp.add_argument("--question", required=True)
    sp.add_argument("--system-prompt", default=None, help="override the official system prompt ('' for none)")
    sp.add_argument("--max-new-tokens", type=int, default=512)
    _sampling_args(sp, 0.0)
    sp.add_argument("--repetition-penalty", type=float, default=1.0)
    sp.add_argument("--stream", action="store_true", help="print the answer to stderr while it is generated")
    sp.add_argument("--json", action="store_true", help="print a JSON object (text, token_ids, timings)")
    sp.set_defaults(func=cmd_understand)


def _add_generate(sub):
    sp = sub.add_parser("generate", help="text to image with classifier-free guidance")
    _model_args(sp)
    sp.add_argument("--prompt", required=True)
    sp.add_argument("--negative", default="", help="negative prompt (default: the official blank prompt)")
    sp.add_argument("--n", type=_positive_int, default=1, help="images to generate")
    sp.add_argument("--batch", type=_positive_int, default=8,
                    help="images per chunk: memory stays that of one chunk; each chunk is saved when done")
    sp.add_argument("--cfg", type=float, default=5.0, help="guidance weight (official default 5)")
    sp.add_argument("--cfg-until", type=float, default=1.0, help="fraction of the steps that use guidance")
    _sampling_args(sp, 1.0)
    sp.add_argument("--parallel", choices=PARALLEL_MODES, default="off",
                    help="sjd: speculative Jacobi decoding, several tokens per forward pass (the same distribution, "
                         "a different sample); mc-sjd: the same with coupled redrafting (fewer passes)")
    sp.add_argument("--window", type=_positive_int, default=16, help="draft positions per pass with --parallel")
    _image_output_args(sp)
    sp.set_defaults(func=cmd_generate)


def _image_output_args(sp):
    """Where generate and edit write their images, tokens and run manifest."""
    sp.add_argument("--out", required=True, help="output folder for PNGs, tokens.safetensors and janus_run.json")
    sp.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    sp.add_argument("--json", action="store_true")


def _add_edit(sub):
    sp = sub.add_parser("edit", help="instruction editing of images (Janus-4o recipe): text + image -> image")
    _model_args(sp)
    sp.add_argument("--image", nargs="+", required=True, help="reference image(s), in prompt order")
    sp.add_argument("--prompt", required=True, help="the instruction, e.g. 'Turn it into a night scene.'")
    sp.add_argument("--negative", default="", help="negative prompt (default: the recipe's blank row)")
    sp.add_argument("--n", type=_positive_int, default=1, help="edited variants to make")
    sp.add_argument("--batch", type=_positive_int, default=4, help="variants per chunk")
    sp.add_argument("--cfg", type=float, default=5.0, help="guidance weight w (Janus-4o: 5)")
    sp.add_argument("--image-cfg", type=float, default=5.0, help="weight w2 of the SigLIP-only row (Janus-4o: 5)")
    _sampling_args(sp, 1.0)
    _image_output_args(sp)
    sp.set_defaults(func=cmd_edit)


def _add_score(sub):
    sp = sub.add_parser("score", help="CFG log-probabilities of image tokens for a prompt")
    _model_args(sp)
    sp.add_argument("--prompt", required=True)
    sp.add_argument("--negative", default="")
    sp.add_argument("--tokens", required=True, help="token file (safetensors, 'tokens' [B, 24, 24])")
    sp.add_argument("--cfg", type=float, default=5.0)
    sp.add_argument("--temperature", type=float, default=1.0)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_score)


def _add_encode(sub):
    sp = sub.add_parser("encode", help="images to VQ tokens")
    _model_args(sp)
    sp.add_argument("--image", nargs="+", required=True)
    sp.add_argument("--out", required=True, help="token file to write (.safetensors)")
    sp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sp.set_defaults(func=cmd_encode)


def _add_decode(sub):
    sp = sub.add_parser("decode", help="VQ tokens to PNG images")
    _model_args(sp)
    sp.add_argument("--tokens", required=True)
    sp.add_argument("--out", required=True, help="output folder for PNGs and janus_run.json")
    sp.add_argument("--batch", type=_positive_int, default=8, help="images decoded and saved per chunk")
    sp.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    sp.set_defaults(func=cmd_decode)


def _add_caption(sub):
    sp = sub.add_parser("caption", help="caption every image of a folder into name.txt sidecar files",
                        description="Caption a folder of images batch by batch. Each caption is written "
                                    "atomically to name.txt next to its image (or under --out); a killed or "
                                    "interrupted run resumes with --skip-existing. Exit status 1 if some "
                                    "images could not be captioned (listed on stderr and in the summary).")
    sp.add_argument("dir", help="folder holding the images")
    _model_args(sp)
    sp.add_argument("--out", default=None, help="write the caption files here (subfolders mirrored) instead "
                                                "of next to the images")
    sp.add_argument("--batch", type=int, default=4, help="images per batch (more is faster on a GPU)")
    sp.add_argument("--skip-existing", action="store_true", help="leave images that have a caption file "
                                                                  "alone (resume an interrupted run)")
    sp.add_argument("--overwrite", action="store_true", help="replace existing caption files")
    sp.add_argument("--shard", default=None, help="i/n: caption only the i-th of n disjoint parts, so n "
                                                  "processes or machines share a folder (e.g. 1/2 and 2/2)")
    sp.add_argument("--question", default=DEFAULT_QUESTION,
                    help="what to ask about each image; {name} and {folder} become the file's name and folder")
    sp.add_argument("--prefix", default="", help="text put before every caption as typed (trigger words)")
    sp.add_argument("--suffix", default="", help="text put after every caption as typed")
    sp.add_argument("--recursive", action="store_true", help="include images in subfolders")
    sp.add_argument("--extensions", default=",".join(IMAGE_EXTENSIONS), help="image file extensions")
    sp.add_argument("--system-prompt", default=None, help="override the official system prompt ('' for none)")
    sp.add_argument("--max-new-tokens", type=int, default=128)
    _sampling_args(sp, 0.0)
    sp.add_argument("--repetition-penalty", type=float, default=1.0)
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(func=cmd_caption)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="janus-runtime", description="Janus / Janus-Pro without the janus package.")
    p.add_argument("-v", "--verbose", action="store_true", help="log loading and download steps")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_make_tiny, _add_understand, _add_generate, _add_edit, _add_score, _add_encode, _add_decode,
                _add_caption):
        add(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        if hasattr(args, "device"):
            args.device = check_device(args.device, "--device")  # before anything is written or loaded
        return args.func(args) or 0
    except JanusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        run = getattr(args, "run", None)
        print("interrupted (Ctrl-C)" + (f"; {run.status()}" if run else ""), file=sys.stderr)
        return 130
    finally:
        if getattr(args, "run", None) is not None:
            args.run.close()
