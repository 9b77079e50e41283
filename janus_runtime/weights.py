"""Reading Janus weight files (both key layouts, four file forms) into our modules, with strict accounting.

Pipeline, one tensor at a time so that host memory peaks near the model's own size:
  file key (official or transformers-native layout)
    -> official key (SPEC §6.2 reversed: rename, q/k/v concatenated, pos-embed unsqueezed)
    -> shape-checked against the shape the config implies
    -> cast to the target dtype/device
    -> our module key (official key minus the component prefix; Llama q/k/v and gate/up fused).
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

# Official-layout tensors present in the real files but never used at inference (SPEC §2.7).
UNUSED = re.compile(r"^vision_model\.vision_tower\.attn_pool\.|^gen_vision_model\.quantize\.codebook_used$"
                    r"|rotary_emb\.inv_freq$")

# component name -> official key prefix that our module's keys sit under
COMPONENT_PREFIXES = {
    "lm": ("language_model.", "gen_embed.", "gen_aligner.", "gen_head."),
    "vision": ("vision_model.", "aligner."),
    "vq": ("gen_vision_model.",),
}


def official_to_internal(key: str) -> tuple[str, str]:
    """Official key -> (component, key inside that component's module) before Llama fusion."""
    if key.startswith(COMPONENT_PREFIXES["lm"]):
        return "lm", key
    if key.startswith("vision_model."):
        return "vision", key[len("vision_model."):]
    if key.startswith("aligner."):
        return "vision", key
    if key.startswith("gen_vision_model."):
        return "vq", key[len("gen_vision_model."):]
    return "", key


# ------------------------------------------------------------------------------------------------------------
# transformers-native ("deepseek-community") layout -> official layout

# (official, transformers-native) key pieces, SPEC §6.2. "{n}" is a block/level number kept as is; "{h}" is an
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

    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


# ------------------------------------------------------------------------------------------------------------
# accounting and assembly

def expected_official_shapes(modules: dict) -> dict:
    """{official key: (shape, component, module key, part index or None)} for the (meta) modules given."""
    out = {}
    for comp, module in modules.items():
        prefix = {"lm": "", "vision": "vision_model.", "vq": "gen_vision_model."}[comp]
        for name, t in module.state_dict().items():
            official = name if name.startswith("aligner.") else prefix + name
            shape = tuple(t.shape)
            m = re.match(r"^(language_model\.model\.layers\.\d+\.)(self_attn\.qkv_proj|mlp\.gate_up_proj)\.weight$",
                         official)
            if comp == "lm" and m:
                attn = module.language_model.model.layers[0].self_attn
                mlp = module.language_model.model.layers[0].mlp
                if "qkv" in m[2]:
                    names, rows = ("q_proj", "k_proj", "v_proj"), attn.split
                    sub = "self_attn."
                else:
                    names, rows = ("gate_proj", "up_proj"), (mlp.inter, mlp.inter)
                    sub = "mlp."
                for i, (n, r) in enumerate(zip(names, rows)):
                    out[f"{m[1]}{sub}{n}.weight"] = ((r, shape[1]), comp, name, i)
            else:
                out[official] = (shape, comp, name, None)
    return out


def _fmt(keys, limit=12):
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dicts(folder: Path, layout: str, modules: dict, device, dtype_for) -> dict:
    """Read the checkpoint in ``folder`` into one state dict per component of ``modules``.

    ``modules``: {component: meta-device module}; ``dtype_for(component, module_key, tensor)`` picks each
    tensor's storage dtype. Raises ModelFilesError listing unknown, missing or wrongly shaped tensors.
    """
    form, files = find_weight_files(folder)
    reader = CheckpointReader(files)
    recipes, unknown = official_recipes(reader.keys(), layout)
    expected = expected_official_shapes(modules)
    all_components = set(COMPONENT_PREFIXES)
    wanted = set(modules)
    for official in list(recipes):
        if UNUSED.search(official):
            del recipes[official]
        elif official not in expected:
            comp, _ = official_to_internal(official)
            if comp in all_components - wanted:
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

    out = {comp: {} for comp in modules}
    pending = {}  # fused module keys waiting for their other parts
    for official, (shape, comp, name, part) in expected.items():
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
        t = t.to(device=device, dtype=dtype_for(comp, name, t))
        if part is None:
            out[comp][name] = t
        else:
            slot = pending.setdefault((comp, name), {})
            slot[part] = t
            n_parts = 3 if "qkv_proj" in name else 2
            if len(slot) == n_parts:
                out[comp][name] = torch.cat([slot[i] for i in range(n_parts)], 0)
                del pending[(comp, name)]
    return out


# ------------------------------------------------------------------------------------------------------------
# official layout -> transformers-native layout (for make-tiny --layout hf and the layout tests)

_QKV = re.compile(r"^vision_model\.vision_tower\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")


def official_to_hf_state_dict(sd: dict) -> dict:
    """Convert an official-layout state dict to the deepseek-community layout (SPEC §6.2)."""
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
