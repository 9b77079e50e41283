"""bf16 or fp32 on this CPU? The decode step and its weight-read pattern, side by side, many short rounds.

For ``dtype="auto"`` on the CPU (issue 14): a decode step at one token per image reads every weight once,
so bf16 (half the bytes) can only win where the CPU computes bf16 natively (avx512_bf16 / AMX) and the
per-step overhead does not dominate. Measured per round, alternating the dtypes:

* matrix-vector: [2, 1024] x [16384, 1024]^T, the shape of a decoder's per-step matmuls (weight GB/s);
* our decode step (``generate_image_tokens``, CFG batch of 2 rows) on the tiny and the mid-size model with
  the same weights in fp32 and in bf16, timed over ``--steps`` steps after the prompt.

    python benchmarks/bench_cpu_dtype.py [--rounds 7] [--steps 8]

Prints the per-round bf16/fp32 speed ratios (min / median / max) and writes benchmarks/results/cpu_dtype.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from bench_generate import bf16_copy  # noqa: E402


def matvec_seconds(w, x, reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        x @ w.t()
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cpu_dtype.json"))
    args = ap.parse_args(argv)
    env = {**common.versions(), **common.cpu_info(),
           "command": "python benchmarks/bench_cpu_dtype.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    try:  # private but long-standing torch probes of native bf16 support
        env["torch_avx512_bf16"] = bool(torch.cpu._is_avx512_bf16_supported())
        env["torch_amx_tile"] = bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        pass
    out = {"environment": env, "results": {}}

    # matrix-vector, alternating dtypes
    g = torch.Generator().manual_seed(0)
    w32 = torch.randn(16384, 1024, generator=g)
    x32 = torch.randn(2, 1024, generator=g)
    w16, x16 = w32.to(torch.bfloat16), x32.to(torch.bfloat16)
    for w, x in ((w32, x32), (w16, x16)):
        matvec_seconds(w, x, 3)
    gbps = {"float32": [], "bfloat16": []}
    for _ in range(args.rounds):
        for name, w, x in (("float32", w32, x32), ("bfloat16", w16, x16)):
            gbps[name].append(w.numel() * w.element_size() * 20 / matvec_seconds(w, x, 20) / 1e9)
    out["results"]["matvec"] = {"weight_GBps": {k: common.spread(v) for k, v in gbps.items()},
                                "bf16_speedup": common.spread(b / a for a, b in zip(gbps["float32"], gbps["bfloat16"]))}
    print("matvec weight GB/s fp32 %(float32)s bf16 %(bfloat16)s" % {k: round(v["median"], 2) for k, v in
                                                                     out["results"]["matvec"]["weight_GBps"].items()})
    text = common.text_processor()
    for size in args.sizes:
        cfg = common.official_config(size)
        fp32 = common.janus_model(cfg, text, torch.float32, **common.random_components(cfg, ("lm",), "cpu",
                                                                                       torch.float32))
        models = {"float32": fp32, "bfloat16": bf16_copy(fp32)}
        for m in models.values():
            common.run_ours(m, 1, steps=3)  # warm-up
        steps = {k: [] for k in models}
        for r in range(args.rounds):
            order = list(models) if r % 2 == 0 else list(models)[::-1]
            for name in order:
                steps[name].append(common.run_ours(models[name], 1, steps=args.steps + 1)["step_ms"])
        out["results"][size] = {"step_ms": {k: common.spread(v) for k, v in steps.items()},
                                "bf16_speedup": common.spread(a / b for a, b in zip(steps["float32"], steps["bfloat16"])),
                                "weights_read_per_step_bytes": {k: common.lm_weight_bytes(m) for k, m in models.items()}}
        s = out["results"][size]
        print(f"{size}: ms/step fp32 {s['step_ms']['float32']['median']:.2f} bf16 {s['step_ms']['bfloat16']['median']:.2f}"
              f"; bf16 speed-up {s['bf16_speedup']['min']:.2f} / {s['bf16_speedup']['median']:.2f} / "
              f"{s['bf16_speedup']['max']:.2f}", flush=True)
        del models, fp32
    env["loadavg_end"] = list(os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"load average {env['loadavg']} -> {env['loadavg_end']}; wrote {args.out}")


if __name__ == "__main__":
    main()
