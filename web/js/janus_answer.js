// janus.answer: the Janus Understand answer (and the Janus Score ranking), on one labelled read-only widget,
// filled while the answer streams ("janus.text" messages) and when the node finishes ("executed").
import { chain, comfy, nodeByExecutionId, outputWidget, setText } from "./janus_common.js";

const { app, api, ComfyWidgets } = await comfy();
const LABELS = { JanusUnderstand: "answer", JanusScore: "ranking" };
const WIDGET = "janus_answer";

app.registerExtension({
  name: "janus.answer",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const label = LABELS[nodeData?.name];
    if (!label) return;
    chain(nodeType.prototype, "onNodeCreated", function () {
      outputWidget(this, WIDGET, label, ComfyWidgets, app);
    });
    chain(nodeType.prototype, "onExecuted", function (message) {
      const text = message?.text;
      if (text == null) return;
      setText(outputWidget(this, WIDGET, label, ComfyWidgets, app), Array.isArray(text) ? text.join("\n\n") : String(text));
    });
  },
  setup() {
    // our own message, not core's progress_text: the frontend shows progress_text in a second, unlabelled box
    api.addEventListener("janus.text", ({ detail }) => {
      const node = nodeByExecutionId(app, detail?.node);
      const label = LABELS[node?.type];
      if (!label || typeof detail?.text !== "string") return;
      setText(outputWidget(node, WIDGET, label, ComfyWidgets, app), detail.text);
    });
  },
});
