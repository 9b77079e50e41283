"""Speculative Jacobi decoding (SJD, MC-SJD) vs one-token-per-pass sampling: forward passes and wall time.

Acceptance depends on how peaked the model's distributions are, and random weights are not like trained
ones, so the gen head's weight is multiplied by a factor s to span a range of per-token entropies (s = 1 is
the random model as drawn; larger s gives lower entropy). For each size and s this reports the mean entropy
of the guided distributions the sequential sample was drawn from (nats per token, from scoring it), forward
passes per image after the prefill (sequential: 575) and wall time per image, the three samplers run one
after another within each run so that machine noise hits them alike.

    python benchmarks/bench_speculative.py [--sizes tiny mid] [--scales 1 4 16 64] [--window 16] [--runs 3]

Writes benchmarks/results/speculative_cpu.json. Real-weight acceptance is not measured here (no weights).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402
from janus_runtime.generation import generate_image_tokens, score_image_tokens  # noqa: E402

MODES = ("off", "sjd", "mc-sjd")


def scaled_model(size: str, text, scale: float, dtype=torch.float32):
    raw = common.official_config(size)
    lm = common.random_components(raw, ("lm",), "cpu", dtype)["lm"]
    lm.gen_head.vision_head.weight.mul_(scale)
    return common.janus_model(raw, text, dtype, lm=lm)


def mean_entropy(model, tokens) -> float:
    """Mean entropy (nats) of the guided distributions at every step of ``tokens`` [1, g, g]."""
    n = tokens[0].numel()
    _, logits = score_image_tokens(model, common.PROMPT, tokens, return_logits_at=range(n))
    logp = logits["cfg"].float().log_softmax(-1)
    return float(-(logp.exp() * logp).sum(-1).mean())


def measure(model, window: int, runs: int) -> dict:
    seconds = {m: [] for m in MODES}
    passes = {m: [] for m in MODES}
    entropy = None
    for run in range(runs):
        for mode in MODES:
            stats = {}
            t0 = time.perf_counter()
            tokens = generate_image_tokens(model, common.PROMPT, n=1, seed=run, parallel=mode, window=window,
                                           stats=stats)
            seconds[mode].append(time.perf_counter() - t0)
            passes[mode].append(stats["forward_passes"])
            if entropy is None and mode == "off":
                entropy = mean_entropy(model, tokens)
    row = {"entropy_nats": entropy, "window": window}
    for mode in MODES:
        row[mode] = {"passes": common.spread(passes[mode]), "seconds": common.spread(seconds[mode])}
        if mode != "off":
            row[mode]["step_compression"] = row["off"]["passes"]["median"] / row[mode]["passes"]["median"]
            row[mode]["wall_speedup"] = row["off"]["seconds"]["median"] / row[mode]["seconds"]["median"]
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"])
    ap.add_argument("--scales", nargs="+", type=float, default=[1, 4, 16, 64])
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speculative_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    text = common.text_processor()
    load = [os.getloadavg()]
    rows = []
    for size in args.sizes:
        for scale in args.scales:
            row = {"size": size, "scale": scale, **measure(scaled_model(size, text, scale), args.window, args.runs)}
            rows.append(row)
            print(f"{size:5s} s={scale:5g} H={row['entropy_nats']:5.2f} nats  seq {row['off']['seconds']['median']:6.2f}s"
                  + "".join(f"  {m}: passes {row[m]['passes']['median']:5.0f} (x{row[m]['step_compression']:.2f}) "
                            f"{row[m]['seconds']['median']:6.2f}s (wall x{row[m]['wall_speedup']:.2f})"
                            for m in MODES[1:]), flush=True)
    load.append(os.getloadavg())
    out = {"cpu": common.cpu_info(), "versions": common.versions(), "threads": torch.get_num_threads(),
           "load_avg_before_after": load, "runs": args.runs, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
