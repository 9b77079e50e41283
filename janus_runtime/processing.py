"""Text and image preprocessing: tokenizer, SFT prompt template, image-token expansion, pixel pipeline.

All of it follows the official VLChatProcessor / VLMImageProcessor (deepseek-ai/Janus @ 1daa72fa, janus/models/processing_vlm.py and image_processing_vlm.py); special-token ids are looked
up in the tokenizer, never hard-coded.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import JanusError, ModelFilesError

log = logging.getLogger(__name__)

SYSTEM_PROMPT = ("You are a helpful language and vision assistant. You are able to understand the visual content "
                 "that the user provides, and assist the user with a variety of tasks using natural language.")
IMAGE_TAG = "<image_placeholder>"
BOI_TAG = "<begin_of_image>"
EOI_TAG = "<end_of_image>"
PAD_TAG = "<｜▁pad▁｜>"
BACKGROUND = (127, 127, 127)  # int(0.5 * 255) per channel, as the official processor recomputes it
MIN_SIZE = 14


# ------------------------------------------------------------------------------------------------------------
# images

def to_rgb(image: Image.Image) -> Image.Image:
    """RGB as the official ``load_pil_images`` makes it: alpha dropped (not composited), palette expanded."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit integer greyscale (16-bit PNG/TIFF: modes I;16*, I) -> 8-bit L by value / 257.

    PIL's own convert("RGB") clips these at 255, which turns a 16-bit image almost entirely white.
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        arr = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.clip(np.rint(arr / 257), 0, 255).astype(np.uint8), "L")
    if image.mode == "F":  # float images: 0..1 by convention
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
        return Image.fromarray(np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8), "L")
    return image


