"""What a model computes on the reference checkpoint's inputs, and how a bf16 run must agree with fp32 there.
Readable without pytest: tests/test_cpu_dtype.py and the parity phase of benchmarks/gpu_check.py use it.

The bf16 tolerances were fixed from the reference checkpoint on the CPU (torch 2.13, an AMD EPYC with native
bf16; fp32 vs bf16 compute): the largest logit difference is 1.6 % of the logits' scale for CFG logits, 1.0 % /
0.9 % for cond / uncond, 0.7 % for the understanding decode steps (tolerance: 3 %); the VQ decoder's uint8
pixels differ by mean 1.2 levels, 99th percentile 5, max 16 (its ~30 convolutions round activations to bf16
in between), hence the fp32 VQ of dtype "auto" on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from reference_data import REFERENCE, load_expected

BF16_LOGITS_REL = 0.03
BF16_VQ_MEAN_LEVELS, BF16_VQ_P99_LEVELS = 2.0, 8.0


def load_reference(reference: Path = REFERENCE) -> dict:
    """The expected outputs the checks need: understanding, generation, VQ tensors and the generation meta."""
    return {"und": load_expected("understanding.safetensors", reference),
            "gen": load_expected("generation.safetensors", reference),
            "vq": load_expected("vq.safetensors", reference),
            "meta": json.loads((reference / "expected" / "generation.json").read_text()),
            "und_meta": json.loads((reference / "expected" / "understanding.json").read_text())}


def max_err(actual, expected) -> dict:
    actual, expected = actual.detach().float().cpu(), expected.detach().float().cpu()
    return {"max_abs": float((actual - expected).abs().max()), "scale": float(expected.abs().max())}


def within(err: dict, rel: float) -> bool:
    return err["max_abs"] <= rel * max(err["scale"], 1.0)


@torch.inference_mode()
def cached_decode_logits(model, embeds, forced_ids):
    """Prefill ``embeds`` [1, T, n], then teacher-force ``forced_ids`` one by one through the cached decode
    step; the LM logits before each forced token [len(forced_ids), V] (the path generation uses)."""
    llama = model.lm.language_model
    device = model.device_for("lm")
    t = embeds.shape[1]
    llama.setup_cache(1, t + len(forced_ids), device, model.dtype)
    try:
        slots = torch.arange(t, device=device)
        hidden = llama(embeds.to(device, model.dtype), slots, slots[None], llama.attention_mask(slots, t), kv_len=t)
        rows = []
        for i, tok in enumerate(forced_ids):
            rows.append(llama.logits(hidden[:, -1]).float())
            x = model.lm.embed_text(torch.tensor([[int(tok)]], device=device))
            slot = torch.tensor([t + i], device=device)
            hidden = llama(x, slot, slot[None], None, kv_len=t + i + 1)
        return torch.cat(rows)
    finally:
        llama.free_cache()


def reference_outputs(model, exp: dict, reference: Path = REFERENCE) -> dict:
    """Everything the reference holds, computed by ``model`` (on its device, in its dtypes)."""
    from janus_runtime import decode_tokens, score_image_tokens, understand
    from janus_runtime.processing import open_image, to_uint8_official
    und, gen, vq, meta = exp["und"], exp["gen"], exp["vq"], exp["meta"]
    question = exp["und_meta"]["conversation"][0]["content"].replace("<image_placeholder>\n", "")
    prompt = meta["conversation"][0]["content"]
    device = model.device_for("lm")
    out = {}
    with torch.inference_mode():
        ids = und["input_ids"].to(device)
        embeds = model.lm.embed_text(ids).clone()
        feats = model.vision(und["pixel_values"][:, 0].to(model.device_for("vision"), model.dtype_for("vision")))
        embeds[und["images_seq_mask"].to(device)] = feats.reshape(-1, feats.shape[-1]).to(device, embeds.dtype)
        out["step_logits"] = cached_decode_logits(model, embeds, und["greedy_ids"][0].tolist())
    answer = understand(model, [open_image(reference / "expected" / "test_image.png")], question, max_new_tokens=16)
    out["greedy_ids"] = answer.token_ids
    tokens = gen["generated_tokens"].view(2, 24, 24)
    out["logprobs"], out["cfg"] = score_image_tokens(model, prompt, tokens, cfg=meta["cfg_weight"],
                                                     temperature=meta["temperature"],
                                                     return_logits_at=meta["cfg_logits_steps"])
    with torch.inference_mode():
        out["vq_indices"] = model.vq.encode(vq["input"].to(model.device_for("vq"), model.dtype_for("vq"))).cpu()[0]
    out["vq_pixels"] = decode_tokens(model, vq["indices"][None]).cpu()
    out["vq_uint8"] = to_uint8_official(out["vq_pixels"])[0]
    out["gen_uint8"] = to_uint8_official(decode_tokens(model, tokens)).cpu()
    return out


def greedy_agreement(low: dict, fp32: dict, greedy_ids: list) -> dict:
    """Whether ``low``'s greedy answer is ``greedy_ids``, the reference's (fp32's). Identical on the machines
    measured; where they differ, the first differing token must be a near-tie that bf16 rounding may flip
    (CPUs and GPUs accumulate bf16 differently): its fp32 logit within twice the step's largest bf16 logit
    error of the winner's (the reference's tightest step has a 0.019 margin, about one bf16 step there)."""
    ids = low["greedy_ids"]
    if ids == greedy_ids:
        return {"ok": True, "identical": True, "ids": ids}
    first = next(i for i in range(max(len(ids), len(greedy_ids)))
                 if i >= len(ids) or i >= len(greedy_ids) or ids[i] != greedy_ids[i])
    out = {"ok": False, "identical": False, "ids": ids, "first_difference": first}
    if first < min(len(ids), len(fp32["step_logits"])):
        f, l = fp32["step_logits"][first].float().cpu(), low["step_logits"][first].float().cpu()
        out["fp32_gap"] = float(f.max() - f[ids[first]])
        out["bf16_error"] = float((f - l).abs().max())
        out["ok"] = out["fp32_gap"] <= 2 * out["bf16_error"]
    return out


def bf16_agreement(low: dict, fp32: dict, greedy_ids: list) -> dict:
    """How ``low`` (reference_outputs of a bf16 model) agrees with ``fp32`` (those of the fp32 model): greedy
    understanding ids equal to ``greedy_ids`` (the reference's; see greedy_agreement), logits within
    BF16_LOGITS_REL of their scale, VQ decode within the uint8 bounds. Each check has "ok"."""
    checks = {"tolerance": f"|bf16 - fp32| <= {BF16_LOGITS_REL} x max|fp32|; VQ uint8 mean <= "
                           f"{BF16_VQ_MEAN_LEVELS}, 99th percentile <= {BF16_VQ_P99_LEVELS} levels"}
    checks["greedy_ids_equal"] = greedy_agreement(low, fp32, greedy_ids)
    e = max_err(low["step_logits"], fp32["step_logits"])
    checks["decode_step_logits"] = {**e, "ok": within(e, BF16_LOGITS_REL)}
    for name in ("cfg", "cond", "uncond"):
        e = max_err(low["cfg"][name], fp32["cfg"][name])
        checks[f"{name}_logits"] = {**e, "ok": within(e, BF16_LOGITS_REL)}
    d = (low["vq_uint8"].int() - fp32["vq_uint8"].int()).abs().float().flatten()
    q = torch.quantile(d[:: max(1, d.numel() // 100_000)], torch.tensor([0.99, 0.999])).tolist()
    checks["vq_decode_uint8"] = {"mean": float(d.mean()), "p99": q[0], "p999": q[1], "max": float(d.max()),
                                 "ok": float(d.mean()) <= BF16_VQ_MEAN_LEVELS and q[0] <= BF16_VQ_P99_LEVELS}
    return checks
