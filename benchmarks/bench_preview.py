"""Live-preview cost: image generation with no preview vs the node's previews, side by side, interleaved.

What Janus Generate does per step (a progress callback), plus, every ``--every`` steps, the preview it hands
to ComfyUI, JPEG-encoded as ComfyUI's server does before sending it:
  none        the callback only (preview_every 0)
  table       the codebook colour table: a lookup of the tokens so far and a 16x nearest upscale (the default,
              every ``--every`` = 24 steps)
  decoder     the full VQ decode of the finished rows every 48 steps (the previous default, still an option;
              tiny only: on the real-size VQ each run would take minutes)
The colour table is fitted once per model before the runs; its one-off cost is reported separately.

    python benchmarks/bench_preview.py [--sizes tiny mid] [--runs 5] [--every 24]   # one process per size

"tiny" is the tiny checkpoint (its VQ has 32 base channels). "mid" is a 1024 x 8-layer LM (random weights,
as in bench_generate.py) with a VQ of the real size (128 base channels, random weights), so the colour
table's one-off fit costs what it costs for Janus-Pro. Prints a table; writes benchmarks/results/preview_<sizes>.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PROMPT, cpu_info, janus_model, official_config, random_components, versions  # noqa: E402

from janus_runtime.codebook import _TABLES, colour_table, decoder_preview_image, preview_image  # noqa: E402
from janus_runtime.config import parse_config  # noqa: E402
from janus_runtime.model import load_model  # noqa: E402
from janus_runtime import generate_image_tokens  # noqa: E402
from janus_runtime.tiny import TINY_OFFICIAL_CONFIG, make_tiny  # noqa: E402
from janus_runtime.vq import VQModel  # noqa: E402

REAL_VQ = {"ch": 128, "z_channels": 256}  # Janus-Pro's VQ-16 (the tiny one has 32 / 64)


def real_size_vq(seed: int = 0) -> VQModel:
    raw = json.loads(json.dumps(TINY_OFFICIAL_CONFIG))
    raw["gen_vision_config"]["params"].update(REAL_VQ)
    vq = VQModel(parse_config(raw).vq)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in vq.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            elif p.ndim >= 2:
                p.normal_(0, (p[0].numel()) ** -0.5, generator=g)
            else:
                p.zero_()
    return vq.eval().requires_grad_(False)


DECODER_EVERY = 48  # the previous default


def node_callback(model, mode: str, every: int):
    """The work Janus Generate's progress hook does per step, including the server's JPEG encoding."""
    total = model.config.num_image_tokens
    every = DECODER_EVERY if mode == "decoder" else every
    draw = {"table": preview_image, "decoder": decoder_preview_image}.get(mode)
    sent = []

    def callback(step, _total, tokens):
        if draw is None or ((step + 1) % every and step + 1 != total):
            return
        image = draw(model, tokens[0])
        if image is not None:
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=95)
            sent.append(len(buf.getvalue()))
    return callback, sent


def preview_cost_ms(model, mode: str, batches: int = 5, per_batch: int = 20) -> dict:
    """One preview's own cost (draw + JPEG), timed alone: far less noisy than a difference of two runs."""
    codes = torch.randint(0, model.config.vq.codebook_size, (model.config.num_image_tokens,),
                          generator=torch.Generator().manual_seed(0))
    callback, _ = node_callback(model, mode, 1)
    per = []
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(per_batch):
            callback(model.config.num_image_tokens // 2 - 1, None, codes[None, :model.config.num_image_tokens // 2])
        per.append((time.perf_counter() - t) / per_batch * 1e3)
    return spread(per)


def spread(xs):
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "runs": xs}


def measure(name, model, modes, runs, every):
    times = {m: [] for m in modes}
    previews = {}
    for r in range(runs):  # interleaved: every mode once per round, so drift hits all of them alike
        for mode in modes:
            callback, sent = node_callback(model, mode, every)
            t = time.perf_counter()
            generate_image_tokens(model, PROMPT, n=1, seed=r, callback=callback)
            times[mode].append(time.perf_counter() - t)
            previews[mode] = len(sent)
        print(name, "round", r, {m: round(v[-1], 3) for m, v in times.items()}, flush=True)
    base = times["none"]
    row = {"model": name, "every": every, "runs": runs, "previews_per_image": previews,
           "seconds": {m: spread(v) for m, v in times.items()}}
    row["overhead_pct"] = {m: {"of_medians": 100 * (statistics.median(v) / statistics.median(base) - 1),
                               "paired": spread([100 * (a / b - 1) for a, b in zip(v, base)])}
                           for m, v in times.items() if m != "none"}
    # the same overhead from the cost of one preview (half an image done) x previews per image
    row["preview_ms"] = {m: preview_cost_ms(model, m) for m in modes if m != "none"}
    for m, cost in row["preview_ms"].items():
        row["overhead_pct"][m]["from_preview_cost"] = (
            100 * previews[m] * cost["median"] / 1e3 / statistics.median(base))
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--every", type=int, default=24, help="preview_every (the node's default is 24)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = {"cpu": cpu_info(), **versions(), "threads": torch.get_num_threads(),
           "loadavg_start": __import__("os").getloadavg()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = load_model(make_tiny(Path(tmp) / "tiny"), dtype="fp32")
    for size in args.sizes:
        if size == "tiny":
            model, modes = tiny, ("none", "table", "decoder")
        else:
            raw = official_config("mid")
            model = janus_model(raw, tiny.text, torch.float32,
                                **random_components(raw, ("lm",), torch.device("cpu"), torch.float32))
            model.vq, modes = real_size_vq(), ("none", "table")
        _TABLES.pop(model.vq, None)
        t = time.perf_counter()
        colour_table(model)
        fit = time.perf_counter() - t
        row = measure(size, model, modes, args.runs, args.every)
        row["colour_table_fit_s"] = fit
        rows.append(row)
        print(json.dumps(row), flush=True)
    env["loadavg_end"] = __import__("os").getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"preview_{'_'.join(args.sizes)}.json").write_text(json.dumps({"environment": env, "results": rows}, indent=1))
    print(f"\n{'model':6} {'mode':8} {'s min / median / max':>24} {'overhead (medians)':>19} "
          f"{'paired min / median / max':>27}")
    for r in rows:
        for mode, s in r["seconds"].items():
            o = r["overhead_pct"].get(mode)
            ov = f"{o['of_medians']:+.1f} %" if o else ""
            p = o["paired"] if o else None
            pv = f"{p['min']:+.1f} / {p['median']:+.1f} / {p['max']:+.1f} %" if p else ""
            print(f"{r['model']:6} {mode:8} {s['min']:7.2f} / {s['median']:6.2f} / {s['max']:6.2f} "
                  f"{ov:>19} {pv:>27}")
        for mode, cost in r["preview_ms"].items():
            print(f"{r['model']:6} {mode:8} one preview {cost['median']:.2f} ms (min {cost['min']:.2f}, max "
                  f"{cost['max']:.2f}) x {r['previews_per_image'][mode]} per image = "
                  f"{r['overhead_pct'][mode]['from_preview_cost']:+.2f} % of the median run without previews")
        print(f"{r['model']:6} colour table fitted once in {r['colour_table_fit_s']:.2f} s")


if __name__ == "__main__":
    main()
