"""Where model folders come from: a local path, or a Hugging Face repository downloaded with huggingface-hub.

Only names we know (``KNOWN_REPOS``) or names marked ``hf:owner/name`` are downloaded: a mistyped local path
that happens to look like ``owner/name`` gets "no such folder", not a download attempt.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from .errors import JanusError

log = logging.getLogger(__name__)

# The repositories we know, with the weight files each holds on the Hugging Face Hub (they differ per repo).
KNOWN_REPOS = {
    "deepseek-ai/Janus-Pro-1B": "pytorch_model.bin",
    "deepseek-ai/Janus-Pro-7B": "pytorch_model-00001-of-00002.bin, pytorch_model-00002-of-00002.bin, "
                                "pytorch_model.bin.index.json",
    "deepseek-ai/Janus-1.3B": "model.safetensors",
    "deepseek-community/Janus-Pro-1B": "model*.safetensors (+ model.safetensors.index.json if sharded)",
    "deepseek-community/Janus-Pro-7B": "model-*.safetensors, model.safetensors.index.json",
    # Janus-Pro-7B fine-tuned for instruction editing (Janus Edit); the official layout
    "FreedomIntelligence/Janus-4o-7B": "the weight files listed on the repository page (*.safetensors or "
                                       "pytorch_model*.bin, with their index)",
}
COMMON_FILES = ("config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json, "
                "preprocessor_config.json, processor_config.json")
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model"]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


HF_PREFIX = "hf:"


def repo_to_download(source) -> str | None:
    """The Hugging Face repository ``source`` asks for: a known name, or any ``hf:owner/name``; else None."""
    if not isinstance(source, str):
        return None
    if source in KNOWN_REPOS:
        return source
    if source.startswith(HF_PREFIX):
        repo = source[len(HF_PREFIX):]
        if not REPO_ID.match(repo):
            raise JanusError(f"model {source}: {repo!r} is not a Hugging Face repository name; write "
                             f"hf:owner/name, e.g. hf:deepseek-ai/Janus-Pro-1B")
        return repo
    return None


def download(repo_id: str, target: str | Path | None = None) -> Path:
    """Download ``repo_id`` (weights, config, tokenizer) into ``target`` (or the HF cache) and return it.

    Offline or unreachable, raises a JanusError saying which files to fetch and where to put them.
    """
    from huggingface_hub import snapshot_download
    where = target if target is not None else "the Hugging Face cache"
    log.info("Downloading %s into %s (first use only) ...", repo_id, where)
    try:
        path = snapshot_download(repo_id=repo_id, local_dir=str(target) if target else None,
                                 allow_patterns=ALLOW_PATTERNS)
    except Exception as e:  # network, auth, offline mode and missing repos all surface differently
        files = KNOWN_REPOS.get(repo_id, "the weight files (*.safetensors or pytorch_model*.bin)")
        dest = f"the folder {target}" if target else "a local folder and pass that folder instead of the repo id"
        raise JanusError(
            f"Could not download {repo_id} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            f"Without network access, download these files from https://huggingface.co/{repo_id} yourself: "
            f"{COMMON_FILES}, {files}; and put them in {dest}.") from e
    return Path(path)


def resolve_model_path(source: str | Path, download_dir: str | Path | None = None) -> Path:
    """A local model folder as given, or the download of a known or ``hf:``-marked repository."""
    if not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        raise JanusError(f"model: expected a folder path or a repository name, got {source!r}")
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    repo = repo_to_download(source)
    if repo is not None:
        return download(repo, download_dir)
    if path.is_file():
        raise JanusError(f"model {source!s} is a file; pass the folder that holds it ({path.parent}).")
    hint = ""
    if isinstance(source, str) and REPO_ID.match(source):
        hint = (f" To download it from Hugging Face, write hf:{source}"
                f" (known repositories download by name: {', '.join(KNOWN_REPOS)}).")
    raise JanusError(f"model {source!s}: no such folder (tried {path.absolute()}). Pass a folder holding "
                     f"config.json and the weights.{hint}")
