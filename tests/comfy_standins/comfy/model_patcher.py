"""Stand-in for comfy.model_patcher.ModelPatcher: holds a module and its load/offload devices."""


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.size = size

    def model_size(self):
        if not self.size:
            self.size = sum(t.numel() * t.element_size() for t in self.model.state_dict().values())
        return self.size
