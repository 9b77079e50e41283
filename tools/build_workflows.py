"""Writes the UI-format example workflows in workflows/ from compact descriptions.

Widget values are filled in the order ComfyUI's frontend lays widgets out (required then optional inputs,
plus the extra value of seed widgets with control_after_generate and of image-upload combos), taken from our
nodes' INPUT_TYPES and from the core node specs recorded in tests/data/core_object_info.json.

    python tools/build_workflows.py
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if importlib.util.find_spec("comfy") is None:
    sys.path.insert(0, str(ROOT / "tests" / "comfy_standins"))

from nodes import NODE_CLASS_MAPPINGS  # noqa: E402
from workflow_spec import node_spec  # noqa: E402  (tools/workflow_spec.py)

CORE = json.loads((ROOT / "tests" / "data" / "core_object_info.json").read_text())["nodes"]
MODEL = "deepseek-ai/Janus-Pro-1B"


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
        node = {"id": len(self.nodes) + 1, "type": type_, "pos": list(pos), "size": list(size or [320, 140]),
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

    def group(self, title, box, color="#3f789e"):
        """A titled box; ``box`` is given from the node tops, the title row is added above them."""
        x, y, w, h = box
        self.groups.append({"title": title, "bounding": [x, y - 40, w, h + 40], "color": color, "font_size": 22,
                            "flags": {}})

    def save(self, name):
        data = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": self.groups, "config": {},
                "extra": {"ds": {"scale": 0.8, "offset": [40, 60]}}, "version": 0.4}
        path = ROOT / "workflows" / f"{name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n")
        print("wrote", path.relative_to(ROOT))


def loader(w, pos=(0, 0)):
    return w.add("JanusModelLoader", pos, {"model": MODEL}, size=[330, 130])


def text_to_image():
    w = Workflow()
    note = w.add("Note", (0, 180), {"text": "Text to image with Janus-Pro.\n\n1. Pick a model in the loader "
                                            "(Hugging Face names download into models/janus on first use).\n"
                                            "2. Write the prompt, press Queue.\n\nThe preview fills in row by "
                                            "row; images are 384x384 (chain an upscaler for more)."},
                 size=[330, 200])
    m = loader(w)
    g = w.add("JanusGenerate", (380, 0), {"batch_size": 2}, size=[360, 420])
    d = w.add("JanusVQDecode", (790, 0), size=[260, 60])
    s = w.add("SaveImage", (1090, 0), {"filename_prefix": "janus"}, size=[400, 440])
    w.link(m, "janus_model", g, "janus_model")
    w.link(m, "janus_model", d, "janus_model")
    w.link(g, "tokens", d, "tokens")
    w.link(d, "image", s, "images")
    w.group("1. Load", (-20, -50, 370, 470))
    w.group("2. Generate 576 image tokens (CFG)", (360, -50, 400, 500))
    w.group("3. Decode and save", (770, -50, 740, 520), "#3f8e5a")
    del note
    w.save("text_to_image")


def understanding():
    w = Workflow()
    w.add("Note", (0, 180), {"text": "Image understanding: the answer appears on the Janus Understand node "
                                     "(and streams while it is written). Temperature 0 is the official "
                                     "greedy answer."}, size=[330, 140])
    m = loader(w)
    img = w.add("LoadImage", (0, 360), {"image": "example.png"}, size=[330, 330])
    u = w.add("JanusUnderstand", (380, 0), {"question": "Describe this image in detail."}, size=[460, 620])
    w.link(m, "janus_model", u, "janus_model")
    w.link(img, "IMAGE", u, "image")
    w.group("Ask about an image", (-20, -50, 880, 760))
    w.save("image_understanding")


def batch_captioning():
    w = Workflow()
    w.add("Note", (0, 180), {"text": "Batch captioning: every image of the batch gets its own caption, in "
                                     "batch order, in one run (rows are independent; the answer list feeds "
                                     "downstream nodes one caption at a time)."}, size=[330, 150])
    m = loader(w)
    images = [w.add("LoadImage", (0, 360 + 350 * k), {"image": "example.png"}, size=[330, 320]) for k in range(3)]
    b1 = w.add("ImageBatch", (380, 400), size=[220, 50])
    b2 = w.add("ImageBatch", (380, 520), size=[220, 50])
    w.link(images[0], "IMAGE", b1, "image1")
    w.link(images[1], "IMAGE", b1, "image2")
    w.link(b1, "IMAGE", b2, "image1")
    w.link(images[2], "IMAGE", b2, "image2")
    u = w.add("JanusUnderstand", (640, 0), {"question": "Write a one-sentence caption for this image.",
                                            "max_new_tokens": 96}, size=[460, 620])
    w.link(m, "janus_model", u, "janus_model")
    w.link(b2, "IMAGE", u, "image")
    w.group("Images (same size is best: ImageBatch rescales the second to the first)", (-20, 310, 640, 1080))
    w.group("One caption per image", (620, -50, 500, 700), "#3f8e5a")
    w.save("batch_captioning")


def caption_folder():
    w = Workflow()
    w.add("Note", (0, 180), {"text": "Caption a folder (a LoRA / fine-tune dataset): put the images in "
                                     "ComfyUI/input/dataset (or type an absolute path), press Queue. Each "
                                     "image gets name.txt next to it; prefix/suffix add trigger words.\n\n"
                                     "Cancel stops after the current batch; Queue again resumes (existing "
                                     "captions are skipped). Unreadable images are listed in the summary.\n\n"
                                     "Many GPUs or machines: janus-runtime caption --shard i/n, or Ray "
                                     "(README: Captioning a dataset)."}, size=[330, 260])
    m = loader(w)
    c = w.add("JanusCaptionFolder", (380, 0), {"folder": "dataset", "batch_size": 4,
                                               "question": "Describe this image in one detailed sentence."},
              size=[420, 640])
    p = w.add("PreviewAny", (840, 0), size=[420, 300])
    w.link(m, "janus_model", c, "janus_model")
    w.link(c, "summary", p, "source")
    w.group("Caption every image of a folder into name.txt", (-20, -50, 1300, 700), "#3f8e5a")
    w.save("caption_folder")


def reimagine():
    w = Workflow()
    w.add("Note", (0, 180), {"text": "Re-imagine: Janus describes the image, and the description becomes the "
                                     "prompt of a new image. Edit the question to steer the style."},
          size=[330, 130])
    m = loader(w)
    img = w.add("LoadImage", (0, 360), {"image": "example.png"}, size=[330, 330])
    u = w.add("JanusUnderstand", (380, 0), {"question": "Describe this image as a short prompt for an artist: "
                                                        "subject, style, colours, lighting.",
                                            "max_new_tokens": 120}, size=[420, 560])
    g = w.add("JanusGenerate", (840, 0), {"prompt": "(filled in by Janus Understand)"}, size=[360, 440])
    d = w.add("JanusVQDecode", (1240, 0), size=[260, 60])
    s = w.add("SaveImage", (1540, 0), {"filename_prefix": "janus_reimagined"}, size=[400, 440])
    w.link(m, "janus_model", u, "janus_model")
    w.link(img, "IMAGE", u, "image")
    w.link(m, "janus_model", g, "janus_model")
    w.link(u, "answer", g, "prompt")
    w.link(m, "janus_model", d, "janus_model")
    w.link(g, "tokens", d, "tokens")
    w.link(d, "image", s, "images")
    w.group("1. Understand", (360, -50, 460, 640))
    w.group("2. Generate from the description", (820, -50, 1140, 540), "#3f8e5a")
    w.save("understand_then_regenerate")


def editing():
    w = Workflow()
    w.add("Note", (0, 180), {"text": "Image editing by token regeneration: the image is encoded to 24x24 "
                                     "tokens, the masked tokens (white) are sampled again under the prompt, "
                                     "the rest is kept exactly. Here the mask is the bottom half; paint your "
                                     "own with the mask editor of Load Image (use a square image) instead."},
          size=[330, 190])
    m = loader(w)
    img = w.add("LoadImage", (0, 410), {"image": "example.png"}, size=[330, 330])
    enc = w.add("JanusVQEncode", (380, 0), size=[300, 90])
    keep = w.add("SolidMask", (380, 150), {"value": 0.0, "width": 384, "height": 384}, title="Keep (black)",
                 size=[300, 110])
    edit = w.add("SolidMask", (380, 300), {"value": 1.0, "width": 384, "height": 192},
                 title="Regenerate (white)", size=[300, 110])
    comp = w.add("MaskComposite", (380, 450), {"x": 0, "y": 192, "operation": "add"}, title="Bottom half",
                 size=[300, 130])
    r = w.add("JanusRegenerateMasked", (720, 0), {"prompt": "a calm lake reflecting the sky"}, size=[360, 480])
    d = w.add("JanusVQDecode", (1120, 0), size=[260, 60])
    s = w.add("SaveImage", (1420, 0), {"filename_prefix": "janus_edit"}, size=[400, 440])
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
    w.group("1. Encode and mask", (360, -50, 340, 660))
    w.group("2. Regenerate the masked tokens", (700, -50, 400, 560), "#3f8e5a")
    w.group("3. Decode", (1100, -50, 740, 520), "#8e5a3f")
    w.save("image_editing")


def upscale():
    w = Workflow()
    w.add("Note", (0, 180), {"text": "Janus images are 384x384. This chains core ComfyUI nodes: a 2x Lanczos "
                                     "rescale (no download needed). For a model upscaler, unmute the two "
                                     "nodes of the lower group (Ctrl+M) and pick a model in "
                                     "models/upscale_models."}, size=[330, 170])
    m = loader(w)
    g = w.add("JanusGenerate", (380, 0), size=[360, 420])
    d = w.add("JanusVQDecode", (780, 0), size=[260, 60])
    up = w.add("ImageScaleBy", (780, 120), {"upscale_method": "lanczos", "scale_by": 2.0}, size=[260, 90])
    s = w.add("SaveImage", (1080, 0), {"filename_prefix": "janus_upscaled"}, size=[420, 440])
    um = w.add("UpscaleModelLoader", (780, 520), {"model_name": "RealESRGAN_x2.pth"}, mode=2, size=[300, 60])
    uw = w.add("ImageUpscaleWithModel", (1120, 520), mode=2, size=[260, 50])
    us = w.add("SaveImage", (1420, 520), {"filename_prefix": "janus_model_upscaled"}, mode=2, size=[300, 300])
    w.link(m, "janus_model", g, "janus_model")
    w.link(m, "janus_model", d, "janus_model")
    w.link(g, "tokens", d, "tokens")
    w.link(d, "image", up, "image")
    w.link(up, "IMAGE", s, "images")
    w.link(um, "UPSCALE_MODEL", uw, "upscale_model")
    w.link(d, "image", uw, "image")
    w.link(uw, "IMAGE", us, "images")
    w.group("Janus", (-20, -50, 780, 500))
    w.group("Core ComfyUI: rescale and save", (760, -50, 760, 520), "#3f8e5a")
    w.group("Optional: model upscaler (muted)", (760, 470, 980, 380), "#8e5a3f")
    w.save("janus_then_upscale")


def best_of_n():
    w = Workflow()
    w.add("Note", (0, 180), {"text": "Best of N: generate 4 candidates, rank them by how likely Janus finds "
                                     "them for the prompt (mean CFG log-probability), keep the best one."},
          size=[330, 140])
    m = loader(w)
    g = w.add("JanusGenerate", (380, 0), {"batch_size": 4}, size=[360, 420])
    sc = w.add("JanusScore", (780, 0), {"keep": 1}, size=[360, 420])
    d = w.add("JanusVQDecode", (1180, 0), size=[260, 60])
    s = w.add("SaveImage", (1480, 0), {"filename_prefix": "janus_best"}, size=[400, 440])
    w.link(m, "janus_model", g, "janus_model")
    w.link(m, "janus_model", sc, "janus_model")
    w.link(g, "tokens", sc, "tokens")
    w.link(m, "janus_model", d, "janus_model")
    w.link(sc, "best_tokens", d, "tokens")
    w.link(d, "image", s, "images")
    w.group("Generate N", (360, -50, 400, 500))
    w.group("Rank and keep the best", (760, -50, 1140, 520), "#3f8e5a")
    w.save("best_of_n")


if __name__ == "__main__":
    for build in (text_to_image, understanding, batch_captioning, caption_folder, reimagine, editing, upscale,
                  best_of_n):
        build()
