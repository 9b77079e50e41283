"""One typed config for every supported Janus checkpoint, parsed from either config.json layout.

Two layouts exist (SPEC §1.2 and §6.1):
* official ``model_type: "multi_modality"`` (deepseek-ai/*): six sub-configs; the ViT and VQ sizes come from
  named presets unless ``params`` carries explicit sizes;
* transformers-native ``model_type: "janus"`` (deepseek-community/*): ``text_config``, ``vision_config``,
  ``vq_config``.
Fields the files leave out take the LlamaConfig / preset defaults below; Janus-Pro-7B relies on them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelFilesError, UnsupportedModelError

SUPPORTED = "Janus-1.3B, Janus-Pro-1B and Janus-Pro-7B (deepseek-ai/* or deepseek-community/* layouts)"


@dataclass
class LlamaConfig:
    # transformers.LlamaConfig defaults: the official files omit whatever equals them.
    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.hidden_size % self.num_attention_heads:
            raise ModelFilesError(
                f"config.json: hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass
class VisionConfig:
    """SigLIP ViT; defaults are siglip_large_patch16_384."""
    image_size: int = 384
    patch_size: int = 16
    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def mlp_dim(self) -> int:
        return int(self.width * self.mlp_ratio)


@dataclass
class MlpConfig:
    """MlpProjector "mlp_gelu": Linear(input_dim, n_embed), then (GELU, Linear(n_embed, n_embed)) x (depth-1)."""
    input_dim: int
    n_embed: int
    depth: int = 2


@dataclass
class VQConfig:
    """VQ-16 (LlamaGen VQModel); defaults are the built-in VQ-16 values."""
    codebook_size: int = 16384
    embed_dim: int = 8
    z_channels: int = 256
    ch: int = 128
    encoder_ch_mult: tuple = (1, 1, 2, 2, 4)
    decoder_ch_mult: tuple = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.decoder_ch_mult) - 1)


@dataclass
class GenHeadConfig:
    n_embed: int
    image_token_embed: int
    image_token_size: int = 16384


@dataclass
class JanusConfig:
    layout: str  # "official" or "hf": the key layout of the weight files
    language: LlamaConfig
    vision: VisionConfig = field(default_factory=VisionConfig)
    aligner: MlpConfig = None
    vq: VQConfig = field(default_factory=VQConfig)
    gen_aligner: MlpConfig = None
    gen_head: GenHeadConfig = None

    @property
    def num_image_tokens(self) -> int:
        return self.vision.grid ** 2

    @property
    def image_size(self) -> int:
        return self.vision.image_size

    @property
    def token_grid(self) -> int:
        """Side of the generated token grid (24 for 384 px and VQ-16)."""
        return self.vision.image_size // self.vq.downsample

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _llama(d: dict, where: str) -> LlamaConfig:
    if d.get("hidden_act", "silu") != "silu":
        raise UnsupportedModelError(f"{where}: hidden_act {d['hidden_act']!r} is not supported (Janus uses silu)")
    if d.get("rope_scaling"):
        raise UnsupportedModelError(f"{where}: rope_scaling {d['rope_scaling']!r} is not supported (Janus uses none)")
    if d.get("attention_bias") or d.get("mlp_bias"):
        raise UnsupportedModelError(f"{where}: attention/mlp biases are not supported (Janus has none)")
    names = {f.name for f in dataclasses.fields(LlamaConfig)}
    return LlamaConfig(**{k: v for k, v in d.items() if k in names and v is not None})


def _vision(params: dict, names: dict) -> VisionConfig:
    """VisionConfig from a layout's field ``names`` (width/layers/heads); absent fields keep the preset."""
    preset = VisionConfig()
    vision = VisionConfig(
        image_size=params.get("image_size", preset.image_size),
        patch_size=params.get("patch_size", preset.patch_size),
        width=params.get(names["width"], preset.width),
        layers=params.get(names["layers"], preset.layers),
        heads=params.get(names["heads"], preset.heads),
        mlp_ratio=params.get("mlp_ratio", preset.mlp_ratio))
    # The official tower keeps blocks [0, select_layer) (positive) or drops -select_layer-1 from the end.
    sel = params.get("select_layer", -1)
    vision.layers = min(vision.layers, sel) if sel > 0 else min(vision.layers, vision.layers + sel + 1)
    return vision


