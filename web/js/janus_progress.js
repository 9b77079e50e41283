// janus.generateProgress: "step n / 576" on the Janus sampler nodes while they run (the live preview image
// itself is drawn by ComfyUI from the progress previews the node sends).
import { comfy, nodeById } from "./janus_common.js";

const { app, api } = await comfy();
const NODES = new Set(["JanusGenerate", "JanusRegenerateMasked"]);

function label(node, text) {
  node.janusStep = text;
  node.setDirtyCanvas?.(true, false);
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
      const node = nodeById(app, detail?.node);
      if (!node || !NODES.has(node.type)) return;
      label(node, detail.value >= detail.max ? `${detail.max} tokens` : `step ${detail.value} / ${detail.max}`);
    });
    api.addEventListener("execution_start", () => {
      for (const node of (app.rootGraph || app.graph)?._nodes ?? []) if (NODES.has(node.type)) label(node, "");
    });
  },
});
