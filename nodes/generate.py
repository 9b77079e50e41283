"""Janus Generate (CFG sampler), Janus Regenerate Masked and Janus Score: image tokens from text."""

from __future__ import annotations

import dataclasses

import torch

from ..janus_runtime import JanusError, generate_image_tokens, score_image_tokens
from ..janus_runtime.edit import edit_image_tokens
from ..janus_runtime.codebook import colour_table, decoder_preview_image, has_colour_table, preview_image

from .common import SEED, images_to_pil, sampler_inputs, step_hook
from .memory import LM, VISION, VQ, generation_bytes, vq_bytes
from .tokens import mask_to_grid

PROMPT = ("STRING", {"multiline": True, "default": "A lighthouse on a cliff at sunset, dramatic clouds, oil painting",
                     "tooltip": "What the image should show."})
NEGATIVE = ("STRING", {"multiline": True, "default": "", "tooltip":
                       "What to steer away from. Empty: the official unconditional prompt."})
CFG = ("FLOAT", {"default": 5.0, "min": 0.0, "max": 20.0, "step": 0.5, "tooltip":
                 "Classifier-free guidance weight: uncond + cfg x (cond - uncond). 1 = no guidance; "
                 "the official default is 5."})


FAST, DECODER = "colour table (fast)", "VQ decoder (slow)"
PREVIEWS = (FAST, DECODER, "off")
PREVIEW_INPUTS = {
    "preview_every": ("INT", {"default": 24, "min": 0, "max": 576, "tooltip":
                      "Show a live preview of image 0 every N tokens (24 = one row of the 24x24 grid; 0 = off)."}),
    "preview_method": (list(PREVIEWS), {"default": FAST, "tooltip":
                       "colour table: each token drawn in its code's average colour, learnt once per model "
                       "from the VQ decoder (free). VQ decoder: the real pixels of the finished rows (about "
                       "one full decode per preview: slow on CPU)."}),
}


def _generation_inputs() -> dict:
    return {"cfg": CFG, **sampler_inputs(1.0), "seed": SEED}


def _previewer(handle, every: int, method: str):
    """Every ``every`` steps (and at the last one), a preview of image 0: the colour-table lookup of every
    token so far (a table lookup and an upscale), or the full VQ decode of the finished rows (slow)."""
    if every <= 0 or method == "off":
        return None
    model = handle.model
    draw = {FAST: preview_image, DECODER: decoder_preview_image}[method]
    total, side = model.config.num_image_tokens, model.config.image_size

    def preview(step, tokens):
        if (step + 1) % every and step + 1 != total:
            return None
        image = draw(model, tokens[0])
        return None if image is None else ("JPEG", image, side)  # max_size = the image's size: no upscaling
    return preview


SEQUENTIAL, SPECULATIVE = "exact sequential", "speculative (lossless)"
SAMPLING = ("sampling", ([SEQUENTIAL, SPECULATIVE], {"default": SEQUENTIAL, "tooltip":
            "exact sequential: one token per forward pass. speculative (lossless): speculative Jacobi decoding "
            "with coupled drafts (MC-SJD) verifies a window of 16 draft tokens per pass and keeps several when "
            "the model agrees - the same distribution, but a different sample than sequential for the same "
            "seed; the images of a batch are then made one after another. Fastest on a GPU at batch 1."}))
SPECULATIVE_WINDOW = 16


def _sampling_mode(sampling: str) -> dict:
    if sampling not in (SEQUENTIAL, SPECULATIVE):
        raise JanusError(f"sampling: {sampling!r} is not one of {SEQUENTIAL!r}, {SPECULATIVE!r}")
    return {"parallel": "mc-sjd", "window": SPECULATIVE_WINDOW} if sampling == SPECULATIVE else {}


def _run(handle, prompt, n, node_id, preview_every, preview_method, sample=generate_image_tokens,
         memory=None, needs=(LM,), **kwargs):
    """Load what the sampler ``sample`` needs (``needs``, plus the VQ for decoder previews) with ``memory``
    bytes of working memory reserved, and run it with a progress bar, previews and Cancel."""
    if preview_method not in PREVIEWS:
        raise JanusError(f"preview_method: {preview_method!r} is not one of {', '.join(PREVIEWS)}")
    previews = preview_every > 0 and preview_method != "off"
    if previews and preview_method == FAST and not has_colour_table(handle.model):
        handle.load([VQ], vq_bytes(handle, 1))
        colour_table(handle.model)  # once per loaded model: one small VQ decode
    parts = list(needs) + ([VQ] if previews and preview_method == DECODER and VQ not in needs else [])
    memory = generation_bytes(handle, n) if memory is None else memory
    handle.load(parts, memory + (vq_bytes(handle, 1) if VQ in parts else 0))
    total = handle.model.config.num_image_tokens
    hook = step_hook(total, node_id, _previewer(handle, preview_every, preview_method))
    return sample(handle.model, prompt, n=n, callback=hook, **kwargs)


