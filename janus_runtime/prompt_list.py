"""Prompt lists to images: prompt i -> ``NNNNN.png`` + ``NNNNN.safetensors`` (its token grid [1, 24, 24]).

    from janus_runtime.prompt_list import PromptOptions, plan_prompts, render_prompts
    plan = plan_prompts(["a red fox", "a lighthouse at dusk"], "out/", batch_size=4)
    for result in render_prompts(model, plan, PromptOptions(seed=1)):
        print(result.index, result.status, result.png)

Batches are fixed chunks of the whole list (prompts [0, B), [B, 2B), ...) and the batch starting at prompt i
samples with seed + i, so an image depends only on (prompt list, seed, batch size): the same in one process,
on a Ray cluster (``janus_runtime.distributed``) and after a resume. A batch whose files all exist is
skipped; one that was cut short is generated again and its files replaced atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .captioner import remove_stale_temps, write_atomic
from .errors import JanusError


@dataclass(frozen=True)
class PromptTask:
    index: int
    prompt: str
    png: Path
    tokens: Path


@dataclass
class PromptResult:
    index: int
    prompt: str
    status: str              # "written" or "skipped"
    png: str
    tokens: str


@dataclass
class PromptOptions:
    negative_prompt: str = ""
    cfg: float = 5.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    cfg_until: float = 1.0
    seed: int = 0


def read_prompts(source) -> list[str]:
    """A list of prompts, or a text file with one prompt per line (blank lines ignored)."""
    if isinstance(source, (str, Path)) and not isinstance(source, list):
        path = Path(source)
        if not path.is_file():
            raise JanusError(f"prompts {source}: not a file; give a text file with one prompt per line, or a list")
        source = path.read_text(encoding="utf-8").splitlines()
    prompts = [p.strip() for p in source if p and p.strip()]
    if not prompts:
        raise JanusError("prompts: the list is empty; give at least one prompt")
    return prompts


def plan_prompts(prompts, out_dir, batch_size: int = 4, existing: str = "skip") -> list[list[PromptTask]]:
    """The batches to generate: fixed chunks of ``batch_size`` prompts, without the chunks whose PNG and
    token files all exist (``existing="skip"``); ``"overwrite"`` keeps every chunk."""
    if existing not in ("skip", "overwrite"):
        raise JanusError(f"existing: {existing!r} is not one of skip, overwrite")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise JanusError(f"batch_size must be at least 1; got {batch_size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise JanusError(f"output folder {out}: is a file; give a folder for the images")
    out.mkdir(parents=True, exist_ok=True)
    tasks = [PromptTask(i, p, out / f"{i:05d}.png", out / f"{i:05d}.safetensors")
             for i, p in enumerate(read_prompts(prompts))]
    remove_stale_temps([f for t in tasks for f in (t.png, t.tokens)])
    batches = [tasks[i:i + batch_size] for i in range(0, len(tasks), batch_size)]
    if existing == "skip":
        batches = [b for b in batches if not all(t.png.exists() and t.tokens.exists() for t in b)]
    return batches


def render_batch(model, batch: list[PromptTask], options: PromptOptions, callback=None) -> list[PromptResult]:
    """Generate, decode and write one batch (tokens file first, then the PNG, each atomically)."""
    import io

    from PIL import Image
    from safetensors.torch import save

    from .processing import to_uint8_official
    from .generation import generate_image_tokens
    from .image_tokens import decode_tokens
    tokens = generate_image_tokens(model, [t.prompt for t in batch], negative_prompt=options.negative_prompt,
                                   cfg=options.cfg, temperature=options.temperature, top_k=options.top_k,
                                   top_p=options.top_p, cfg_until=options.cfg_until,
                                   seed=options.seed + batch[0].index, callback=callback)
    pixels = to_uint8_official(decode_tokens(model, tokens)).cpu().numpy()
    results = []
    for t, grid, arr in zip(batch, tokens, pixels):
        write_atomic(t.tokens, save({"tokens": grid[None].to("cpu").contiguous()}))
        png = io.BytesIO()
        Image.fromarray(arr).save(png, format="PNG")
        write_atomic(t.png, png.getvalue())
        results.append(PromptResult(t.index, t.prompt, "written", str(t.png), str(t.tokens)))
    return results


def render_prompts(model, batches: list[list[PromptTask]], options: PromptOptions) -> Iterator[PromptResult]:
    """Run ``plan_prompts``' batches in this process, yielding results as each batch is written."""
    for batch in batches:
        yield from render_batch(model, batch, options)
