"""Stand-in for comfy.memory_management: dynamic VRAM on, as ComfyUI >= 0.30 sets it on NVIDIA."""
aimdo_enabled = True
