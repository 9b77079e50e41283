"""Writes the UI-format example workflows in workflows/ from compact descriptions.

Widget values are filled in the order ComfyUI's frontend lays widgets out (required then optional inputs,
plus the extra value of seed widgets with control_after_generate and of image-upload combos), taken from our
nodes' INPUT_TYPES and from the core node specs recorded in tests/data/core_object_info.json (a real
ComfyUI server's /object_info).

Our nodes come from the pack imported as ComfyUI imports it, inside a real ComfyUI tree imported as
``main.py --cpu`` leaves it (tools/comfy_import.py; the loader node lists model folders and weight storages
through ComfyUI). So run it with the python of a ComfyUI venv (tools/setup_comfyui_venvs.sh makes them),
from the repository root:

    .venv-comfyui/0.33.0/bin/python tools/build_workflows.py [COMFYUI_DIR]
    git diff --stat workflows/        # what changed: nothing when neither the layouts nor the inputs did

COMFYUI_DIR: the tree of that venv, by default ../shared/comfyui/0.33.0 beside the clone
($JANUS_SHARED/comfyui/0.33.0 when set).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# tools/comfy_import.py and tools/workflow_spec.py, beside this script
from comfy_import import import_comfyui, load_pack, pack_module
from workflow_spec import node_spec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_COMFYUI = Path(os.environ.get("JANUS_SHARED", ROOT.parent / "shared")) / "comfyui" / "0.33.0"


def our_nodes(comfyui: Path) -> dict:
    """NODE_CLASS_MAPPINGS of the pack, registered by its __init__ as at ComfyUI's start-up."""
    if not (comfyui / "main.py").is_file():
        sys.exit(f"no ComfyUI tree at {comfyui}: pass one (python tools/build_workflows.py COMFYUI_DIR)")
    try:
        import_comfyui(comfyui)
    except ImportError as e:
        sys.exit(f"ComfyUI at {comfyui} does not import with {sys.executable} ({e}): run this with the python of "
                 f"its venv, e.g. .venv-comfyui/0.33.0/bin/python (bash tools/setup_comfyui_venvs.sh makes it)")
    return load_pack().NODE_CLASS_MAPPINGS


CORE = json.loads((ROOT / "tests" / "data" / "core_object_info.json").read_text())["nodes"]
NODE_CLASS_MAPPINGS: dict = {}  # our nodes by name: main() fills it from our_nodes() before building
# Canvas units (ComfyUI's frontend): a node's title bar sits above its pos; a group's title row is its top strip.
NODE_TITLE, GROUP_TITLE, MARGIN = 30, 40, 15
# Room the frontend needs to show each node without growing it (Nodes 2.0 sizes a node to its content; the
# samplers keep space for the live preview, the loader for what it loaded).
SIZE = {"JanusModelLoader": [340, 200], "JanusGenerate": [380, 840], "JanusRegenerateMasked": [380, 880],
        "JanusScore": [380, 520], "JanusUnderstand": [460, 700], "JanusVQDecode": [260, 80],
        "JanusVQEncode": [300, 110], "LoadImage": [340, 400], "SaveImage": [420, 460]}


class Workflow:
    def __init__(self):
        self.nodes, self.links, self.groups = [], [], []

    def add(self, type_, pos, widgets=None, title=None, size=None, mode=0):
        """A node with default widget values, overridden by ``widgets`` {name: value}."""
        spec = node_spec(type_, NODE_CLASS_MAPPINGS, CORE)
        values = []
        for w in spec["widgets"]:
            values.append((widgets or {}).get(w["name"], w["default"]))
            if w.get("extra") is not None:
                values.append(w["extra"])
        node = {"id": len(self.nodes) + 1, "type": type_, "pos": list(pos),
                "size": list(size or SIZE.get(type_, [320, 140])),
                "flags": {}, "order": len(self.nodes), "mode": mode,
                "inputs": [{"name": i["name"], "type": i["type"], "link": None} for i in spec["links"]],
                "outputs": [{"name": n, "type": t, "links": [], "slot_index": k}
                            for k, (n, t) in enumerate(spec["outputs"])],
                "properties": {"Node name for S&R": type_}, "widgets_values": values}
        if type_ == "Note":
            node["widgets_values"] = [widgets["text"]]
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node

    def link(self, src, out_name, dst, in_name):
        out_slot = next(k for k, o in enumerate(src["outputs"]) if o["name"] == out_name)
        inputs = dst["inputs"]
        slot = next((k for k, i in enumerate(inputs) if i["name"] == in_name), None)
        if slot is None:  # a widget driven by a link: the frontend adds it as an input with "widget"
            spec = node_spec(dst["type"], NODE_CLASS_MAPPINGS, CORE)
            w = next(w for w in spec["widgets"] if w["name"] == in_name)
            inputs.append({"name": in_name, "type": w["type"], "widget": {"name": in_name}, "link": None})
            slot = len(inputs) - 1
        link_id = len(self.links) + 1
        kind = src["outputs"][out_slot]["type"]
        self.links.append([link_id, src["id"], out_slot, dst["id"], slot, kind])
        src["outputs"][out_slot]["links"].append(link_id)
        inputs[slot]["link"] = link_id

    def group(self, title, members, color="#3f789e"):
        """A titled box around ``members``: their title bars included, a margin, and a free row for its title."""
        left = min(n["pos"][0] for n in members) - MARGIN
        top = min(n["pos"][1] for n in members) - NODE_TITLE - MARGIN - GROUP_TITLE
        right = max(n["pos"][0] + n["size"][0] for n in members) + MARGIN
        bottom = max(n["pos"][1] + n["size"][1] for n in members) + MARGIN
        self.groups.append({"title": title, "bounding": [left, top, right - left, bottom - top], "color": color,
                            "font_size": 22, "flags": {}})

    def save(self, name):
        data = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": self.groups, "config": {},
                "extra": {"ds": {"scale": 0.6, "offset": [60, 120]}}, "version": 0.4}
        path = ROOT / "workflows" / f"{name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n")
        print("wrote", path.relative_to(ROOT))


