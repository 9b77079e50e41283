"""Generation speed on the CPU: our sampler in fp32 and in bf16 vs the official Janus loop, side by side.

The official loop (generation_inference.py of deepseek-ai/Janus @ 1daa72fa) runs transformers' LlamaForCausalLM with its default
cache, one forward per step, interleaved cond/uncond rows, gen_head, CFG, softmax and multinomial. Our LM
is loaded from that LlamaForCausalLM's own state dict (our loader fuses q/k/v and gate/up; every other
tensor is shared), with the same random gen heads. The bf16 model holds the same weights rounded to bf16.

Protocol: one short warm-up per loop, then ``--rounds`` (at least 5) rounds in which every loop generates
one batch, in an order rotated each round, so that machine noise hits all loops alike; every figure is
reported as min / median / max over the rounds, with the load average before and after.

    python benchmarks/bench_generate.py                        # tiny (batch 1, 4) and mid (batch 1)
    python benchmarks/bench_generate.py --sizes tiny --grid 12 # shorter image grid (144 steps) to save time
    python benchmarks/bench_generate.py --sizes mid --steps 32 # time the first 32 steps only

Prints a table and writes benchmarks/results/generate_cpu.json. GPU figures: benchmarks/gpu_check.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Cancelled, matvec_bandwidth, official_config, run_official, run_ours, spread  # noqa: E402

LOOPS = ("ours_fp32", "ours_bf16", "official_fp32")


def bf16_copy(model):
    """Our LM holding ``model``'s weights rounded to bf16 (what dtype="bf16" loads)."""
    lm = common.build_components(model.config, ("lm",), torch.bfloat16, torch.nn)["lm"]
    lm.load_state_dict({k: v.to(torch.bfloat16) for k, v in model.lm.state_dict().items()}, strict=True,
                       assign=True)
    lm.eval().requires_grad_(False)
    return common.JanusModel(config=model.config, folder=model.folder, text=model.text, dtype=torch.bfloat16,
                             lm=lm)


def measure(size: str, batch: int, models: dict, rounds: int, steps: int | None) -> dict:
    runs = {"ours_fp32": lambda: run_ours(models["ours"], batch, steps=steps),
            "ours_bf16": lambda: run_ours(models["ours_bf16"], batch, steps=steps),
            "official_fp32": lambda: run_official(models["ours"], models["hf"], batch, steps=steps)}
    try:  # warm-up: a few steps of each
        run_ours(models["ours"], batch, cancel_at=4)
    except Cancelled:
        pass
    try:
        run_ours(models["ours_bf16"], batch, cancel_at=4)
    except Cancelled:
        pass
    run_official(models["ours"], models["hf"], batch, steps=5)
    results = {name: [] for name in LOOPS}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        order = LOOPS[r % len(LOOPS):] + LOOPS[:r % len(LOOPS)]
        for name in order:
            res = runs[name]()
            res.pop("tokens")
            results[name].append(res)
        loads.append(os.getloadavg()[0])
        print(f"  {size} B={batch} round {r}: " + ", ".join(f"{n} {results[n][-1]['step_ms']:.2f}" for n in LOOPS)
              + " ms/step", flush=True)
    row = {"model": size, "batch": batch, "rounds": rounds, "steps_per_image": models["ours"].config.num_image_tokens,
           "steps_timed": steps or models["ours"].config.num_image_tokens,
           "weights_read_per_step_bytes": {"fp32": common.lm_weight_bytes(models["ours"]),
                                           "bf16": common.lm_weight_bytes(models["ours_bf16"])},
           "loadavg_1min_per_round": loads}
    for name in LOOPS:
        row[name] = {"step_ms": spread(x["step_ms"] for x in results[name]),
                     "s_per_image": spread(x["total_s"] / batch for x in results[name]) if not steps else None,
                     "prefill_ms": spread(x["prefill_s"] * 1e3 for x in results[name]),
                     "runs_step_ms": [x["step_ms"] for x in results[name]]}
    # ratios per round (the loops of one round ran back to back), then their spread
    for a, b, key in (("official_fp32", "ours_fp32", "speedup_fp32_vs_official"),
                      ("official_fp32", "ours_bf16", "speedup_bf16_vs_official"),
                      ("ours_fp32", "ours_bf16", "speedup_bf16_vs_fp32")):
        row[key] = spread(x["step_ms"] / y["step_ms"] for x, y in zip(results[a], results[b]))
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, nargs="+", help="default: 1 4 for tiny, 1 for mid")
    ap.add_argument("--grid", type=int, default=24, help="image token grid side (24 = the real 576 steps)")
    ap.add_argument("--steps", type=int, help="time only the first STEPS steps of each image (no s/image)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "generate_cpu.json"))
    args = ap.parse_args(argv)
    if args.rounds < 5:
        print("note: fewer than 5 rounds; the published protocol uses at least 5")
    device = torch.device("cpu")
    env = {**common.versions(), **common.cpu_info(), "device": "cpu", "grid": args.grid,
           "command": "python benchmarks/bench_generate.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    env["matvec_bandwidth_GBps"] = {str(dt).replace("torch.", ""): matvec_bandwidth(device, dt) / 1e9
                                    for dt in (torch.float32, torch.bfloat16)}
    text = common.text_processor()
    rows = []
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)

    def save():
        env["loadavg_end"] = list(os.getloadavg())
        path.write_text(json.dumps({"environment": env, "results": rows}, indent=1))
    for size in args.sizes:
        cfg_raw = official_config(size, image_size=16 * args.grid)
        models = common.models_on_shared_weights(cfg_raw, text, device, torch.float32)
        models["ours_bf16"] = bf16_copy(models["ours"])
        for batch in args.batches or ((1, 4) if size == "tiny" else (1,)):
            row = measure(size, batch, models, args.rounds, args.steps)
            for dt in ("fp32", "bf16"):
                name = f"ours_{dt}"
                achieved = row["weights_read_per_step_bytes"][dt] / (row[name]["step_ms"]["median"] / 1e3)
                row[name]["weights_GBps"] = achieved / 1e9
                row[name]["of_matvec_bandwidth"] = achieved / (env["matvec_bandwidth_GBps"][
                    "float32" if dt == "fp32" else "bfloat16"] * 1e9)
            rows.append(row)
            save()
        del models
    save()
    print(f"\n{'model':5} {'B':>2} {'loop':14} {'ms/step min/med/max':>24} {'s/image med':>12}")
    for r in rows:
        for name in LOOPS:
            s = r[name]["step_ms"]
            per_image = r[name]["s_per_image"]["median"] if r[name]["s_per_image"] else float("nan")
            print(f"{r['model']:5} {r['batch']:>2} {name:14} {s['min']:7.2f} {s['median']:7.2f} {s['max']:7.2f}"
                  f" {per_image:12.3f}")
        for key in ("speedup_fp32_vs_official", "speedup_bf16_vs_official", "speedup_bf16_vs_fp32"):
            s = r[key]
            print(f"      {key}: {s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f}")
    print(f"load average: {env['loadavg']} -> {env['loadavg_end']}; wrote {path}")


if __name__ == "__main__":
    main()
