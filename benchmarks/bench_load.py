"""Peak host memory while loading a checkpoint, against its size on disk.

Writes a mid-size random checkpoint (Llama hidden 1024 x 8 layers, vocab 102400; bf16, like the real files)
in several file forms, then loads each in a fresh subprocess and reads the process's peak RSS
(VmHWM from /proc/self/status: unlike ru_maxrss it is not inherited from the parent across fork/exec). The baseline (python + torch + transformers + janus_runtime imported, tokenizer loaded) is
measured the same way and subtracted.

    python benchmarks/bench_load.py [--repeats 5] [--keep DIR]

Each round loads every case once (baseline included), in a fresh subprocess each; every figure is the
min / median / max over the rounds. Prints a table and writes benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
import torch
from janus_runtime import load_model
from janus_runtime.processing import TextProcessor
TextProcessor({folder!r})
if {load}:
    model = load_model({folder!r}, dtype={dtype!r})
    params = sum(p.numel() * p.element_size() for m in (model.lm, model.vision, model.vq) for p in m.parameters())
    # read every weight once, as inference does: memory-mapped pages only count once they are touched
    touched = sum(float(p.sum()) for m in (model.lm, model.vision, model.vq) for p in m.parameters())
else:
    params = 0
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"peak_rss": int(hwm.split()[1]) * 1024, "param_bytes": params}}))
"""


def run_child(folder: Path, load: bool, dtype: str = "bf16") -> dict:
    code = CHILD.format(root=str(ROOT), folder=str(folder), load=load, dtype=dtype)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_checkpoints(base: Path) -> dict:
    from janus_runtime.tiny import TINY_OFFICIAL_CONFIG, official_state_dict, save_weights, write_tokenizer
    cfg = json.loads(json.dumps(TINY_OFFICIAL_CONFIG))
    cfg["language_config"].update(hidden_size=1024, num_hidden_layers=8, num_attention_heads=16,
                                  num_key_value_heads=16, intermediate_size=2816, vocab_size=102400)
    for name in ("aligner_config", "gen_aligner_config"):
        cfg[name]["params"]["n_embed"] = 1024
    cfg["gen_head_config"]["params"].update(n_embed=1024, image_token_embed=1024)
    sd = official_state_dict(cfg, seed=0)
    folders = {}
    for form in ("safetensors", "bin", "sharded"):
        folder = base / form
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(cfg))
        write_tokenizer(folder)
        save_weights(sd, folder, form)
        folders[form] = folder
    return folders


def weight_file_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix in (".safetensors", ".bin"))


def spread(values) -> dict:
    values = list(values)
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


CASES = (("safetensors", "bf16"), ("bin", "bf16"), ("sharded", "bf16"), ("safetensors", "fp32"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", help="write the checkpoints here and keep them")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    import torch
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
           "torch": torch.__version__, "loadavg_start": list(os.getloadavg()),
           "command": "python benchmarks/bench_load.py --repeats %d" % args.repeats}
    baselines, children, seconds = [], {c: [] for c in CASES}, {c: [] for c in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        folders = write_checkpoints(base)
        disk = {form: weight_file_bytes(folders[form]) for form in folders}
        for _ in range(args.repeats):
            baselines.append(run_child(folders["safetensors"], load=False)["peak_rss"])
            for case in CASES:
                t = time.perf_counter()
                children[case].append(run_child(folders[case[0]], load=True, dtype=case[1]))
                seconds[case].append(time.perf_counter() - t)
    baseline = statistics.median(baselines)
    rows = []
    for form, dtype in CASES:
        runs = children[(form, dtype)]
        params = runs[0]["param_bytes"]
        extra = [r["peak_rss"] - baseline for r in runs]
        rows.append({"form": form, "dtype": dtype, "file_bytes": disk[form], "param_bytes": params,
                     "peak_rss": spread(r["peak_rss"] for r in runs), "peak_over_baseline": spread(extra),
                     "ratio_to_file": spread(x / disk[form] for x in extra),
                     "ratio_to_params": spread(x / params for x in extra), "seconds": spread(seconds[(form, dtype)])})
    env["loadavg_end"] = list(os.getloadavg())
    print(f"baseline (imports + tokenizer): {baseline / 2**20:.0f} MiB (min {min(baselines) / 2**20:.0f}, "
          f"max {max(baselines) / 2**20:.0f})")
    print(f"{'form':12} {'dtype':5} {'file MB':>8} {'params MB':>9} {'peak-base MB (med)':>19} {'/file min/med/max':>20}")
    for r in rows:
        q = r["ratio_to_file"]
        print(f"{r['form']:12} {r['dtype']:5} {r['file_bytes'] / 1e6:8.0f} {r['param_bytes'] / 1e6:9.0f} "
              f"{r['peak_over_baseline']['median'] / 1e6:19.0f} {q['min']:6.2f} {q['median']:6.2f} {q['max']:6.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps({"environment": env, "baseline_rss": spread(baselines),
                                               "results": rows}, indent=1))
    print(f"\nwrote {out / 'load.json'}")


if __name__ == "__main__":
    main()
