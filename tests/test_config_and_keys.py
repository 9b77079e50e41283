"""Config parsing (both layouts, presets, Llama defaults) and key/shape accounting at real sizes."""

import copy
import json

import pytest
import torch

from conftest import REFERENCE, SPEC_KEYS
from janus_runtime.config import parse_config
from janus_runtime.errors import UnsupportedModelError
from janus_runtime.model import build_components
from janus_runtime.tiny import hf_config
from janus_runtime.weights import UNUSED, expected_tensors, official_recipes, official_to_hf_state_dict


def official_config(size: str) -> dict:
    """The deepseek-ai config.json values of SPEC §1.2 (no explicit ViT/VQ sizes: presets apply)."""
    n = 2048 if size == "1b" else 4096
    mlp = lambda d, mt: {"cls": "MlpProjector", "model_type": mt,  # noqa: E731
                         "params": {"depth": 2, "input_dim": d, "n_embed": n, "projector_type": "mlp_gelu"}}
    language = ({"hidden_size": 2048, "intermediate_size": 5632, "max_position_embeddings": 16384,
                 "model_type": "llama", "num_attention_heads": 16, "num_hidden_layers": 24,
                 "num_key_value_heads": 16, "torch_dtype": "bfloat16", "vocab_size": 102400}
                if size == "1b" else  # Pro-7B lists only what differs from LlamaConfig defaults
                {"max_position_embeddings": 16384, "model_type": "llama", "num_hidden_layers": 30,
                 "torch_dtype": "bfloat16", "vocab_size": 102400})
    return {"architectures": ["MultiModalityCausalLM"], "model_type": "multi_modality",
            "vision_config": {"cls": "CLIPVisionTower", "model_type": "vision", "params": {
                "image_size": 384, "model_name": "siglip_large_patch16_384", "select_feature": "same",
                "select_layer": -1}},
            "aligner_config": mlp(1024, "aligner"), "gen_aligner_config": mlp(8, "gen_aligner"),
            "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision",
                                  "params": {"image_token_size": 16384, "n_embed": 8}},
            "gen_head_config": {"cls": "vision_head", "model_type": "gen_head",
                                "params": {"image_token_embed": n, "image_token_size": 16384, "n_embed": n}},
            "language_config": language}


@pytest.mark.parametrize("size", ["1b", "7b"])
def test_real_size_shapes_match_the_official_key_list(size):
    cfg = parse_config(official_config(size))
    modules = build_components(cfg, ("lm", "vision", "vq"), torch.bfloat16, torch.nn)
    expected = {k: list(shape) for k, (_, _, shape) in expected_tensors(modules).items()}
    official = json.loads((SPEC_KEYS / f"official_keys_{size}.json").read_text())
    used = {k: v for k, v in official.items() if not UNUSED.search(k)}
    assert expected == used
    assert len(official) - len(used) == 14  # 13 attn_pool tensors + codebook_used


def test_pro_7b_takes_llama_defaults():
    lang = parse_config(official_config("7b")).language
    assert (lang.hidden_size, lang.intermediate_size, lang.num_attention_heads, lang.num_key_value_heads) == \
        (4096, 11008, 32, 32)
    assert (lang.rms_norm_eps, lang.rope_theta, lang.head_dim) == (1e-6, 10000.0, 128)


@pytest.mark.parametrize("size", ["1b", "7b"])
def test_hf_layout_config_and_keys_agree_with_official(size):
    official = official_config(size)
    a, b = parse_config(official), parse_config(hf_config(official))
    assert (a.layout, b.layout) == ("official", "hf")
    b.layout = "official"
    assert a == b
    hf_keys = json.loads((SPEC_KEYS / f"hf_keys_{size}.json").read_text())
    official_keys = json.loads((SPEC_KEYS / f"official_keys_{size}.json").read_text())
    recipes, unknown = official_recipes(list(hf_keys), "hf")
    assert not unknown
    assert set(recipes) == {k for k in official_keys if not UNUSED.search(k)}
    converted = official_to_hf_state_dict({k: torch.empty(v, device="meta") for k, v in official_keys.items()})
    assert {k: list(t.shape) for k, t in converted.items()} == hf_keys


def test_explicit_params_override_presets():
    cfg = parse_config(json.loads((REFERENCE / "checkpoint" / "config.json").read_text()))
    assert (cfg.vision.width, cfg.vision.layers, cfg.vision.heads) == (64, 2, 4)
    assert (cfg.vq.ch, cfg.vq.z_channels, cfg.vq.codebook_size) == (32, 64, 16384)
    assert cfg.num_image_tokens == 576 and cfg.token_grid == 24


def test_positive_select_layer_keeps_that_many_blocks():
    raw = official_config("1b")
    raw["vision_config"]["params"]["select_layer"] = 1
    assert parse_config(raw).vision.layers == 1


def test_janusflow_is_refused_by_name():
    raw = {"model_type": "multi_modality", "vision_gen_enc_config": {}, "vision_und_enc_config": {}}
    with pytest.raises(UnsupportedModelError, match="JanusFlow.*not supported.*Janus-Pro-7B"):
        parse_config(raw)


def test_unknown_model_type_is_refused():
    with pytest.raises(UnsupportedModelError, match="model_type 'llava'.*Supported"):
        parse_config({"model_type": "llava"})


def test_unsupported_vision_tower_is_refused():
    raw = copy.deepcopy(official_config("1b"))
    raw["vision_config"]["params"]["model_name"] = "siglip_so400m_patch14_384"
    with pytest.raises(UnsupportedModelError, match="siglip_so400m"):
        parse_config(raw)
