"""ComfyUI and the pack, imported in-process as ComfyUI imports them.

``import_comfyui``: a real ComfyUI tree's modules as ``main.py --cpu`` leaves them (run with that tree's venv).
``load_pack``: the pack as ComfyUI's ``load_custom_node`` (nodes.py of 0.3.64 and 0.33.0) imports a
custom-node folder: its ``__init__.py`` as a package named by the folder's path, dots replaced by ``_x_``.
``nodes/`` reaches the runtime inside the folder relatively, so this works whatever the clone is called
(``janus-pro-nodes`` included) and the nodes use exactly that copy of ``janus_runtime``: code that hands
runtime objects to the nodes or catches their errors takes them from ``pack_module("janus_runtime")``.

Used by tests/comfy_host.py, tools/build_workflows.py and benchmarks/bench_caption.py."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_comfyui(tree: Path):
    """Import ComfyUI's host modules from ``tree`` (first on sys.path) as ``main.py --cpu`` does."""
    sys.path.insert(0, str(tree))
    # main.py imports ComfyUI's `utils` package first; later imports put comfy/ on sys.path, whose utils.py
    # would shadow it (0.3.64)
    importlib.import_module("utils.extra_config")
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # main.py --cpu
    import comfy.model_management  # reads the arguments at import
    import folder_paths  # noqa: F401


def load_pack(root: Path = ROOT):
    """The pack's root module (imported once per process). Inside ComfyUI (``folder_paths`` and ``comfy``
    importable) it has registered its nodes and the models/janus folder, as at ComfyUI's start-up."""
    name = str(root).replace(".", "_x_")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, root / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def pack_module(name: str, root: Path = ROOT):
    """A submodule of the pack as ComfyUI imports it, e.g. pack_module("nodes.memory") or
    pack_module("janus_runtime")."""
    return importlib.import_module(f"{load_pack(root).__name__}.{name}")