# Columns of the layouts: x of each column's left edge (a column is a node width plus a gap for the links).
COL = [0, 420, 880, 1340, 1800]
ROW2 = 270  # the note under the loader


def download(repo_id: str) -> str:
    """A Hugging Face model as the loader lists it: it downloads on first use."""
    return repo_id + pack_module("nodes.loader").DOWNLOAD_MARK


def model_group(w, note_text, note_height=200):
    """Loader with the workflow's note under it, grouped as step 1."""
    m = w.add("JanusModelLoader", (COL[0], 0), {"model": download("deepseek-ai/Janus-Pro-1B")})
    note = w.add("Note", (COL[0], ROW2), {"text": note_text}, size=[340, note_height])
    return m, note


def text_to_image():
    w = Workflow()
    m, note = model_group(w, "Text to image with Janus-Pro.\n\n1. Pick a model in the loader (Hugging Face names "
                             "download into models/janus on first use).\n2. Write the prompt, press Run.\n\nThe "
                             "preview fills in row by row; images are 384x384 (chain an upscaler for more).", 230)
    g = w.add("JanusGenerate", (COL[1], 0), {"batch_size": 2})
    d = w.add("JanusVQDecode", (COL[2], 0))
    s = w.add("SaveImage", (COL[2], 150), {"filename_prefix": "janus"})
    w.link(m, "janus_model", g, "janus_model")
    w.link(m, "janus_model", d, "janus_model")
    w.link(g, "tokens", d, "tokens")
    w.link(d, "image", s, "images")
    w.group("1. Load", [m, note])
    w.group("2. Generate 576 image tokens (CFG)", [g])
    w.group("3. Decode and save", [d, s], "#3f8e5a")
    w.save("text_to_image")


def understanding():
    w = Workflow()
    m, note = model_group(w, "Image understanding: the answer appears on the Janus Understand node (and streams "
                             "while it is written). Temperature 0 is the official greedy answer.", 150)
    img = w.add("LoadImage", (COL[0], 480), {"image": "example.png"})
    u = w.add("JanusUnderstand", (COL[1], 0), {"question": "Describe this image in detail."}, size=[460, 880])
    w.link(m, "janus_model", u, "janus_model")
    w.link(img, "IMAGE", u, "image")
    w.group("Ask about an image", [m, note, img, u])
    w.save("image_understanding")


def batch_captioning():
    w = Workflow()
    m, note = model_group(w, "Batch captioning: every image of the batch gets its own caption, in batch order, "
                             "in one run (rows are independent; the answer list feeds downstream nodes one caption "
                             "at a time).", 200)
    spots = [(COL[1], 0), (COL[1] + 370, 0), (COL[1], 470)]
    images = [w.add("LoadImage", xy, {"image": "example.png"}) for xy in spots]
    b1 = w.add("ImageBatch", (COL[1] + 370, 500), size=[300, 80])
    b2 = w.add("ImageBatch", (COL[1] + 370, 640), size=[300, 80])
    w.link(images[0], "IMAGE", b1, "image1")
    w.link(images[1], "IMAGE", b1, "image2")
    w.link(b1, "IMAGE", b2, "image1")
    w.link(images[2], "IMAGE", b2, "image2")
    u = w.add("JanusUnderstand", (COL[1] + 800, 0), {"question": "Write a one-sentence caption for this image.",
                                                            "max_new_tokens": 96})
    w.link(m, "janus_model", u, "janus_model")
    w.link(b2, "IMAGE", u, "image")
    w.group("1. Load", [m, note])
    w.group("2. Images, batched (ImageBatch resizes to the first)", images + [b1, b2])
    w.group("3. One caption per image", [u], "#3f8e5a")
    w.save("batch_captioning")


