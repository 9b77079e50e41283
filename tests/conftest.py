import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
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


from reference_data import DERIVED, load_expected  # noqa: E402,F401  (re-exported for the tests)


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


def pytest_configure(config):
    # Inside a real ComfyUI tree (tests/test_in_comfyui.py runs the node tests that way), ComfyUI's modules
    # are imported and its mode switches set before anything imports the pack
    if os.environ.get("JANUS_COMFYUI"):
        import comfy_host
        comfy_host.setup()
