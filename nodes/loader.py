"""Janus Model Loader: model folders under models/janus (and extra_model_paths.yaml), or a known Hugging Face
repository downloaded there on first use; components handed to ComfyUI's memory manager."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..janus_runtime import JanusError, load_model
from ..janus_runtime.codebook import codebook_fingerprint
from ..janus_runtime.hub import COMMON_FILES, KNOWN_REPOS, download

from .memory import LM, VISION, VQ, JanusHandle

log = logging.getLogger(__name__)
FOLDER_KEY = "janus"
DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SAME_AS_COMPUTE = "same as compute"
STORAGE = {SAME_AS_COMPUTE: None, "fp8_e4m3fn": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}
DOWNLOAD_MARK = " (download)"  # appended to Hugging Face names: they download on first use


def register_folder():
    import folder_paths
    folder_paths.add_model_folder_path(FOLDER_KEY, os.path.join(folder_paths.models_dir, FOLDER_KEY))


def janus_roots() -> list[Path]:
    import folder_paths
    return [Path(p) for p in folder_paths.get_folder_paths(FOLDER_KEY)]


def repo_folder_name(repo_id: str) -> str:
    """deepseek-ai/Janus-Pro-1B -> Janus-Pro-1B; deepseek-community/Janus-Pro-1B -> Janus-Pro-1B-hf."""
    owner, name = repo_id.split("/")
    return name + ("-hf" if owner == "deepseek-community" else "")


def local_models() -> list[str]:
    """Folders (one level deep, or two for org/name layouts) holding a config.json, relative to their root.
    Symlinked folders count: linking a model folder into models/janus is a supported way to install it."""
    found = []
    for root in janus_roots():
        if not root.is_dir():
            continue
        for config in sorted(root.glob("*/config.json")) + sorted(root.glob("*/*/config.json")):
            rel = config.parent.relative_to(root).as_posix()
            if rel not in found:
                found.append(rel)
    return found


def model_choices() -> list[str]:
    """Installed folders first (the default is one of them), then every known repository, marked
    DOWNLOAD_MARK: it downloads into models/janus on first use and loads that folder afterwards. The list
    does not change after a download, so saved workflows stay valid; the plain repository name of older
    workflows is accepted too (VALIDATE_INPUTS)."""
    return local_models() + [r + DOWNLOAD_MARK for r in KNOWN_REPOS]


def _known_repo(name: str) -> str | None:
    plain = name[:-len(DOWNLOAD_MARK)] if name.endswith(DOWNLOAD_MARK) else name
    return plain if plain in KNOWN_REPOS else None


def _folder_name_problem(name: str, roots) -> str | None:
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or not name.strip():
        return (f"model {name!r}: only folders inside {', '.join(map(str, roots))} can be loaded. Move or link "
                f"the model folder there (or add its parent as 'janus:' in extra_model_paths.yaml).")
    return None


def _offline() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def resolve_model_folder(name: str) -> Path:
    """The folder for a dropdown value: a local model folder inside a janus root, or a download target."""
    roots = janus_roots()
    if not roots:
        raise JanusError("model: no models/janus folder is registered; restart ComfyUI after installing the pack.")
    repo = _known_repo(name)
    if repo is not None:
        for root in roots:
            candidate = root / repo_folder_name(repo)
            if (candidate / "config.json").is_file():
                return candidate
        target = roots[0] / repo_folder_name(repo)
        if _offline():
            raise JanusError(
                f"model {name!r} is not downloaded yet, and downloads are switched off on this machine (Hugging "
                f"Face offline mode). Pick an installed model, or download these files from "
                f"https://huggingface.co/{repo} yourself: {COMMON_FILES}, {KNOWN_REPOS[repo]}; and put them in "
                f"the folder {target}.")
        return download(repo, target)
    problem = _folder_name_problem(name, roots)
    if problem:
        raise JanusError(problem)
    for root in roots:
        # not resolved: a symlinked model folder (or a link inside it) may point anywhere on disk
        candidate = root / name
        if (candidate / "config.json").is_file():
            return candidate
    raise JanusError(f"model {name!r}: no such model folder in {', '.join(map(str, roots))}. Put the whole model "
                     f"repository there as a folder (config.json, tokenizer files and weights), or pick a "
                     f"name marked{DOWNLOAD_MARK} from the list to download it.")


def storage_choices() -> list[str]:
    """fp8 storage only where it pays: on a CUDA GPU (on CPU the per-layer upcast costs more than it saves)."""
    import comfy.model_management as mm
    return list(STORAGE) if mm.get_torch_device().type == "cuda" else [SAME_AS_COMPUTE]


def pick_dtype(choice: str, device):
    """What to load with: an explicit choice as given; "auto" asks ComfyUI on a GPU, and on a CPU (where
    ComfyUI answers fp32 for every device) leaves it to the runtime's rule (bf16 where the CPU has native
    bf16, the VQ decoder in fp32), unless ComfyUI was started with --force-fp32."""
    import comfy.model_management as mm
    if DTYPES.get(choice) is not None:
        return DTYPES[choice]
    if choice != "auto":
        raise JanusError(f"dtype: {choice!r} is not one of {', '.join(DTYPES)}")
    if torch.device(device).type == "cpu":
        return torch.float32 if getattr(mm, "FORCE_FP32", False) else "auto"
    if mm.should_use_bf16(device):
        return torch.bfloat16
    if mm.should_use_fp16(device):
        return torch.float16
    return torch.float32


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


class JanusModelLoader:
    DESCRIPTION = ("Loads a Janus / Janus-Pro model (understanding and image generation) and hands it to "
                   "ComfyUI's memory manager. Local folders come from models/janus; Hugging Face names "
                   "download there on first use.")
    CATEGORY = "Janus"
    FUNCTION = "load"
    # its summary ("ui" text) is resent when a later run takes the loader from ComfyUI's cache (0.33+)
    HAS_INTERMEDIATE_OUTPUT = True
    RETURN_TYPES = ("JANUS_MODEL",)
    RETURN_NAMES = ("janus_model",)
    OUTPUT_TOOLTIPS = ("The loaded model: connect it to the Janus understanding, generation and VQ nodes.",)

    @classmethod
    def INPUT_TYPES(cls):
        choices = model_choices()
        return {"required": {
            "model": (choices, {"default": choices[0] if choices else None, "tooltip":
                      "A model folder in models/janus (installed), or a Hugging Face repository marked "
                      "(download): downloaded there on first use (Janus-Pro-1B ~4 GB, Janus-Pro-7B ~15 GB)."}),
            "dtype": (list(DTYPES), {"default": "auto", "tooltip":
                      "Compute precision. auto: bf16 where the GPU supports it, else fp16; on a CPU bf16 "
                      "where it has native bf16 (AVX512-BF16 or AMX; faster), else fp32, with the VQ decoder "
                      "in fp32."}),
            "weight_storage": (storage_choices(), {"default": SAME_AS_COMPUTE, "tooltip":
                               "Store the language model's layer weights in fp8 (about half the memory, "
                               "upcast one layer at a time) for Janus-Pro-7B on GPUs under 16 GB. "
                               "Offered on CUDA GPUs only."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model, weight_storage):
        """Before the run (ComfyUI then skips its own list check for these two): any spelling of a known
        repository and any folder name inside models/janus are accepted; fp8 is refused off CUDA."""
        import comfy.model_management as mm
        if _known_repo(model) is None:
            problem = _folder_name_problem(model, janus_roots())
            if problem:
                return problem
        if weight_storage not in STORAGE:
            return f"weight_storage: {weight_storage!r} is not one of {', '.join(STORAGE)}"
        device = mm.get_torch_device()
        if STORAGE[weight_storage] and device.type != "cuda":
            return (f"weight_storage: {weight_storage} needs a CUDA GPU (this ComfyUI computes on {device}); "
                    f"choose '{SAME_AS_COMPUTE}'.")
        return True

    def load(self, model, dtype, weight_storage):
        import comfy.model_management as mm
        import comfy.model_patcher
        import comfy.ops
        if weight_storage not in STORAGE:
            raise JanusError(f"weight_storage: {weight_storage!r} is not one of {', '.join(STORAGE)}")
        storage = STORAGE[weight_storage]
        storage_dtype = getattr(torch, storage, None) if storage else None
        if storage and storage_dtype is None:
            raise JanusError(f"weight_storage: this torch ({torch.__version__}) has no {storage}; "
                             f"choose 'same as compute'.")
        folder = resolve_model_folder(model)
        load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
        # "auto" for a CPU load device is resolved by load_model for offload_device: the CPU too (ComfyUI
        # offloads to the CPU, or to the load device itself)
        compute = pick_dtype(dtype, load_device)
        jm = load_model(folder, device=offload_device, dtype=compute, ops=comfy.ops.manual_cast,
                        weight_dtype=storage_dtype)
        # Dynamic VRAM (ComfyUI >= 0.30 on NVIDIA) budgets each layer by the dtype recorded when the layer was
        # built, i.e. the compute dtype; record what is actually stored (fp8 stays fp8 in the VRAM budget).
        archive = getattr(mm, "archive_model_dtypes", None)
        patcher_cls = getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
        patchers = {}
        for c in (LM, VISION, VQ):
            if archive is not None:
                archive(getattr(jm, c))
            patchers[c] = patcher_cls(getattr(jm, c), load_device=load_device, offload_device=offload_device)
            _log_unloads(patchers[c], f"{model} ({c})")
        handle = JanusHandle(model=jm, patchers=patchers,
                             codebook_id=codebook_fingerprint(jm))
        lang = jm.config.language
        vq_dtype = "" if jm.dtype_for(VQ) == jm.dtype else f" (VQ {_dtype_name(jm.dtype_for(VQ))})"
        summary = (f"{model}: {lang.num_hidden_layers} layers x {lang.hidden_size}, compute "
                   f"{_dtype_name(jm.dtype)}{vq_dtype}, weights {weight_storage}, on {load_device}")
        log.info("Janus: loaded %s", summary)
        return {"ui": {"text": [summary]}, "result": (handle,)}


def _log_unloads(patcher, what: str):
    """Say at ComfyUI's default log level when the memory manager unloads a component ("Unload models",
    /free, or room made for another model): otherwise nothing shows that Janus gave its memory back."""
    try:
        from comfy.patcher_extension import CallbacksMP
    except ImportError:  # a host without patcher callbacks
        return
    add = getattr(patcher, "add_callback", None)
    if add is not None:
        add(CallbacksMP.ON_DETACH, lambda p, *_: log.info("Janus: unloaded %s from %s", what, p.load_device))
