"""Weight and KV-cache bytes of Janus-Pro-1B and -7B, counted from the modules (meta device, no allocation).

These are the README's VRAM estimates, and the bytes one generation step must read (decoder layers, final
norm, gen head, gen aligner), which divided by a GPU's memory bandwidth give the per-step floor. Measured
peaks and step times on a GPU come from benchmarks/gpu_check.py.

    python benchmarks/vram_estimate.py            # prints a table, writes benchmarks/results/vram_estimate.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from janus_runtime.config import parse_config  # noqa: E402

PROMPT_TOKENS = 24  # a typical generation prompt with its template; the cache is rounded up to 8 slots


def estimate(size: str) -> dict:
    cfg = parse_config(common.official_config(size, full_vision=True, full_vq=True))
    modules = common.build_components(cfg, ("lm", "vision", "vq"), torch.bfloat16, torch.nn)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}
    layer_matrices = sum(p.numel() for n, p in modules["lm"].named_parameters() if ".layers." in n and p.ndim == 2)
    bf16 = 2 * sum(params.values())
    fp8 = bf16 - layer_matrices  # those matrices stored in 1 byte instead of 2
    c = cfg.language
    slots = (PROMPT_TOKENS + cfg.num_image_tokens + 7) // 8 * 8
    kv_per_image = 2 * c.num_hidden_layers * 2 * slots * c.num_key_value_heads * c.head_dim * 2  # k+v, 2 rows, bf16
    lm = modules["lm"]
    step = [lm.language_model.model.layers, lm.language_model.model.norm, lm.gen_head, lm.gen_aligner]
    read = 2 * sum(p.numel() for m in step for p in m.parameters())
    return {"params": params, "weights_bf16_bytes": bf16, "weights_fp8_layers_bytes": fp8,
            "kv_cache_bytes_per_image": kv_per_image, "cache_slots": slots, "read_per_step_bf16_bytes": read,
            "floor_ms_per_step_at_4.3TBps": read / 4.3e12 * 1e3,
            "floor_s_per_image_at_4.3TBps": read / 4.3e12 * cfg.num_image_tokens}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "vram_estimate.json"))
    args = ap.parse_args(argv)
    rows = {size: estimate(size) for size in ("pro-1b", "pro-7b")}
    print(f"{'model':7} {'params (B)':>10} {'bf16 GB':>8} {'fp8 GB':>7} {'KV/image GB':>12} {'read/step GB':>13}"
          f" {'floor ms/step, s/image @4.3TB/s':>33}")
    for size, r in rows.items():
        print(f"{size:7} {sum(r['params'].values()) / 1e9:10.2f} {r['weights_bf16_bytes'] / 1e9:8.2f} "
              f"{r['weights_fp8_layers_bytes'] / 1e9:7.2f} {r['kv_cache_bytes_per_image'] / 1e9:12.3f} "
              f"{r['read_per_step_bf16_bytes'] / 1e9:13.2f} {r['floor_ms_per_step_at_4.3TBps']:22.2f} "
              f"{r['floor_s_per_image_at_4.3TBps']:10.2f}")
    Path(args.out).write_text(json.dumps({"command": "python benchmarks/vram_estimate.py", "models": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
