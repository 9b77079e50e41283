"""Janus Caption Folder: captions every image of a folder into name.txt files (datasets for LoRA training)."""

from __future__ import annotations

from pathlib import Path

from ..janus_runtime import JanusError
from ..janus_runtime.captioner import (DEFAULT_QUESTION, IMAGE_EXTENSIONS, CaptionOptions, caption_tasks,
                                       plan_captions, start_summary)
from ..janus_runtime.processing import SYSTEM_PROMPT

from .common import SEED, sampler_inputs, send_text
from .memory import LM, VISION, understanding_bytes

EXISTING = {"skip (resume)": "skip", "overwrite": "overwrite"}
EXTENSIONS = ", ".join(IMAGE_EXTENSIONS)


def resolve_folder(text: str, base: str, what: str) -> Path:
    """An absolute path as typed, or a path inside ``base`` (ComfyUI's input or output folder); a relative
    path may not climb out of ``base`` with '..'."""
    text = (text or "").strip()
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    if ".." in path.parts:
        raise JanusError(f"{what} {text!r}: '..' may not leave {base}; give a folder inside it or an absolute "
                         f"path")
    return Path(base) / path


class JanusCaptionFolder:
    DESCRIPTION = ("Caption every image of a folder with the Janus model and write the caption next to each "
                   "image as name.txt (or into an output folder), batch by batch, for LoRA / fine-tune "
                   "training sets. Each file is written atomically; Cancel stops after the current batch and "
                   "running again resumes (existing captions are skipped). Unreadable images are listed in "
                   "the summary and do not stop the job.")
    CATEGORY = "Janus"
    FUNCTION = "caption"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("summary", "captions")
    OUTPUT_IS_LIST = (False, True)
    OUTPUT_TOOLTIPS = ("Counts of written, skipped and failed images, and why each failure happened.",
                       "The captions of the folder's images in file order (existing ones read back when "
                       "skipped); failed images have none.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "janus_model": ("JANUS_MODEL", {"tooltip": "From Janus Model Loader."}),
                "folder": ("STRING", {"default": "", "tooltip":
                           "The image folder: a path inside ComfyUI's input folder (e.g. 'dataset/dogs'), or "
                           "an absolute path (e.g. /data/dogs or D:\\data\\dogs)."}),
                "question": ("STRING", {"multiline": True, "default": DEFAULT_QUESTION, "tooltip":
                             "What to ask about each image. {name} and {folder} are replaced by the image's "
                             "file name and folder name."}),
                "existing_captions": (list(EXISTING), {"default": "skip (resume)", "tooltip":
                                      "Images that already have a caption file: skip them (rerunning after "
                                      "Cancel resumes), or caption them again and overwrite the file."}),
                "batch_size": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip":
                               "Images captioned together; more is faster on a GPU and needs more memory."}),
                "max_new_tokens": ("INT", {"default": 128, "min": 1, "max": 4096,
                                           "tooltip": "Longest caption, in tokens."}),
                **sampler_inputs(0.0),
                "seed": SEED,
            },
            "optional": {
                "prefix": ("STRING", {"default": "", "tooltip":
                           "Put before every caption exactly as typed, e.g. trigger words 'sks dog, '."}),
                "suffix": ("STRING", {"default": "", "tooltip": "Put after every caption exactly as typed."}),
                "recursive": ("BOOLEAN", {"default": False, "tooltip": "Also caption images in subfolders."}),
                "extensions": ("STRING", {"default": EXTENSIONS,
                                          "tooltip": "Image file extensions to caption."}),
                "output_folder": ("STRING", {"default": "", "tooltip":
                                  "Empty: name.txt next to each image. Otherwise a folder inside ComfyUI's "
                                  "output folder, or an absolute path; subfolders are mirrored."}),
                "system_prompt": ("STRING", {"multiline": True, "default": SYSTEM_PROMPT,
                                             "tooltip": "The official system prompt; edit it to steer the style."}),
            },
            "hidden": {"node_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **_):
        return float("nan")  # the folder's files change outside the graph: always look again

    def caption(self, janus_model, folder, question, existing_captions, batch_size, max_new_tokens, temperature,
                top_k, top_p, seed, prefix="", suffix="", recursive=False, extensions=EXTENSIONS,
                output_folder="", system_prompt=SYSTEM_PROMPT, node_id=None):
        import comfy.model_management as mm
        import comfy.utils
        import folder_paths
        if not (folder or "").strip():
            raise JanusError("folder is empty: type the image folder (inside ComfyUI's input folder, or an "
                             "absolute path)")
        if existing_captions not in EXISTING:
            raise JanusError(f"existing_captions: {existing_captions!r} is not one of {', '.join(EXISTING)}")
        source = resolve_folder(folder, folder_paths.get_input_directory(), "folder")
        out = (resolve_folder(output_folder, folder_paths.get_output_directory(), "output_folder")
               if (output_folder or "").strip() else None)
        options = CaptionOptions(question=question, prefix=prefix, suffix=suffix, batch_size=batch_size,
                                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                 seed=seed, system_prompt=system_prompt)
        options.check()
        plan = plan_captions(source, out_dir=out, recursive=recursive, extensions=extensions,
                             existing=EXISTING[existing_captions])
        summary = start_summary(plan)
        captions = {t.key: Path(t.target).read_text(encoding="utf-8", errors="replace") for t in plan.skipped}
        if plan.tasks:
            total = len(plan.tasks)
            janus_model.load([LM, VISION], understanding_bytes(janus_model, batch_size, 1, max_new_tokens))
            bar = comfy.utils.ProgressBar(total, node_id=node_id)
            header = [""]

            def on_batch(batch):
                mm.throw_exception_if_processing_interrupted()  # Cancel: stop between batches
                first = batch[0].index + 1
                header[0] = (f"captioning {first}-{first + len(batch) - 1} of {total}: "
                             + ", ".join(t.key for t in batch))
                send_text(node_id, header[0])

            def on_step(step, _total, texts):
                if step % 8 == 7:
                    send_text(node_id, header[0] + "\n\n" + "\n".join(texts))
            for done, result in enumerate(caption_tasks(janus_model.model, plan.tasks, options,
                                                        on_batch=on_batch, on_step=on_step), 1):
                summary.add(result)
                if result.text is not None and result.status != "failed":
                    captions[result.key] = result.text
                bar.update_absolute(done, total)
        summary.finish()
        report = f"{source}\n{summary.text()}"
        send_text(node_id, report)
        return {"ui": {"text": [report]}, "result": (report, [captions[k] for k in sorted(captions)])}
