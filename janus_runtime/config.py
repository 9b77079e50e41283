"""One typed config for every supported Janus checkpoint, parsed from either config.json layout.

Two layouts exist (the config.json of deepseek-ai/Janus-Pro-*, and transformers' models/janus/configuration_janus.py):
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


_REQUIRED = object()


def _value(d: dict, key: str, where: str, default, kind: str, check):
    """``d[key]`` (or ``default`` when absent/null) if ``check`` accepts it; else a message naming the key."""
    if not isinstance(d, dict):
        raise ModelFilesError(f"{where}: expected a JSON object, got {type(d).__name__}; re-download config.json")
    v = d.get(key)
    if v is None:
        if default is _REQUIRED:
            raise ModelFilesError(f"{where}: missing {key!r} ({kind}); is this a complete Janus config.json? "
                                  f"Re-download it from the model repository.")
        return default
    if not check(v):
        raise ModelFilesError(f"{where}.{key} must be {kind}; got {v!r}. Fix it in config.json or "
                              f"re-download config.json from the model repository.")
    return v


def _int(d, key, where, default=_REQUIRED, minimum=1) -> int:
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum  # noqa: E731
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    return _value(d, key, where, default, kind, ok)


def _any_int(d, key, where, default) -> int:
    return _value(d, key, where, default, "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))


def _float(d, key, where, default=_REQUIRED) -> float:
    ok = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")  # noqa: E731
    return float(_value(d, key, where, default, "a positive number", ok))


def _ints(d, key, where, default) -> tuple:
    ok = lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(  # noqa: E731
        isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)
    return tuple(_value(d, key, where, default, "a non-empty list of positive integers", ok))


def _section(cfg: dict, key: str, where: str) -> dict:
    sec = cfg.get(key)
    if sec is None:
        return {}
    if not isinstance(sec, dict):
        raise ModelFilesError(f"{where}: {key} must be a JSON object; got {sec!r}. Re-download config.json.")
    return sec


def _llama(d: dict, where: str) -> LlamaConfig:
    if d.get("hidden_act", "silu") != "silu":
        raise UnsupportedModelError(f"{where}: hidden_act {d['hidden_act']!r} is not supported (Janus uses silu)")
    if d.get("rope_scaling"):
        raise UnsupportedModelError(f"{where}: rope_scaling {d['rope_scaling']!r} is not supported (Janus uses none)")
    if d.get("attention_bias") or d.get("mlp_bias"):
        raise UnsupportedModelError(f"{where}: attention/mlp biases are not supported (Janus has none)")
    base = LlamaConfig()
    cfg = LlamaConfig(**{name: _int(d, name, where, getattr(base, name)) for name in
                         ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "max_position_embeddings")},
                      num_key_value_heads=_int(d, "num_key_value_heads", where, None),
                      rms_norm_eps=_float(d, "rms_norm_eps", where, base.rms_norm_eps),
                      rope_theta=_float(d, "rope_theta", where, base.rope_theta))
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    if cfg.hidden_size % heads or (cfg.hidden_size // heads) % 2:
        raise ModelFilesError(f"{where}: hidden_size {cfg.hidden_size} must split into num_attention_heads "
                              f"{heads} heads of an even size; fix config.json or re-download it.")
    if heads % kv:
        raise ModelFilesError(f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads "
                              f"{kv}; fix config.json or re-download it.")
    if d.get("head_dim") not in (None, cfg.head_dim):
        raise UnsupportedModelError(f"{where}: head_dim {d['head_dim']!r} differs from hidden_size / "
                                    f"num_attention_heads = {cfg.head_dim}; Janus models have no such layout.")
    return cfg


def _vision(params: dict, names: dict, where: str) -> VisionConfig:
    """VisionConfig from a layout's field ``names`` (width/layers/heads); absent fields keep the preset."""
    preset = VisionConfig()
    vision = VisionConfig(
        image_size=_int(params, "image_size", where, preset.image_size),
        patch_size=_int(params, "patch_size", where, preset.patch_size),
        width=_int(params, names["width"], where, preset.width),
        layers=_int(params, names["layers"], where, preset.layers),
        heads=_int(params, names["heads"], where, preset.heads),
        mlp_ratio=_float(params, "mlp_ratio", where, preset.mlp_ratio))
    # The official tower keeps blocks [0, select_layer) (positive) or drops -select_layer-1 from the end.
    sel = _any_int(params, "select_layer", where, -1)
    vision.layers = min(vision.layers, sel) if sel > 0 else min(vision.layers, vision.layers + sel + 1)
    if vision.layers < 1:
        raise ModelFilesError(f"{where}: select_layer {sel} leaves no ViT blocks of {params.get(names['layers'])}; "
                              f"fix config.json or re-download it.")
    if vision.width % vision.heads:
        raise ModelFilesError(f"{where}: {names['width']} {vision.width} is not divisible by {names['heads']} "
                              f"{vision.heads}; fix config.json or re-download it.")
    if vision.image_size % vision.patch_size:
        raise ModelFilesError(f"{where}: image_size {vision.image_size} is not a multiple of patch_size "
                              f"{vision.patch_size}; fix config.json or re-download it.")
    return vision


