"""Stand-in for ComfyUI's server module: records the answer text the nodes stream to the browser."""


class PromptServer:
    instance = None

    def __init__(self):
        self.client_id = None
        self.texts = []  # (node id, text) of every "janus.text" message

    def send_sync(self, event, data, sid=None):
        if event == "janus.text":
            self.texts.append((data["node"], data["text"]))


PromptServer.instance = PromptServer()
