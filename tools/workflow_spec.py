"""How ComfyUI's frontend lays out a node in a UI-format workflow: its link inputs, its widgets (in the
order of widgets_values) and its outputs. Used to build workflows/ and by tests/test_workflows.py."""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
_TEXT = [{"name": "text", "type": "STRING", "default": "", "extra": None, "choices": None, "opts": {}}]
FRONTEND_ONLY = {"Note": {"links": [], "outputs": [], "widgets": _TEXT},
                 "MarkdownNote": {"links": [], "outputs": [], "widgets": _TEXT}}


def _entries(input_types: dict, order: dict | None):
    for section in ("required", "optional"):
        items = input_types.get(section, {})
        names = (order or {}).get(section, list(items))
        for name in names:
            entry = items[name]
            kind = entry[0]
            opts = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            yield name, kind, opts


def _choices(kind, opts):
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return opts.get("options", [])
    return None


def node_spec(type_: str, ours: dict, core: dict) -> dict:
    """{"links": [{name, type}], "widgets": [{name, type, default, extra, choices, opts}], "outputs": [(name, type)]}."""
    if type_ in FRONTEND_ONLY:
        return FRONTEND_ONLY[type_]
    if type_ in ours:
        cls = ours[type_]
        entries = _entries(cls.INPUT_TYPES(), None)
        outputs = list(zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES))
    elif type_ in core:
        info = core[type_]
        entries = _entries(info["input"], info.get("input_order"))
        outputs = list(zip(info["output_name"], info["output"]))
    else:
        raise KeyError(f"unknown node type {type_!r}")
    links, widgets = [], []
    for name, kind, opts in entries:
        choices = _choices(kind, opts)
        if choices is not None or (kind in WIDGET_TYPES and not opts.get("forceInput")):
            extra = None
            if opts.get("control_after_generate"):
                extra = "randomize"
            elif opts.get("image_upload"):
                extra = "image"
            default = opts.get("default", choices[0] if choices else None)
            widgets.append({"name": name, "type": "COMBO" if choices is not None else kind, "default": default,
                            "extra": extra, "choices": choices, "opts": opts})
        else:
            links.append({"name": name, "type": kind})
    return {"links": links, "widgets": widgets, "outputs": outputs}
