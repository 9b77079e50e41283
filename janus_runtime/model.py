"""Loading a Janus checkpoint into its three components and the model handle the samplers work on."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .config import JanusConfig, load_config
from .errors import JanusError, ModelFilesError
from .hub import resolve_model_path
from .lm import JanusLM
from .lm_session import LMSessions
from .processing import TextProcessor
from .vit import VisionEncoder
from .vq import VQModel
from .weights import load_state_dicts

log = logging.getLogger(__name__)

COMPONENTS = ("lm", "vision", "vq")
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def check_device(name, label: str = "device") -> str:
    """``name`` as given if this machine has that device (None: the best available), else a JanusError
    saying what is available. ``label`` names the input in the message."""
    if name is None:
        return default_device()
    fix = f"use {label} cpu, or leave {label} out to use the best available ({default_device()})"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError) as e:
        raise JanusError(f"{label} {name}: not a device PyTorch knows ({str(e).splitlines()[0]}); {fix}") from None
    if device.type == "cpu":
        return name
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        available = bool(mps and mps.is_available())
        count = 1
    else:
        backend = getattr(torch, device.type, None)
        available = bool(backend is not None and hasattr(backend, "is_available") and backend.is_available())
        count = backend.device_count() if available and hasattr(backend, "device_count") else 1
    if not available:
        why = (f"this PyTorch {torch.__version__} build has no CUDA support" if device.type == "cuda"
               and torch.version.cuda is None else f"no {device.type} device is available here")
        raise JanusError(f"{label} {name}: {why}; {fix}")
    if device.index is not None and device.index >= count:
        raise JanusError(f"{label} {name}: there are only {count} {device.type} device(s) "
                         f"({device.type}:0 to {device.type}:{count - 1}); {fix}")
    return name


def default_dtype(device) -> torch.dtype:
    """bf16 where it is fast and safe (CUDA with bf16 support), fp32 elsewhere (CPU, MPS, old GPUs)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def parse_dtype(dtype, device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise JanusError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {dtype!r}")
    return DTYPES[dtype]


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@dataclass
class JanusModel:
    """Everything one checkpoint provides. Components may be None when not loaded.

    ``dtype`` is the compute dtype; weights may be stored in another one (e.g. fp8) when ``ops`` cast them
    per layer. Each component's device is wherever its parameters are now (a memory manager may move them).
    """
    config: JanusConfig
    folder: Path
    text: TextProcessor
    dtype: torch.dtype
    lm: JanusLM | None = None
    vision: VisionEncoder | None = None
    vq: VQModel | None = None
    load_seconds: float = 0.0
    # Where to compute. None: wherever each component's weights are. A memory manager that keeps some
    # weights offloaded (ComfyUI lowvram, dynamic VRAM) sets its compute device with set_compute_device.
    compute_device: torch.device | None = None
    # Serialises sampler calls on this model (they share the LM's KV cache) and keeps its compiled step.
    sessions: LMSessions = field(default_factory=LMSessions, repr=False, compare=False)

    def set_compute_device(self, device) -> torch.device:
        """Compute on ``device`` from now on, wherever the weights are (the layers' ops cast them per call)."""
        self.compute_device = torch.device(device)
        return self.compute_device

    def require(self, name: str) -> nn.Module:
        module = getattr(self, name)
        if module is None:
            raise JanusError(f"this model was loaded without its {name!r} component; load it with "
                             f"components including {name!r}.")
        return module

    def device_for(self, name: str) -> torch.device:
        """The device that component ``name`` computes on."""
        return self.compute_device or module_device(self.require(name))


def build_components(cfg: JanusConfig, components, dtype, ops) -> dict:
    """Construct modules without allocating or initialising weights (meta device)."""
    makers = {"lm": lambda: JanusLM(cfg, dtype=dtype, ops=ops),
              "vision": lambda: VisionEncoder(cfg.vision, cfg.aligner, dtype=dtype, ops=ops),
              "vq": lambda: VQModel(cfg.vq, dtype=dtype, ops=ops)}
    with torch.device("meta"):
        return {c: makers[c]() for c in components}


def _assign(module: nn.Module, state: dict, where: str):
    """Make ``state``'s tensors the module's parameters, and prove nothing was left unloaded."""
    missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
    empty = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if missing or unexpected or empty:
        raise ModelFilesError(f"{where}: loading left tensors unfilled (missing {sorted(missing)[:8]}, "
                              f"unexpected {sorted(unexpected)[:8]}, empty {empty[:8]}); please report this "
                              f"with the model name.")
    module.eval().requires_grad_(False)


def load_model(source: str | Path, device="cpu", dtype=None, *, components=COMPONENTS, ops=None,
               weight_dtype=None, chat_format: str = "auto", download_dir=None) -> JanusModel:
    """Load a Janus checkpoint (folder or HF repo id) onto ``device``.

    ``dtype``: compute dtype ("auto", "bf16", "fp16", "fp32" or a torch dtype). ``weight_dtype``: optional
    storage dtype for the LM's big matrices (e.g. torch.float8_e4m3fn); requires ``ops`` that cast weights
    per layer (ComfyUI's ``comfy.ops.manual_cast`` or ``janus_runtime.ops.cast_ops``). ``ops`` may build
    layers that start without weights (ComfyUI's dynamic VRAM): shapes are checked on plain-torch twins.
    """
    start = time.perf_counter()
    device = check_device(device if isinstance(device, str) or device is None else str(device))
    folder = resolve_model_path(source, download_dir)
    cfg = load_config(folder)
    text = TextProcessor(folder, chat_format)
    dtype = parse_dtype(dtype, device)
    unknown = set(components) - set(COMPONENTS)
    if unknown or not components:
        raise JanusError(f"components must be a non-empty subset of {COMPONENTS}; got {components!r}")
    if weight_dtype is not None and ops is None:
        from .ops import cast_ops
        ops = cast_ops
    twins = build_components(cfg, components, dtype, nn)

    def dtype_for(comp, key, t):
        if weight_dtype is not None and comp == "lm" and t.ndim == 2 and ".layers." in key:
            return weight_dtype
        return dtype

    state = load_state_dicts(folder, cfg.layout, twins, device, dtype_for)
    modules = twins if ops in (None, nn) else build_components(cfg, components, dtype, ops)
    for comp, module in modules.items():
        _assign(module, state.pop(comp), f"{folder} ({comp})")
    seconds = time.perf_counter() - start
    log.info("Loaded %s (%s layout) in %.2fs", folder, cfg.layout, seconds)
    return JanusModel(config=cfg, folder=folder, text=text, dtype=dtype, load_seconds=seconds, **modules)
