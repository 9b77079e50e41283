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

tests/conftest.py calls ``setup()`` before the tests are collected. The pack is then imported as ComfyUI
imports it (``load_pack``/``pack_module``, from tools/comfy_import.py), and ``call`` runs a node as ComfyUI's
executor does, with the declared defaults of the inputs it is not given.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import os
import struct
import sys
from pathlib import Path

import torch

# tools/comfy_import.py (tests/conftest.py puts tools/ on the path)
from comfy_import import import_comfyui, load_pack, pack_module

ROOT = Path(__file__).resolve().parents[1]
STANDINS = ROOT / "tests" / "comfy_standins"
MODES = ("classic", "dynamic")
WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}
_host = None
__all__ = ["WIDGETS", "Host", "call", "load_pack", "pack_module", "result", "setup"]


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
    import_comfyui(tree)
    import comfy.model_patcher
    import comfy.ops
    import comfy.utils
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


# --- running a node as ComfyUI's executor does -------------------------------------------------------------
def call(cls, **given):
    """Run a node's FUNCTION with ``given`` plus the declared defaults of every other widget input; check that
    it returns its declared output types."""
    spec = cls.INPUT_TYPES()
    kwargs = {}
    for section in ("required", "optional"):
        for name, (kind, opts) in spec.get(section, {}).items():
            if name in given:
                kwargs[name] = given[name]
            elif isinstance(kind, list):
                kwargs[name] = opts.get("default", kind[0])
            elif kind in WIDGETS:
                kwargs[name] = opts["default"]
            elif section == "required":
                raise AssertionError(f"{cls.__name__}: required input {name} ({kind}) not given")
    for name in spec.get("hidden", {}):
        if name in given:
            kwargs[name] = given[name]
    assert set(given) <= set(kwargs), f"{cls.__name__} has no input(s) {set(given) - set(kwargs)}"
    out = getattr(cls(), cls.FUNCTION)(**kwargs)
    if isinstance(out, dict) and out.get("ui"):
        # ComfyUI resends a node's ui output on a run that takes it from the cache only for output nodes and
        # nodes flagged HAS_INTERMEDIATE_OUTPUT (execution.py of 0.33); otherwise the text vanishes from the node
        assert getattr(cls, "OUTPUT_NODE", False) or getattr(cls, "HAS_INTERMEDIATE_OUTPUT", False), \
            f"{cls.__name__} shows ui output but ComfyUI would not resend it on a cached run"
    outputs = result(out)
    assert isinstance(outputs, tuple) and len(outputs) == len(cls.RETURN_TYPES)
    for value, kind, is_list in zip(outputs, cls.RETURN_TYPES, getattr(cls, "OUTPUT_IS_LIST", (False,) * 9)):
        _check_type(value[0] if is_list else value, kind)
    return out


def result(out):
    """The output tuple of a node's return value (a tuple, or a dict with "result" and "ui")."""
    return out["result"] if isinstance(out, dict) else out


def _check_type(value, kind):
    expected = {"JANUS_MODEL": pack_module("nodes.memory").JanusHandle,
                "JANUS_TOKENS": pack_module("nodes.tokens").JanusTokens, "IMAGE": torch.Tensor, "STRING": str,
                "LATENT": dict}[kind]
    assert isinstance(value, expected), (kind, type(value))
