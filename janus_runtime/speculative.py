"""Speculative Jacobi decoding (SJD) of image tokens: several tokens per forward pass, the same distribution.

Teng et al., "Accelerating Auto-regressive Text-to-Image Generation with Training-free Speculative Jacobi
Decoding" (ICLR 2025, arXiv 2410.01699). Each pass feeds the last accepted token and a window of draft tokens;
one forward gives the target distribution p at every window position, conditioned on the accepted prefix and
the drafts before it. Drafts are accepted left to right with the speculative-sampling rule (Leviathan et al.
2023, arXiv 2211.17192; Chen et al. 2023, arXiv 2302.01318): draft x drawn from q is kept with probability
min(1, p(x) / q(x)); the first rejected position is resampled from max(p - q, 0) normalised, and if every
draft is kept, one more token comes from p. Each accepted token is therefore distributed exactly as in
one-at-a-time sampling. The positions after a rejection take new drafts from this pass's p (the Jacobi
update); positions never predicted yet start from uniform random codes.

With ``coupled=True`` (MC-SJD: "Speculative Jacobi-Denoising Decoding ... maximal coupling", arXiv
2510.24211) a position that already had a draft keeps it when the new distribution allows: the old draft x
(drawn from q_old) stays with probability min(1, q_new(x) / q_old(x)), else a code is drawn from
max(q_new - q_old, 0) normalised. That is the maximal coupling of q_old and q_new, so the draft is still
distributed as q_new (the verification stays exact), but drafts change only where the distribution moved,
and the positions after them see the same context again and converge sooner.

Images are decoded one after another (each with its two CFG rows), so image k depends only on (seed, k,
window) and every random number of image k comes from its own generator. Kept tokens of a masked
regeneration are accepted without a draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .sampling import apply_temperature, filter_logits


@dataclass
class Target:
    """How logits become the distribution to sample: CFG, temperature, top-k, top-p."""
    guidance: object
    temperature: float
    top_k: int
    top_p: float
    total: int

    def probs(self, logits: torch.Tensor, first_step: int) -> torch.Tensor:
        """Logits [2, T, V] of both CFG rows at steps first_step.. -> probabilities [T, V] (fp32)."""
        guided = self.guidance.combine(logits[:1], logits[1:], first_step, self.total)[0]
        if self.temperature == 0:  # greedy: a point mass on the argmax (Jacobi decoding)
            return torch.nn.functional.one_hot(guided.argmax(-1), guided.shape[-1]).float()
        return filter_logits(apply_temperature(guided, self.temperature), self.top_k, self.top_p).softmax(-1)


def draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token per row of ``probs`` [R, V] for uniforms ``u`` [R] (inverse CDF; zero-probability codes never
    drawn)."""
    cdf = probs.cumsum(-1)
    return torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0].clamp_(max=probs.shape[-1] - 1)


@dataclass
class Window:
    """The draft tokens for the positions after the accepted prefix, and the distributions they came from."""
    tokens: torch.Tensor  # [K] codes
    q: torch.Tensor       # [K, V]


