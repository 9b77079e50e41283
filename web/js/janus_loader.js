// janus.loaderInfo: what the Janus Model Loader loaded (model, dtype, weight storage, device).
import { chain, comfy, outputWidget, setText } from "./janus_common.js";

const { app, ComfyWidgets } = await comfy();
const NODE = "JanusModelLoader";
const WIDGET = "janus_loaded";

app.registerExtension({
  name: "janus.loaderInfo",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    chain(nodeType.prototype, "onExecuted", function (message) {
      const text = Array.isArray(message?.text) ? message.text.join("\n") : message?.text;
      if (!text) return;
      const widget = outputWidget(this, WIDGET, "loaded", ComfyWidgets, app);
      if (widget.element) widget.element.rows = 2;
      setText(widget, text);
    });
  },
});
