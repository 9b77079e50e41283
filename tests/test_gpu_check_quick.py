"""benchmarks/gpu_check.py --quick: the GPU check's CPU dry run with tiny sizes, so the script never rots.

It runs every phase (parity against the reference, bf16 agreement, the four generation loops on shared
weights, compiled vs eager, Cancel, masked regeneration, fp8 storage, understanding and VQ timing) and
writes one JSON; this test checks that every phase ran and what must hold on any device does.
"""

import json
import subprocess
import sys

from conftest import ROOT

LOOPS = ("ours_eager", "ours_compiled", "official", "hf_generate")


def test_gpu_check_quick_runs_every_phase(tmp_path):
    out = tmp_path / "gpu_check"
    # the time budget exists for the GPU machine; here every phase must run however slow the machine is
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--quick", "--budget", "3000",
                           "--out", str(out)], capture_output=True, text=True, timeout=3600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    phases = report["phases"]
    assert list(phases) == ["environment", "parity", "speed_tiny-b", "speed_tiny", "fp8_tiny-b", "speculative_tiny"]
    assert {k: v["status"] for k, v in phases.items()} == dict.fromkeys(phases, "ok"), \
        {k: (v["status"], v.get("traceback", "")[-1500:]) for k, v in phases.items()}

    parity = phases["parity"]
    assert all(v["ok"] for v in parity["fp32_vs_reference"].values())
    assert all(v["ok"] for v in parity["bf16_vs_fp32"].values() if isinstance(v, dict))

    for size in ("tiny-b", "tiny"):
        phase = phases[f"speed_{size}"]
        assert phase["floor_step_ms"] > 0 and phase["understanding"]["decode_tokens_per_s"] > 0
        # the official loop and transformers' Janus run the very weights our sampler runs
        assert phase["same_model"]["official_llama"]["ok"] and phase["same_model"]["hf_janus"]["ok"], phase["same_model"]
        for cell in phase["cells"]:
            assert cell["rounds"] >= 1
            for loop in LOOPS:
                m = cell["methods"][loop]
                assert m["status"] == "ok", (size, cell["batch"], loop, m)
                assert 0 < m["step_ms"]["min"] <= m["step_ms"]["median"] <= m["step_ms"]["max"]
                assert m["step_ms"]["n"] == cell["rounds"]
            # on the CPU compile=True runs the same eager step: the same seed must give the same tokens
            assert cell["compiled_vs_eager"]["identical"], cell["compiled_vs_eager"]
    assert "seconds" in phases["speed_tiny-b"]["vq_decode"]

    checks = phases["speed_tiny"]["sampler_checks"]
    for name in ("cancel_eager", "cancel_compiled"):
        assert checks[name]["ok"] and checks[name]["same_tokens_as_before_cancel"], checks[name]
    assert checks["masked_regeneration"]["kept_prefix_intact"]

    fp8 = phases["fp8_tiny-b"]
    assert fp8["fp8_e4m3fn"]["weights_bytes"] < fp8["float32"]["weights_bytes"]
    for storage in ("float32", "fp8_e4m3fn"):
        assert fp8[storage]["eager"]["step_ms"] > 0

    spec = phases["speculative_tiny"]
    for n in (1, 2):
        cell = spec[f"batch_{n}"]
        assert cell["off"]["passes"] == 16 - 1  # one pass per token after the prefill (4 x 4 grid)
        for mode in ("sjd", "mc-sjd"):  # images one after another: each takes between 1 and 15 passes
            assert n <= cell[mode]["passes"] <= n * 15 and cell[mode]["wall_speedup"] > 0, (n, mode, cell[mode])

