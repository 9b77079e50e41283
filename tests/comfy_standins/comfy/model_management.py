"""Stand-in for comfy.model_management as ComfyUI 0.33 behaves for a custom node."""
import torch


class InterruptProcessingException(BaseException):  # a BaseException since ComfyUI 0.20
    pass


_interrupted = False
current_loaded_models = []  # patchers, most recently loaded first


def get_torch_device():
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return torch.device(device or "cpu").type == "cuda" and torch.cuda.is_bf16_supported()


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return torch.device(device or "cpu").type == "cuda"


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    for patcher in models:
        patcher.load(patcher.load_device)
        if patcher in current_loaded_models:
            current_loaded_models.remove(patcher)
        current_loaded_models.insert(0, patcher)


def loaded_models(only_currently_used=False):
    return list(current_loaded_models)


def unload_all_models():
    for patcher in current_loaded_models:
        patcher.detach()
    current_loaded_models.clear()


def archive_model_dtypes(model):
    """Record each parameter's storage dtype (what dynamic loading budgets VRAM with)."""
    for _, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            setattr(module, f"{name}_comfy_model_dtype", param.dtype)
        for name, buf in module.named_buffers(recurse=False):
            setattr(module, f"{name}_comfy_model_dtype", buf.dtype)


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
