"""Captioning a folder: throughput, memory against folder size, and the same job from every runner.

    python benchmarks/bench_caption.py                        # all sections (CPU, ~30 min on 2 shared cores)
    python benchmarks/bench_caption.py --sections throughput  # images/s, tiny and mid-size models
    python benchmarks/bench_caption.py --sections rss         # peak RSS of the CLI for 50 vs 500 images
    python benchmarks/bench_caption.py --sections e2e         # 200 images: CLI, kill + resume, 2 shards,
                                                              # the ComfyUI node, Ray (2 actors)

Every process computes with one thread (OMP_NUM_THREADS=1, as Ray gives a 1-CPU actor), so the runners do
the same arithmetic and their captions can be compared file by file. Writes benchmarks/results/caption_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)

from janus_runtime import load_model  # noqa: E402
from janus_runtime.captioner import TMP_SUFFIX, CaptionOptions, caption_tasks, plan_captions  # noqa: E402
from janus_runtime.tiny import TINY_OFFICIAL_CONFIG, make_tiny, official_state_dict, save_weights, write_tokenizer  # noqa: E402,E501

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TOKENS = 8  # max_new_tokens: random weights rarely stop early, so every caption is this long


def make_images(folder: Path, n: int, seed: int = 0):
    """n synthetic photos: gradients with a few shapes, 200-700 px, half PNG and half JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(200, 700, 2))
        base = np.linspace(rng.integers(0, 255, 3), rng.integers(0, 255, 3), w, dtype=np.float32)
        im = Image.fromarray(np.broadcast_to(base, (h, w, 3)).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(3):
            x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            box = [x, y, x + int(rng.integers(10, w // 2)), y + int(rng.integers(10, h // 2))]
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        im.save(folder / f"img_{i:04d}.{'png' if i % 2 == 0 else 'jpg'}")


def mid_checkpoint(folder: Path) -> Path:
    """A random checkpoint of a mid-size model: LM 1024 x 8 layers (vocab 102400), ViT 512 x 6 layers."""
    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(json.dumps(TINY_OFFICIAL_CONFIG))
    cfg["language_config"].update(hidden_size=1024, num_hidden_layers=8, num_attention_heads=16,
                                  num_key_value_heads=16, intermediate_size=2816, vocab_size=102400)
    cfg["vision_config"]["params"].update(width=512, layers=6, heads=8)
    cfg["aligner_config"]["params"].update(input_dim=512, n_embed=1024)
    cfg["gen_aligner_config"]["params"]["n_embed"] = 1024
    cfg["gen_head_config"]["params"].update(n_embed=1024, image_token_embed=1024)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    from janus_runtime.tiny import PREPROCESSOR, PROCESSOR
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    (folder / "processor_config.json").write_text(json.dumps(PROCESSOR))
    write_tokenizer(folder)
    save_weights(official_state_dict(cfg), folder)
    return folder


def captions(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.txt"))}


def leftovers(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.name.endswith(TMP_SUFFIX))


def cli(*args, wait=True):
    cmd = [sys.executable, "-m", "janus_runtime", "caption", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not wait:
        return proc
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode()
    return json.loads(out) if out.strip().startswith("{") else out, usage.ru_maxrss * 1024, status


def same(a: dict, b: dict) -> str:
    equal = sum(1 for k in a if b.get(k) == a[k])
    return f"{equal}/{len(a)} identical" + ("" if set(a) == set(b) else f" (files differ: {len(a)} vs {len(b)})")


def throughput(work: Path, tiny: Path, results: dict):
    mid = mid_checkpoint(work / "mid")
    for name, folder, n, batches in (("tiny", tiny, 32, (1, 4)), ("mid", mid, 8, (1, 4))):
        make_images(work / f"tp_{name}", n)
        model = load_model(folder, device="cpu", dtype="fp32", components=("lm", "vision"))
        for b in batches:
            plan = plan_captions(work / f"tp_{name}", out_dir=work / f"tp_{name}_out_{b}", existing="overwrite")
            options = CaptionOptions(batch_size=b, max_new_tokens=TOKENS)
            list(caption_tasks(model, plan.tasks[:b], options))  # warm-up
            t0 = time.perf_counter()
            done = sum(r.status == "written" for r in caption_tasks(model, plan.tasks, options))
            dt = time.perf_counter() - t0
            row = {"model": name, "batch": b, "images": done, "seconds": round(dt, 2),
                   "images_per_s": round(done / dt, 3), "max_new_tokens": TOKENS}
            results.setdefault("throughput", []).append(row)
            print(row, flush=True)
        del model


def rss(work: Path, tiny: Path, results: dict):
    for n in (50, 500):
        make_images(work / f"rss_{n}", n, seed=1)
        t0 = time.perf_counter()
        summary, peak, status = cli(work / f"rss_{n}", "--model", tiny, "--batch", 4, "--max-new-tokens", 4,
                                    "--json", "--overwrite")
        row = {"images": n, "peak_rss_mib": round(peak / 2**20, 1), "written": summary["written"],
               "wall_s": round(time.perf_counter() - t0, 1), "exit": status}
        results.setdefault("rss", []).append(row)
        print(row, flush=True)


def e2e(work: Path, tiny: Path, results: dict):
    images = work / "e2e"
    make_images(images, 200, seed=2)
    common = ["--model", tiny, "--batch", 4, "--max-new-tokens", TOKENS, "--json"]
    out = {}
    summary, _, _ = cli(images, "--out", work / "ref", *common)
    ref = captions(work / "ref")
    out["cli"] = {"written": summary["written"], "images_per_s": summary["images_per_s"], "files": len(ref)}

    killed = work / "killed"
    shutil.copytree(images, killed)
    proc = cli(killed, *common, wait=False)
    while len(list(killed.glob("*.txt"))) < 80 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(list(killed.glob("*.txt")))
    summary, _, _ = cli(killed, "--skip-existing", *common)
    got = {k: v for k, v in captions(killed).items()}
    out["kill_resume"] = {"captions_at_kill": before, "resumed_written": summary["written"],
                          "skipped": summary["skipped"], "files": len(got), "vs_cli": same(ref, got),
                          "temp_files_left": leftovers(killed)}

    t0 = time.perf_counter()
    procs = [cli(images, "--out", work / "sharded", "--shard", f"{i}/2", *common, wait=False) for i in (1, 2)]
    parts = [json.loads(p.communicate()[0]) for p in procs]
    dt = time.perf_counter() - t0
    got = captions(work / "sharded")
    out["shards_2"] = {"written": [p["written"] for p in parts], "wall_s_incl_load": round(dt, 1),
                       "images_per_s_incl_load": round(200 / dt, 3), "vs_cli": same(ref, got)}

    # the node in the test host (tests/comfy_host.py: ComfyUI's stand-ins unless JANUS_COMFYUI names a tree),
    # the pack imported as ComfyUI imports it (tools/comfy_import.py)
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tools")]
    import comfy_host
    comfy_host.setup()
    import folder_paths
    folder_paths.models_dir = str(work / "models")
    shutil.copytree(tiny, work / "models" / "janus" / "Janus-Tiny", dirs_exist_ok=True)
    folder_paths.get_input_directory = lambda: str(work)
    nodes = comfy_host.load_pack().NODE_CLASS_MAPPINGS  # registers models/janus, as at ComfyUI's start-up
    handle = nodes["JanusModelLoader"]().load("Janus-Tiny", "fp32", "same as compute")["result"][0]
    node = nodes["JanusCaptionFolder"]()
    t0 = time.perf_counter()
    res = node.caption(handle, "e2e", CaptionOptions.question, "overwrite", 4, TOKENS, 0.0, 0, 1.0, 0,
                       output_folder=str(work / "node"))
    dt = time.perf_counter() - t0
    got = captions(work / "node")
    out["node"] = {"summary": res["result"][0].splitlines()[1], "captions_output": len(res["result"][1]),
                   "images_per_s": round(200 / dt, 3), "vs_cli": same(ref, got)}

    try:
        import ray
    except ImportError:
        out["ray"] = "not installed"
    else:
        from janus_runtime.distributed import caption_with_ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        t0 = time.perf_counter()
        summary = caption_with_ray(tiny, images, out_dir=work / "ray", jsonl=work / "ray.jsonl", actors=2,
                                   options=CaptionOptions(batch_size=4, max_new_tokens=TOKENS))
        dt = time.perf_counter() - t0
        got = captions(work / "ray")
        rows = (work / "ray.jsonl").read_text().splitlines()
        out["ray_2_actors"] = {"written": summary.written, "jsonl_rows": len(rows),
                               "wall_s_incl_start": round(dt, 1), "images_per_s_incl_start": round(200 / dt, 3),
                               "vs_cli": same(ref, got)}
        ray.shutdown()
    results["e2e_200"] = out
    print(json.dumps(out, indent=1), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections", default="throughput,rss,e2e")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_caption_"))
    tiny = work / "tiny"
    if not (tiny / "config.json").is_file():
        make_tiny(tiny)
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
                          f"{os.getloadavg()[0]:.1f} at start", "torch": torch.__version__, "threads": 1,
               "date": time.strftime("%Y-%m-%d %H:%M")}
    for section in args.sections.split(","):
        {"throughput": throughput, "rss": rss, "e2e": e2e}[section](work, tiny, results)
    path = ROOT / "benchmarks" / "results" / "caption_cpu.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**old, **results}, indent=1) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