def _check(jc: JanusConfig, where: str) -> JanusConfig:
    """Sizes that must agree between sections (every real checkpoint satisfies them)."""
    hidden = jc.language.hidden_size
    pairs = [("aligner n_embed", jc.aligner.n_embed, "language hidden_size", hidden),
             ("aligner input_dim", jc.aligner.input_dim, "vision width", jc.vision.width),
             ("gen_aligner n_embed", jc.gen_aligner.n_embed, "language hidden_size", hidden),
             ("gen_aligner input_dim", jc.gen_aligner.input_dim, "VQ embed_dim", jc.vq.embed_dim),
             ("gen_head n_embed", jc.gen_head.n_embed, "language hidden_size", hidden),
             ("gen_head image_token_size", jc.gen_head.image_token_size, "VQ codebook size", jc.vq.codebook_size),
             ("VQ token grid side (image_size / 2^(len(ch_mult)-1))", jc.token_grid,
              "ViT grid side (image_size / patch_size)", jc.vision.grid)]
    for a, va, b, vb in pairs:
        if va != vb:
            raise ModelFilesError(f"{where}: {a} is {va} but {b} is {vb}; they must agree. "
                                  f"Fix config.json or re-download it.")
    if jc.vision.image_size % jc.vq.downsample:
        raise ModelFilesError(f"{where}: image_size {jc.vision.image_size} is not a multiple of the VQ "
                              f"downsampling {jc.vq.downsample}; fix config.json or re-download it.")
    return jc


