// janus.answer: the Janus Understand answer (and the Janus Score ranking), shown on the node while it
// streams and after it runs.
import { chain, comfy, nodeById, outputWidget, setText } from "./janus_common.js";

const { app, api, ComfyWidgets } = await comfy();
const NODES = new Set(["JanusUnderstand", "JanusScore"]);
const WIDGET = "answer_text";

app.registerExtension({
  name: "janus.answer",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.has(nodeData?.name)) return;
    chain(nodeType.prototype, "onNodeCreated", function () {
      outputWidget(this, WIDGET, ComfyWidgets, app);
    });
    chain(nodeType.prototype, "onExecuted", function (message) {
      const text = message?.text;
      if (text == null) return;
      setText(outputWidget(this, WIDGET, ComfyWidgets, app), Array.isArray(text) ? text.join("\n\n") : String(text));
    });
  },
  setup() {
    // streamed text arrives as progress_text {nodeId, text}; only our nodes are touched
    api.addEventListener("progress_text", ({ detail }) => {
      const node = nodeById(app, detail?.nodeId ?? detail?.node_id);
      if (!NODES.has(node?.type) || typeof detail?.text !== "string") return;
      setText(outputWidget(node, WIDGET, ComfyWidgets, app), detail.text);
    });
  },
});
