"""Stand-in for comfy.ops.manual_cast as ComfyUI 0.33 builds it with dynamic VRAM on: Linear and Embedding
layers start without weights (Linear: None, Embedding: on the meta device) and take the tensors of the state
dict loaded into them; no layer initialises weights; every layer casts its weights to the input's dtype and
device per call."""
import torch
import torch.nn.functional as F
from torch import nn


def _cast(t, x):
    return None if t is None else t.to(device=x.device, dtype=x.dtype)


def _lazy_load(module, state_dict, prefix, local_metadata, missing_keys, unexpected_keys, has_bias):
    """0.33's disable_weight_init._lazy_load_from_state_dict: take the tensors as they come (cloned unless
    assign=True); a missing weight becomes zeros and is reported missing."""
    assign = local_metadata.get("assign_to_params_buffers", False)
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name == "weight" or (name == "bias" and has_bias and value is not None):
            setattr(module, name, nn.Parameter(value if assign else value.clone(), requires_grad=False))
        else:
            unexpected_keys.append(key)
    if module.weight is None or module.weight.is_meta:
        module.weight = nn.Parameter(torch.zeros(module.weight_shape), requires_grad=False)
        missing_keys.append(prefix + "weight")
    if has_bias and module.bias is None:
        module.bias = nn.Parameter(torch.zeros(module.weight_shape[0]), requires_grad=False)
        missing_keys.append(prefix + "bias")


class manual_cast:
    class Linear(nn.Linear):
        comfy_cast_weights = True

        def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
            nn.Module.__init__(self)
            self.in_features, self.out_features = in_features, out_features
            self.weight = self.bias = None
            self.comfy_need_lazy_init_bias = bias
            self.weight_comfy_model_dtype = self.bias_comfy_model_dtype = dtype

        @property
        def weight_shape(self):
            return (self.out_features, self.in_features)

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                  error_msgs):
            _lazy_load(self, state_dict, prefix, local_metadata, missing_keys, unexpected_keys,
                       self.comfy_need_lazy_init_bias)

        def forward(self, x):
            return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))

    class Embedding(nn.Embedding):
        comfy_cast_weights = True

        def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                     scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
            nn.Module.__init__(self)
            self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
            self.max_norm, self.norm_type = max_norm, norm_type
            self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
            self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, device="meta",
                                                   dtype=dtype or torch.get_default_dtype()), requires_grad=False)
            self.bias = None
            self.weight_comfy_model_dtype = dtype

        @property
        def weight_shape(self):
            return (self.num_embeddings, self.embedding_dim)

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                  error_msgs):
            _lazy_load(self, state_dict, prefix, local_metadata, missing_keys, unexpected_keys, has_bias=False)

        def forward(self, ids, out_dtype=None):
            weight = self.weight.to(ids.device)
            return F.embedding(ids, weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                               self.sparse).to(dtype=out_dtype)

    class Conv2d(nn.Conv2d):
        comfy_cast_weights = True

        def reset_parameters(self):
            return None

        def forward(self, x):
            return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))

    class LayerNorm(nn.LayerNorm):
        comfy_cast_weights = True

        def reset_parameters(self):
            return None

        def forward(self, x):
            return F.layer_norm(x, self.normalized_shape, _cast(self.weight, x), _cast(self.bias, x), self.eps)

    class GroupNorm(nn.GroupNorm):
        comfy_cast_weights = True

        def reset_parameters(self):
            return None

        def forward(self, x):
            return F.group_norm(x, self.num_groups, _cast(self.weight, x), _cast(self.bias, x), self.eps)
