import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# tools/ holds what tests share with the tools: comfy_import (the pack imported as ComfyUI imports it),
# reference_data (the shipped reference copy) and workflow_spec (a node as the frontend lays it out)
if str(ROOT / "tools") not in sys.path:
    sys.path.append(str(ROOT / "tools"))
import comfy_host
from reference_data import DERIVED, load_expected  # noqa: F401  (re-exported for the tests)

# ../shared beside the clone: the real ComfyUI trees, the harness and the source of tests/data (optional)
SHARED = Path(os.environ.get("JANUS_SHARED", ROOT.parent / "shared"))
DATA = ROOT / "tests" / "data"
# The reference checkpoint and DeepSeek's outputs on it, shipped with the tests (copied from
# ../shared/reference by tools/ship_reference_data.py; tests/test_reference_data.py checks the copy)
REFERENCE = DATA / "reference"
SPEC_KEYS = DATA / "spec-keys"  # the real checkpoints' key lists (../shared/spec-keys)
IN_CI = bool(os.environ.get("CI"))


def require_shared(path: Path, what: str):
    """Skip in a clone without ../shared; fail in CI, which must run everything."""
    if path.exists():
        return
    message = f"{what} not found at {path} (put the shared folder beside the clone or set JANUS_SHARED)"
    if IN_CI:
        pytest.fail(f"{message}; CI runs every test", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def reference_data():
    missing = [p for p in (REFERENCE / "checkpoint" / "model.safetensors", REFERENCE / "expected") if not p.exists()]
    assert not missing, f"shipped reference data missing: {missing} (restore tests/data from git)"


# Marks tests that read the shipped reference data (they fail, never skip, when it is missing)
needs_reference = pytest.mark.usefixtures("reference_data")


@pytest.fixture(scope="session")
def ref_model():
    from janus_runtime import load_model
    return load_model(REFERENCE / "checkpoint", device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from janus_runtime.tiny import make_tiny
    return make_tiny(tmp_path_factory.mktemp("tiny") / "Janus-Tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    from janus_runtime import load_model
    return load_model(tiny_dir, device="cpu", dtype="fp32")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


# --- the nodes (tests/test_nodes*.py, test_caption_node.py): the pack imported as ComfyUI imports it, in the
# host of tests/comfy_host.py. Runtime objects handed to the nodes come from that pack's own janus_runtime.
# Module-scoped: each test file gets its own models folder and loaded model.
@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """The node classes by name, with a models folder holding two tiny checkpoints (different VQ codebooks)."""
    import folder_paths
    make_tiny = comfy_host.pack_module("janus_runtime.tiny").make_tiny
    models = tmp_path_factory.mktemp("comfy") / "models"
    make_tiny(models / "janus" / "Janus-Tiny", seed=0)
    make_tiny(models / "janus" / "Janus-Tiny-B", layout="hf", seed=1)
    pack = comfy_host.load_pack()  # registers models/janus under ComfyUI's models folder, as at start-up
    # then only this test's models folder
    folder_paths.models_dir = str(models)
    folder_paths.folder_names_and_paths.pop("janus", None)
    comfy_host.pack_module("nodes").register_folder()
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def handle(pack):
    """Janus-Tiny, loaded by the loader node."""
    return comfy_host.result(comfy_host.call(pack["JanusModelLoader"], model="Janus-Tiny"))[0]


@pytest.fixture(scope="module")
def generated(pack, handle):
    """Two token grids from Janus Generate ("a red circle", seed 3)."""
    return comfy_host.result(comfy_host.call(pack["JanusGenerate"], janus_model=handle, prompt="a red circle",
                                             batch_size=2, seed=3, preview_every=96))[0]


def pytest_configure(config):
    # The ComfyUI the node tests run in (tests/comfy_host.py), set up before any test module imports ComfyUI's
    # modules or the pack: inside a real ComfyUI tree (JANUS_COMFYUI: tests/test_in_comfyui.py runs the node
    # tests that way) its modules are imported and its mode switches set; else the stand-ins are on the path
    comfy_host.setup()
