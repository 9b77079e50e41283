"""Layers that keep weights in a storage dtype (e.g. fp8) and cast them to the input's dtype per call.

Pass ``ops=cast_ops`` to any component constructor; ComfyUI passes its own ``comfy.ops.manual_cast``.
"""

import torch.nn.functional as F
from torch import nn


class Linear(nn.Linear):
    def forward(self, x):
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


class cast_ops:
    Linear = Linear
    Conv2d = nn.Conv2d
    LayerNorm = nn.LayerNorm
    GroupNorm = nn.GroupNorm
    Embedding = nn.Embedding