def accept_mask(p: torch.Tensor, tokens: torch.Tensor, q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The speculative-sampling rule, row by row: token ``tokens`` [K] drawn from ``q`` [K, V] is kept where
    ``u`` [K] < p(x) / q(x). A rejected row then takes ``residual_draw``; either way the token of each row is
    distributed as ``p`` [K, V]. Returns kept [K] (bool)."""
    return u < p.gather(-1, tokens[:, None])[:, 0] / q.gather(-1, tokens[:, None])[:, 0]


def residual_draw(p: torch.Tensor, q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The replacement of a rejected token: one draw per row from max(p - q, 0) normalised ([R, V], ``u`` [R])."""
    return draw((p - q).clamp(min=0), u)


def verify(p: torch.Tensor, window: Window, u: torch.Tensor, u_new: torch.Tensor,
           keep: torch.Tensor | None, kept: torch.Tensor | None) -> torch.Tensor:
    """Accept drafts against the target ``p`` [K + 1, V] (row j: the position of draft j; row K: the one after).

    ``u`` [K] acceptance uniforms, ``u_new`` [1] the uniform of the resampled or extra token; ``keep`` [K + 1]
    True where the token is forced to ``kept`` [K + 1] (masked regeneration). Returns the new tokens [a + 1]."""
    k = window.tokens.shape[0]
    accepted = accept_mask(p[:k], window.tokens, window.q, u)
    if keep is not None:
        accepted = accepted | keep[:k]
    rejected = (~accepted).nonzero()
    a = int(rejected[0]) if len(rejected) else k          # drafts kept (one host sync per pass)
    # the first rejected position takes its residual draw; if every draft was kept, one more token from p
    nxt = residual_draw(p[a:a + 1], window.q[a:a + 1], u_new) if a < k else draw(p[k:], u_new)
    if keep is not None and bool(keep[a]):
        nxt = kept[a:a + 1]
    return torch.cat([window.tokens[:a], nxt])


def next_window(p: torch.Tensor, used: int, size: int, vocab: int, u: torch.Tensor,
                previous: Window | None = None) -> Window:
    """Drafts for the next ``size`` positions: those this pass predicted (rows ``used``.. of ``p``) are drawn
    from its p (the Jacobi update), the rest uniformly at random. ``u`` [2 x size] uniforms. ``previous``
    (coupled drafting): the window this pass verified, whose draft j sat at the position of row j of ``p``;
    its drafts that are still ahead are coupled to the new distribution (``redraft``) instead of drawn afresh."""
    fresh = p[used:used + size]
    uniform = torch.full((size - fresh.shape[0], vocab), 1.0 / vocab, device=p.device)
    q = torch.cat([fresh, uniform])
    n = 0 if previous is None else min(max(previous.tokens.shape[0] - used, 0), size)  # old drafts still ahead
    redrafted = redraft(previous.tokens[used:used + n], previous.q[used:used + n], q[:n], u[size:size + n], u[:n]) \
        if n else q.new_empty(0, dtype=torch.long)
    return Window(torch.cat([redrafted, draw(q[n:], u[n:size])]), q)


def redraft(old: torch.Tensor, q_old: torch.Tensor, q_new: torch.Tensor, u: torch.Tensor,
            u_new: torch.Tensor) -> torch.Tensor:
    """Maximal coupling: drafts ``old`` [K] drawn from ``q_old`` [K, V] become drafts distributed as ``q_new``
    that equal ``old`` wherever the two distributions allow. ``u``, ``u_new`` [K] uniforms."""
    return torch.where(accept_mask(q_new, old, q_old, u), old, residual_draw(q_new, q_old, u_new))


def speculative_image(session, lm, target: Target, prompt: int, p0: torch.Tensor, gen: torch.Generator,
                      window: int, forced=None, on_token=None, coupled: bool = False) -> tuple[torch.Tensor, int]:
    """Decode one image's ``target.total`` codes with SJD after its prompt rows (``prompt`` slots, already
    prefilled; ``p0`` [1, V] the distribution of code 0). ``forced``: (ids [N], regen [N]) for a masked
    regeneration, or None; ``on_token(step, tokens)`` after each accepted token; ``coupled``: MC-SJD's
    coupled redrafting. Returns (codes [N], forward passes)."""
    total, device = target.total, session.device
    vocab = p0.shape[-1]
    keep_all = None if forced is None else ~forced[1]
    kept_all = None if forced is None else forced[0]

    def rand(n):
        return torch.rand(n, generator=gen, device=device)

    def embed(codes):  # codes [T] -> LM inputs [2, T, D] (both CFG rows get the same code)
        return lm.embed_image_codes(codes)[None].expand(2, -1, -1)

    tokens = torch.empty(total, dtype=torch.long, device=device)
    tokens[:1] = draw(p0, rand(1)) if keep_all is None or not bool(keep_all[0]) else kept_all[:1]
    if on_token:
        on_token(0, tokens[:1])
    done, passes = 1, 0
    size = min(window - 1, total - 1)
    drafts = next_window(p0, 1, size, vocab, rand(2 * (window - 1)))
    while done < total:
        k = min(drafts.tokens.shape[0], total - done - 1)   # drafts for positions done .. done + k - 1
        drafts = Window(drafts.tokens[:k], drafts.q[:k])
        keep = kept = None
        if keep_all is not None:  # forced positions carry their kept token as the draft
            keep, kept = keep_all[done:done + k + 1], kept_all[done:done + k + 1]
            drafts.tokens = torch.where(keep[:k], kept[:k], drafts.tokens)
        session.seek(prompt + done - 1)                       # rejected drafts' keys are overwritten
        hidden = session.extend(embed(torch.cat([tokens[done - 1:done], drafts.tokens])))  # [2, k + 1, D]
        p = target.probs(lm.gen_head(hidden), done)                                      # [k + 1, V]
        passes += 1
        u = rand(k + 1)
        new = verify(p, drafts, u[:k], u[k:], keep, kept)
        tokens[done:done + new.shape[0]] = new
        if on_token:
            for i in range(new.shape[0]):
                on_token(done + i, tokens[:done + i + 1])
        done += new.shape[0]
        size = max(min(window - 1, total - done - 1), 0)
        drafts = next_window(p, new.shape[0], size, vocab, rand(2 * (window - 1)), drafts if coupled else None)
    return tokens, passes


def generate_speculative(model, batch, n: int, target: Target, gens: list, window: int, forced=None,
                         callback=None, open_session=None, coupled: bool = False) -> tuple[torch.Tensor, int]:
    """SJD (MC-SJD with ``coupled``) for a CFG batch (rows [0, n) conditional, [n, 2n) unconditional), one image at a time; images with
    the same prompt rows share one prefill. Returns (codes [n, N], forward passes after the prefills).
    ``callback(step, total, tokens [n, step + 1])`` follows each accepted token of the image being decoded
    (earlier images are complete)."""
    total, lm = target.total, model.lm
    out, passes, k = None, 0, 0
    while k < n:
        rows = torch.tensor([k, n + k])
        valid = batch.valid[rows]
        keep = valid.any(0)                      # drop columns that are padding in both rows
        ids, valid = batch.ids[rows][:, keep], valid[:, keep]
        last = k
        while last + 1 < n and torch.equal(batch.ids[[last + 1, n + last + 1]], batch.ids[rows]):
            last += 1
        with open_session(model, valid, total, new_what="image tokens", fix="shorten the prompt") as session:
            device = session.device
            if out is None:
                out = torch.zeros(n, total, dtype=torch.long, device=device)
            p0 = target.probs(lm.gen_head(session.prefill(lm.embed_text(ids.to(device)))[:, -1:]), 0)  # [1, V]
            for i in range(k, last + 1):
                def on_token(step, tokens, i=i, out=out):
                    out[i, :step + 1] = tokens
                    if callback:
                        callback(step, total, out[:, :step + 1])
                f = None if forced is None else (forced.ids[i].to(device), forced.regen[i].to(device))
                codes, p = speculative_image(session, lm, target, ids.shape[1], p0, gens[i], window, f, on_token,
                                             coupled)
                out[i] = codes
                passes += p
        k = last + 1
    return out, passes
