"""Stand-in for comfy.utils.ProgressBar: like ComfyUI's global hook, every update checks Cancel."""
from . import model_management

updates = []  # (node_id, value, total, has_preview)


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total, self.node_id, self.current = total, node_id, 0

    def update_absolute(self, value, total=None, preview=None):
        model_management.throw_exception_if_processing_interrupted()
        self.current = value
        updates.append((self.node_id, value, total or self.total, preview is not None))

    def update(self, value):
        self.update_absolute(self.current + value)
