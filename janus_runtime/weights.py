"""Reading Janus weight files (both key layouts, four file forms) into our modules, with strict accounting.

Pipeline, one tensor at a time so that host memory peaks near the model's own size:
  file key (official or transformers-native layout)
    -> official key (the transformers conversion reversed: rename, ViT q/k/v concatenated, pos-embed unsqueezed)
    -> shape-checked against a plain-torch twin of the component built on the meta device (so the check works
       whatever ``ops`` build the real modules, e.g. ComfyUI's layers that start without weights)
    -> cast to the target dtype/device
    -> the component's own key (see ``LAYOUT``); the modules fuse Llama q/k/v and gate/up while loading.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ModelFilesError

WEIGHT_FORMS = ("model.safetensors.index.json", "model.safetensors",
                "pytorch_model.bin.index.json", "pytorch_model.bin")

# Official-layout tensors present in the real files but never used at inference: the SigLIP attention-pool
# head (the official tower is built with ignore_head) and the VQ training statistic codebook_used.
UNUSED = re.compile(r"^vision_model\.vision_tower\.attn_pool\.|^gen_vision_model\.quantize\.codebook_used$"
                    r"|rotary_emb\.inv_freq$")

# Where each component's tensors live: {component: ((official key prefix, key prefix inside its module), ...)}.
LAYOUT = {
    "lm": (("language_model.", "language_model."), ("gen_embed.", "gen_embed."),
           ("gen_aligner.", "gen_aligner."), ("gen_head.", "gen_head.")),
    "vision": (("aligner.", "aligner."), ("vision_model.", "")),
    "vq": (("gen_vision_model.", ""),),
}


def component_key(official: str) -> tuple[str | None, str]:
    """Official key -> (component, key inside that component's module); (None, key) if no component owns it."""
    for comp, pairs in LAYOUT.items():
        for off, mod in pairs:
            if official.startswith(off):
                return comp, mod + official[len(off):]
    return None, official


def official_key(comp: str, key: str) -> str:
    """The inverse of ``component_key``."""
    for off, mod in LAYOUT[comp]:  # the prefixes inside a module are listed most specific first
        if key.startswith(mod):
            return off + key[len(mod):]
    raise KeyError(f"{comp}: no official prefix for {key}")


def checkpoint_shapes(module: torch.nn.Module) -> dict:
    """{key: shape} a checkpoint must provide for ``module``: its state dict, with every fused weight (declared
    by ``fuse_on_load``) split back into the parts the checkpoint stores."""
    fused = {}
    for name, m in module.named_modules():
        for target, parts in getattr(m, "fused_weights", {}).items():
            fused[f"{name}.{target}.weight".lstrip(".")] = (f"{name}.".lstrip("."), parts)
    out = {}
    for key, t in module.state_dict().items():
        if key in fused:
            prefix, parts = fused[key]
            for part, rows in parts:
                out[f"{prefix}{part}.weight"] = (rows, *t.shape[1:])
        else:
            out[key] = tuple(t.shape)
    return out


def expected_tensors(twins: dict) -> dict:
    """{official key: (component, module key, shape)} for plain-torch (meta) twins of the components."""
    return {official_key(comp, key): (comp, key, shape)
            for comp, module in twins.items() for key, shape in checkpoint_shapes(module).items()}


# ------------------------------------------------------------------------------------------------------------
# transformers-native ("deepseek-community") layout -> official layout

# (official, transformers-native) key pieces, as transformers' convert_janus_weights_to_hf.py renames them. "{n}" is a block/level number kept as is; "{h}" is an
# MLP projector's hidden layer: official Sequential index 2h+2 (GELUs sit between) <-> transformers index h.
_PREFIXES = [
    ("language_model.lm_head.", "lm_head."),
    ("language_model.model.", "model.language_model."),
    ("vision_model.vision_tower.patch_embed.proj.", "model.vision_model.embeddings.patch_embedding."),
    ("vision_model.vision_tower.blocks.{n}.norm1.", "model.vision_model.encoder.layers.{n}.layer_norm1."),
    ("vision_model.vision_tower.blocks.{n}.norm2.", "model.vision_model.encoder.layers.{n}.layer_norm2."),
    ("vision_model.vision_tower.blocks.{n}.mlp.", "model.vision_model.encoder.layers.{n}.mlp."),
    ("vision_model.vision_tower.blocks.{n}.attn.proj.",
     "model.vision_model.encoder.layers.{n}.self_attn.projection_layer."),
    ("vision_model.vision_tower.norm.", "model.vision_model.post_layernorm."),
    ("aligner.layers.0.", "model.aligner.fc1."),
    ("aligner.layers.{h}.", "model.aligner.hidden_layers.{h}."),
    ("gen_aligner.layers.0.", "model.generation_aligner.fc1."),
    ("gen_aligner.layers.{h}.", "model.generation_aligner.hidden_layers.{h}."),
    ("gen_embed.", "model.generation_embeddings."),
    ("gen_head.output_mlp_projector.", "model.generation_head.proj_out."),
    ("gen_head.vision_head.", "model.generation_head.vision_head."),
    ("gen_vision_model.", "model.vqmodel."),
]
_VQ_PIECES = [  # inside the VQ model, applied in turn
    (".encoder.conv_blocks.{n}.", ".encoder.down.{n}."),
    (".decoder.conv_blocks.{n}.", ".decoder.up.{n}."),
    (".res.{n}.", ".block.{n}."),
    (".mid.0.", ".mid.block_1."),
    (".mid.1.", ".mid.attn_1."),
    (".mid.2.", ".mid.block_2."),
]
_HF_QKV = re.compile(r"^model\.vision_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")
_HF_POS = "model.vision_model.embeddings.position_embedding.weight"


def _rules(pairs, to_hf: bool, anchored: bool):
    """Compile (official, hf) templates into (regex, replacement function) for one direction."""
    rules = []
    for official, hf in pairs:
        src, dst = (official, hf) if to_hf else (hf, official)
        pattern = re.escape(src).replace(r"\{n\}", r"(\d+)").replace(r"\{h\}", r"(\d+)")

        def replace(m, dst=dst, hidden="{h}" in src):
            if not m.groups():
                return dst
            v = int(m[1])
            if hidden:
                v = (v - 2) // 2 if to_hf else 2 * v + 2
            return dst.replace("{n}", str(v)).replace("{h}", str(v))
        rules.append((re.compile(("^" if anchored else "") + pattern), replace))
    return rules


_TO_OFFICIAL = (_rules(_PREFIXES, False, True), _rules(_VQ_PIECES, False, False), "gen_vision_model.")
_TO_HF = (_rules(_PREFIXES, True, True), _rules(_VQ_PIECES, True, False), "model.vqmodel.")


def _rename(key: str, direction) -> str:
    prefix_rules, vq_rules, vq_prefix = direction
    for pattern, replace in prefix_rules:
        new, n = pattern.subn(replace, key, count=1)
        if n:
            key = new
            break
    if key.startswith(vq_prefix):
        for pattern, replace in vq_rules:
            key = pattern.sub(replace, key)
    return key


def hf_key_to_official(key: str) -> str | None:
    """Rename one HF-native key; None for keys with no official counterpart (q/k/v parts, pos embed)."""
    if _HF_QKV.match(key) or key == _HF_POS:
        return None
    return _rename(key, _TO_OFFICIAL)


@dataclass
class Recipe:
    """How to build one official tensor from file tensors."""
    sources: list
    combine: str = "single"  # "single", "cat0" (q/k/v), "unsqueeze0" (pos embed)


def official_recipes(file_keys, layout: str) -> tuple[dict, list]:
    """Map the file's keys to official keys. Returns ({official_key: Recipe}, [unrecognised file keys])."""
    recipes, unknown = {}, []
    if layout == "official":
        return {k: Recipe([k]) for k in file_keys}, unknown
    qkv = {}
    for k in file_keys:
        m = _HF_QKV.match(k)
        if m:
            qkv.setdefault((m[1], m[3]), {})[m[2]] = k
            continue
        if k == _HF_POS:
            recipes["vision_model.vision_tower.pos_embed"] = Recipe([k], "unsqueeze0")
            continue
        new = hf_key_to_official(k)
        if new == k:  # no rename rule fired: not an HF-native Janus key
            unknown.append(k)
        else:
            recipes[new] = Recipe([k])
    for (layer, kind), parts in qkv.items():
        official = f"vision_model.vision_tower.blocks.{layer}.attn.qkv.{kind}"
        if set(parts) != set("qkv"):
            # report the missing part under its own (file-layout) name
            recipes[official] = Recipe([parts.get(p, f"model.vision_model.encoder.layers.{layer}.self_attn."
                                                      f"{p}_proj.{kind}") for p in "qkv"], "cat0")
        else:
            recipes[official] = Recipe([parts[p] for p in "qkv"], "cat0")
    return recipes, unknown


# ------------------------------------------------------------------------------------------------------------
# weight files

def find_weight_files(folder: Path) -> tuple[str, list[Path]]:
    """Return (form, files) for the first weight form present in ``folder``."""
    for form in WEIGHT_FORMS:
        path = folder / form
        if not path.is_file():
            continue
        if form.endswith(".index.json"):
            try:
                index = json.loads(path.read_text(encoding="utf-8"))
                shards = sorted(set(index["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as e:
                raise ModelFilesError(f"{path}: not a valid weight index ({e}); re-download it.") from e
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise ModelFilesError(
                    f"{path} lists shard(s) that are not in {folder}: {', '.join(missing)}. "
                    f"Download the missing file(s) from the model repository into that folder.")
            return form, [folder / s for s in shards]
        return form, [path]
    raise ModelFilesError(
        f"{folder}: no weights found. Expected one of {', '.join(WEIGHT_FORMS)} "
        f"(sharded forms with their shards). Download the model's weight files into this folder.")


class CheckpointReader:
    """Lazy access to every tensor of a checkpoint, whatever its file form."""

    def __init__(self, files: list[Path]):
        self.files = files
        self._where: dict[str, object] = {}
        self._handles = []
        for f in files:
            if f.suffix == ".safetensors":
                self._open_safetensors(f)
            else:
                self._open_bin(f)

    def _open_safetensors(self, path: Path):
        from safetensors import SafetensorError, safe_open
        try:
            h = safe_open(str(path), framework="pt", device="cpu")
            keys = list(h.keys())
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFilesError(
                f"{path} is not a readable safetensors file ({e}); it is probably truncated or corrupt. "
                f"Delete it and download it again.") from e
        self._handles.append(h)
        for k in keys:
            self._where[k] = (h, path)

    def _open_bin(self, path: Path):
        try:
            # weights_only: never run pickled code; mmap: no second copy of the file in memory
            sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # torch raises many types for bad pickles / zips
            raise ModelFilesError(
                f"{path} could not be read as a PyTorch weight file with weights_only=True ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}). It may be truncated or corrupt; download it again "
                f"(or use the model's .safetensors files).") from e
        if not isinstance(sd, dict):
            raise ModelFilesError(f"{path} does not hold a state dict (found {type(sd).__name__}).")
        for k in sd:
            self._where[k] = (sd, path)

    def keys(self):
        return list(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def get(self, key: str) -> torch.Tensor:
        h, path = self._where[key]
        if isinstance(h, dict):
            return h[key]
        from safetensors import SafetensorError
        try:
            return h.get_tensor(key)
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFilesError(f"{path}: tensor {key!r} cannot be read ({e}); the file is probably "
                                  f"truncated or corrupt. Download it again.") from e


# ------------------------------------------------------------------------------------------------------------
# accounting and assembly

def _fmt(keys, limit=12):
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dicts(folder: Path, layout: str, twins: dict, device, dtype_for) -> dict:
    """Read the checkpoint in ``folder`` into one state dict per component of ``twins``.

    ``twins``: {component: plain-torch module on the meta device}, the shapes the checkpoint must match.
    ``dtype_for(component, module_key, tensor)`` picks each tensor's storage dtype. Returns {component:
    {module key: tensor}} in checkpoint naming (fused weights still in parts). Raises ModelFilesError listing
    unknown, missing or wrongly shaped tensors before anything is returned.
    """
    form, files = find_weight_files(folder)
    reader = CheckpointReader(files)
    recipes, unknown = official_recipes(reader.keys(), layout)
    expected = expected_tensors(twins)
    for official in list(recipes):
        if UNUSED.search(official):
            del recipes[official]
        elif official not in expected:
            comp, _ = component_key(official)
            if comp is not None and comp not in twins:
                del recipes[official]  # a component the caller did not ask for
            else:
                unknown.extend(recipes.pop(official).sources)
    missing = [k for k in expected if k not in recipes]
    if unknown or missing:
        msg = [f"{folder}: the weights ({form}, {layout} layout) do not match config.json."]
        if missing:
            msg.append(f"Missing tensors ({len(missing)}): {_fmt(missing)}.")
        if unknown:
            msg.append(f"Unexpected tensors ({len(unknown)}): {_fmt(unknown)}.")
        msg.append("Check that config.json and the weight files come from the same model repository "
                   "and that no file is missing.")
        raise ModelFilesError(" ".join(msg))

    out = {comp: {} for comp in twins}
    for official, (comp, key, shape) in expected.items():
        rec = recipes[official]
        missing_src = [s for s in rec.sources if s not in reader]
        if missing_src:
            raise ModelFilesError(f"{folder}: missing tensors {_fmt(missing_src)} (needed for {official}).")
        parts = [reader.get(s) for s in rec.sources]
        t = torch.cat(parts, 0) if rec.combine == "cat0" else parts[0]
        if rec.combine == "unsqueeze0":
            t = t.unsqueeze(0)
        if tuple(t.shape) != shape:
            src = official if rec.sources == [official] else f"{official} (from {', '.join(rec.sources)})"
            raise ModelFilesError(
                f"{folder}: tensor {src} has shape {list(t.shape)} but config.json implies {list(shape)}. "
                f"The weights and config.json come from different models; re-download the model folder.")
        out[comp][key] = t.to(device=device, dtype=dtype_for(comp, key, t))
    return out


# ------------------------------------------------------------------------------------------------------------
# official layout -> transformers-native layout (for make-tiny --layout hf and the layout tests)

_QKV = re.compile(r"^vision_model\.vision_tower\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")


def official_to_hf_state_dict(sd: dict) -> dict:
    """Convert an official-layout state dict to the deepseek-community layout (transformers' conversion)."""
    out = {}
    for key, t in sd.items():
        if UNUSED.search(key):
            continue
        m = _QKV.match(key)
        if m:
            for name, part in zip("qkv", t.chunk(3, 0)):
                out[f"model.vision_model.encoder.layers.{m[1]}.self_attn.{name}_proj.{m[2]}"] = part.contiguous()
            continue
        if key == "vision_model.vision_tower.pos_embed":
            out[_HF_POS] = t[0].contiguous()
            continue
        out[_rename(key, _TO_HF)] = t
    return out
