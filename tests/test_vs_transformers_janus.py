"""Checkpoints in the transformers-native layout, written and run by transformers' own Janus classes.

transformers 4.57 ships ``JanusForConditionalGeneration``. A tiny one at sizes this test draws is randomised,
saved with ``save_pretrained`` and loaded with our loader; every component must then compute what transformers
computes on the same inputs. In the other direction, DeepSeek's reference checkpoint converted by our
``official_to_hf_state_dict`` must load strictly into transformers' model and reproduce DeepSeek's outputs.
Unlike a round trip through our own converter, this catches a mapping that is wrong both ways (q/k swapped).
fp32, tolerance as in tests/test_parity.py (1e-5 of each tensor's scale).
"""

import json
import math
import random

import pytest
import torch

from conftest import REFERENCE, load_expected, needs_reference
from janus_runtime import load_model
from janus_runtime.processing import IMAGE_TAG, pixels_from_pil
from janus_runtime import understand
from janus_runtime.tiny import hf_config, write_tokenizer
from janus_runtime.weights import CheckpointReader, official_to_hf_state_dict

transformers = pytest.importorskip("transformers")
from transformers import JanusConfig, JanusForConditionalGeneration  # noqa: E402


def close(actual, expected, rel=1e-5, what=""):
    scale = expected.abs().max().item()
    err = (actual.float() - expected.float()).abs().max().item()
    assert err <= rel * max(scale, 1.0), f"{what}: max abs error {err:.3g} exceeds {rel:g} x scale {scale:.3g}"


def draw_sizes(seed: int) -> dict:
    r = random.Random(seed)
    heads, text_heads = r.choice([2, 4]), r.choice([2, 4])
    hidden = text_heads * r.choice([8, 16])
    grid = r.choice([2, 3, 4])
    return dict(
        text_config=dict(model_type="llama", vocab_size=r.randint(560, 900), hidden_size=hidden,
                         intermediate_size=r.choice([48, 96, 112]), num_hidden_layers=r.choice([1, 2]),
                         num_attention_heads=text_heads,
                         num_key_value_heads=r.choice([k for k in (1, 2, text_heads) if text_heads % k == 0]),
                         max_position_embeddings=2048, rms_norm_eps=1e-6, rope_theta=10000.0,
                         tie_word_embeddings=False),
        vision_config=dict(hidden_size=heads * r.choice([8, 16]), num_hidden_layers=r.choice([1, 2]),
                           num_attention_heads=heads, image_size=16 * grid, patch_size=16,
                           mlp_ratio=r.choice([2.0, 4.0]), projection_dim=hidden, depth=2,
                           num_image_tokens=grid * grid),
        vq_config=dict(embed_dim=r.choice([4, 8]), num_embeddings=r.choice([256, 512]),
                       latent_channels=r.choice([32, 64]), base_channels=32,
                       channel_multiplier=r.choice([[1, 1, 2, 2, 4], [1, 2, 2, 2, 2]]),
                       num_res_blocks=r.choice([1, 2]), projection_dim=hidden, num_hidden_layers=2,
                       image_token_embed_dim=hidden),
    )


