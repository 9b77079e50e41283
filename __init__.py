"""Janus-Pro for ComfyUI. ComfyUI imports this folder as a package (whatever the folder is called); the nodes
reach the runtime inside it relatively. Nodes register only inside ComfyUI; `janus_runtime` imports without it."""

import importlib.util

WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

if importlib.util.find_spec("folder_paths") is not None and importlib.util.find_spec("comfy") is not None:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, register_folder

    register_folder()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
