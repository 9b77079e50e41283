"""Copy what the tests read from ../shared (the reference checkpoint and DeepSeek's outputs on it, the real
checkpoints' key lists) into tests/data, in the smallest form that keeps every parity test, so the test
command passes in a clone with nothing beside it.

    python tools/ship_reference_data.py [SHARED_DIR]        (default ../shared, or $JANUS_SHARED)

Left out: pytorch_model.bin (the same tensors as model.safetensors; the tests write it), expected tensors
that other shipped files hold bit for bit (DERIVED in tools/reference_data.py rebuilds them) and tensors no test
reads (UNREAD). Every other value is copied unchanged; tests/test_reference_data.py checks the copy against
../shared.
"""

import os
import shutil
import sys
from pathlib import Path

from reference_data import DERIVED  # tools/reference_data.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_FILES = ["config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json",
                    "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
EXPECTED_FILES = ["test_image.png", "gen_0.png", "gen_1.png", "vq_decoded.png", "understanding.json",
                  "generation.json"]
SPEC_KEYS = ["official_keys_1b.json", "official_keys_7b.json", "hf_keys_1b.json", "hf_keys_7b.json"]
UNREAD = {"understanding.safetensors": {"attention_mask", "images_emb_mask"},
          # the Janus-4o edit reference: inputs the tests recompute, and diagnostics they do not read
          "janus4o/janus4o.safetensors": {"pixel_values", "vq_latent", "vq_image_embeds", "siglip_image_embeds",
                                          "images_emb_mask", "cond_blend_logits", "step_argmax", "step_margin",
                                          "step_logprob_rows"}}


def main(shared: Path):
    from safetensors.torch import load_file, save_file
    src, dst = shared / "reference", ROOT / "tests" / "data" / "reference"
    for sub, names in (("checkpoint", CHECKPOINT_FILES), ("expected", EXPECTED_FILES)):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(src / sub / name, dst / sub / name)
    for name in ("understanding.safetensors", "generation.safetensors", "vq.safetensors"):
        drop = set(DERIVED.get(name, {})) | UNREAD.get(name, set())
        tensors = {k: v.contiguous() for k, v in load_file(str(src / "expected" / name)).items() if k not in drop}
        save_file(tensors, str(dst / "expected" / name))
    name = "janus4o/janus4o.safetensors"
    (dst / "janus4o").mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in load_file(str(src / name)).items() if k not in UNREAD[name]}
    save_file(tensors, str(dst / name))
    keys = ROOT / "tests" / "data" / "spec-keys"
    keys.mkdir(parents=True, exist_ok=True)
    for name in SPEC_KEYS:
        shutil.copyfile(shared / "spec-keys" / name, keys / name)
    print(f"copied into {dst.parent}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("JANUS_SHARED", ROOT.parent / "shared")))