def _official(cfg: dict, where: str) -> JanusConfig:
    if "vision_gen_enc_config" in cfg or "vision_und_enc_config" in cfg:
        raise UnsupportedModelError(
            f"{where} is a JanusFlow model (rectified-flow generation with an SDXL VAE); it is not supported. "
            f"Supported: {SUPPORTED}.")
    needed = ["language_config", "vision_config", "aligner_config", "gen_vision_config",
              "gen_aligner_config", "gen_head_config"]
    missing = [k for k in needed if k not in cfg]
    if missing:
        raise ModelFilesError(f"{where}: missing sections {missing}; is this a complete Janus config.json?")

    vis = cfg["vision_config"]
    vp = vis.get("params", {})
    if vis.get("cls", "CLIPVisionTower") != "CLIPVisionTower" or \
            vp.get("model_name", "siglip_large_patch16_384") != "siglip_large_patch16_384":
        raise UnsupportedModelError(
            f"{where}: vision encoder {vis.get('cls')}/{vp.get('model_name')} is not supported "
            f"(expected CLIPVisionTower siglip_large_patch16_384). Supported: {SUPPORTED}.")
    if vp.get("select_feature", "same") != "same":
        raise UnsupportedModelError(f"{where}: select_feature {vp['select_feature']!r} is not supported")
    vision = _vision(vp, {"width": "width", "layers": "layers", "heads": "heads"})

    def mlp(name: str) -> MlpConfig:
        sec = cfg[name]
        p = sec.get("params", {})
        if sec.get("cls", "MlpProjector") != "MlpProjector" or p.get("projector_type", "mlp_gelu") != "mlp_gelu":
            raise UnsupportedModelError(
                f"{where}: {name} {sec.get('cls')}/{p.get('projector_type')} is not supported "
                f"(expected MlpProjector mlp_gelu)")
        return MlpConfig(input_dim=p["input_dim"], n_embed=p["n_embed"], depth=p.get("depth", 2))

    gv = cfg["gen_vision_config"]
    if gv.get("cls", "VQ-16") != "VQ-16":
        raise UnsupportedModelError(f"{where}: image tokenizer {gv.get('cls')!r} is not supported (expected VQ-16)")
    gp = gv.get("params", {})
    vq = VQConfig(
        codebook_size=gp.get("image_token_size", 16384),
        embed_dim=gp.get("n_embed", 8),
        z_channels=gp.get("z_channels", 256),
        ch=gp.get("ch", 128),
        encoder_ch_mult=tuple(gp.get("encoder_ch_mult", (1, 1, 2, 2, 4))),
        decoder_ch_mult=tuple(gp.get("decoder_ch_mult", (1, 1, 2, 2, 4))))
    hp = cfg["gen_head_config"].get("params", {})
    if cfg["gen_head_config"].get("cls", "vision_head") != "vision_head":
        raise UnsupportedModelError(f"{where}: gen_head {cfg['gen_head_config'].get('cls')!r} is not supported")
    return JanusConfig(
        layout="official",
        language=_llama(cfg["language_config"], where + " language_config"),
        vision=vision,
        aligner=mlp("aligner_config"),
        vq=vq,
        gen_aligner=mlp("gen_aligner_config"),
        gen_head=GenHeadConfig(n_embed=hp["n_embed"], image_token_embed=hp["image_token_embed"],
                               image_token_size=hp.get("image_token_size", 16384)))


def _hf(cfg: dict, where: str) -> JanusConfig:
    text = cfg.get("text_config") or {}
    vc = cfg.get("vision_config") or {}
    qc = cfg.get("vq_config") or {}
    language = _llama(text, where + " text_config")
    n = language.hidden_size
    if vc.get("use_qk_norm"):
        raise UnsupportedModelError(f"{where}: vision_config.use_qk_norm is not supported")
    vision = _vision(vc, {"width": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads"})
    mult = tuple(qc.get("channel_multiplier", (1, 1, 2, 2, 4)))
    vq = VQConfig(
        codebook_size=qc.get("num_embeddings", 16384),
        embed_dim=qc.get("embed_dim", 8),
        z_channels=qc.get("latent_channels", 256),
        ch=qc.get("base_channels", 128),
        encoder_ch_mult=mult,
        decoder_ch_mult=mult,
        num_res_blocks=qc.get("num_res_blocks", 2))
    return JanusConfig(
        layout="hf",
        language=language,
        vision=vision,
        aligner=MlpConfig(input_dim=vision.width, n_embed=vc.get("projection_dim", n), depth=vc.get("depth", 2)),
        vq=vq,
        gen_aligner=MlpConfig(input_dim=vq.embed_dim, n_embed=qc.get("projection_dim", n),
                              depth=qc.get("num_hidden_layers", 2)),
        gen_head=GenHeadConfig(n_embed=n, image_token_embed=qc.get("image_token_embed_dim", n),
                               image_token_size=vq.codebook_size))


def parse_config(cfg: dict, where: str = "config.json") -> JanusConfig:
    """Turn a config.json dict (either layout) into a JanusConfig, refusing unsupported models by name."""
    model_type = cfg.get("model_type")
    if model_type == "multi_modality":
        return _official(cfg, where)
    if model_type == "janus":
        return _hf(cfg, where)
    raise UnsupportedModelError(
        f"{where}: model_type {model_type!r} is not a Janus model. Supported: {SUPPORTED} "
        f"(model_type 'multi_modality' or 'janus').")


def load_config(folder: str | Path) -> JanusConfig:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ModelFilesError(
            f"{folder}: no config.json. A Janus model folder holds config.json, the weights "
            f"(model.safetensors or pytorch_model*.bin), tokenizer.json and tokenizer_config.json; "
            f"download the whole repository (e.g. deepseek-ai/Janus-Pro-1B) into this folder.")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFilesError(f"{path} is not valid JSON ({e}); re-download it.") from e
    if not isinstance(cfg, dict):
        raise ModelFilesError(f"{path} does not hold a JSON object; re-download it.")
    return parse_config(cfg, str(path))
