"""The shipped UI-format workflows: well-formed graphs whose nodes exist and whose widget values fit.

Core node specs come from a real ComfyUI /object_info (tests/data/core_object_info.json); our nodes' specs
from their INPUT_TYPES, the pack imported as ComfyUI imports it (in the host of tests/comfy_host.py: the
ComfyUI stand-ins when ComfyUI itself is absent). The frontend's layout of a node: tools/workflow_spec.py.
"""

import json

import comfy_host
import pytest
from workflow_spec import FRONTEND_ONLY, node_spec

from conftest import ROOT

NODE_CLASS_MAPPINGS = comfy_host.load_pack().NODE_CLASS_MAPPINGS
CORE = json.loads((ROOT / "tests" / "data" / "core_object_info.json").read_text())["nodes"]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
ACTIVE = 0  # node mode; 2 = muted, 4 = bypassed


def test_every_use_case_ships():
    names = {p.stem for p in WORKFLOWS}
    assert {"text_to_image", "image_understanding", "batch_captioning", "understand_then_regenerate",
            "image_editing", "janus_then_upscale", "best_of_n"} <= names


@pytest.fixture(params=WORKFLOWS, ids=lambda p: p.stem)
def workflow(request):
    data = json.loads(request.param.read_text())
    assert {"nodes", "links", "last_node_id", "last_link_id", "version"} <= set(data)
    return data


def test_node_types_are_ours_or_core(workflow):
    for node in workflow["nodes"]:
        t = node["type"]
        assert t in NODE_CLASS_MAPPINGS or t in CORE or t in FRONTEND_ONLY, f"unknown node type {t}"
    assert any(n["type"] in NODE_CLASS_MAPPINGS for n in workflow["nodes"])


def test_links_are_consistent(workflow):
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"]) and workflow["last_node_id"] >= max(nodes)
    link_ids = [link[0] for link in workflow["links"]]
    assert len(set(link_ids)) == len(link_ids) and workflow["last_link_id"] >= max(link_ids, default=0)
    for link_id, src, src_slot, dst, dst_slot, kind in workflow["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id
        assert kind == out["type"] == inp["type"] or "*" in (out["type"], inp["type"]), (link_id, kind)
    for node in workflow["nodes"]:
        for inp in node.get("inputs", []):
            if inp["link"] is not None:
                assert inp["link"] in link_ids
        for out in node.get("outputs", []):
            assert all(link in link_ids for link in out["links"] or [])


def test_slots_match_the_node_definitions(workflow):
    for node in workflow["nodes"]:
        spec = node_spec(node["type"], NODE_CLASS_MAPPINGS, CORE)
        assert [(o["name"], o["type"]) for o in node.get("outputs", [])] == [tuple(o) for o in spec["outputs"]]
        links = {i["name"]: i["type"] for i in spec["links"]}
        widgets = {w["name"]: w["type"] for w in spec["widgets"]}
        for inp in node.get("inputs", []):
            expected = widgets[inp["name"]] if "widget" in inp else links[inp["name"]]
            assert inp["type"] == expected, (node["type"], inp["name"])
        if node.get("mode", ACTIVE) == ACTIVE:  # every required link input of a running node is connected
            connected = {i["name"] for i in node.get("inputs", []) if i["link"] is not None}
            required = node_required_links(node["type"])
            assert required <= connected, (node["type"], required - connected)


def node_required_links(type_):
    if type_ in FRONTEND_ONLY:
        return set()
    if type_ in NODE_CLASS_MAPPINGS:
        req = NODE_CLASS_MAPPINGS[type_].INPUT_TYPES()["required"]
    else:
        req = CORE[type_]["input"]["required"]
    spec = node_spec(type_, NODE_CLASS_MAPPINGS, CORE)
    return {i["name"] for i in spec["links"] if i["name"] in req}


def test_widget_values_fit_the_inputs(workflow):
    for node in workflow["nodes"]:
        spec = node_spec(node["type"], NODE_CLASS_MAPPINGS, CORE)
        values = list(node["widgets_values"])
        expected_len = sum(2 if w["extra"] else 1 for w in spec["widgets"])
        assert len(values) == expected_len, (node["type"], values)
        for w in spec["widgets"]:
            value = values.pop(0)
            where = (node["type"], w["name"], value)
            opts = w["opts"]
            if w["type"] == "COMBO":
                if w["choices"]:  # empty lists are filled at run time (input images, upscale models)
                    assert value in w["choices"], where
            elif w["type"] == "INT":
                assert isinstance(value, int) and not isinstance(value, bool), where
                assert opts.get("min", value) <= value <= opts.get("max", value), where
            elif w["type"] == "FLOAT":
                assert isinstance(value, (int, float)) and opts.get("min", value) <= value <= opts.get("max", value), where
            elif w["type"] == "BOOLEAN":
                assert isinstance(value, bool), where
            else:
                assert isinstance(value, str), where
            if w["extra"] == "randomize":
                assert values.pop(0) in CONTROL_VALUES, where
            elif w["extra"]:
                values.pop(0)


def test_groups_and_notes_explain_the_graph(workflow):
    assert workflow["groups"] and all(g["title"] for g in workflow["groups"])
    notes = [n for n in workflow["nodes"] if n["type"] in FRONTEND_ONLY]
    assert notes and all(n["widgets_values"][0].strip() for n in notes)


NODE_TITLE, GROUP_TITLE = 30, 40  # canvas units: a node's title bar above its pos; a group's title row


def node_box(node):
    x, y = node["pos"]
    w, h = node["size"]
    return x, y - NODE_TITLE, w, h + NODE_TITLE


def overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_layout_is_readable(workflow):
    """No node hides another or a group's title; a node that starts in a group ends in it (so a node growing
    with its preview stays in its group: the samplers' size leaves the room). tools/browser_check.py checks the
    same on the sizes the frontend actually renders, and the zoom at fit-to-view."""
    nodes = workflow["nodes"]
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            assert not overlap(node_box(a), node_box(b)), (a["type"], a["id"], b["type"], b["id"])
    for group in workflow["groups"]:
        gx, gy, gw, gh = group["bounding"]
        for node in nodes:
            x, y, w, h = node_box(node)
            assert not overlap((x, y, w, h), (gx, gy, gw, GROUP_TITLE)), (group["title"], node["type"])
            if gx <= x < gx + gw and gy <= y < gy + gh:
                assert x + w <= gx + gw and y + h <= gy + gh, (group["title"], node["type"], node["id"])


def test_samplers_leave_room_for_the_live_preview(workflow):
    for node in workflow["nodes"]:
        if node["type"] in ("JanusGenerate", "JanusRegenerateMasked"):
            assert node["size"][1] >= 800, (node["type"], node["size"])  # widgets + a 384 px preview
