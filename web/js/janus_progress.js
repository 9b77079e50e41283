// janus.generateProgress: "step n / 576" in the title bar of the Janus sampler nodes on the classic canvas
// (Nodes 2.0 does not draw onDrawForeground; it shows its own progress bar on the running node, driven by the
// same progress messages). The live preview image itself is shown by ComfyUI from the previews the node
// sends; after a Cancel it would stay on the node, so it is removed here.
import { allNodes, comfy, nodeByExecutionId } from "./janus_common.js";

const { app, api } = await comfy();
const NODES = new Set(["JanusGenerate", "JanusRegenerateMasked"]);

function label(node, text) {
  node.janusStep = text;
  node.setDirtyCanvas?.(true, false);
}

// The frontend's node-output store (Pinia), whose revokePreviewsByExecutionId is what the frontend itself
// calls when a node starts; null on frontends that keep previews elsewhere.
function previewStore() {
  const pinia = document.querySelector("#vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
  return pinia?._s?.get?.("nodeOutput") ?? null;
}

function clearSamplers() {
  const store = previewStore();
  for (const node of allNodes(app)) {
    if (!NODES.has(node.type)) continue;
    label(node, "");
    if (store?.revokePreviewsByExecutionId) {
      store.revokePreviewsByExecutionId(executionId(node));
      node.imgs = undefined;
    }
  }
  app.canvas?.setDirty?.(true, true);
}

// Root-graph node: its id; inside a subgraph: the path of subgraph-node ids down to it.
function executionId(node) {
  const path = [node.id];
  for (let graph = node.graph; graph && graph !== (app.rootGraph ?? app.graph); ) {
    const owner = allNodes(app).find((n) => n.subgraph === graph);
    if (!owner) break;
    path.unshift(owner.id);
    graph = owner.graph;
  }
  return path.join(":");
}

app.registerExtension({
  name: "janus.generateProgress",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.has(nodeData?.name)) return;
    const draw = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      const result = draw?.apply(this, arguments);
      if (this.janusStep && !this.flags?.collapsed) {
        ctx.save();
        ctx.font = "12px sans-serif";
        ctx.fillStyle = "#9ad";
        ctx.textAlign = "right";
        ctx.fillText(this.janusStep, this.size[0] - 8, -8);
        ctx.restore();
      }
      return result;
    };
  },
  setup() {
    api.addEventListener("progress", ({ detail }) => {
      const node = nodeByExecutionId(app, detail?.node);
      if (!node || !NODES.has(node.type)) return;
      label(node, detail.value >= detail.max ? "" : `step ${detail.value} / ${detail.max}`);
    });
    api.addEventListener("execution_start", clearSamplers);
    api.addEventListener("execution_interrupted", clearSamplers);
    api.addEventListener("execution_error", () => allNodes(app).forEach((n) => NODES.has(n.type) && label(n, "")));
    api.addEventListener("execution_success", () => allNodes(app).forEach((n) => NODES.has(n.type) && label(n, "")));
  },
});