def _official_vq(section: dict, gp: dict, where: str) -> VQConfig:
    """gen_vision_config: the VQ-16 preset, with explicit sizes where ``params`` gives them."""
    if section.get("cls", "VQ-16") != "VQ-16":
        raise UnsupportedModelError(f"{where}: image tokenizer {section.get('cls')!r} is not supported "
                                    f"(expected VQ-16)")
    at, base = f"{where} gen_vision_config.params", VQConfig()
    return VQConfig(
        codebook_size=_int(gp, "image_token_size", at, base.codebook_size),
        embed_dim=_int(gp, "n_embed", at, base.embed_dim),
        z_channels=_int(gp, "z_channels", at, base.z_channels),
        ch=_int(gp, "ch", at, base.ch),
        encoder_ch_mult=_ints(gp, "encoder_ch_mult", at, base.encoder_ch_mult),
        decoder_ch_mult=_ints(gp, "decoder_ch_mult", at, base.decoder_ch_mult))


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
    sections = {k: _section(cfg, k, where) for k in needed}

    def params(name: str) -> dict:
        return _section(sections[name], "params", f"{where} {name}")

    vis, vp = sections["vision_config"], params("vision_config")
    if vis.get("cls", "CLIPVisionTower") != "CLIPVisionTower" or \
            vp.get("model_name", "siglip_large_patch16_384") != "siglip_large_patch16_384":
        raise UnsupportedModelError(
            f"{where}: vision encoder {vis.get('cls')}/{vp.get('model_name')} is not supported "
            f"(expected CLIPVisionTower siglip_large_patch16_384). Supported: {SUPPORTED}.")
    if vp.get("select_feature", "same") != "same":
        raise UnsupportedModelError(f"{where}: select_feature {vp['select_feature']!r} is not supported")
    vision = _vision(vp, {"width": "width", "layers": "layers", "heads": "heads"}, f"{where} vision_config.params")

    def mlp(name: str) -> MlpConfig:
        sec, p = sections[name], params(name)
        if sec.get("cls", "MlpProjector") != "MlpProjector" or p.get("projector_type", "mlp_gelu") != "mlp_gelu":
            raise UnsupportedModelError(
                f"{where}: {name} {sec.get('cls')}/{p.get('projector_type')} is not supported "
                f"(expected MlpProjector mlp_gelu)")
        at = f"{where} {name}.params"
        return MlpConfig(input_dim=_int(p, "input_dim", at), n_embed=_int(p, "n_embed", at),
                         depth=_int(p, "depth", at, 2))

    vq = _official_vq(sections["gen_vision_config"], params("gen_vision_config"), where)
    gh = sections["gen_head_config"]
    if gh.get("cls", "vision_head") != "vision_head":
        raise UnsupportedModelError(f"{where}: gen_head {gh.get('cls')!r} is not supported")
    hp, at = params("gen_head_config"), f"{where} gen_head_config.params"
    return _check(JanusConfig(
        layout="official",
        language=_llama(sections["language_config"], where + " language_config"),
        vision=vision,
        aligner=mlp("aligner_config"),
        vq=vq,
        gen_aligner=mlp("gen_aligner_config"),
        gen_head=GenHeadConfig(n_embed=_int(hp, "n_embed", at), image_token_embed=_int(hp, "image_token_embed", at),
                               image_token_size=_int(hp, "image_token_size", at, 16384))), where)


def _hf(cfg: dict, where: str) -> JanusConfig:
    text = _section(cfg, "text_config", where)
    vc = _section(cfg, "vision_config", where)
    qc = _section(cfg, "vq_config", where)
    language = _llama(text, where + " text_config")
    n = language.hidden_size
    if vc.get("use_qk_norm"):
        raise UnsupportedModelError(f"{where}: vision_config.use_qk_norm is not supported")
    vat, qat = where + " vision_config", where + " vq_config"
    vision = _vision(vc, {"width": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads"},
                     vat)
    base = VQConfig()
    mult = _ints(qc, "channel_multiplier", qat, base.decoder_ch_mult)
    vq = VQConfig(
        codebook_size=_int(qc, "num_embeddings", qat, base.codebook_size),
        embed_dim=_int(qc, "embed_dim", qat, base.embed_dim),
        z_channels=_int(qc, "latent_channels", qat, base.z_channels),
        ch=_int(qc, "base_channels", qat, base.ch),
        encoder_ch_mult=mult,
        decoder_ch_mult=mult,
        num_res_blocks=_int(qc, "num_res_blocks", qat, base.num_res_blocks))
    return _check(JanusConfig(
        layout="hf",
        language=language,
        vision=vision,
        aligner=MlpConfig(input_dim=vision.width, n_embed=_int(vc, "projection_dim", vat, n),
                          depth=_int(vc, "depth", vat, 2)),
        vq=vq,
        gen_aligner=MlpConfig(input_dim=vq.embed_dim, n_embed=_int(qc, "projection_dim", qat, n),
                              depth=_int(qc, "num_hidden_layers", qat, 2)),
        gen_head=GenHeadConfig(n_embed=n, image_token_embed=_int(qc, "image_token_embed_dim", qat, n),
                               image_token_size=vq.codebook_size)), where)


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