def caption_folder():
    w = Workflow()
    m, note = model_group(w, "Caption a folder (a LoRA / fine-tune dataset): put the images in ComfyUI/input/dataset "
                             "(or type an absolute path), press Run. Each image gets name.txt next to it; "
                             "prefix/suffix add trigger words.\n\nCancel stops after the current batch; Run again "
                             "resumes (existing captions are skipped). Unreadable images are listed in the summary."
                             "\n\nMany GPUs or machines: janus-runtime caption --shard i/n, or Ray (README: "
                             "Captioning a dataset).", 300)
    c = w.add("JanusCaptionFolder", (COL[1], 0), {"folder": "dataset", "batch_size": 4,
                                                  "question": "Describe this image in one detailed sentence."},
              size=[420, 640])
    p = w.add("PreviewAny", (COL[1] + 500, 0), size=[420, 300])
    w.link(m, "janus_model", c, "janus_model")
    w.link(c, "summary", p, "source")
    w.group("1. Load", [m, note])
    w.group("2. Caption every image of a folder into name.txt", [c, p], "#3f8e5a")
    w.save("caption_folder")


def reimagine():
    w = Workflow()
    m, note = model_group(w, "Re-imagine: Janus describes the image, and the description becomes the prompt of a "
                             "new image. Edit the question to steer the style.", 150)
    img = w.add("LoadImage", (COL[0], 480), {"image": "example.png"})
    u = w.add("JanusUnderstand", (COL[1], 0), {"question": "Describe this image as a short prompt for an artist: "
                                                           "subject, style, colours, lighting.",
                                               "max_new_tokens": 120})
    g = w.add("JanusGenerate", (COL[1] + 540, 0), {"prompt": "(filled in by Janus Understand)"})
    d = w.add("JanusVQDecode", (COL[1] + 1000, 0))
    s = w.add("SaveImage", (COL[1] + 1000, 150), {"filename_prefix": "janus_reimagined"})
    w.link(m, "janus_model", u, "janus_model")
    w.link(img, "IMAGE", u, "image")
    w.link(m, "janus_model", g, "janus_model")
    w.link(u, "answer", g, "prompt")
    w.link(m, "janus_model", d, "janus_model")
    w.link(g, "tokens", d, "tokens")
    w.link(d, "image", s, "images")
    w.group("1. Load", [m, note, img])
    w.group("2. Understand", [u])
    w.group("3. Generate from the description", [g, d, s], "#3f8e5a")
    w.save("understand_then_regenerate")


def editing():
    w = Workflow()
    m, note = model_group(w, "Image editing by token regeneration: the image is encoded to 24x24 tokens, the "
                             "masked tokens (white) are sampled again under the prompt, the rest is kept exactly. "
                             "Here the mask is the bottom half; paint your own with the mask editor of Load Image "
                             "(use a square image) instead.", 230)
    img = w.add("LoadImage", (COL[0], 570), {"image": "example.png"})
    enc = w.add("JanusVQEncode", (COL[1], 0))
    keep = w.add("SolidMask", (COL[1], 180), {"value": 0.0, "width": 384, "height": 384}, title="Keep (black)",
                 size=[300, 130])
    edit = w.add("SolidMask", (COL[1], 360), {"value": 1.0, "width": 384, "height": 192},
                 title="Regenerate (white)", size=[300, 130])
    comp = w.add("MaskComposite", (COL[1], 540), {"x": 0, "y": 192, "operation": "add"}, title="Bottom half",
                 size=[300, 160])
    r = w.add("JanusRegenerateMasked", (COL[1] + 380, 0), {"prompt": "a calm lake reflecting the sky"})
    d = w.add("JanusVQDecode", (COL[1] + 840, 0))
    s = w.add("SaveImage", (COL[1] + 840, 150), {"filename_prefix": "janus_edit"})
    w.link(m, "janus_model", enc, "janus_model")
    w.link(img, "IMAGE", enc, "image")
    w.link(keep, "MASK", comp, "destination")
    w.link(edit, "MASK", comp, "source")
    w.link(m, "janus_model", r, "janus_model")
    w.link(enc, "tokens", r, "tokens")
    w.link(comp, "MASK", r, "mask")
    w.link(m, "janus_model", d, "janus_model")
    w.link(r, "tokens", d, "tokens")
    w.link(d, "image", s, "images")
    w.group("1. Load", [m, note, img])
    w.group("2. Encode and mask", [enc, keep, edit, comp])
    w.group("3. Regenerate the masked tokens", [r], "#3f8e5a")
    w.group("4. Decode", [d, s], "#8e5a3f")
    w.save("image_editing")


