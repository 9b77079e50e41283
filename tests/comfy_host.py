"""The ComfyUI the node tests run in, set up before the pack is imported.

``JANUS_COMFYUI=<ComfyUI tree>`` (tests/test_in_comfyui.py sets it, with that tree's venv): the real modules,
imported in-process as ``main.py --cpu`` leaves them. ``JANUS_COMFYUI_MODE=dynamic`` then sets what ComfyUI
>= 0.30 sets at start-up on NVIDIA: ``comfy.memory_management.aimdo_enabled = True`` (comfy.ops Linear layers
are built without weights) and ``CoreModelPatcher = ModelPatcherDynamic``; ``classic`` (default) leaves them.
Without JANUS_COMFYUI, and only if no real ComfyUI is importable: the stand-ins in comfy_standins/.

Either way the host functions the nodes call are wrapped, never replaced: spies record and call through
(``load_models_gpu``, ``ProgressBar.update_absolute``); the global progress hook does what main.py's does
(raise on Cancel, pass previews to the server's own ``send_image``); ``server.PromptServer.instance`` is the
server's class with its transport (``send_sync``/``send_bytes``) recording the messages instead of sending.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import io
import json
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDINS = ROOT / "tests" / "comfy_standins"
MODES = ("classic", "dynamic")
_host = None


class Host:
    """What the nodes sent to ComfyUI, and the Cancel button."""

    def __init__(self, tree: Path | None, mode: str):
        self.tree, self.mode = tree, mode
        self.load_calls = []  # (patchers, memory_required) per load_models_gpu call
        self.updates = []  # (node_id, value, total, has_preview) per ProgressBar.update_absolute call
        self.previews = []  # (node_id, format, (w, h)) per preview the server encoded and sent
        self.texts = []  # (node_id, text) per progress text the server sent
        self.interrupt_at = None  # press Cancel when a progress bar reaches this value
        self._preview_node = None

    @property
    def real(self) -> bool:
        return self.tree is not None

    def clear(self):
        for log in (self.load_calls, self.updates, self.previews, self.texts):
            log.clear()
        self.interrupt_at = None

    # --- the spies and the server's transport ---------------------------------------------------------------
    def _install(self):
        import comfy.model_management as mm
        import comfy.utils
        import server

        load_models_gpu = mm.load_models_gpu

        def load_models_gpu_spy(models, memory_required=0, *args, **kwargs):
            self.load_calls.append((list(models), memory_required))
            return load_models_gpu(models, memory_required, *args, **kwargs)
        mm.load_models_gpu = load_models_gpu_spy

        update_absolute = comfy.utils.ProgressBar.update_absolute

        def update_absolute_spy(bar, value, total=None, preview=None):
            self.updates.append((bar.node_id, value, total or bar.total, preview is not None))
            if self.interrupt_at is not None and value >= self.interrupt_at:
                self.interrupt_at = None
                mm.interrupt_current_processing()  # what POST /interrupt does
            return update_absolute(bar, value, total, preview)
        comfy.utils.ProgressBar.update_absolute = update_absolute_spy

        recorder = object.__new__(server.PromptServer)
        recorder.client_id, recorder.sockets_metadata = None, {}
        recorder.send_sync = self._send_sync
        recorder.send_bytes = self._send_bytes
        recorder.texts = self.texts  # older tests read PromptServer.instance.texts
        server.PromptServer.instance = recorder

        def progress_hook(value, total, preview, prompt_id=None, node_id=None):
            mm.throw_exception_if_processing_interrupted()
            if preview is not None:
                self._preview_node = node_id
                asyncio.run(server.PromptServer.instance.send_image(preview))
        comfy.utils.set_progress_bar_global_hook(progress_hook)

    def _send_sync(self, event, data, sid=None):
        if isinstance(event, str):  # a JSON message to the browser, e.g. the nodes' "janus.text"
            json.dumps(data)
            if event == "janus.text":
                self.texts.append((data["node"], data["text"]))
        else:  # the binary TEXT message: 4-byte length of the node id, the node id, the UTF-8 text
            (n,) = struct.unpack(">I", data[:4])
            self.texts.append((data[4:4 + n].decode(), data[4 + n:].decode("utf-8")))

    async def _send_bytes(self, event, data, sid=None):
        from PIL import Image
        (kind,) = struct.unpack(">I", data[:4])
        image = Image.open(io.BytesIO(data[4:]))
        image.load()
        assert (kind, image.format) in ((1, "JPEG"), (2, "PNG")), (kind, image.format)
        self.previews.append((self._preview_node, image.format, image.size))


def _import_real(tree: Path, mode: str):
    if mode not in MODES:
        raise ValueError(f"JANUS_COMFYUI_MODE must be one of {MODES}, not {mode!r}")
    sys.path.insert(0, str(tree))
    # main.py imports ComfyUI's `utils` package first; later imports put comfy/ on sys.path, whose utils.py
    # would shadow it (0.3.64)
    importlib.import_module("utils.extra_config")
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # main.py --cpu
    import comfy.model_management  # noqa: F401  (reads the arguments at import)
    import comfy.model_patcher
    import comfy.ops  # noqa: F401
    import comfy.utils  # noqa: F401
    import folder_paths  # noqa: F401
    if mode == "dynamic":
        import comfy.memory_management
        comfy.memory_management.aimdo_enabled = True
        comfy.model_patcher.CoreModelPatcher = comfy.model_patcher.ModelPatcherDynamic
    import server  # noqa: F401


def setup() -> Host:
    """Prepare the host once per process (before the pack is imported) and return its recorders."""
    global _host
    if _host is None:
        tree = os.environ.get("JANUS_COMFYUI")
        mode = os.environ.get("JANUS_COMFYUI_MODE", "classic")
        if tree:
            _import_real(Path(tree).resolve(), mode)
            host = Host(Path(tree).resolve(), mode)
        else:
            if importlib.util.find_spec("comfy") is None:
                sys.path.insert(0, str(STANDINS))
            host = Host(None, "dynamic")  # the stand-ins imitate 0.33 with dynamic VRAM
        host._install()
        _host = host
    return _host


def load_pack():
    """The pack, imported as ComfyUI's load_custom_node imports a folder: its __init__.py as a package named by
    the folder's path."""
    name = str(ROOT).replace(".", "_x_")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def pack_module(name: str):
    """A submodule of the pack as ComfyUI imports it, e.g. pack_module("nodes.memory")."""
    return importlib.import_module(f"{load_pack().__name__}.{name}")
