"""Command line: ``python -m janus_runtime`` / ``janus-runtime``.

  make-tiny DIR [--layout official|hf] [--seed S] [--weights safetensors|bin|sharded|sharded-bin]
  understand --model M --image IMG... --question Q [sampling options] [--json]
  generate   --model M --prompt P [--negative N] [--n B] [--seed S] [--cfg W] [--temperature T]
             [--top-k K] [--top-p P] --out DIR
  score      --model M --prompt P --tokens T [--cfg W] [--temperature T] [--json]
  encode     --model M --image IMG... --out tokens.safetensors
  decode     --model M --tokens T --out DIR

Token files are safetensors holding one int64 tensor ``tokens`` [B, 24, 24].
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from .errors import JanusError

log = logging.getLogger("janus_runtime")


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _load(args, components):
    from .model import load_model
    return load_model(args.model, device=args.device or default_device(), dtype=args.dtype, components=components)


def _save_tokens(tokens: torch.Tensor, path: Path):
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"tokens": tokens.detach().to("cpu", torch.int64).contiguous()}, str(path))


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


def _save_pngs(model, tokens, out: Path, stem: str = "image") -> list[str]:
    from PIL import Image

    from .processing import to_uint8_official
    from .image_tokens import decode_tokens
    out.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8_official(decode_tokens(model, tokens)).cpu().numpy()
    paths = []
    for i, arr in enumerate(pixels):
        p = out / f"{stem}_{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    return paths


class _Progress:
    """A terminal progress bar over the 576 generation steps (stderr; silent when not a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, step, total, tokens):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc="generating", unit="tok", file=sys.stderr, leave=False,
                            initial=step)
        self.bar.update(step + 1 - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


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


def cmd_generate(args):
    from .generation import generate_image_tokens
    model = _load(args, ("lm", "vq"))
    progress = _Progress(not args.json and sys.stderr.isatty())
    t0 = time.perf_counter()
    try:
        tokens = generate_image_tokens(model, args.prompt, n=args.n, negative_prompt=args.negative,
                                       cfg=args.cfg, temperature=args.temperature, top_k=args.top_k,
                                       top_p=args.top_p, seed=args.seed, cfg_until=args.cfg_until,
                                       callback=progress)
    finally:
        progress.close()
    t_tokens = time.perf_counter() - t0
    out = Path(args.out)
    _save_tokens(tokens, out / "tokens.safetensors")
    paths = _save_pngs(model, tokens, out)
    result = {"images": paths, "tokens": str(out / "tokens.safetensors"), "seed": args.seed,
              "timings": {"load_s": model.load_seconds, "tokens_s": t_tokens,
                          "decode_s": time.perf_counter() - t0 - t_tokens}}
    print(json.dumps(result) if args.json else "\n".join(paths))


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
    images = [open_image(p) for p in args.image]
    model = _load(args, ("vq",))
    tokens = encode_images(model, images)
    _save_tokens(tokens, Path(args.out))
    print(f"wrote tokens {list(tokens.shape)} to {args.out}")


def cmd_decode(args):
    tokens = _read_tokens(args.tokens)
    model = _load(args, ("vq",))
    print("\n".join(_save_pngs(model, tokens, Path(args.out))))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="janus-runtime", description="Janus / Janus-Pro without the janus package.")
    p.add_argument("-v", "--verbose", action="store_true", help="log loading and download steps")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp):
        sp.add_argument("--model", required=True, help="model folder, or a Hugging Face repo id to download")
        sp.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
        sp.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, else fp32), bf16, fp16, fp32")

    def sampling_args(sp, temperature):
        sp.add_argument("--temperature", type=float, default=temperature, help="0 = greedy/argmax")
        sp.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
        sp.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
        sp.add_argument("--seed", type=int, default=0)

    sp = sub.add_parser("make-tiny", help="write a tiny random-weight checkpoint in a real layout")
    sp.add_argument("dir")
    sp.add_argument("--layout", choices=["official", "hf"], default="official")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--weights", choices=["safetensors", "bin", "sharded", "sharded-bin"], default="safetensors")
    sp.set_defaults(func=cmd_make_tiny)

    sp = sub.add_parser("understand", help="answer a question about images")
    model_args(sp)
    sp.add_argument("--image", nargs="*", default=[], help="image file(s), in placeholder order")
    sp.add_argument("--question", required=True)
    sp.add_argument("--system-prompt", default=None, help="override the official system prompt ('' for none)")
    sp.add_argument("--max-new-tokens", type=int, default=512)
    sampling_args(sp, 0.0)
    sp.add_argument("--repetition-penalty", type=float, default=1.0)
    sp.add_argument("--stream", action="store_true", help="print the answer to stderr while it is generated")
    sp.add_argument("--json", action="store_true", help="print a JSON object (text, token_ids, timings)")
    sp.set_defaults(func=cmd_understand)

    sp = sub.add_parser("generate", help="text to image with classifier-free guidance")
    model_args(sp)
    sp.add_argument("--prompt", required=True)
    sp.add_argument("--negative", default="", help="negative prompt (default: the official blank prompt)")
    sp.add_argument("--n", type=int, default=1, help="images to generate")
    sp.add_argument("--cfg", type=float, default=5.0, help="guidance weight (official default 5)")
    sp.add_argument("--cfg-until", type=float, default=1.0, help="fraction of the steps that use guidance")
    sampling_args(sp, 1.0)
    sp.add_argument("--out", required=True, help="output folder for PNGs and tokens.safetensors")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_generate)

    sp = sub.add_parser("score", help="CFG log-probabilities of image tokens for a prompt")
    model_args(sp)
    sp.add_argument("--prompt", required=True)
    sp.add_argument("--negative", default="")
    sp.add_argument("--tokens", required=True, help="token file (safetensors, 'tokens' [B, 24, 24])")
    sp.add_argument("--cfg", type=float, default=5.0)
    sp.add_argument("--temperature", type=float, default=1.0)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_score)

    sp = sub.add_parser("encode", help="images to VQ tokens")
    model_args(sp)
    sp.add_argument("--image", nargs="+", required=True)
    sp.add_argument("--out", required=True, help="token file to write (.safetensors)")
    sp.set_defaults(func=cmd_encode)

    sp = sub.add_parser("decode", help="VQ tokens to PNG images")
    model_args(sp)
    sp.add_argument("--tokens", required=True)
    sp.add_argument("--out", required=True, help="output folder")
    sp.set_defaults(func=cmd_decode)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.func(args)
    except JanusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
