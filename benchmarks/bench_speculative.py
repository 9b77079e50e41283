"""Speculative Jacobi decoding vs one-token-per-pass sampling: forward passes per image and wall time.

Acceptance depends on how peaked the model's distributions are, and random weights are not like trained
ones, so the gen head's logits are scaled by a factor s to span a range of per-token entropies (s = 1 is
the random model as drawn; larger s gives lower entropy). For each size and s this reports the mean entropy
of the sampled distributions (nats per token, from scoring the sequential samples), forward passes per
image (sequential: 575 after the prefill) and wall time per image, both samplers interleaved run by run.

    python benchmarks/bench_speculative.py [--sizes tiny mid] [--scales 1 4 16 64] [--window 16] [--runs 3]

Writes benchmarks/results/speculative_cpu.json. Real-weight acceptance is not measured here (no weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from janus_runtime.config import parse_config  # noqa: E402
from janus_runtime.generation import generate_image_tokens, score_image_tokens  # noqa: E402
from janus_runtime.model import JanusModel, build_components  # noqa: E402
from janus_runtime.processing import TextProcessor  # noqa: E402
from janus_runtime.tiny import TINY_OFFICIAL_CONFIG, make_tiny  # noqa: E402

PROMPT = "A red circle and a yellow triangle on a blue gradient background."
SIZES = {"tiny": (64, 2, 4, 176, 1024), "mid": (1024, 8, 16, 2816, 102400)}  # hidden, layers, heads, inter, vocab


def random_lm(size: str, text_dir: Path, scale: float, seed: int = 0) -> JanusModel:
    hidden, layers, heads, inter, vocab = SIZES[size]
    raw = json.loads(json.dumps(TINY_OFFICIAL_CONFIG))
    raw["language_config"].update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                  num_key_value_heads=heads, intermediate_size=inter, vocab_size=vocab)
    for name in ("aligner_config", "gen_aligner_config"):
        raw[name]["params"]["n_embed"] = hidden
    raw["gen_head_config"]["params"].update(n_embed=hidden, image_token_embed=hidden)
    cfg = parse_config(raw)
    lm = build_components(cfg, ("lm",), torch.float32, torch.nn)["lm"].to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif p.ndim >= 2:
                p.normal_(0, p.shape[-1] ** -0.5, generator=g)
            else:
                p.normal_(0, 0.02, generator=g)
        lm.gen_head.vision_head.weight.mul_(scale)
    return JanusModel(config=cfg, folder=text_dir, text=TextProcessor(text_dir), dtype=torch.float32,
                      lm=lm.eval().requires_grad_(False))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["tiny", "mid"])
    ap.add_argument("--scales", nargs="+", type=float, default=[1, 4, 16, 64])
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speculative_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    text_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "janus-bench-tiny"
    if not (text_dir / "config.json").is_file():
        make_tiny(text_dir)
    rows = []
    for size in args.sizes:
        for scale in args.scales:
            model = random_lm(size, text_dir, scale)
            seq_t, sjd_t, passes = [], [], []
            entropy = None
            for run in range(args.runs):
                t0 = time.perf_counter()
                tokens = generate_image_tokens(model, PROMPT, n=1, seed=run)
                seq_t.append(time.perf_counter() - t0)
                st = {}
                t0 = time.perf_counter()
                generate_image_tokens(model, PROMPT, n=1, seed=run, parallel="sjd", window=args.window, stats=st)
                sjd_t.append(time.perf_counter() - t0)
                passes.append(st["forward_passes"])
                if entropy is None:  # mean entropy of the distributions the sequential sample was drawn from
                    _, logits = score_image_tokens(model, PROMPT, tokens, return_logits_at=range(576))
                    p = logits["cfg"].float().softmax(-1)
                    entropy = float(-(p * p.clamp_min(1e-30).log()).sum(-1).mean())
            row = {"size": size, "scale": scale, "entropy_nats": entropy, "window": args.window,
                   "passes_per_image": {"min": min(passes), "median": statistics.median(passes), "max": max(passes)},
                   "compression": 575 / statistics.median(passes),
                   "seq_s": {"min": min(seq_t), "median": statistics.median(seq_t), "max": max(seq_t)},
                   "sjd_s": {"min": min(sjd_t), "median": statistics.median(sjd_t), "max": max(sjd_t)},
                   "speedup_median": statistics.median(seq_t) / statistics.median(sjd_t)}
            rows.append(row)
            print(f"{size:5s} s={scale:5g} H={entropy:6.2f} nats  passes {statistics.median(passes):6.1f} "
                  f"(x{row['compression']:.2f})  seq {row['seq_s']['median']:.2f}s  sjd {row['sjd_s']['median']:.2f}s"
                  f"  wall x{row['speedup_median']:.2f}", flush=True)
    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "threads": torch.get_num_threads(), "load_avg": os.getloadavg(), "runs": args.runs, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