def open_image(path: str | Path) -> Image.Image:
    """An image file as RGB, the way ComfyUI's LoadImage sees it: EXIF orientation applied, 16-bit scaled
    to 8-bit, and of a multi-frame file (animated GIF/WebP/PNG, multi-page TIFF) frame 0, with a warning."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                frames = getattr(im, "n_frames", 1)
                if frames > 1 and im.format != "MPO":  # MPO: a camera JPEG whose frame 0 is the photo
                    log.warning("image %s has %d frames; using frame 0 only (extract another frame to use it)",
                                path, frames)
                im.seek(0)
                im.load()
                image = ImageOps.exif_transpose(im)
                return to_rgb(_to_8bit(image))
    except FileNotFoundError:
        raise JanusError(f"image {path}: file not found") from None
    except IsADirectoryError:
        raise JanusError(f"image {path} is a folder; give an image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise JanusError(f"image {path} is too large to open safely ({e}). Janus sees images at "
                         "384x384: downscale it (e.g. to 4096 px on the long side) and try again.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise JanusError(f"image {path} cannot be read as an image ({e}); "
                         f"use a PNG, JPEG or WebP file that opens in an image viewer.") from e


def resize_pad(image: Image.Image, size: int = 384) -> Image.Image:
    """Official resize (long side to ``size``, int-truncated short side, min 14, bicubic) and centred pad."""
    image = to_rgb(image)
    w, h = image.size
    m = max(w, h)
    nw, nh = max(int(w / m * size), MIN_SIZE), max(int(h / m * size), MIN_SIZE)
    image = image.resize((nw, nh), Image.BICUBIC)
    side = max(nw, nh)
    canvas = Image.new("RGB", (side, side), BACKGROUND)
    canvas.paste(image, (0, (nw - nh) // 2) if nw > nh else ((nh - nw) // 2, 0))
    return canvas


def pixels_from_pil(image: Image.Image, size: int = 384) -> torch.Tensor:
    """PIL image -> official normalised pixels [3, size, size] float32 in [-1, 1]."""
    arr = np.asarray(resize_pad(image, size)).transpose(2, 0, 1)
    x = (arr * (1.0 / 255)).astype(np.float32)  # rescale in float64, stored as float32, as the official code
    return torch.from_numpy((x - 0.5) / 0.5)


def pil_from_float(image: torch.Tensor) -> Image.Image:
    """One ComfyUI-style image [H, W, C] float in 0..1 -> PIL RGB (alpha dropped, grey expanded)."""
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise JanusError(f"image: expected [H, W, C] with C in 1, 3, 4; got {list(image.shape)}")
    arr = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]), "RGB")


def to_uint8_official(pixels: torch.Tensor) -> torch.Tensor:
    """Decoder output [B, 3, H, W] (about [-1, 1]) -> uint8 [B, H, W, 3] by the official truncating rule."""
    x = ((pixels.float() + 1) / 2 * 255).clamp(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def to_unit_float(pixels: torch.Tensor) -> torch.Tensor:
    """Decoder output [B, 3, H, W] -> ComfyUI IMAGE [B, H, W, 3] float32 in 0..1."""
    return ((pixels.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


# ------------------------------------------------------------------------------------------------------------
# tokenizer and prompts

class Prompt(str):
    """A templated prompt that remembers which of its pieces are the template's own tags.

    ``parts``: (text, is_tag) pairs whose texts join to the string. ``TextProcessor.encode`` turns tags into
    their special ids and everything else into plain-text ids.
    """

    def __new__(cls, parts):
        parts = tuple((piece, bool(tag)) for piece, tag in parts if piece)
        self = super().__new__(cls, "".join(piece for piece, _ in parts))
        self.parts = parts
        return self

    def __getnewargs__(self):  # copy and pickle rebuild from the parts, not from the joined string
        return (self.parts,)


def _parts(text) -> list[tuple[str, bool]]:
    return list(text.parts) if isinstance(text, Prompt) else [(text, False)]


def _split_tag(text: str, tag: str) -> list[tuple[str, bool]]:
    """``text`` as plain pieces with each occurrence of ``tag`` kept as a tag."""
    pieces = text.split(tag)
    out = [(pieces[0], False)]
    for piece in pieces[1:]:
        out += [(tag, True), (piece, False)]
    return out


def _strip(parts: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """``str.strip`` over a parts list: whitespace off the text at both ends (tags are never whitespace)."""
    parts = [p for p in parts if p[0]]
    while parts and not parts[0][1] and not parts[0][0].strip():
        parts.pop(0)
    while parts and not parts[-1][1] and not parts[-1][0].strip():
        parts.pop()
    if parts and not parts[0][1]:
        parts[0] = (parts[0][0].lstrip(), False)
    if parts and not parts[-1][1]:
        parts[-1] = (parts[-1][0].rstrip(), False)
    return parts


def _load_tokenizer(folder: Path):
    """The folder's tokenizer (transformers' fast tokenizer from tokenizer.json), or a ModelFilesError."""
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer.model").is_file():
        raise ModelFilesError(
            f"{folder}: no tokenizer.json. Janus model folders hold tokenizer.json, tokenizer_config.json "
            f"and special_tokens_map.json next to config.json; download them from the model repository.")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging
    verbosity = hf_logging.get_verbosity()
    # transformers warns on every load about things that do not apply here (the multi_modality model type, the
    # legacy Llama tokenizer class name); our own messages say what is wrong when something is
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except Exception as e:  # transformers raises assorted types for broken tokenizer files
        raise ModelFilesError(f"{folder}: the tokenizer files cannot be loaded ({type(e).__name__}: {e}). "
                              f"Re-download tokenizer.json and tokenizer_config.json.") from e
    finally:
        hf_logging.set_verbosity(verbosity)


@dataclass
class SpecialIds:
    bos: int
    eos: int
    pad: int
    image: int
    boi: int
    eoi: int


class TextProcessor:
    """Tokenizer + prompt template of one checkpoint."""

    def __init__(self, folder: str | Path, chat_format: str = "auto"):
        folder = Path(folder)
        from tokenizers import Tokenizer
        tok = _load_tokenizer(folder)
        vocab = tok.get_vocab()
        if IMAGE_TAG not in vocab:  # Janus-1.3B's tokenizer lacks it; the official processor adds it
            tok.add_special_tokens({"additional_special_tokens": [IMAGE_TAG]})
            vocab = tok.get_vocab()
        self.tokenizer = tok

        def need(tag):
            if tag not in vocab:
                raise ModelFilesError(f"{folder}: the tokenizer has no {tag!r} token; this is not a Janus "
                                      f"tokenizer. Re-download tokenizer.json from the model repository.")
            return vocab[tag]

        bos = tok.bos_token_id if tok.bos_token_id is not None else need("<｜begin▁of▁sentence｜>")
        eos = tok.eos_token_id if tok.eos_token_id is not None else need("<｜end▁of▁sentence｜>")
        pad = vocab.get(PAD_TAG, tok.pad_token_id if tok.pad_token_id is not None else eos)
        self.ids = SpecialIds(bos=bos, eos=eos, pad=pad, image=need(IMAGE_TAG), boi=need(BOI_TAG),
                              eoi=need(EOI_TAG))
        self.eos_text = tok.convert_ids_to_tokens(eos)
        if chat_format == "auto":
            chat_format = "pro" if "<|User|>" in vocab else "janus"
        if chat_format not in ("pro", "janus"):
            raise JanusError(f"chat_format must be 'auto', 'pro' or 'janus', got {chat_format!r}")
        self.chat_format = chat_format
        self.roles = ("<|User|>", "<|Assistant|>") if chat_format == "pro" else ("User", "Assistant")
        # The template's own tags, and a copy of the tokenizer that reads every tag string as plain text.
        self.pad_text = tok.convert_ids_to_tokens(pad)
        self.tags = {t for t in (IMAGE_TAG, BOI_TAG, EOI_TAG, self.pad_text, self.eos_text, *self.roles)
                     if t in vocab}
        self.tag_ids = {t: vocab[t] for t in self.tags}
        added = {a.content: a for a in tok.added_tokens_decoder.values()}
        self.tag_strip = {t: (added[t].lstrip, added[t].rstrip) for t in self.tags if t in added}
        self.plain = Tokenizer.from_str(tok.backend_tokenizer.to_str())
        self.plain.encode_special_tokens = True
        self.prefix = tok.encode("")  # [BOS]: what the tokenizer puts before the text

    # -- prompt text ---------------------------------------------------------------------------------------
    def _role(self, role: str) -> tuple[str, bool]:
        return role, role in self.tags  # "<|User|>" is a tag (Pro); "User" is plain text (Janus-1.3B)

    def sft_prompt(self, messages: list[tuple[str, str]], system_prompt: str) -> Prompt:
        """The official "deepseek" template: messages are (role, text) with the last assistant text empty.

        ``text`` is user text (a str: every character plain text) or a Prompt (its tags kept)."""
        parts = [(system_prompt + "\n\n", False)] if system_prompt else []
        for i, (role, text) in enumerate(messages):
            body = _strip(_parts(text))
            if body:
                parts += [self._role(role), (": ", False), *body,
                          ("\n\n", False) if i % 2 == 0 else (self.eos_text, True)]
            else:
                parts += [self._role(role), (":", False)]
        return Prompt(_strip(parts))

    def understanding_prompt(self, question: str, n_images: int = 1, system_prompt: str | None = None,
                             history: list[tuple[str, str]] | None = None) -> Prompt:
        """Prompt for a question about ``n_images`` images (placeholders first, one line each), after
        optional (user, assistant) ``history`` turns. The question's own ``<image_placeholder>`` tags mark
        where its images go; every other character of the question, history and system prompt is text."""
        user, assistant = self.roles
        messages = []
        for q, a in history or []:
            messages += [(user, q), (assistant, a)]
        content = Prompt(_split_tag(question, IMAGE_TAG))
        if n_images and IMAGE_TAG not in question:
            content = Prompt([(IMAGE_TAG, True), ("\n", False)] * n_images + list(content.parts))
        messages += [(user, content), (assistant, "")]
        return self.sft_prompt(messages, SYSTEM_PROMPT if system_prompt is None else system_prompt)

    def generation_prompt(self, prompt: str) -> Prompt:
        user, assistant = self.roles
        return Prompt(list(self.sft_prompt([(user, prompt), (assistant, "")], "").parts) + [(BOI_TAG, True)])

    # -- ids -----------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """BOS + token ids.

        A Prompt (from the builders above): its tags become their single ids and everything else is
        encoded as plain text, so a prompt or question cannot forge chat turns or end the prompt by
        containing tag strings. Text between two tags is encoded as one piece, exactly as the official
        ``tokenizer.encode`` splits a template at its special tokens, so ordinary prompts get the same ids.
        A plain str is encoded as the official code does: any tag string in it becomes its special id.
        """
        if not isinstance(text, Prompt):
            return self.tokenizer.encode(text)
        ids = list(self.prefix)
        pending, eat_left = "", False
        for piece, is_tag in text.parts:
            if not is_tag:
                pending += piece
                continue
            lstrip, rstrip = self.tag_strip.get(piece, (False, False))
            ids += self._plain_ids(pending, eat_left, lstrip)
            ids.append(self.tag_ids[piece])
            pending, eat_left = "", rstrip
        return ids + self._plain_ids(pending, eat_left, False)

    def _plain_ids(self, chunk: str, lstrip: bool, rstrip: bool) -> list[int]:
        # A tag declared lstrip/rstrip swallows the whitespace beside it, as the tokenizer's matcher does.
        chunk = chunk.lstrip() if lstrip else chunk
        chunk = chunk.rstrip() if rstrip else chunk
        return self.plain.encode(chunk, add_special_tokens=False).ids if chunk else []

    def expand_images(self, ids: list[int], num_image_tokens: int) -> list[int]:
        """Replace each image placeholder id by BOI + num_image_tokens x placeholder + EOI."""
        out = []
        for t in ids:
            if t == self.ids.image:
                out += [self.ids.boi] + [self.ids.image] * num_image_tokens + [self.ids.eoi]
            else:
                out.append(t)
        return out

    def count_images(self, text: str) -> int:
        return text.count(IMAGE_TAG)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)