def _remember(tokens, prompt: str, negative_prompt: str):
    """Tokens that carry the prompt they were sampled from (Janus Score's default prompt)."""
    return dataclasses.replace(tokens, prompt=prompt, negative_prompt=negative_prompt)


class JanusGenerate:
    DESCRIPTION = ("Text to image: samples the 576 image tokens (a 24x24 grid, 384x384 pixels) with "
                   "classifier-free guidance. Decode them with Janus VQ Decode.")
    CATEGORY = "Janus"
    FUNCTION = "generate"
    RETURN_TYPES = ("JANUS_TOKENS",)
    RETURN_NAMES = ("tokens",)
    OUTPUT_TOOLTIPS = ("The image-token grids [batch, 24, 24].",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."}),
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 16, "tooltip":
                           "Images per run (memory grows with it: two KV-cache rows per image)."}),
            **_generation_inputs(),
            **PREVIEW_INPUTS,
            SAMPLING[0]: SAMPLING[1],
        }, "hidden": {"node_id": "UNIQUE_ID"}}

    def generate(self, janus_model, prompt, negative_prompt, batch_size, cfg, temperature, top_k, top_p, seed,
                 preview_every=24, preview_method=FAST, sampling=SEQUENTIAL, node_id=None):
        # batch size and empty prompts are checked by the runtime, with the input's name
        tokens = _run(janus_model, prompt, batch_size, node_id, preview_every, preview_method,
                      negative_prompt=negative_prompt, cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p,
                      seed=seed, **_sampling_mode(sampling))
        return (_remember(janus_model.tokens(tokens), prompt, negative_prompt),)


class JanusRegenerateMasked:
    DESCRIPTION = ("Image editing: keeps the tokens outside the mask and samples new ones inside it, guided by "
                   "the prompt. Masks are reduced to the 24x24 token grid (one token = 16x16 pixels).")
    CATEGORY = "Janus"
    FUNCTION = "regenerate"
    RETURN_TYPES = ("JANUS_TOKENS",)
    RETURN_NAMES = ("tokens",)
    OUTPUT_TOOLTIPS = ("The edited token grids; unmasked tokens are unchanged.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."}),
            "tokens": ("JANUS_TOKENS", {"tooltip": "Token grids to edit (from Janus VQ Encode or Janus Generate)."}),
            "mask": ("MASK", {"tooltip": "White = regenerate. Drawn on the image that was encoded (any size: it "
                              "is padded or cropped as Janus VQ Encode did), or 384x384 for generated tokens."}),
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            **_generation_inputs(),
            "mask_threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                               "A token is regenerated when at least this share of its 16x16 cell is masked "
                               "(0 = any masked pixel)."}),
            **PREVIEW_INPUTS,
        }, "hidden": {"node_id": "UNIQUE_ID"}}

    def regenerate(self, janus_model, tokens, mask, prompt, negative_prompt, cfg, temperature, top_k, top_p, seed,
                   mask_threshold=0.5, preview_every=24, preview_method=FAST, node_id=None):
        tokens.check_model(janus_model)
        grid_mask = mask_to_grid(mask, tokens.batch, janus_model.model.config.token_grid, mask_threshold,
                                 fit=tokens.fit or "pad")
        out = _run(janus_model, prompt, tokens.batch, node_id, preview_every, preview_method,
                   negative_prompt=negative_prompt, cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p,
                   seed=seed, init_tokens=tokens.tokens, mask=grid_mask)
        return (dataclasses.replace(_remember(janus_model.tokens(out), prompt, negative_prompt), fit=tokens.fit),)


