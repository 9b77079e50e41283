"""Packaging: what ComfyUI-Manager and the Comfy Registry read."""

import tomllib

from conftest import ROOT


def test_requirements_never_touch_torch():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    names = [line.split(">")[0].split("=")[0].split("<")[0].strip().lower() for line in lines if line]
    assert names, "requirements.txt lists nothing"
    assert not {"torch", "torchvision", "torchaudio"} & set(names)
    assert all(not line.startswith("-") for line in lines)  # Manager installs one plain requirement per line


def test_registry_metadata():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    comfy = meta["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and "Icon" in comfy and "includes" in comfy
    assert meta["project"]["urls"]["Repository"]
    assert "ComfyUI" not in meta["project"]["name"]
