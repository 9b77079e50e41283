"""One prepared command that proves the pack on a CUDA GPU: correctness, speed and memory, in one short run.

    PYTHONUNBUFFERED=1 timeout 590 python3 benchmarks/gpu_check.py --out "$OUT"   # CUDA, at most 7.5 min
    python benchmarks/gpu_check.py --quick --out /tmp/gpu_check                   # CPU dry run, tiny sizes

It needs only torch, transformers (4.57 or 5.x), safetensors, numpy and Pillow, and the reference outputs
in the tree it runs from: tests/data/reference (where the tests keep them), else ../shared/reference; on a
machine where ../shared does not travel, copy it into tests/data/reference first.

Everything it measures goes into OUT/gpu_check.json (rewritten after every measurement, so a run stopped
by its time limit still leaves what it had) and OUT/gpu_check.log. Phases, in priority order, each with
a time budget (the whole run stays within --budget seconds; a phase out of time records what it skipped):

1. environment: GPU, driver, torch/CUDA/transformers versions, measured device copy bandwidth, bf16 matmul rate.
2. parity on the device: fp32 against the reference outputs of DeepSeek's own code (tests/data/reference,
   else ../shared/reference): LM logits, cached decode-step logits at every greedy step, greedy ids,
   teacher-forced CFG logits and log-probs, VQ encode indices and decode pixels; then bf16 against fp32.
3. speed, full-size Janus-Pro-7B then -1B language models + gen heads with random weights built on the
   GPU in bf16 (no files): ms/step and s/image at batch 1 and 4 (and 16 for 1B) of our eager sampler, our
   compiled CUDA-graph step, the official loop and transformers' own Janus generate(), on the same weight
   tensors, interleaved run by run (min/median/max); peak VRAM of each; every step time as a ratio to the
   bandwidth floor (weight bytes read per step / measured copy bandwidth); understanding prefill and
   tokens/s; VQ decode of 4 images; checks: compiled vs eager tokens (first difference explained by the
   draw's distance to a bin edge), a second compiled call reuses the captured graphs, another batch size
   works, Cancel mid-generation leaves the model reusable, masked regeneration reproduces the kept draws.
4. fp8 weight storage: our 7B alone, bf16 then the same weights stored in fp8: peak VRAM and ms/step.
5. speculative decoding (1B, eager): whole images at batch 1 and 4, sequential vs SJD vs MC-SJD (window 16):
   seconds, forward passes and ms per pass. Random weights: the passes are not what trained weights give;
   the cost of a 16-position pass against a one-token step is what carries over.

``--quick`` runs every phase on the CPU with tiny sizes and a 4 x 4 token grid (CI runs it so this script
never rots); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tools"))  # the reference outputs and the bf16 agreement checks

import common  # noqa: E402
from common import (PROMPT, Cancelled, copy_bandwidth, models_on_shared_weights, official_config,  # noqa: E402
                    random_components, run_hf_janus, run_official, run_ours, spread, sync)
from janus_runtime import decode_tokens, generate_image_tokens, score_image_tokens  # noqa: E402
from janus_runtime.sampling import image_seed  # noqa: E402
from reference_agreement import (BF16_LOGITS_REL, bf16_agreement, load_reference, max_err,  # noqa: E402
                                 reference_outputs, within)

log = logging.getLogger("gpu_check")
QUESTION = "Describe the shapes and colors in this image."
QUICK_IMAGE_SIZE = 64  # --quick: a 4 x 4 token grid
METHODS = ("ours_eager", "ours_compiled", "official", "hf_generate")


# ------------------------------------------------------------------------------------------------------------
# bookkeeping: one JSON, rewritten after every measurement; a deadline per phase

class Report:
    def __init__(self, out: Path, budget: float):
        self.out, self.start, self.budget = out, time.monotonic(), budget
        self.data = {"script": "benchmarks/gpu_check.py", "argv": sys.argv[1:], "budget_s": budget, "phases": {}}
        out.mkdir(parents=True, exist_ok=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()

    def save(self):
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        tmp = self.out / "gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.out / "gpu_check.json")

    @contextlib.contextmanager
    def phase(self, name: str, budget: float):
        """Run a phase with its own deadline (never past the whole run's); record errors, keep going."""
        rec = {"budget_s": round(budget, 1), "started_at_s": round(self.elapsed(), 1)}
        self.data["phases"][name] = rec
        deadline = min(time.monotonic() + budget, self.start + self.budget)
        log.info("== %s (budget %.0f s, %.0f s left in the run)", name, budget, self.left())
        if time.monotonic() >= deadline - 1:
            rec["status"] = "skipped: no time left"
            self.save()
            yield None
            return
        try:
            yield Phase(self, rec, deadline)
            rec.setdefault("status", "ok")
        except Exception as e:  # one phase failing must not lose the others
            rec["status"] = f"error: {type(e).__name__}: {e}"
            rec["traceback"] = traceback.format_exc()[-3000:]
            log.error("%s failed: %s", name, rec["status"])
        finally:
            rec["seconds"] = round(self.elapsed() - rec["started_at_s"], 1)
            self.save()


class Phase:
    def __init__(self, report: Report, rec: dict, deadline: float):
        self.report, self.rec, self.deadline = report, rec, deadline

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self):
        self.report.save()


