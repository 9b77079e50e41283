"""Stand-in for ComfyUI's server module: PromptServer's text and preview methods, written like the real ones
(the binary message they build); the transport (send_sync, send_bytes) is left to whoever sets
PromptServer.instance (tests/comfy_host.py records it)."""
import struct
from io import BytesIO

from PIL import Image, ImageOps


class BinaryEventTypes:
    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3


class PromptServer:
    instance = None

    def send_progress_text(self, text, node_id, sid=None):
        if isinstance(text, str):
            text = text.encode("utf-8")
        node_id_bytes = str(node_id).encode("utf-8")
        message = struct.pack(">I", len(node_id_bytes)) + node_id_bytes + text
        self.send_sync(BinaryEventTypes.TEXT, message, sid)

    async def send_image(self, image_data, sid=None):
        image_type, image, max_size = image_data[0], image_data[1], image_data[2]
        if max_size is not None:
            image = ImageOps.contain(image, (max_size, max_size), Image.Resampling.BILINEAR)
        out = BytesIO()
        out.write(struct.pack(">I", 2 if image_type == "PNG" else 1))
        image.save(out, format=image_type, quality=95, compress_level=1)
        await self.send_bytes(BinaryEventTypes.PREVIEW_IMAGE, out.getvalue(), sid=sid)