def upscale():
    w = Workflow()
    m, note = model_group(w, "Janus images are 384x384. This chains core ComfyUI nodes: a 2x Lanczos rescale (no "
                             "download needed). For a model upscaler, unmute the three nodes of the lower group "
                             "(Ctrl+M) and pick a model in models/upscale_models.", 200)
    g = w.add("JanusGenerate", (COL[1], 0))
    d = w.add("JanusVQDecode", (COL[2], 0))
    up = w.add("ImageScaleBy", (COL[2], 150), {"upscale_method": "lanczos", "scale_by": 2.0}, size=[260, 110])
    s = w.add("SaveImage", (COL[2] + 300, 0), {"filename_prefix": "janus_upscaled"})
    um = w.add("UpscaleModelLoader", (COL[2], 600), {"model_name": "RealESRGAN_x2.pth"}, mode=2, size=[300, 80])
    uw = w.add("ImageUpscaleWithModel", (COL[2], 730), mode=2, size=[300, 80])
    us = w.add("SaveImage", (COL[2] + 340, 600), {"filename_prefix": "janus_model_upscaled"}, mode=2,
               size=[380, 240])
    w.link(m, "janus_model", g, "janus_model")
    w.link(m, "janus_model", d, "janus_model")
    w.link(g, "tokens", d, "tokens")
    w.link(d, "image", up, "image")
    w.link(up, "IMAGE", s, "images")
    w.link(um, "UPSCALE_MODEL", uw, "upscale_model")
    w.link(d, "image", uw, "image")
    w.link(uw, "IMAGE", us, "images")
    w.group("Janus", [m, note, g])
    w.group("Core ComfyUI: rescale and save", [d, up, s], "#3f8e5a")
    w.group("Optional: model upscaler (muted)", [um, uw, us], "#8e5a3f")
    w.save("janus_then_upscale")


def best_of_n():
    w = Workflow()
    m, note = model_group(w, "Best of N: generate 4 candidates, rank them by how likely Janus finds them for the "
                             "prompt (mean CFG log-probability), keep the best one.", 150)
    g = w.add("JanusGenerate", (COL[1], 0), {"batch_size": 4})
    sc = w.add("JanusScore", (COL[2], 0), {"keep": 1})
    d = w.add("JanusVQDecode", (COL[3], 0))
    s = w.add("SaveImage", (COL[3], 150), {"filename_prefix": "janus_best"})
    w.link(m, "janus_model", g, "janus_model")
    w.link(m, "janus_model", sc, "janus_model")
    w.link(g, "tokens", sc, "tokens")
    w.link(m, "janus_model", d, "janus_model")
    w.link(sc, "best_tokens", d, "tokens")
    w.link(d, "image", s, "images")
    w.group("1. Load", [m, note])
    w.group("2. Generate N", [g])
    w.group("3. Rank and keep the best", [sc, d, s], "#3f8e5a")
    w.save("best_of_n")


def instruction_editing():
    w = Workflow()
    m = w.add("JanusModelLoader", (COL[0], 0), {"model": download("FreedomIntelligence/Janus-4o-7B")})
    note = w.add("Note", (COL[0], ROW2), {"text": (
        "Instruction editing (Janus-4o recipe): the image conditions every step, the instruction says what to "
        "change.\n\nTrained for it: Janus-4o-7B (FreedomIntelligence, ~15 GB). Plain Janus-Pro runs it too "
        "but follows instructions weakly.\n\nimage_cfg weighs the row that sees the image only through "
        "SigLIP; several images in the batch all condition the edit.")}, size=[340, 260])
    img = w.add("LoadImage", (COL[0], 620), {"image": "example.png"})
    e = w.add("JanusEdit", (COL[1], 0), size=[340, 720])  # tall: its widgets plus the live preview
    d = w.add("JanusVQDecode", (COL[1] + 480, 0))
    s = w.add("SaveImage", (COL[1] + 480, 150), {"filename_prefix": "janus_4o_edit"})
    w.link(m, "janus_model", e, "janus_model")
    w.link(img, "IMAGE", e, "image")
    w.link(m, "janus_model", d, "janus_model")
    w.link(e, "tokens", d, "tokens")
    w.link(d, "image", s, "images")
    w.group("1. Load the model and the image", [m, note, img])
    w.group("2. Edit by instruction", [e], "#3f8e5a")
    w.group("3. Decode and save", [d, s], "#8e5a3f")
    w.save("instruction_editing")


def main(comfyui: Path):
    NODE_CLASS_MAPPINGS.update(our_nodes(comfyui))
    for build in (text_to_image, understanding, batch_captioning, caption_folder, reimagine, editing, upscale,
                  best_of_n, instruction_editing):
        build()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_COMFYUI)
