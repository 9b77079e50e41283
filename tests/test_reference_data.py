"""The reference data shipped in tests/data is the shared reference, value for value (where ../shared exists)."""

import pytest
import torch

from conftest import DERIVED, REFERENCE, SHARED, SPEC_KEYS, load_expected, require_shared


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_shipped_files_equal_the_shared_ones():
    source = SHARED / "reference"
    require_shared(source, "the shared reference")
    for rel in _files(REFERENCE):
        if rel.suffix != ".safetensors":
            assert (REFERENCE / rel).read_bytes() == (source / rel).read_bytes(), rel
    for rel in _files(SPEC_KEYS):
        assert (SPEC_KEYS / rel).read_bytes() == (SHARED / "spec-keys" / rel).read_bytes(), rel


@pytest.mark.parametrize("name", ["understanding.safetensors", "generation.safetensors", "vq.safetensors"])
def test_shipped_tensors_equal_the_shared_ones(name):
    from safetensors.torch import load_file
    source = SHARED / "reference" / "expected" / name
    require_shared(source, "the shared reference")
    shared, shipped = load_file(str(source)), load_expected(name)
    assert set(DERIVED.get(name, {})) <= set(shipped) <= set(shared)
    for key, value in shipped.items():
        assert value.dtype == shared[key].dtype and torch.equal(value, shared[key]), (name, key)


def test_shipped_edit_tensors_equal_the_shared_ones():
    from safetensors.torch import load_file
    source = SHARED / "reference" / "janus4o" / "janus4o.safetensors"
    require_shared(source, "the shared Janus-4o reference")
    shared, shipped = load_file(str(source)), load_file(str(REFERENCE / "janus4o" / "janus4o.safetensors"))
    assert set(shipped) <= set(shared)
    for key, value in shipped.items():
        assert value.dtype == shared[key].dtype and torch.equal(value, shared[key]), key