class OutOfTime(Exception):
    pass


def _alarm(signum, frame):
    raise OutOfTime("the whole run's time budget is spent")


# ------------------------------------------------------------------------------------------------------------
# helpers

def cuda(device) -> bool:
    return torch.device(device).type == "cuda"


def free_memory(device):
    gc.collect()
    if cuda(device):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


@contextlib.contextmanager
def peak_memory(device, into: dict):
    """Peak bytes allocated above what was allocated on entry (CUDA only; None elsewhere)."""
    if not cuda(device):
        into["peak_extra_bytes"] = None
        yield
        return
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    try:
        yield
    finally:
        torch.cuda.synchronize()
        into["peak_extra_bytes"] = torch.cuda.max_memory_allocated() - before


def gb(x):
    return None if x is None else round(x / 1e9, 3)


def test_image(size: int = 384):
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:size, 0:size]
    arr = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], -1).astype(np.uint8)
    arr[size // 4: size // 2, size // 4: size // 2] = (220, 30, 30)
    return Image.fromarray(arr)


def dynamo_counts() -> dict:
    try:
        from torch._dynamo.utils import counters
        return {"unique_graphs": int(counters["stats"].get("unique_graphs", 0)),
                "frames_ok": int(counters["frames"].get("ok", 0))}
    except Exception:  # private API: figures only
        return {}


def reference_dir(given: str | None) -> Path | None:
    candidates = [Path(given)] if given else []
    candidates += [ROOT / "tests" / "data" / "reference"]
    if os.environ.get("JANUS_SHARED"):
        candidates.append(Path(os.environ["JANUS_SHARED"]) / "reference")
    candidates.append(ROOT.parent / "shared" / "reference")
    return next((c for c in candidates if (c / "checkpoint" / "config.json").is_file()), None)


# ------------------------------------------------------------------------------------------------------------
# 1. environment

def environment(p: Phase, device, quick: bool):
    env = common.versions()
    env["device"] = str(device)
    env.update(common.cpu_info())
    if cuda(device):
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_bytes=props.total_memory, sm_count=props.multi_processor_count,
                   capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                   bf16_supported=torch.cuda.is_bf16_supported())
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            env["driver"] = f"unknown ({e})"
        try:
            import triton
            env["triton"] = triton.__version__
        except ImportError:
            env["triton"] = None
    p.rec["environment"] = env
    bw = copy_bandwidth(device, nbytes=(1 << 24) if quick else (1 << 32))
    p.rec["copy_bandwidth_GBps"] = bw / 1e9
    if cuda(device):
        n = 8192
        a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        sync(device)
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        p.rec["bf16_matmul_TFLOPs"] = 2 * n ** 3 * 10 / (time.perf_counter() - t) / 1e12
        del a, b
    log.info("environment: %s", json.dumps({k: v for k, v in p.rec.items() if k != "environment"}))
    return bw


# ------------------------------------------------------------------------------------------------------------
# 2. parity on the device

