// Shared helpers for the Janus extensions (no extension is registered here).
// app/api come from window.comfyAPI (current frontends); older ones fall back to the script shims.

export async function comfy() {
  const api = window.comfyAPI;
  if (api?.app?.app && api?.api?.api && api?.widgets?.ComfyWidgets) {
    return { app: api.app.app, api: api.api.api, ComfyWidgets: api.widgets.ComfyWidgets };
  }
  const [{ app }, { api: server }, { ComfyWidgets }] = await Promise.all([
    import("../../../scripts/app.js"), import("../../../scripts/api.js"), import("../../../scripts/widgets.js"),
  ]);
  return { app, api: server, ComfyWidgets };
}

// Call `extra` after whatever the node type already does in `name`.
export function chain(object, name, extra) {
  const original = object[name];
  object[name] = function () {
    const result = original?.apply(this, arguments);
    extra.apply(this, arguments);
    return result;
  };
}

// A read-only, selectable multiline text widget that is neither saved in the workflow nor sent to the server.
export function outputWidget(node, name, ComfyWidgets, app) {
  const existing = node.widgets?.find((w) => w.name === name);
  if (existing) return existing;
  const widget = ComfyWidgets.STRING(node, name, ["STRING", { multiline: true }], app).widget;
  if (widget.inputEl) widget.inputEl.readOnly = true;
  if (widget.element) widget.element.readOnly = true;
  widget.options = { ...(widget.options || {}), read_only: true, serialize: false };
  widget.serialize = false;
  return widget;
}

export function setText(widget, text) {
  widget.value = text;
  const el = widget.inputEl || widget.element;
  if (el) el.value = text;
}

// The graph node for an id sent by the server (plain ids; subgraph paths "a:b" end in the node's own id).
export function nodeById(app, id) {
  if (id == null) return null;
  const graph = app.rootGraph || app.graph;
  return graph?.getNodeById?.(id) ?? graph?.getNodeById?.(Number(String(id).split(":").pop())) ?? null;
}
