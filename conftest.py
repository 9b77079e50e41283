"""pytest: collect the repository root as a plain folder. Its __init__.py is ComfyUI's entry point into the pack,
imported by the node tests the way ComfyUI imports it (tests/comfy_host.py); as a pytest package it would be
imported under the clone's folder name, which fails for names such as janus-pro-nodes."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


class _RootIsAFolder:
    # a plugin, not a conftest hook: pytest asks the root's parent directory's hooks about the root
    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if path == HERE:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    config.pluginmanager.register(_RootIsAFolder(), "janus-root-is-a-folder")