def parity(p: Phase, device, ref_arg):

    from janus_runtime import load_model
    ref = reference_dir(ref_arg)
    if ref is None:
        p.rec["status"] = "FAILED: reference outputs not found (tests/data/reference or ../shared/reference)"
        return
    p.rec["reference"] = str(ref)
    exp = load_reference(ref)
    und, gen, vq = exp["und"], exp["gen"], exp["vq"]
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32
    try:
        fp32 = reference_outputs(load_model(ref / "checkpoint", device=device, dtype="fp32"), exp, ref)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    checks = {}
    # the tolerances of tests/test_parity.py: fp32 accumulation order, relative to each tensor's scale
    e = max_err(fp32["step_logits"], und["greedy_step_logits"])
    checks["decode_step_logits"] = {**e, "ok": within(e, 1e-5)}
    checks["greedy_ids"] = {"ok": fp32["greedy_ids"] == und["greedy_ids"][0].tolist()}
    for name in ("cfg", "cond", "uncond"):
        e = max_err(fp32["cfg"][name], gen[f"{name}_logits"])
        checks[f"{name}_logits"] = {**e, "ok": within(e, 1e-5)}
    e = max_err(fp32["logprobs"], gen["step_logprob"])
    checks["step_logprob"] = {**e, "ok": within(e, 1e-5)}
    differ = fp32["vq_indices"] != vq["indices"]
    checks["vq_encode_indices"] = {"differ": int(differ.sum()),
                                   "ok": bool((vq["dist_gap"][differ] < 1e-4).all()) and int(differ.sum()) <= 2}
    e = max_err(fp32["vq_pixels"], vq["decoded"])
    checks["vq_decode_pixels"] = {**e, "ok": within(e, 3e-5)}
    for name, a, b in (("vq_decode_uint8", fp32["vq_uint8"], vq["decoded_uint8"]),
                       ("generated_images_uint8", fp32["gen_uint8"], gen["images_uint8"])):
        d = (a.int() - b.int()).abs()
        checks[name] = {"max_levels": int(d.max()), "frac_differ": float((d > 0).float().mean()),
                        "ok": int(d.max()) <= 1 and float((d > 0).float().mean()) < 0.01}
    p.rec["fp32_vs_reference"] = checks
    p.save()
    free_memory(device)

    bf16 = reference_outputs(load_model(ref / "checkpoint", device=device, dtype="bf16"), exp, ref)
    checks = bf16_agreement(bf16, fp32, und["greedy_ids"][0].tolist())
    p.rec["bf16_vs_fp32"] = checks
    failed = [k for part in ("fp32_vs_reference", "bf16_vs_fp32") for k, v in p.rec[part].items()
              if isinstance(v, dict) and not v.get("ok", True)]
    p.rec["status"] = "ok" if not failed else f"FAILED: {', '.join(failed)}"
    log.info("parity: %s", p.rec["status"])


# ------------------------------------------------------------------------------------------------------------
# 3. speed and the sampler checks, on random full-size weights

def draw_margin(model, tokens, k: int, step: int, seed: int) -> dict:
    """How close image k's draw at ``step`` came to a bin edge of the CDF our sampler searched (from the
    teacher-forced CFG logits of ``tokens``, which the two runs agree on up to ``step``)."""
    device = model.device_for("lm")
    _, logits = score_image_tokens(model, PROMPT, tokens[k:k + 1].view(1, *([model.config.token_grid] * 2)),
                                   return_logits_at=[step])
    cdf = logits["cfg"][0, 0].float().softmax(-1).cumsum(-1)
    g = torch.Generator(device=device).manual_seed(image_seed(0 if seed is None else seed, k))
    for _ in range(step + 1):  # the sampler draws one uniform per step from this generator
        u = torch.rand(1, generator=g, device=device)
    x = float(u) * float(cdf[-1])
    idx = int(torch.searchsorted(cdf, torch.tensor([x], device=device), right=True).clamp(max=cdf.numel() - 1))
    lo = float(cdf[idx - 1]) if idx else 0.0
    return {"token": idx, "token_prob": float(cdf[idx]) - lo, "distance_to_bin_edge": min(x - lo, float(cdf[idx]) - x)}


def compare_tokens(a: torch.Tensor, b: torch.Tensor) -> list:
    """Per image: None if identical, else the first differing step."""
    out = []
    for ra, rb in zip(a, b):
        diff = (ra != rb).nonzero()
        out.append(None if len(diff) == 0 else int(diff[0]))
    return out


def compiled_active(model) -> bool:
    """Whether the sampler holds a working compiled step for this LM (False after it fell back to eager)."""
    return getattr(model.lm.language_model, "_compiled_decode", None) not in (None, False)


def clone_lm(model, dtype):
    """A second JanusModel over the very same weight tensors, with its own cache and compiled step."""
    lm = common.build_components(model.config, ("lm",), dtype, nn)["lm"]
    lm.load_state_dict(model.lm.state_dict(), strict=True, assign=True)
    lm.eval().requires_grad_(False)
    return common.JanusModel(config=model.config, folder=model.folder, text=model.text, dtype=dtype, lm=lm)


