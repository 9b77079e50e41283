"""The shipped reference outputs (tests/data/reference), written by tools/ship_reference_data.py and read by the
tests (tests/conftest.py, tools/reference_agreement.py) and benchmarks/gpu_check.py, without pytest. Expected
tensors that other shipped files hold bit for bit are left out of the copy and rebuilt from them (DERIVED)."""

from pathlib import Path

import torch

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference"


def _png(name: str, reference: Path = REFERENCE) -> torch.Tensor:
    import numpy as np
    from PIL import Image
    return torch.from_numpy(np.array(Image.open(reference / "expected" / name).convert("RGB")))


def _read(name: str, reference: Path = REFERENCE) -> dict:
    from safetensors.torch import load_file
    return load_file(str(reference / "expected" / name))


# Expected tensors not shipped because they are other shipped files bit for bit
DERIVED = {
    "vq.safetensors": {
        "input": lambda ref: _read("understanding.safetensors", ref)["pixel_values"][:, 0].clone(),
        "decoded_uint8": lambda ref: _png("vq_decoded.png", ref),
    },
    "generation.safetensors": {"images_uint8": lambda ref: torch.stack([_png("gen_0.png", ref),
                                                                         _png("gen_1.png", ref)])},
}


def load_expected(name: str, reference: Path = REFERENCE) -> dict:
    """An expected-outputs file of the reference (shipped, or ../shared/reference), with every tensor."""
    tensors = _read(name, reference)
    for key, rebuild in DERIVED.get(name, {}).items():
        if key not in tensors:
            tensors[key] = rebuild(reference)
    return tensors


