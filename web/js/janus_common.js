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

// A labelled, read-only, selectable multiline text widget that is neither saved in the workflow nor sent to
// the server. `label` is what both node renderers show (the classic canvas as the empty box's placeholder).
export function outputWidget(node, name, label, ComfyWidgets, app) {
  const existing = node.widgets?.find((w) => w.name === name);
  if (existing) return existing;
  const widget = ComfyWidgets.STRING(node, name, ["STRING", { multiline: true }], app).widget;
  widget.label = label;
  if (widget.element) {
    widget.element.readOnly = true;
    widget.element.placeholder = label;
  }
  widget.options = { ...(widget.options || {}), read_only: true, serialize: false };
  widget.serialize = false;
  return widget;
}

export function setText(widget, text) {
  widget.value = text;
  if (widget.element && widget.element.value !== text) widget.element.value = text;
}

// The node an execution id from the server names. Inside subgraphs the id is a path "a:b:c": node a of the
// root graph is a subgraph node, b a node of its subgraph, and so on.
export function nodeByExecutionId(app, id) {
  if (id == null) return null;
  let graph = app.rootGraph ?? app.graph;
  let node = null;
  for (const part of String(id).split(":")) {
    node = graph?.getNodeById?.(part) ?? graph?.getNodeById?.(Number(part)) ?? null;
    graph = node?.subgraph;
  }
  return node;
}

// Every node of the workflow, including those inside subgraphs.
export function allNodes(app) {
  const root = app.rootGraph ?? app.graph;
  if (!root) return [];
  const graphs = [root, ...(root.subgraphs?.values?.() ?? [])];
  return graphs.flatMap((graph) => graph.nodes ?? []);
}

// The key the frontend files a node's live previews under (the node id, prefixed by its subgraph's id).
export function nodeLocatorId(app, node) {
  const root = app.rootGraph ?? app.graph;
  return !node.graph || node.graph === root ? String(node.id) : `${node.graph.id}:${node.id}`;
}