def measure_cell(p: Phase, size: str, n: int, models: dict, floor_ms: float, rounds: int, deadline: float,
                 device) -> dict:
    """All methods at batch ``n``, warm-up first, then up to ``rounds`` interleaved rounds (rotated order)
    while the cell's deadline allows."""
    ours, compiled, hf, janus = models["ours"], models["ours_c"], models["hf"], models["hf_janus"]
    text = ours.text
    runs = {
        "ours_eager": lambda: run_ours(ours, n),
        "ours_compiled": lambda: run_ours(compiled, n, compile=True),
        "official": lambda: run_official(ours, hf, n),
        "hf_generate": (lambda: run_hf_janus(janus, text, n)) if janus is not None else None,
    }
    weights = {"ours_eager": common.param_bytes(ours.lm), "ours_compiled": common.param_bytes(compiled.lm),
               "official": common.param_bytes(hf, ours.lm.gen_head, ours.lm.gen_aligner, ours.lm.gen_embed),
               "hf_generate": common.param_bytes(janus) if janus is not None else None}
    warm_ups = {  # short: only the compiled step needs a whole run (compile + capture, timed as first_call)
        "ours_eager": lambda: run_ours(ours, n, cancel_at=8),
        "ours_compiled": runs["ours_compiled"],
        "official": lambda: run_official(ours, hf, n, steps=8),
        "hf_generate": lambda: run_hf_janus(janus, text, n, cancel_at=8),
    }
    cell = {"model": size, "batch": n, "floor_step_ms": floor_ms, "methods": {}}
    p.rec.setdefault("cells", []).append(cell)
    results = {m: [] for m in METHODS}
    tokens = {}
    last = {}

    def one(method, label, fn=None):
        rec = {}
        with peak_memory(device, rec):
            r = (fn or runs[method])()
        r.update(rec)
        tokens.setdefault(method, r.pop("tokens"))
        last[method] = r["total_s"]
        log.info("%s B=%d %-13s %s: %.2f s, %.3f ms/step, peak+%s GB", size, n, method, label, r["total_s"],
                 r["step_ms"], gb(r["peak_extra_bytes"]))
        return r

    # warm-up: the compiled step's first call compiles and captures (timed: users wait for it once)
    for method in METHODS:
        m = cell["methods"].setdefault(method, {"weights_bytes": weights[method]})
        if runs[method] is None:
            m["status"] = "not built"
            continue
        if time.monotonic() > deadline and method != "ours_eager":
            m["status"] = "skipped: cell out of time"
            runs[method] = None
            continue
        try:
            before = dynamo_counts()
            if method == "ours_compiled":
                r = one(method, "first call")
                m["first_call"] = {"total_s": r["total_s"], "peak_extra_bytes": r["peak_extra_bytes"],
                                   "dynamo_before": before, "dynamo_after": dynamo_counts()}
                m["compiled_step_active"] = compiled_active(compiled)
            else:
                try:
                    warm_ups[method]()
                except Cancelled:
                    pass
        except Exception as e:
            m["status"] = f"error: {type(e).__name__}: {e}"
            m["traceback"] = traceback.format_exc()[-2000:]
            runs[method] = None
            log.error("%s B=%d %s failed: %s", size, n, method, m["status"])
        p.save()
    active = [m for m in METHODS if runs[m] is not None]
    before_rounds = dynamo_counts()
    done = 0
    for r in range(rounds):
        order = active[r % len(active):] + active[:r % len(active)]
        if r and time.monotonic() + sum(last[m] for m in order) > deadline:
            break
        for method in order:
            try:
                results[method].append(one(method, f"round {r}"))
            except Exception as e:
                cell["methods"][method]["status"] = f"error in round {r}: {type(e).__name__}: {e}"
                active.remove(method)
        done = r + 1
        p.save()
    cell["rounds"] = done
    cell["dynamo_during_rounds"] = {"before": before_rounds, "after": dynamo_counts()}
    for method in METHODS:
        runs_ = results[method]
        if not runs_:
            continue
        m = cell["methods"][method]
        m.setdefault("status", "ok")
        m["step_ms"] = spread(r["step_ms"] for r in runs_)
        m["s_per_image"] = spread(r["total_s"] / n for r in runs_)
        m["prefill_ms"] = spread(r["prefill_s"] * 1e3 for r in runs_)
        m["step_over_floor"] = m["step_ms"]["median"] / floor_ms if floor_ms else None
        peaks = [r["peak_extra_bytes"] for r in runs_ if r["peak_extra_bytes"] is not None]
        m["peak_extra_bytes"] = max(peaks) if peaks else None
        m["vram_bytes"] = (m["weights_bytes"] + m["peak_extra_bytes"]) if peaks and m["weights_bytes"] else None
    off = cell["methods"].get("official", {}).get("s_per_image")
    for method in ("ours_eager", "ours_compiled", "hf_generate"):
        mine = cell["methods"].get(method, {}).get("s_per_image")
        if off and mine:
            cell["methods"][method]["speedup_vs_official_per_image"] = off["median"] / mine["median"]
    # same seed, same batch: compiled vs eager tokens; a difference is explained by the draw's margin
    if "ours_eager" in tokens and "ours_compiled" in tokens:
        first = compare_tokens(tokens["ours_eager"], tokens["ours_compiled"])
        check = {"first_difference_per_image": first, "identical": all(f is None for f in first)}
        k = next((i for i, f in enumerate(first) if f is not None), None)
        if k is not None:
            try:
                check["at_first_difference"] = draw_margin(ours, tokens["ours_eager"], k, first[k], 0)
            except Exception as e:
                check["at_first_difference"] = f"error: {type(e).__name__}: {e}"
        cell["compiled_vs_eager"] = check
    p.save()
    return {"tokens": tokens}


