import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JANUS_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"


def load_expected(name: str) -> dict:
    from safetensors.torch import load_file
    return load_file(str(REFERENCE / "expected" / name))


needs_reference = pytest.mark.skipif(not (REFERENCE / "checkpoint" / "config.json").is_file(),
                                     reason=f"reference outputs not found under {REFERENCE} (set JANUS_SHARED)")


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