class JanusScore:
    DESCRIPTION = ("Best-of-N: ranks token grids by how likely the model finds them for the prompt (mean CFG "
                   "log-probability per token) and keeps the best.")
    CATEGORY = "Janus"
    FUNCTION = "score"
    HAS_INTERMEDIATE_OUTPUT = True  # its scores ("ui" text) are resent on a cached run (ComfyUI 0.33+)
    RETURN_TYPES = ("JANUS_TOKENS", "STRING")
    RETURN_NAMES = ("best_tokens", "scores")
    OUTPUT_TOOLTIPS = ("The best grids, best first.", "Mean log-probability per grid, in input order.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."}),
            "tokens": ("JANUS_TOKENS", {"tooltip": "A batch of token grids to rank (e.g. from Janus Generate)."}),
            "prompt": ("STRING", {"multiline": True, "default": "", "tooltip":
                       "The prompt to rank against. Empty: the prompt (and negative prompt) the tokens were "
                       "generated with, so one prompt feeds Janus Generate and Janus Score."}),
            "negative_prompt": ("STRING", {"multiline": True, "default": "", "tooltip":
                                "Used with a prompt typed here. Empty: the official unconditional prompt."}),
            "cfg": CFG,
            "keep": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "How many of the best grids to keep."}),
        }}

    def score(self, janus_model, tokens, prompt, negative_prompt, cfg, keep):
        tokens.check_model(janus_model)
        if not prompt.strip():
            if tokens.prompt is None:
                raise JanusError("prompt is empty and these tokens carry no prompt (they were not made by Janus "
                                 "Generate or Regenerate Masked): type the prompt to rank them against.")
            prompt, negative_prompt = tokens.prompt, tokens.negative_prompt
        janus_model.load([LM], generation_bytes(janus_model, tokens.batch))
        logprobs = score_image_tokens(janus_model.model, prompt, tokens.tokens, negative_prompt=negative_prompt,
                                      cfg=cfg).mean(1).cpu()
        order = torch.argsort(logprobs, descending=True)[:keep]
        best = dataclasses.replace(tokens, tokens=tokens.tokens[order])
        report = "\n".join(f"image {i}: {v:.4f}" + ("  <- kept" if i in order.tolist() else "")
                           for i, v in enumerate(logprobs.tolist()))
        return {"ui": {"text": [report]}, "result": (best, report)}


class JanusEdit:
    DESCRIPTION = ("Instruction editing (text + image -> image) with the Janus-4o recipe: the reference image(s) "
                   "condition every step twice (SigLIP understanding features and VQ codes), and the instruction "
                   "says what to change. Trained for it: FreedomIntelligence/Janus-4o-7B. Plain Janus-Pro runs "
                   "it too, but was not trained for it and follows instructions weakly.")
    CATEGORY = "Janus"
    FUNCTION = "edit"
    RETURN_TYPES = ("JANUS_TOKENS",)
    RETURN_NAMES = ("tokens",)
    OUTPUT_TOOLTIPS = ("The edited images' token grids [batch, 24, 24]; decode them with Janus VQ Decode.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader; Janus-4o-7B is trained for this."}),
            "image": ("IMAGE", {"tooltip": "The reference image(s): every image of the batch conditions the edit, "
                                "in batch order (about 1,200 prompt tokens each)."}),
            "instruction": ("STRING", {"multiline": True, "default": "Turn the image into a nighttime scene.",
                                       "tooltip": "How the image should change."}),
            "negative_prompt": NEGATIVE,
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 8, "tooltip":
                           "Edited variants per run (memory grows with it: three KV-cache rows per variant)."}),
            "cfg": CFG,
            "image_cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 20.0, "step": 0.5, "tooltip":
                          "Weight w2 of the row that sees the reference only through SigLIP features: "
                          "cond = (full + w2 x part) / (1 + w2). Janus-4o uses 5."}),
            **sampler_inputs(1.0),
            "seed": SEED,
            **PREVIEW_INPUTS,
        }, "hidden": {"node_id": "UNIQUE_ID"}}

    def edit(self, janus_model, image, instruction, negative_prompt, batch_size, cfg, image_cfg, temperature, top_k,
             top_p, seed, preview_every=24, preview_method=FAST, node_id=None):
        pictures = images_to_pil(image)
        memory = (generation_bytes(janus_model, batch_size, prompt_tokens=1200 * len(pictures), rows_per_image=3)
                  + vq_bytes(janus_model, len(pictures)))
        tokens = _run(janus_model, pictures, batch_size, node_id, preview_every, preview_method,
                      sample=_edit, memory=memory, needs=(LM, VISION, VQ), instruction=instruction,
                      negative_prompt=negative_prompt, cfg=cfg, image_cfg=image_cfg, temperature=temperature,
                      top_k=top_k, top_p=top_p, seed=seed)
        return (_remember(janus_model.tokens(tokens), instruction, negative_prompt),)


def _edit(model, images, n, callback, instruction, **kwargs):
    return edit_image_tokens(model, images, instruction, n=n, callback=callback, **kwargs)
