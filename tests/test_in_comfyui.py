"""The nodes inside real ComfyUI: the node tests (tests/test_nodes*.py) run in each real tree of
../shared/comfyui with that tree's venv (.venv-comfyui/<version>, made by tools/setup_comfyui_venvs.sh), and a
real 0.33.0 server imports the pack and runs an API workflow.

Modes: 0.33.0 with dynamic VRAM as on NVIDIA (comfy.ops layers built without weights, ModelPatcherDynamic),
0.33.0 with the classic patcher, and 0.3.64 (the oldest version we claim). Skipped in a clone without
../shared/comfyui; required in CI.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SHARED, require_shared

TREES = SHARED / "comfyui"
MODES = [("0.33.0", "dynamic"), ("0.33.0", "classic"), ("0.3.64", "classic")]


def comfy_python(version: str):
    """The tree and the python of its venv; skip (fail in CI) when either is missing."""
    tree = TREES / version
    require_shared(tree / "main.py", f"ComfyUI {version}")
    python = ROOT / ".venv-comfyui" / version / "bin" / "python"
    require_shared(python, f"the ComfyUI {version} venv (bash tools/setup_comfyui_venvs.sh)")
    return tree, python


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JANUS_COMFYUI"))}
    # the shared trees may be read-only: keep their bytecode elsewhere
    env.update(PYTHONPYCACHEPREFIX=str(ROOT / ".venv-comfyui" / "pycache"), **extra)
    return env


@pytest.mark.parametrize("version, mode", MODES, ids=[f"{v}-{m}" for v, m in MODES])
def test_node_tests_pass_inside_real_comfyui(version, mode):
    tree, python = comfy_python(version)
    files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_nodes*.py"))
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, env=clean_env(JANUS_COMFYUI=str(tree), JANUS_COMFYUI_MODE=mode),
                          capture_output=True, text=True, timeout=1500)
    report = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"node tests inside ComfyUI {version} ({mode}):\n{report}"
    assert " passed" in proc.stdout, report


def test_real_server_runs_an_api_workflow(tmp_path):
    tree, python = comfy_python("0.33.0")
    harness = SHARED / "tools" / "comfy_harness.py"
    require_shared(harness, "the ComfyUI harness")
    models = tmp_path / "models"
    subprocess.run([sys.executable, "-m", "janus_runtime", "make-tiny", str(models / "janus" / "Janus-Tiny")],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({
        "1": {"class_type": "JanusModelLoader",
              "inputs": {"model": "Janus-Tiny", "dtype": "auto", "weight_storage": "same as compute"}},
        "2": {"class_type": "JanusGenerate",
              "inputs": {"janus_model": ["1", 0], "prompt": "a red circle", "negative_prompt": "", "batch_size": 2,
                         "cfg": 5.0, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 42,
                         "preview_every": 144, "preview_method": "colour table (fast)",
                         "sampling": "exact sequential"}},
        "3": {"class_type": "JanusVQDecode", "inputs": {"janus_model": ["1", 0], "tokens": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "janus_ci"}},
    }))
    out = tmp_path / "out"
    import comfy_host
    comfy_host.setup()
    our_nodes = sorted(comfy_host.load_pack().NODE_CLASS_MAPPINGS)
    args = [str(python), str(harness), "--comfy", str(tree), "--pack", str(ROOT), "--models", str(models),
            "--workflow", str(workflow), "--out", str(out), "--timeout", "600",
            "--comfy-arg=--disable-api-nodes"]
    args += [f"--expect-node={n}" for n in our_nodes]
    proc = subprocess.run(args, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=1200)
    log = (out / "server.log").read_text(errors="replace") if (out / "server.log").exists() else ""
    report = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\nserver log:\n{log[-4000:]}"
    assert proc.returncode == 0, report
    assert "IMPORT FAILED" not in log, report
    summary = json.loads((out / "summary.json").read_text())
    ours = summary["packs"][ROOT.name]
    assert not ours["import_failed"] and ours["nodes"] == our_nodes, report
    saved = [f for f in summary["steps"]["workflow"]["files"] if f["node_id"] == "4" and f["type"] == "output"]
    pngs = [out / "outputs" / Path(f["saved_to"]).name for f in saved]
    assert len(pngs) == 2 and all(p.suffix == ".png" for p in pngs), report
    from PIL import Image
    assert all(Image.open(p).size == (384, 384) for p in pngs)