def randomise(model: torch.nn.Module, seed: int):
    """Weights like the reference checkpoint's: non-trivial norms and biases, a codebook that is not unit-norm."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                v = 1 + 0.1 * torch.randn(p.shape, generator=g)
            elif name.endswith("bias"):
                v = 0.05 * torch.randn(p.shape, generator=g)
            elif "position_embedding" in name:
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif "embed" in name or "quantize.embedding" in name:
                v = torch.randn(p.shape, generator=g)
            else:
                v = torch.randn(p.shape, generator=g) / math.sqrt(math.prod(p.shape[1:]))
            p.copy_(v)


@pytest.fixture(scope="module", params=[0, 1, 2])
def hf_pair(request, tmp_path_factory):
    """(transformers' model, ours loaded from the folder transformers wrote, drawn sizes)."""
    sizes = draw_sizes(request.param)
    folder = tmp_path_factory.mktemp(f"janus-hf-{request.param}")
    write_tokenizer(folder)
    image_id = json.loads((folder / "tokenizer.json").read_text())["added_tokens"]
    image_id = next(t["id"] for t in image_id if t["content"] == IMAGE_TAG)
    torch.manual_seed(request.param)
    hf = JanusForConditionalGeneration(JanusConfig(**sizes, image_token_id=image_id,
                                                   tie_word_embeddings=False)).eval()
    randomise(hf, request.param)
    hf.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file()
    ours = load_model(folder, dtype="fp32")
    assert ours.config.layout == "hf"
    return hf, ours, sizes


def _pixels(size, n=1, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@torch.inference_mode()
def test_vision_tower_and_aligner(hf_pair):
    hf, ours, sizes = hf_pair
    px = _pixels(sizes["vision_config"]["image_size"], 2)
    feats = hf.model.vision_model(px).last_hidden_state
    close(ours.vision.vision_tower(px), feats, what=f"ViT features {sizes['vision_config']}")
    close(ours.vision.aligner(feats), hf.model.aligner(feats), what="aligner")


@torch.inference_mode()
def test_normalisation_eps_on_small_activations(hf_pair):
    """eps only shows where activations are tiny: every ViT LayerNorm and VQ GroupNorm on inputs of scale 1e-4."""
    hf, ours, sizes = hf_pair
    g = torch.Generator().manual_seed(7)
    tower, hf_vit = ours.vision.vision_tower, hf.model.vision_model
    pairs = [(tower.norm, hf_vit.post_layernorm)]
    for block, layer in zip(tower.blocks, hf_vit.encoder.layers):
        pairs += [(block.norm1, layer.layer_norm1), (block.norm2, layer.layer_norm2)]
    x = 1e-4 * torch.randn(2, 5, sizes["vision_config"]["hidden_size"], generator=g)
    for a, b in pairs:
        close(a(x), b(x), what="ViT LayerNorm on small inputs")
    for a, b in [(ours.vq.encoder.norm_out, hf.model.vqmodel.encoder.norm_out),
                 (ours.vq.decoder.norm_out, hf.model.vqmodel.decoder.norm_out)]:
        x = 1e-4 * torch.randn(1, a.num_channels, 4, 4, generator=g)
        close(a(x), b(x), what="VQ GroupNorm on small inputs")


@torch.inference_mode()
def test_understanding_logits_with_images(hf_pair):
    """Prompt ids with two images (placeholders expanded by us) give transformers' logits at every position."""
    hf, ours, sizes = hf_pair
    size = sizes["vision_config"]["image_size"]
    px = _pixels(size, 2, seed=1)
    text = ours.text
    prompt = text.understanding_prompt(f"{IMAGE_TAG}\nfirst, then {IMAGE_TAG}\nsecond: which is brighter?", 0)
    ids = torch.tensor([text.expand_images(text.encode(prompt), ours.config.num_image_tokens)])
    expected = hf(input_ids=ids, pixel_values=px).logits[0]

    llama = ours.lm.language_model
    embeds = ours.lm.embed_text(ids).clone()
    embeds[ids == text.ids.image] = ours.vision(px).reshape(-1, embeds.shape[-1])
    t = ids.shape[1]
    llama.setup_cache(1, t, "cpu", torch.float32)
    try:
        slots = torch.arange(t)
        got = llama.logits(llama(embeds, slots, slots[None], llama.attention_mask(slots, t), kv_len=t))[0]
    finally:
        llama.free_cache()
    close(got, expected, what="LM logits")


def test_understand_puts_images_in_placeholder_order(hf_pair):
    """The public understand(): the first answer token's logits equal transformers' with images in order."""
    hf, ours, sizes = hf_pair
    from PIL import Image
    size = sizes["vision_config"]["image_size"]
    g = torch.Generator().manual_seed(2)
    images = [Image.fromarray(torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy())
              for _ in range(2)]
    question = f"{IMAGE_TAG}\nfirst, then {IMAGE_TAG}\nsecond: which is brighter?"
    seen = []
    handle = ours.lm.language_model.lm_head.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    try:
        understand(ours, images, question, max_new_tokens=1)
    finally:
        handle.remove()
    text = ours.text
    ids = torch.tensor([text.expand_images(text.encode(text.understanding_prompt(question, 0)),
                                           ours.config.num_image_tokens)])
    px = torch.stack([pixels_from_pil(im, size) for im in images])
    with torch.inference_mode():
        expected = hf(input_ids=ids, pixel_values=px).logits[0, -1]
    close(seen[0].reshape(-1, seen[0].shape[-1])[-1], expected, what="first-step logits")


@torch.inference_mode()
def test_generation_embeddings_and_head(hf_pair):
    hf, ours, sizes = hf_pair
    codes = torch.randint(0, sizes["vq_config"]["num_embeddings"], (2, 5), generator=torch.Generator().manual_seed(3))
    close(ours.lm.embed_image_codes(codes), hf.prepare_embeddings_for_image_generation(codes), what="gen embeds")
    h = torch.randn(2, 5, sizes["text_config"]["hidden_size"], generator=torch.Generator().manual_seed(4))
    close(ours.lm.gen_head(h), hf.model.generation_head(h), what="gen head")


@torch.inference_mode()
def test_vq_decode_and_encoder_latent(hf_pair):
    hf, ours, sizes = hf_pair
    grid = sizes["vision_config"]["image_size"] // 16
    codes = torch.randint(0, sizes["vq_config"]["num_embeddings"], (2, grid * grid),
                          generator=torch.Generator().manual_seed(5))
    close(ours.vq.decode(codes.view(2, grid, grid), torch.float32), hf.model.vqmodel.decode(codes), rel=3e-5,
          what="VQ decode")
    px = _pixels(sizes["vision_config"]["image_size"], 2, seed=6)
    vq = hf.model.vqmodel
    close(ours.vq.latent(px), vq.quant_conv(vq.encoder(px)), rel=3e-5, what="VQ encoder latent")


# ---------------------------------------------------------------------------------------------------------
# official layout -> transformers-native layout (our converter) -> transformers' model -> DeepSeek's outputs

@pytest.fixture(scope="module")
def hf_from_reference():
    official = json.loads((REFERENCE / "checkpoint" / "config.json").read_text())
    reader = CheckpointReader([REFERENCE / "checkpoint" / "model.safetensors"])
    sd = official_to_hf_state_dict({k: reader.get(k).float() for k in reader.keys()})
    cfg = hf_config(official)
    cfg["text_config"].pop("torch_dtype", None)
    hf = JanusForConditionalGeneration(JanusConfig(text_config=cfg["text_config"], vision_config=cfg["vision_config"],
                                                   vq_config=cfg["vq_config"], tie_word_embeddings=False)).eval()
    missing, unexpected = hf.load_state_dict(sd, strict=True)
    assert not missing and not unexpected
    return hf


@needs_reference
@torch.inference_mode()
def test_converted_reference_runs_in_transformers_like_deepseek(hf_from_reference):
    hf = hf_from_reference
    und = load_expected("understanding.safetensors")
    px = und["pixel_values"][:, 0]
    feats = hf.model.vision_model(px).last_hidden_state
    close(feats, und["vision_features"], what="ViT features")
    close(hf.model.aligner(feats), und["image_embeds"], what="aligner")
    logits = hf(inputs_embeds=und["inputs_embeds"]).logits[:, -1]
    close(logits, und["last_logits"], what="LM last logits")
    vq = load_expected("vq.safetensors")
    close(hf.model.vqmodel.decode(vq["indices"].view(1, -1)), vq["decoded"], rel=3e-5, what="VQ decode")
    # generation: the official CFG rows with the first 287 official codes, teacher-forced in one forward
    gen = load_expected("generation.safetensors")
    steps = 287
    rows = gen["cfg_tokens"].repeat_interleave(2, 0)  # cond, cond, uncond, uncond; images 0, 1, 0, 1
    codes = gen["generated_tokens"][:, :steps].repeat(2, 1)
    embeds = torch.cat([hf.get_input_embeddings()(rows), hf.prepare_embeddings_for_image_generation(codes)], 1)
    hidden = hf.model(inputs_embeds=embeds).last_hidden_state[:, -1]
    logits = hf.model.generation_head(hidden)
    close(logits[:2], gen["cond_logits"][:, 2], what="cond logits at step 287")
    close(logits[2:], gen["uncond_logits"][:, 2], what="uncond logits at step 287")
