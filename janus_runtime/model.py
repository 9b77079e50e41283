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


# CPU instruction sets whose bf16 matrix products run natively (oneDNN): AVX512-BF16 and AMX. Elsewhere bf16 is
# emulated and slower than fp32.
CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (torch's capability probes; a probe this torch lacks, or one
    that fails, counts as no)."""
    for name in CPU_BF16_PROBES:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except Exception:  # noqa: BLE001 - a capability probe that fails means "not known to be there"
            continue
    return False


def default_dtype(device) -> torch.dtype:
    """The compute dtype of ``dtype="auto"``: bf16 on CUDA GPUs with bf16 support and on CPUs with native bf16
    (there a mid-size decode step, which reads every weight once, ran 4.4x faster in bf16 than in fp32:
    benchmarks/RESULTS.md, "CPU: bf16 or fp32"), fp32 elsewhere (other CPUs, MPS, old GPUs)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_native_bf16():
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


def component_dtypes(dtype, device) -> dict[str, torch.dtype]:
    """The compute dtype of each component for ``dtype`` on ``device``. An explicit dtype applies to all
    three; "auto" on a CPU keeps the VQ model in fp32 whatever the others get: in bf16 its ~30 convolutions
    move decoded pixels by up to 16 uint8 levels from fp32 (benchmarks/RESULTS.md)."""
    compute = parse_dtype(dtype, device)
    dtypes = dict.fromkeys(COMPONENTS, compute)
    if (dtype is None or dtype == "auto") and torch.device(device).type == "cpu":
        dtypes["vq"] = torch.float32
    return dtypes


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@dataclass
class JanusModel:
    """Everything one checkpoint provides. Components may be None when not loaded.

    ``dtype`` is the compute dtype of the language model, and of every component ``dtypes`` does not name
    (``dtype_for`` says which a component computes in); weights may be stored in another one (e.g. fp8) when
    ``ops`` cast them per layer. Each component's device is wherever its parameters are now (a memory
    manager may move them).
    """
    config: JanusConfig
    folder: Path
    text: TextProcessor
    dtype: torch.dtype
    lm: JanusLM | None = None
    vision: VisionEncoder | None = None
    vq: VQModel | None = None
    load_seconds: float = 0.0
    # Components that compute in another dtype than ``dtype`` (load_model: the VQ model in fp32 under "auto"
    # on a CPU)
    dtypes: dict[str, torch.dtype] = field(default_factory=dict)
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

    def dtype_for(self, name: str) -> torch.dtype:
        """The dtype that component ``name`` computes in."""
        return self.dtypes.get(name, self.dtype)


def build_components(cfg: JanusConfig, components, dtype, ops) -> dict:
    """Construct modules without allocating or initialising weights (meta device). ``dtype``: one torch dtype
    for all, or {component: dtype}."""
    dtypes = dtype if isinstance(dtype, dict) else dict.fromkeys(COMPONENTS, dtype)
    makers = {"lm": lambda: JanusLM(cfg, dtype=dtypes["lm"], ops=ops),
              "vision": lambda: VisionEncoder(cfg.vision, cfg.aligner, dtype=dtypes["vision"], ops=ops),
              "vq": lambda: VQModel(cfg.vq, dtype=dtypes["vq"], ops=ops)}
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

    ``dtype``: compute dtype ("auto", "bf16", "fp16", "fp32" or a torch dtype; see ``component_dtypes``
    for what "auto" picks on ``device``). ``weight_dtype``: optional
    storage dtype for the LM's big matrices (e.g. torch.float8_e4m3fn); requires ``ops`` that cast weights
    per layer (ComfyUI's ``comfy.ops.manual_cast`` or ``janus_runtime.ops.cast_ops``). ``ops`` may build
    layers that start without weights (ComfyUI's dynamic VRAM): shapes are checked on plain-torch twins.
    """
    start = time.perf_counter()
    device = check_device(device if isinstance(device, str) or device is None else str(device))
    folder = resolve_model_path(source, download_dir)
    cfg = load_config(folder)
    text = TextProcessor(folder, chat_format)
    dtypes = component_dtypes(dtype, device)
    unknown = set(components) - set(COMPONENTS)
    if unknown or not components:
        raise JanusError(f"components must be a non-empty subset of {COMPONENTS}; got {components!r}")
    if weight_dtype is not None and ops is None:
        from .ops import cast_ops
        ops = cast_ops
    twins = build_components(cfg, components, dtypes, nn)

    def dtype_for(comp, key, t):
        if weight_dtype is not None and comp == "lm" and t.ndim == 2 and ".layers." in key:
            return weight_dtype
        return dtypes[comp]

    state = load_state_dicts(folder, cfg.layout, twins, device, dtype_for)
    modules = twins if ops in (None, nn) else build_components(cfg, components, dtypes, ops)
    for comp, module in modules.items():
        _assign(module, state.pop(comp), f"{folder} ({comp})")
    seconds = time.perf_counter() - start
    log.info("Loaded %s (%s layout) in %.2fs", folder, cfg.layout, seconds)
    others = {c: d for c, d in dtypes.items() if d != dtypes["lm"]}
    return JanusModel(config=cfg, folder=folder, text=text, dtype=dtypes["lm"], dtypes=others,
                      load_seconds=seconds, **modules)
