"""A self-contained PyTorch runtime for DeepSeek Janus / Janus-Pro (no `janus` package, no ComfyUI).

    from janus_runtime import load_model, generate_image_tokens, decode_tokens, understand
    model = load_model("deepseek-ai/Janus-Pro-1B", device="cuda")
    tokens = generate_image_tokens(model, "a lighthouse at dusk", n=4, seed=1)
"""

from .checks import check_finite, check_generation_args, check_understanding_args
from .config import JanusConfig, load_config, parse_config
from .errors import JanusError, ModelFilesError, UnsupportedModelError
from .generation import generate_image_tokens, score_image_tokens
from .image_tokens import decode_tokens, encode_images
from .model import JanusModel, load_model
from .processing import open_image, to_uint8_official, to_unit_float
from .understanding import Answer, understand, understand_batch

__version__ = "0.1.0"

__all__ = ["JanusConfig", "load_config", "parse_config", "JanusError", "ModelFilesError",
           "UnsupportedModelError", "JanusModel", "load_model", "open_image", "to_uint8_official",
           "to_unit_float", "Answer", "decode_tokens", "encode_images", "generate_image_tokens",
           "score_image_tokens", "understand", "understand_batch", "check_generation_args",
           "check_understanding_args", "check_finite", "__version__"]
