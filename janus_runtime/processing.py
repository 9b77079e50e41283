"""Text and image preprocessing: tokenizer, SFT prompt template, image-token expansion, pixel pipeline.

All of it follows the official VLChatProcessor / VLMImageProcessor (SPEC §3); special-token ids are looked
up in the tokenizer, never hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import JanusError, ModelFilesError

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


def open_image(path: str | Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except FileNotFoundError:
        raise JanusError(f"image {path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
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
        if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer.model").is_file():
            raise ModelFilesError(
                f"{folder}: no tokenizer.json. Janus model folders hold tokenizer.json, tokenizer_config.json "
                f"and special_tokens_map.json next to config.json; download them from the model repository.")
        from transformers import AutoTokenizer
        try:
            tok = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
        except Exception as e:  # transformers raises assorted types for broken tokenizer files
            raise ModelFilesError(f"{folder}: the tokenizer files cannot be loaded ({type(e).__name__}: {e}). "
                                  f"Re-download tokenizer.json and tokenizer_config.json.") from e
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

    # -- prompt text ---------------------------------------------------------------------------------------
    def sft_prompt(self, messages: list[tuple[str, str]], system_prompt: str) -> str:
        """The official "deepseek" template: messages are (role, text) with the last assistant text empty."""
        out = system_prompt + "\n\n" if system_prompt else ""
        for i, (role, text) in enumerate(messages):
            text = text.strip()
            if text:
                out += f"{role}: {text}" + ("\n\n" if i % 2 == 0 else self.eos_text)
            else:
                out += f"{role}:"
        return out.strip()

    def understanding_prompt(self, question: str, n_images: int = 1, system_prompt: str | None = None,
                             history: list[tuple[str, str]] | None = None) -> str:
        """Prompt for a question about ``n_images`` images (placeholders first, one line each), after
        optional (user, assistant) ``history`` turns."""
        user, assistant = self.roles
        messages = []
        for q, a in history or []:
            messages += [(user, q), (assistant, a)]
        content = question
        if n_images and IMAGE_TAG not in question:
            content = "".join(IMAGE_TAG + "\n" for _ in range(n_images)) + question
        messages += [(user, content), (assistant, "")]
        return self.sft_prompt(messages, SYSTEM_PROMPT if system_prompt is None else system_prompt)

    def generation_prompt(self, prompt: str) -> str:
        user, assistant = self.roles
        return self.sft_prompt([(user, prompt), (assistant, "")], "") + BOI_TAG

    # -- ids -----------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """BOS + tokens, special tags as single ids (the official ``tokenizer.encode``)."""
        return self.tokenizer.encode(text)

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
