"""Loading options: component subsets, dtypes, fp8 weight storage with per-layer upcast."""

import pytest
import torch

from janus_runtime import JanusError, load_model
from janus_runtime import generate_image_tokens


def test_component_subsets(tiny_dir):
    m = load_model(tiny_dir, components=("vq",))
    assert m.lm is None and m.vision is None and m.vq is not None
    with pytest.raises(JanusError, match="loaded without its 'lm' component"):
        generate_image_tokens(m, "a cat")
    with pytest.raises(JanusError, match="components must be a non-empty subset"):
        load_model(tiny_dir, components=("unet",))


def test_weights_land_in_the_target_dtype_without_meta_leftovers(tiny_dir):
    m = load_model(tiny_dir, dtype="bf16")
    for module in (m.lm, m.vision, m.vq):
        for name, p in module.named_parameters():
            assert p.device.type == "cpu" and p.dtype == torch.bfloat16, name
    with pytest.raises(JanusError, match="dtype must be one of"):
        load_model(tiny_dir, dtype="int4")


def test_fp8_weight_storage_runs_with_per_layer_upcast(tiny_dir):
    full = load_model(tiny_dir, dtype="fp32")
    fp8 = load_model(tiny_dir, dtype="fp32", weight_dtype=torch.float8_e4m3fn)
    w = fp8.lm.language_model.model.layers[0].mlp.gate_up_proj.weight
    assert w.dtype == torch.float8_e4m3fn
    assert fp8.lm.gen_head.vision_head.weight.dtype == torch.float32  # heads and embeddings stay full
    layer_bytes = lambda m: sum(p.numel() * p.element_size()  # noqa: E731
                                for p in m.lm.language_model.model.layers.parameters())
    assert layer_bytes(fp8) < 0.3 * layer_bytes(full)
    tokens = generate_image_tokens(fp8, "a red circle", n=1, temperature=0)
    assert tokens.shape == (1, 24, 24)


@pytest.mark.parametrize("device, match", [("tpu", "device tpu: not a device PyTorch knows"),
                                           ("cuda:7", "device cuda:7: (this PyTorch .* has no CUDA support|there are only)")])
def test_unavailable_device_is_refused_before_loading(tiny_dir, device, match):
    with pytest.raises(JanusError, match=match):
        load_model(tiny_dir, device=device)


def test_loading_prints_no_transformers_warnings(tiny_dir, caplog):
    """transformers 5 warns about the multi_modality model type and the Llama tokenizer class on every load."""
    import logging
    with caplog.at_level(logging.WARNING):
        load_model(tiny_dir, components=("vq",))
    assert not [r for r in caplog.records if r.name.startswith("transformers")], caplog.text