@torch.inference_mode()
def same_model_check(models: dict, device) -> dict:
    """The loops must compute one model: the first step's CFG logits of transformers' Llama (official loop)
    and of transformers' Janus, against ours (teacher-forced scoring path), on the same prompt rows."""
    ours, hf, janus = models["ours"], models["hf"], models["hf_janus"]
    text = ours.text
    ids = torch.tensor(text.encode(text.generation_prompt(PROMPT)), device=device)
    rows = ids.repeat(2, 1)
    rows[1, 1:-1] = text.ids.pad  # the official unconditional row
    g = ours.config.token_grid
    _, mine = score_image_tokens(ours, PROMPT, torch.zeros(1, g, g, dtype=torch.long), return_logits_at=[0])
    mine = mine["cfg"][0, 0]
    rel = 1e-4 if ours.dtype == torch.float32 else BF16_LOGITS_REL
    out = {"tolerance_rel": rel}

    def cfg_logits(hidden, head):
        logits = head(hidden[:, -1]).float()
        return logits[1] + 5.0 * (logits[0] - logits[1])
    theirs = {"official_llama": cfg_logits(hf.model(input_ids=rows).last_hidden_state, ours.lm.gen_head)}
    if janus is not None:
        theirs["hf_janus"] = cfg_logits(janus.model.language_model(input_ids=rows).last_hidden_state,
                                        janus.model.generation_head)
    for name, t in theirs.items():
        e = max_err(t, mine)
        out[name] = {**e, "ok": within(e, rel)}
    return out


def understanding_speed(p: Phase, model, device) -> dict:
    """Vision + prefill + first token, then tokens/s of greedy decoding (batch 1; random weights)."""
    from janus_runtime import understand
    image = test_image(model.config.image_size)
    understand(model, [image], QUESTION, max_new_tokens=2)  # warm-up
    t1, per_token, steps = [], [], 32
    for _ in range(5):  # interleaved pairs: 1 token, then 1 + 32 tokens; their difference is the decoding
        sync(device)
        t = time.perf_counter()
        understand(model, [image], QUESTION, max_new_tokens=1)
        sync(device)
        t1.append(time.perf_counter() - t)
        t = time.perf_counter()
        a = understand(model, [image], QUESTION, max_new_tokens=steps + 1)
        sync(device)
        n_done = len(a.token_ids) + (1 if a.finished else 0)
        per_token.append((time.perf_counter() - t - t1[-1]) / max(n_done - 1, 1))
    prompt_len = len(model.text.expand_images(model.text.encode(model.text.understanding_prompt(QUESTION, 1)),
                                              model.config.num_image_tokens))
    first = spread(t1)
    return {"batch": 1, "prompt_tokens": prompt_len, "vision_prefill_first_token_s": first,
            "prefill_tokens_per_s": prompt_len / first["median"],
            "decode_ms_per_token": spread(x * 1e3 for x in per_token),
            "decode_tokens_per_s": 1 / max(statistics.median(per_token), 1e-9), "decoded_tokens": n_done}


def vq_decode_speed(model, device, n: int = 4) -> dict:
    g = model.config.token_grid
    tokens = torch.randint(0, model.config.vq.codebook_size, (n, g, g), generator=torch.Generator().manual_seed(0))
    decode_tokens(model, tokens)
    times = []
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        rec = {}
        with peak_memory(device, rec):
            decode_tokens(model, tokens)
        sync(device)
        times.append(time.perf_counter() - t)
    return {"images": n, "seconds": spread(times), "peak_extra_bytes": rec["peak_extra_bytes"]}


