"""Stand-in for comfy.ops.manual_cast: layers cast their weights to the input's dtype and device per call."""
import torch.nn.functional as F
from torch import nn


def _cast(t, x):
    return None if t is None else t.to(device=x.device, dtype=x.dtype)


class manual_cast:
    class Linear(nn.Linear):
        comfy_cast_weights = True

        def forward(self, x):
            return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))

    class Conv2d(nn.Conv2d):
        comfy_cast_weights = True

        def forward(self, x):
            return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))

    class LayerNorm(nn.LayerNorm):
        comfy_cast_weights = True

        def forward(self, x):
            return F.layer_norm(x, self.normalized_shape, _cast(self.weight, x), _cast(self.bias, x), self.eps)

    class GroupNorm(nn.GroupNorm):
        comfy_cast_weights = True

        def forward(self, x):
            return F.group_norm(x, self.num_groups, _cast(self.weight, x), _cast(self.bias, x), self.eps)

    class Embedding(nn.Embedding):
        comfy_cast_weights = True
