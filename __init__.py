"""Janus-Pro for ComfyUI. Nodes register only inside ComfyUI; `janus_runtime` imports without it."""

import importlib.util
import os
import sys

WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

# The runtime ships inside this folder; make `import janus_runtime` work without installing it. Appended,
# not prepended, so nothing of ComfyUI's (e.g. its `nodes` module) can be shadowed.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

if importlib.util.find_spec("folder_paths") is not None and importlib.util.find_spec("comfy") is not None:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, register_folder

    register_folder()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
