"""ComfyUI node classes for Janus (classic API). Thin: argument plumbing and one runtime call each."""

from .caption import JanusCaptionFolder
from .generate import JanusEdit, JanusGenerate, JanusRegenerateMasked, JanusScore
from .loader import JanusModelLoader, register_folder
from .understand import JanusUnderstand
from .vq import JanusLatentToTokens, JanusTokensToLatent, JanusVQDecode, JanusVQEncode

NODES = {
    "JanusModelLoader": (JanusModelLoader, "Janus Model Loader"),
    "JanusUnderstand": (JanusUnderstand, "Janus Understand"),
    "JanusGenerate": (JanusGenerate, "Janus Generate (CFG sampler)"),
    "JanusRegenerateMasked": (JanusRegenerateMasked, "Janus Regenerate Masked"),
    "JanusVQEncode": (JanusVQEncode, "Janus VQ Encode"),
    "JanusVQDecode": (JanusVQDecode, "Janus VQ Decode"),
    "JanusTokensToLatent": (JanusTokensToLatent, "Janus Tokens to Latent"),
    "JanusLatentToTokens": (JanusLatentToTokens, "Janus Latent to Tokens"),
    "JanusScore": (JanusScore, "Janus Score (best of N)"),
    "JanusEdit": (JanusEdit, "Janus Edit (instruction)"),
    "JanusCaptionFolder": (JanusCaptionFolder, "Janus Caption Folder"),
}
NODE_CLASS_MAPPINGS = {name: cls for name, (cls, _) in NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for name, (_, title) in NODES.items()}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "register_folder"]
