"""Stand-in for comfy.model_management on a CPU-only machine (what ComfyUI --cpu does)."""
import torch


class InterruptProcessingException(Exception):
    pass


_interrupted = False
load_calls = []  # (patchers, memory_required) per load_models_gpu call
current_loaded = []


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def should_use_bf16(device=None, *args, **kwargs):
    return False


def should_use_fp16(device=None, *args, **kwargs):
    return False


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    load_calls.append((list(models), memory_required))
    for p in models:
        p.model.to(p.load_device)
        if p not in current_loaded:
            current_loaded.insert(0, p)


def loaded_models(only_currently_used=False):
    return list(current_loaded)


def unload_all_models():
    for p in current_loaded:
        p.model.to(p.offload_device)
    current_loaded.clear()


def interrupt_current_processing(value=True):
    global _interrupted
    _interrupted = value


def processing_interrupted():
    return _interrupted


def throw_exception_if_processing_interrupted():
    global _interrupted
    if _interrupted:
        _interrupted = False
        raise InterruptProcessingException()
