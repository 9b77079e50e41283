"""Stand-in for comfy.model_patcher: a patcher holds a module and moves it between its load and offload devices."""


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False):
        self.model.to(device_to or self.load_device)

    def detach(self, unpatch_all=True):
        self.model.to(self.offload_device)


# ComfyUI 0.33 with dynamic VRAM sets CoreModelPatcher = ModelPatcherDynamic, which gives a plain ModelPatcher
# for a CPU load device; its GPU streaming is not imitated here
CoreModelPatcher = ModelPatcher
