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


def test_registry_icon_is_a_shipped_file_within_800x400():
    """[tool.comfy] Icon is a URL into this repository's main branch: the file must exist and fit 800x400."""
    import xml.etree.ElementTree as ET
    icon = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]["Icon"]
    repo = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    prefix = repo.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    assert icon.startswith(prefix), icon
    path = ROOT / icon[len(prefix):]
    assert path.is_file(), f"{path} is missing"
    svg = ET.parse(path).getroot()
    assert float(svg.get("width")) <= 800 and float(svg.get("height")) <= 400