def sampler_checks(p: Phase, models: dict, n: int, ref_tokens: dict, device):
    """Cancel mid-generation (eager and compiled), then a full run again; masked regeneration."""
    ours, compiled = models["ours"], models["ours_c"]
    total = ours.config.num_image_tokens
    checks = {}
    for name, model, compile in (("eager", ours, False), ("compiled", compiled, True)):
        if f"ours_{name}" not in ref_tokens:
            continue
        rec = {}
        try:
            run_ours(model, n, compile=compile, cancel_at=total // 3)
            rec["cancel"] = "no exception: FAILED"
        except Cancelled:
            rec["cancel"] = "raised through the sampler"
        before = dynamo_counts()
        again = run_ours(model, n, compile=compile)
        rec["next_run_s"] = again["total_s"]
        rec["dynamo_before_after"] = [before, dynamo_counts()]
        first = compare_tokens(ref_tokens[f"ours_{name}"], again["tokens"])
        rec["same_tokens_as_before_cancel"] = all(f is None for f in first)
        rec["first_difference_per_image"] = first
        rec["ok"] = rec["cancel"] == "raised through the sampler" and again["tokens"].shape == (n, total)
        checks[f"cancel_{name}"] = rec
        p.save()
    # masked regeneration: keep the first half of an eager image, regenerate the rest with the same seed;
    # the sampler skips the kept steps' draws, so the regenerated half should repeat the original tokens
    # until a draw within float noise of a bin edge (prefill vs step-by-step decode round differently)
    if "ours_eager" in ref_tokens:
        orig = ref_tokens["ours_eager"][:1].view(1, ours.config.token_grid, -1)
        mask = torch.zeros(total, dtype=torch.bool)
        mask[total // 2:] = True
        regen = generate_image_tokens(ours, PROMPT, n=1, seed=0, init_tokens=orig,
                                      mask=mask.view(orig.shape[1:])).cpu().view(1, -1)
        first = compare_tokens(orig.view(1, -1), regen)[0]
        rec = {"kept_steps": total // 2, "first_difference": first, "kept_prefix_intact":
               bool((regen[0, :total // 2] == orig.view(-1)[:total // 2]).all())}
        if first is not None and first >= total // 2:
            try:
                rec["at_first_difference"] = draw_margin(ours, orig.view(1, -1), 0, first, 0)
            except Exception as e:
                rec["at_first_difference"] = f"error: {type(e).__name__}: {e}"
        checks["masked_regeneration"] = rec
    p.rec["sampler_checks"] = checks


def speed_phase(p: Phase, size: str, batches, rounds: int, args, device, bandwidth: float, first_size: bool):
    dtype = torch.bfloat16 if cuda(device) else torch.float32
    image_size = 384 if not args.quick else QUICK_IMAGE_SIZE
    cfg_raw = official_config(size, image_size=image_size, full_vision=not args.quick, full_vq=not args.quick)
    text = common.text_processor()
    free_memory(device)
    t = time.perf_counter()
    models = models_on_shared_weights(cfg_raw, text, device, dtype, with_hf_janus=False)
    try:
        models["hf_janus"] = common.hf_janus_on(cfg_raw, models.pop("official_state"), device, dtype)
    except Exception as e:
        p.rec["hf_janus_build"] = f"error: {type(e).__name__}: {e}"
    extra = random_components(cfg_raw, ("vision", "vq"), device, dtype, seed=3)
    models["ours"].vision, models["ours"].vq = extra["vision"], extra["vq"]
    models["ours_c"] = clone_lm(models["ours"], dtype)
    p.rec["build_s"] = time.perf_counter() - t
    p.rec["dtype"] = str(dtype).replace("torch.", "")
    p.rec["weights_read_per_step_bytes"] = wb = common.lm_weight_bytes(models["ours"])
    p.rec["lm_param_bytes"] = common.param_bytes(models["ours"].lm)
    floor_ms = wb / bandwidth * 1e3
    p.rec["floor_step_ms"] = floor_ms
    p.rec["floor_s_per_image_batch1"] = floor_ms * models["ours"].config.num_image_tokens / 1e3
    p.save()
    try:
        p.rec["same_model"] = same_model_check(models, device)
    except Exception as e:
        p.rec["same_model"] = f"error: {type(e).__name__}: {e}"
    try:
        p.rec["understanding"] = understanding_speed(p, models["ours"], device)
    except Exception as e:
        p.rec["understanding"] = f"error: {type(e).__name__}: {e}"
    if first_size:
        try:
            p.rec["vq_decode"] = vq_decode_speed(models["ours"], device)
        except Exception as e:
            p.rec["vq_decode"] = f"error: {type(e).__name__}: {e}"
    p.save()
    last_tokens = {}
    for i, n in enumerate(batches):
        share = 0.25 if args.checks_on == size and i == 0 else 1 / (len(batches) - i)  # batch 1 cell + checks
        cell_deadline = time.monotonic() + max(p.left(), 0) * share
        last_tokens = measure_cell(p, size, n, models, floor_ms, rounds, cell_deadline, device)["tokens"]
        if i == 0:
            batch1_tokens = last_tokens
            if args.checks_on == size:  # before the bigger batches: these matter more than one more cell
                try:
                    sampler_checks(p, models, n, last_tokens, device)
                except Exception as e:
                    p.rec["sampler_checks_error"] = f"{type(e).__name__}: {e}"
                    p.rec["sampler_checks_traceback"] = traceback.format_exc()[-2000:]
    # another batch size must not change image 0 beyond bin-edge noise: report where it first differs
    if len(batches) > 1 and "ours_compiled" in last_tokens and "ours_compiled" in batch1_tokens:
        p.rec["batch_change"] = {"batches": [batches[0], batches[-1]], "image0_first_difference":
                                 compare_tokens(batch1_tokens["ours_compiled"][:1], last_tokens["ours_compiled"][:1])[0],
                                 "compiled_step_active_after": compiled_active(models["ours_c"])}
    del models
    torch._dynamo.reset()
    free_memory(device)


# ------------------------------------------------------------------------------------------------------------
# 4. fp8 weight storage: our model alone, bf16 then fp8, same weights

def fp8_phase(p: Phase, size: str, args, device, bandwidth: float):
    from janus_runtime.ops import cast_ops
    dtype = torch.bfloat16 if cuda(device) else torch.float32
    cfg_raw = official_config(size, image_size=384 if not args.quick else QUICK_IMAGE_SIZE)
    text = common.text_processor()
    free_memory(device)
    base = torch.cuda.memory_allocated() if cuda(device) else 0
    lm = random_components(cfg_raw, ("lm",), device, dtype, ops=cast_ops)["lm"]
    model = common.janus_model(cfg_raw, text, dtype, lm=lm)
    p.rec["resident_before_bytes"] = base
    for storage in (str(dtype).replace("torch.", ""), "fp8_e4m3fn"):
        if storage == "fp8_e4m3fn":
            for mod in lm.language_model.model.layers.modules():
                if isinstance(mod, nn.Linear):
                    mod.weight = nn.Parameter(mod.weight.to(torch.float8_e4m3fn), requires_grad=False)
            torch._dynamo.reset()
            free_memory(device)
        rec = {"weights_bytes": common.param_bytes(lm), "read_per_step_bytes": common.lm_weight_bytes(model)}
        rec["floor_step_ms"] = rec["read_per_step_bytes"] / bandwidth * 1e3
        for compile in (False, True):
            if p.left() < 15 and compile:
                rec["compiled"] = "skipped: out of time"
                continue
            key = "compiled" if compile else "eager"
            try:
                lm.language_model.free_cache()  # a compiled run keeps its cache: measure each from scratch
                run_ours(model, 1, compile=compile, cancel_at=8 if not compile else None)  # warm-up / capture
            except Cancelled:
                pass
            except Exception as e:
                rec[key] = f"error: {type(e).__name__}: {e}"
                continue
            if cuda(device):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            r = run_ours(model, 1, compile=compile)
            rec[key] = {"step_ms": r["step_ms"], "s_per_image": r["total_s"],
                        "peak_bytes": torch.cuda.max_memory_allocated() - base if cuda(device) else None}
            log.info("%s %s %s: %.3f ms/step", size, storage, key, r["step_ms"])
        p.rec[storage] = rec
        p.save()
    del model, lm
    torch._dynamo.reset()
    free_memory(device)


# ------------------------------------------------------------------------------------------------------------
# 5. speculative decoding: seconds, forward passes and the cost of a window pass vs a one-token step

SPECULATIVE_MODES, SPECULATIVE_WINDOW = ("off", "sjd", "mc-sjd"), 16


def speculative_phase(p: Phase, size: str, batches, args, device):
    dtype = torch.bfloat16 if cuda(device) else torch.float32
    cfg_raw = official_config(size, image_size=384 if not args.quick else QUICK_IMAGE_SIZE)
    free_memory(device)
    model = common.janus_model(cfg_raw, common.text_processor(), dtype,
                               lm=random_components(cfg_raw, ("lm",), device, dtype)["lm"])
    p.rec.update(window=SPECULATIVE_WINDOW, dtype=str(dtype).replace("torch.", ""),
                 note="random weights, gen head as drawn: passes per image are not those of trained weights")

    def run(n: int, mode: str, cancel_at: int | None = None) -> dict:
        stats = {}

        def stop(step, total, tokens):
            if cancel_at is not None and step >= cancel_at:
                raise Cancelled
        sync(device)
        t = time.perf_counter()
        try:
            generate_image_tokens(model, PROMPT, n=n, seed=0, parallel=mode, window=SPECULATIVE_WINDOW,
                                  stats=stats, callback=stop)
        except Cancelled:
            return {}
        sync(device)
        seconds = time.perf_counter() - t
        return {"s": seconds, "passes": stats["forward_passes"], "ms_per_pass": seconds * 1e3 / stats["forward_passes"]}
    for mode in SPECULATIVE_MODES:  # warm-up: kernels and allocator, a few tokens each
        run(1, mode, cancel_at=8)
    for n in batches:
        cell = p.rec.setdefault(f"batch_{n}", {})
        for mode in SPECULATIVE_MODES:
            if p.left() < 10:
                cell[mode] = "skipped: out of time"
                continue
            cell[mode] = run(n, mode)
            log.info("%s speculative b=%d %s: %s", size, n, mode, cell[mode])
            p.save()
        if isinstance(cell.get("off"), dict):
            for mode in SPECULATIVE_MODES[1:]:
                if isinstance(cell.get(mode), dict):
                    cell[mode]["wall_speedup"] = cell["off"]["s"] / cell[mode]["s"]
                    cell[mode]["pass_cost_vs_step"] = cell[mode]["ms_per_pass"] / cell["off"]["ms_per_pass"]


# ------------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "benchmarks" / "results" / "gpu_check"))
    ap.add_argument("--quick", action="store_true", help="CPU dry run with tiny sizes (exercises every path)")
    ap.add_argument("--budget", type=float, help="seconds for the whole run (default 420 on CUDA, 240 quick)")
    ap.add_argument("--reference", help="reference folder (default tests/data/reference, then ../shared/reference)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per cell, if time allows")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout),
                                  logging.FileHandler(out / "gpu_check.log", mode="w")])
    device = torch.device("cpu" if args.quick else "cuda")
    if not args.quick and not torch.cuda.is_available():
        sys.exit("no CUDA device here; use --quick for the CPU dry run")
    budget = args.budget or (240.0 if args.quick else 420.0)  # + ~20 s start-up: under 8 minutes
    report = Report(out, budget)
    report.data["mode"] = "quick (CPU, tiny sizes: figures mean nothing)" if args.quick else "cuda"
    try:  # the captured graphs of every size and batch must fit dynamo's per-function cache
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        if hasattr(torch._dynamo.config, "recompile_limit"):
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    except AttributeError:
        pass
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(budget + 20))
    big, small = ("tiny-b", "tiny") if args.quick else ("pro-7b", "pro-1b")
    args.checks_on = small
    # (phase, share of the time): each phase gets its share of what is left, so time saved early is reused
    plan = [("environment", 0.03), ("parity", 0.10), (f"speed_{big}", 0.36), (f"speed_{small}", 0.31),
            (f"fp8_{big}", 0.08), (f"speculative_{small}", 0.12)]
    bandwidth = None
    try:
        for i, (name, share) in enumerate(plan):
            with report.phase(name, report.left() * share / sum(s for _, s in plan[i:])) as p:
                if p is None:
                    continue
                if name == "environment":
                    bandwidth = environment(p, device, args.quick)
                elif name == "parity":
                    parity(p, device, args.reference)
                elif name.startswith("speed_"):
                    size = name[len("speed_"):]
                    batches = ((1,) if size == big else (1, 2)) if args.quick else \
                        ((1, 4) if size == big else (1, 4, 16))
                    speed_phase(p, size, batches, 2 if args.quick else args.rounds, args, device,
                                bandwidth or copy_bandwidth(device), first_size=size == big)
                elif name.startswith("fp8_"):
                    fp8_phase(p, name[len("fp8_"):], args, device, bandwidth or copy_bandwidth(device))
                elif name.startswith("speculative_"):
                    speculative_phase(p, name[len("speculative_"):], (1, 4) if not args.quick else (1, 2), args,
                                      device)
    except OutOfTime:
        report.data["stopped"] = "time budget spent; later phases did not run"
    finally:
        signal.alarm(0)
        report.save()
    statuses = {k: v.get("status") for k, v in report.data["phases"].items()}
    log.info("done in %.0f s: %s -> %s", report.elapsed(), json.dumps(statuses), Path(args.out) / "gpu_check.json")


if __name__ == "__main__":
    main()
