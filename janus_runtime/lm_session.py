"""The LM's KV-cache sessions: one call prefills a prompt, then extends it a position (or a window) at a time.

Shaped after gpt-fast's generate.py (meta-pytorch/gpt-fast @ 6ecad9b: ``prefill``, ``decode_one_token``
over a static cache), with left-padded batch rows: every row shares the cache slots, and row r's RoPE
position at slot s is max(s - pads[r], 0) (``LMSession.positions``, the only place positions are made).

``LMSessions`` (one per loaded model, ``JanusModel.sessions``) owns what outlives a call: the lock that
serialises calls (the cache lives on the LM module, so two calls at once would overwrite each other's
keys), and the compiled one-token step together with the cache its CUDA graphs read.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

import torch

from .checks import check_context
from .errors import JanusError

log = logging.getLogger(__name__)


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists to one length: ids [R, L] and valid [R, L] (False on pads)."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    valid = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = torch.tensor(r, dtype=torch.long)
        valid[i, length - len(r):] = True
    return ids, valid


class LMSession:
    """One call's use of the LM's static cache. Slots [0, length) hold keys; ``step`` appends one position."""

    def __init__(self, llama, valid: torch.Tensor, max_len: int, device, dtype, compiled_step=None):
        self.llama, self.device = llama, device
        llama.setup_cache(valid.shape[0], max_len, device, dtype)
        llama.key_valid[:, :valid.shape[1]] = valid.to(device)
        self.pads = (~valid).sum(-1).to(device)[:, None]   # [R, 1] left-pad slots per row
        self.padded = not bool(valid.all())
        self.length = 0
        # The next slot [1] and RoPE positions [R, 1]: tensors advanced in place, because a captured CUDA
        # graph reads their memory.
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.next_pos = torch.zeros(valid.shape[0], 1, dtype=torch.long, device=device)
        self._compiled = compiled_step if device.type == "cuda" and not self.padded else None
        self.compiled_ran = self.compile_failed = False

    def positions(self, slots: torch.Tensor) -> torch.Tensor:
        """RoPE positions [R, T] of cache ``slots`` [T]: pads sit at 0, each row counts from its first token."""
        return (slots[None, :] - self.pads).clamp(min=0)

    def prefill(self, embeds: torch.Tensor) -> torch.Tensor:
        """Run ``embeds`` [R, T, D] (the prompt, plus any teacher-forced tokens after it) at slots 0..T-1;
        returns hidden states [R, T, D]."""
        self.seek(0)
        return self.extend(embeds)

    def extend(self, embeds: torch.Tensor) -> torch.Tensor:
        """Append T positions (a decode step, a forced chunk, or a window of drafts) after ``length``;
        returns hidden states [R, T, D]. Eager: attends over the first ``length`` slots only."""
        t = embeds.shape[1]
        if t == 1:  # the hot path: no new index tensors, no mask unless rows are padded
            slots, positions = self.slot, self.next_pos
        else:
            slots = torch.arange(self.length, self.length + t, device=self.device)
            positions = self.positions(slots)
        end = self.length + t
        mask = self.llama.attention_mask(slots, end) if t > 1 or self.padded else None
        hidden = self.llama(embeds, slots, positions, mask, kv_len=end)
        self.seek(end)
        return hidden

    def seek(self, length: int):
        """Make ``length`` the next slot. Moving back forgets the positions from there on (the next extend
        overwrites them): how a speculative window drops its rejected drafts. In place, for captured graphs."""
        self.length = length
        self.slot.fill_(length)
        torch.clamp(self.slot - self.pads, min=0, out=self.next_pos)

    def step(self, embeds: torch.Tensor) -> torch.Tensor:
        """One new position [R, 1, D] -> hidden [R, 1, D]: the compiled CUDA-graph step when this session has
        one, else ``extend``. A compiled step that fails falls back to eager for good (see LMSessions)."""
        if self._compiled is None:
            return self.extend(embeds)
        try:
            hidden = self._compiled(embeds, self.slot, self.next_pos)
        except Exception as e:  # compilation problems surface on the first calls
            log.warning("compiled decode step failed (%s: %s); continuing eagerly", type(e).__name__, e)
            self._compiled = None
            self.compile_failed = True
            return self.extend(embeds)
        self.compiled_ran = True
        self.seek(self.length + 1)
        return hidden


class LMSessions:
    """Serialises the calls on one LM and keeps its compiled decode step between calls."""

    def __init__(self):
        self._lock = threading.Lock()
        self._owner: int | None = None   # thread holding the lock: a callback must not start a nested call
        self._compiled = None            # (llama, compiled step) once compiled; False after a failure

    @contextmanager
    def open(self, llama, valid: torch.Tensor, max_len: int, device, dtype, compile: bool = False):
        """Hold the LM for one call and yield its ``LMSession``. The cache is released on exit, except after
        a completed call whose compiled CUDA graphs ran: they read this cache, so it stays for the next
        call of the same shape (``llama.free_cache()`` releases it)."""
        if self._owner == threading.get_ident():
            raise JanusError("a sampler call on this model was started from inside a callback of another call "
                             "on the same model; start it after that call returns")
        with self._lock:
            self._owner = threading.get_ident()
            session, keep = None, False
            try:
                step = self._compiled_step(llama) if compile and torch.device(device).type == "cuda" else None
                session = LMSession(llama, valid, max_len, torch.device(device), dtype, step)
                yield session
                keep = session.compiled_ran and session._compiled is not None
            finally:
                if session is not None and session.compile_failed:
                    self._compiled = False
                if not keep:
                    llama.free_cache()
                self._owner = None

    def _compiled_step(self, llama):
        """torch.compile(mode="reduce-overhead") of one decode step over the whole static cache (static
        shapes for CUDA graphs), made once per LM; None once it has failed (the eager step runs then)."""
        if self._compiled is False:
            return None
        if self._compiled is None or self._compiled[0] is not llama:
            def step(x, slot, positions):
                keys = torch.arange(llama.cache_length, device=x.device)
                mask = (llama.key_valid & (keys <= slot))[:, None, None, :]
                return llama(x, slot, positions, mask, kv_len=None)
            self._compiled = (llama, torch.compile(step, mode="reduce-overhead", fullgraph=True))
        return self._compiled[1]


@contextmanager
def open_session(model, valid: torch.Tensor, new_tokens: int, *, new_what: str = "new tokens",
                 fix: str = "shorten the prompt", compile: bool = False):
    """The LM session of one call on ``model``: prompt rows ``valid`` [R, L] (left-padded) plus up to
    ``new_tokens`` positions. Refuses, before allocating anything, a run longer than the model's context."""
    check_context(model.config.language.max_position_embeddings, valid.shape[1], new_tokens, new_what, fix)
    lm = model.require("lm")
    with model.sessions.open(lm.language_model, valid, valid.shape[1] + new_tokens, model.device_for("lm"),
                             model.dtype, compile) as session:
        yield session
