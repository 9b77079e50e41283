"""Tiny random-weight Janus checkpoints in the real file layouts, for trying every command offline and for tests.

The shapes follow the real architecture with small widths (the same sizes as the shared reference
checkpoint): ViT width 64 x 2 blocks, VQ base channels 32 / z 64, Llama hidden 64 x 2 layers, vocab 1024;
image size 384, 576 image tokens and the 16384 x 8 codebook stay real. The tokenizer is a small byte-level
BPE with the real special tokens.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from .config import parse_config
from .errors import JanusError
from .processing import BOI_TAG, EOI_TAG, IMAGE_TAG, PAD_TAG

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
ADDITIONAL = [BOI_TAG, IMAGE_TAG, "<patch_placeholder>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>",
              "<|grounding|>", "<|User|>", "<|Assistant|>", EOI_TAG, "<pad>"]
SENTENCES = [
    "A red circle and a yellow triangle on a blue gradient background.",
    "Describe the shapes and colors in this image.",
    "You are a helpful language and vision assistant. You are able to understand the visual content that "
    "the user provides, and assist the user with a variety of tasks using natural language.",
    "A photo of a cat sitting on a wooden table next to a window, soft morning light.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "What is in the picture? There is a green disc, a white line and a checker row.",
]

TINY_OFFICIAL_CONFIG = {
    "architectures": ["MultiModalityCausalLM"],
    "model_type": "multi_modality",
    "torch_dtype": "bfloat16",
    "vision_config": {"cls": "CLIPVisionTower", "model_type": "vision", "params": {
        "image_size": 384, "model_name": "siglip_large_patch16_384", "select_feature": "same",
        "select_layer": -1, "width": 64, "layers": 2, "heads": 4, "mlp_ratio": 4, "patch_size": 16}},
    "aligner_config": {"cls": "MlpProjector", "model_type": "aligner", "params": {
        "depth": 2, "input_dim": 64, "n_embed": 64, "projector_type": "mlp_gelu"}},
    "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision", "params": {
        "image_token_size": 16384, "n_embed": 8, "ch": 32, "z_channels": 64,
        "encoder_ch_mult": [1, 1, 2, 2, 4], "decoder_ch_mult": [1, 1, 2, 2, 4]}},
    "gen_aligner_config": {"cls": "MlpProjector", "model_type": "gen_aligner", "params": {
        "depth": 2, "input_dim": 8, "n_embed": 64, "projector_type": "mlp_gelu"}},
    "gen_head_config": {"cls": "vision_head", "model_type": "gen_head", "params": {
        "image_token_embed": 64, "image_token_size": 16384, "n_embed": 64}},
    "language_config": {"hidden_size": 64, "intermediate_size": 176, "max_position_embeddings": 16384,
                        "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2,
                        "num_key_value_heads": 4, "torch_dtype": "bfloat16", "vocab_size": 1024},
}
PREPROCESSOR = {"background_color": [127, 127, 127], "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
                "image_processor_type": "VLMImageProcessor", "image_size": 384, "image_std": [0.5, 0.5, 0.5],
                "min_size": 14, "processor_class": "VLChatProcessor", "rescale_factor": 1 / 255}
PROCESSOR = {"add_special_token": False, "ignore_id": -100, "image_tag": IMAGE_TAG, "mask_prompt": True,
             "num_image_tokens": 576, "processor_class": "VLChatProcessor", "sft_format": "deepseek"}


def official_state_dict(cfg: dict, seed: int = 0) -> dict:
    """Random weights under the official key names (plus the unused tensors real files carry), bf16."""
    from .model import build_components
    from .weights import expected_tensors
    jc = parse_config(cfg)
    twins = build_components(jc, ("lm", "vision", "vq"), torch.float32, torch.nn)
    shapes = {k: shape for k, (_, _, shape) in expected_tensors(twins).items()}
    width = jc.vision.width
    shapes["vision_model.vision_tower.attn_pool.latent"] = (1, 1, width)
    for name, shape in [("q", (width, width)), ("kv", (2 * width, width)), ("proj", (width, width)),
                        ("mlp.fc1", (jc.vision.mlp_dim, width)), ("mlp.fc2", (width, jc.vision.mlp_dim))]:
        shapes[f"vision_model.vision_tower.attn_pool.{name}.weight"] = shape
        shapes[f"vision_model.vision_tower.attn_pool.{name}.bias"] = (shape[0],)
    shapes["vision_model.vision_tower.attn_pool.norm.weight"] = (width,)
    shapes["vision_model.vision_tower.attn_pool.norm.bias"] = (width,)
    shapes["gen_vision_model.quantize.codebook_used"] = (65536,)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key in sorted(shapes):
        shape = shapes[key]
        if key.endswith("codebook_used"):
            t = torch.zeros(shape)
        elif re.search(r"norm\w*\.weight$|layernorm\.weight$", key):
            t = 1 + 0.1 * torch.randn(shape, generator=g)
        elif key.endswith(".bias"):
            t = 0.05 * torch.randn(shape, generator=g)
        elif "embed_tokens" in key or "gen_embed" in key or "quantize.embedding" in key:
            t = torch.randn(shape, generator=g)
        elif len(shape) >= 2 and key.endswith(".weight"):
            fan_in = math.prod(shape[1:])
            t = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        else:  # pos_embed, attn_pool.latent
            t = 0.5 * torch.randn(shape, generator=g)
        sd[key] = t.to(torch.bfloat16).contiguous()
    return sd


def hf_config(cfg: dict) -> dict:
    """The transformers-native config.json for an official config (the conversion script's field mapping)."""
    jc = parse_config(cfg)
    lang = cfg["language_config"]
    text = {k: v for k, v in lang.items() if k != "torch_dtype"}
    text.update(model_type="llama", rms_norm_eps=jc.language.rms_norm_eps, rope_theta=jc.language.rope_theta,
                hidden_act="silu", tie_word_embeddings=False, head_dim=jc.language.head_dim)
    return {
        "architectures": ["JanusForConditionalGeneration"], "model_type": "janus", "torch_dtype": "bfloat16",
        "text_config": text,
        "vision_config": {"model_type": "janus_vision_model", "hidden_size": jc.vision.width,
                          "num_hidden_layers": jc.vision.layers, "num_attention_heads": jc.vision.heads,
                          "image_size": jc.vision.image_size, "patch_size": jc.vision.patch_size,
                          "mlp_ratio": float(jc.vision.mlp_ratio), "layer_norm_eps": 1e-6, "hidden_act": "gelu",
                          "attention_bias": True, "use_qk_norm": False, "num_image_tokens": jc.num_image_tokens,
                          "projection_dim": jc.aligner.n_embed, "depth": jc.aligner.depth},
        "vq_config": {"model_type": "janus_vqgan", "embed_dim": jc.vq.embed_dim,
                      "num_embeddings": jc.vq.codebook_size, "latent_channels": jc.vq.z_channels,
                      "base_channels": jc.vq.ch, "channel_multiplier": list(jc.vq.decoder_ch_mult),
                      "num_res_blocks": jc.vq.num_res_blocks, "double_latent": False, "in_channels": 3,
                      "out_channels": 3, "dropout": 0.0, "num_patches": jc.token_grid,
                      "projection_dim": jc.gen_aligner.n_embed, "num_hidden_layers": jc.gen_aligner.depth,
                      "image_token_embed_dim": jc.gen_head.image_token_embed, "hidden_act": "gelu"},
    }


def write_tokenizer(folder: Path):
    """A byte-level BPE (512 ids) with the Janus special tokens, saved as LlamaTokenizerFast files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(SENTENCES, trainer)
    tok.add_special_tokens([BOS, EOS, PAD_TAG] + ADDITIONAL)
    fast = LlamaTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD_TAG,
                              add_bos_token=True, add_eos_token=False, legacy=True, model_max_length=16384,
                              additional_special_tokens=ADDITIONAL, clean_up_tokenization_spaces=False)
    fast.save_pretrained(str(folder))


def make_tiny(folder: str | Path, layout: str = "official", seed: int = 0, weights: str = "safetensors") -> Path:
    """Write a tiny random Janus checkpoint into ``folder``.

    ``layout``: "official" (deepseek-ai) or "hf" (deepseek-community). ``weights``: "safetensors",
    "bin" (pytorch_model.bin), "sharded" (safetensors shards + index) or "sharded-bin".
    """
    folder = Path(folder)
    if layout not in ("official", "hf"):
        raise ValueError(f"layout must be 'official' or 'hf', got {layout!r}")
    # Never into a folder that holds anything: over a real model it would replace config and tokenizer and
    # add a model.safetensors the loader prefers, so the folder would silently load random weights.
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise JanusError(f"make-tiny {folder}: {'not a folder' if not folder.is_dir() else 'the folder is not empty'}"
                         f"; give a new or empty folder (it never writes over existing files).")
    folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(json.dumps(TINY_OFFICIAL_CONFIG))
    sd = official_state_dict(cfg, seed)
    if layout == "hf":
        from .weights import official_to_hf_state_dict
        sd = official_to_hf_state_dict(sd)
        cfg = hf_config(cfg)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2) + "\n")
    (folder / "processor_config.json").write_text(json.dumps(PROCESSOR, indent=2) + "\n")
    write_tokenizer(folder)
    save_weights(sd, folder, weights)
    return folder


def save_weights(sd: dict, folder: Path, form: str = "safetensors", shards: int = 3):
    """Write ``sd`` in one of the four file forms real Janus repositories use."""
    from safetensors.torch import save_file
    if form == "safetensors":
        save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    elif form == "bin":
        torch.save(sd, folder / "pytorch_model.bin")
    elif form in ("sharded", "sharded-bin"):
        keys = sorted(sd)
        ext = "safetensors" if form == "sharded" else "bin"
        stem = "model" if form == "sharded" else "pytorch_model"
        weight_map = {}
        for i in range(shards):
            name = f"{stem}-{i + 1:05d}-of-{shards:05d}.{ext}"
            part = {k: sd[k] for k in keys[i::shards]}
            if ext == "safetensors":
                save_file(part, str(folder / name), metadata={"format": "pt"})
            else:
                torch.save(part, folder / name)
            weight_map.update({k: name for k in part})
        total = sum(t.numel() * t.element_size() for t in sd.values())
        (folder / f"{stem}.{ext}.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    else:
        raise ValueError(f"weights form must be safetensors, bin, sharded or sharded-bin; got {form!r}")
