"""Shared pieces of the benchmarks: random-weight Janus models of any size built directly on a device (no
files), transformers' own models holding the same weight tensors, the generation loops being compared, and
bandwidth probes. Every figure in benchmarks/RESULTS.md comes from a script that imports this module.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from janus_runtime.config import parse_config
from janus_runtime.model import JanusModel, build_components
from janus_runtime.processing import TextProcessor
from janus_runtime import generate_image_tokens
from janus_runtime.tiny import TINY_OFFICIAL_CONFIG, hf_config, write_tokenizer
from janus_runtime.weights import official_to_hf_state_dict

PROMPT = "A red circle and a yellow triangle on a blue gradient background."
SIZES = {  # name: (hidden, layers, heads, intermediate, vocab); the real ones from the Janus-Pro configs
    "tiny": (64, 2, 4, 176, 1024),
    "tiny-b": (96, 3, 4, 256, 1024),
    "mid": (1024, 8, 16, 2816, 102400),
    "pro-1b": (2048, 24, 16, 5632, 102400),
    "pro-7b": (4096, 30, 32, 11008, 102400),
}
GEN_PARTS = ("gen_head.", "gen_embed.", "gen_aligner.")


class Cancelled(Exception):
    """Raised from a step callback to stop a generation early (what ComfyUI's Cancel does)."""


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def spread(values) -> dict:
    """min / median / max of a list of numbers (the protocol for every figure we publish)."""
    values = [float(v) for v in values]
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


# ------------------------------------------------------------------------------------------------------------
# configs and random weights

def official_config(size: str, image_size: int = 384, full_vision: bool = False, full_vq: bool = False) -> dict:
    """An official-layout config.json dict: Llama of ``size``; the tiny ViT and VQ unless ``full_*`` (then
    the real SigLIP-L and VQ-16 widths). ``image_size`` sets the token grid (384 px -> 24 x 24)."""
    hidden, layers, heads, inter, vocab = SIZES[size]
    raw = copy.deepcopy(TINY_OFFICIAL_CONFIG)
    raw["language_config"].update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                  num_key_value_heads=heads, intermediate_size=inter, vocab_size=vocab)
    for name in ("aligner_config", "gen_aligner_config"):
        raw[name]["params"]["n_embed"] = hidden
    raw["gen_head_config"]["params"].update(n_embed=hidden, image_token_embed=hidden)
    vp = raw["vision_config"]["params"]
    vp["image_size"] = image_size
    if full_vision:  # the extra width keys are the tiny reference's override; without them: SigLIP-L
        for key in ("width", "layers", "heads", "mlp_ratio", "patch_size"):
            vp.pop(key)
        raw["aligner_config"]["params"]["input_dim"] = 1024
    if full_vq:
        for key in ("ch", "z_channels"):
            raw["gen_vision_config"]["params"].pop(key)
    return raw


def text_processor() -> TextProcessor:
    """The tiny byte-level tokenizer with the real special tokens (its ids fit every vocabulary here)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        return TextProcessor(tmp)


def init_random_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter in place: norms 1, matrices N(0, 1/fan_in), other vectors N(0, 0.02^2)."""
    params = list(module.named_parameters())
    if not params:
        return module
    g = torch.Generator(device=params[0][1].device).manual_seed(seed)
    with torch.no_grad():
        for name, p in params:
            target = p if p.dtype.is_floating_point and p.element_size() >= 2 else None
            if target is None:  # e.g. fp8 storage: draw in bf16, then store
                target = torch.empty(p.shape, device=p.device, dtype=torch.bfloat16)
            if "norm" in name and name.endswith("weight"):
                target.fill_(1.0)
            elif p.ndim >= 2:
                target.normal_(0, p[0].numel() ** -0.5, generator=g)
            else:
                target.normal_(0, 0.02, generator=g)
            if target is not p:
                p.copy_(target)
    return module


def random_components(cfg_raw: dict, components, device, dtype, ops=nn, seed: int = 0) -> dict:
    """Our modules for ``components`` with random weights allocated directly on ``device``."""
    cfg = parse_config(cfg_raw)
    modules = build_components(cfg, tuple(components), dtype, ops)
    for m in modules.values():
        init_random_(m.to_empty(device=device), seed).eval().requires_grad_(False)
    return modules


def janus_model(cfg_raw: dict, text: TextProcessor, dtype, **modules) -> JanusModel:
    return JanusModel(config=parse_config(cfg_raw), folder=Path("."), text=text, dtype=dtype, **modules)


def hf_llama_random(cfg_raw: dict, device, dtype, seed: int = 0):
    """transformers' LlamaForCausalLM of the config's LM size, random weights, built on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM
    c = parse_config(cfg_raw).language
    hf_cfg = LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                         num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                         num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
                         rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta, tie_word_embeddings=False)
    hf_cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with built_on(device, dtype):
        hf = LlamaForCausalLM(hf_cfg)
    return hf.eval().requires_grad_(False)


@contextlib.contextmanager
def built_on(device, dtype):
    """Modules constructed inside get their parameters on ``device`` in ``dtype`` (transformers' models take
    the default dtype)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(default)


def models_on_shared_weights(cfg_raw: dict, text: TextProcessor, device, dtype, seed: int = 0,
                             with_hf_janus: bool = False) -> dict:
    """transformers' LlamaForCausalLM (random), our Janus LM loaded from its state dict (q/k/v and gate/up
    fused by our loader, everything else the very same tensors) plus random gen heads, and optionally
    transformers' JanusForConditionalGeneration holding those same tensors (tiny vision and VQ parts).

    Returns {"hf": LlamaForCausalLM, "ours": JanusModel, "hf_janus": ... or None}.
    """
    hf = hf_llama_random(cfg_raw, device, dtype, seed)
    cfg = parse_config(cfg_raw)
    lm = build_components(cfg, ("lm",), dtype, nn)["lm"]
    state = {"language_model." + k: v for k, v in hf.state_dict().items()}
    for name in ("gen_head", "gen_embed", "gen_aligner"):  # random gen parts, made on the device
        part = init_random_(getattr(lm, name).to_empty(device=device), seed + 1)
        state.update({f"{name}.{k}": v for k, v in part.state_dict().items()})
    lm.load_state_dict(dict(state), strict=True, assign=True)  # its load hooks fuse q/k/v and gate/up
    lm.eval().requires_grad_(False)
    out = {"hf": hf, "ours": janus_model(cfg_raw, text, dtype, lm=lm), "official_state": state, "hf_janus": None}
    if with_hf_janus:
        out["hf_janus"] = hf_janus_on(cfg_raw, state, device, dtype)
    return out


def hf_janus_on(cfg_raw: dict, official_lm_state: dict, device, dtype):
    """transformers' JanusForConditionalGeneration whose LM, gen head, gen embedding and gen aligner are
    the given official-layout tensors (shared, not copied); its vision and VQ parts stay random."""
    from transformers import JanusConfig, JanusForConditionalGeneration
    d = hf_config(cfg_raw)
    conf = JanusConfig(text_config=d["text_config"], vision_config=d["vision_config"], vq_config=d["vq_config"])
    conf._attn_implementation = "sdpa"
    with built_on(device, dtype):
        janus = JanusForConditionalGeneration(conf)
    state = official_to_hf_state_dict(official_lm_state)
    missing, unexpected = janus.load_state_dict(state, strict=False, assign=True)
    shared = set(state) - set(unexpected)
    if unexpected or not any("language_model" in k for k in shared) or \
            any("language_model" in k or "generation" in k or "lm_head" in k for k in missing):
        raise RuntimeError(f"transformers' Janus does not take our tensors: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    return janus.eval().requires_grad_(False)


def lm_weight_bytes(model: JanusModel) -> int:
    """Bytes read per generation step: the decoder layers, final norm, gen_head and gen_aligner."""
    lm = model.lm
    mods = [lm.language_model.model.layers, lm.language_model.model.norm, lm.gen_head, lm.gen_aligner]
    return sum(p.numel() * p.element_size() for m in mods for p in m.parameters())


def param_bytes(*modules) -> int:
    seen, total = set(), 0
    for m in modules:
        for p in m.parameters():
            if p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                total += p.numel() * p.element_size()
    return total


# ------------------------------------------------------------------------------------------------------------
# the loops being compared; each returns {"prefill_s", "loop_s", "total_s", "step_ms", "tokens"}

def _timing(t0, first, end, steps) -> dict:
    return {"prefill_s": first - t0, "loop_s": end - first, "total_s": end - t0,
            "step_ms": (end - first) / max(steps - 1, 1) * 1e3}


def run_ours(model: JanusModel, n: int, seed: int = 0, compile: bool = False, cancel_at: int | None = None,
             prompt: str = PROMPT, steps: int | None = None) -> dict:
    """Our sampler (CFG 5, temperature 1, full vocabulary). ``cancel_at``: raise Cancelled from the callback
    there (as ComfyUI's Cancel does); ``steps``: stop quietly after that many steps and time those."""
    device = model.device_for("lm")
    marks = {}

    class _Stop(Exception):
        pass

    def callback(step, total, tokens):
        if step == 0:
            sync(device)
            marks["first"] = time.perf_counter()
        if cancel_at is not None and step >= cancel_at:
            raise Cancelled(step)
        if steps is not None and step + 1 >= steps:
            marks["tokens"] = tokens.clone()
            raise _Stop
    sync(device)
    t0 = time.perf_counter()
    try:
        tokens = generate_image_tokens(model, prompt, n=n, seed=seed, callback=callback, compile=compile)
    except _Stop:
        tokens = marks["tokens"]
    sync(device)
    out = _timing(t0, marks["first"], time.perf_counter(), steps or model.config.num_image_tokens)
    out["tokens"] = tokens.reshape(n, -1).cpu()
    return out


@torch.inference_mode()
def run_official(model: JanusModel, hf, n: int, seed: int = 0, cfg_weight: float = 5.0,
                 temperature: float = 1.0, prompt: str = PROMPT, steps: int | None = None) -> dict:
    """The official generation_inference.py loop (deepseek-ai/Janus @ 1daa72fa) line by line on transformers'
    Llama: default cache, interleaved cond/uncond rows, gen_head, CFG, softmax, torch.multinomial. ``steps``:
    stop early."""
    lm = model.lm
    steps = steps or model.config.num_image_tokens
    device = next(hf.parameters()).device
    ids = torch.tensor(model.text.encode(model.text.generation_prompt(prompt)), device=device)
    tokens = ids.repeat(n * 2, 1)
    tokens[1::2, 1:-1] = model.text.ids.pad
    inputs_embeds = hf.get_input_embeddings()(tokens)
    generated = torch.zeros(n, steps, dtype=torch.long, device=device)
    past = None
    torch.manual_seed(seed)
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        out = hf.model(inputs_embeds=inputs_embeds, use_cache=True, past_key_values=past)
        past = out.past_key_values
        logits = lm.gen_head(out.last_hidden_state[:, -1, :])
        cond, uncond = logits[0::2], logits[1::2]
        logits = uncond + cfg_weight * (cond - uncond)
        probs = torch.softmax(logits / temperature, dim=-1)
        nxt = torch.multinomial(probs, num_samples=1)
        generated[:, i] = nxt.squeeze(-1)
        nxt = torch.cat([nxt.unsqueeze(1), nxt.unsqueeze(1)], dim=1).view(-1)
        inputs_embeds = lm.embed_image_codes(nxt).unsqueeze(1)
        if i == 0:
            sync(device)
            first = time.perf_counter()
    sync(device)
    res = _timing(t0, first, time.perf_counter(), steps)
    res["tokens"] = generated.cpu()
    return res


@torch.inference_mode()
def run_hf_janus(janus, text: TextProcessor, n: int, seed: int = 0, prompt: str = PROMPT,
                 cancel_at: int | None = None) -> dict:
    """transformers' own JanusForConditionalGeneration.generate(generation_mode="image"), CFG 5, sampling
    from the full distribution (top_k 0, top_p 1, temperature 1) like the other loops. ``cancel_at``: raise
    Cancelled from the gen head's forward hook at that step."""
    from transformers import GenerationConfig
    device = next(janus.parameters()).device
    steps = janus.config.vision_config.num_image_tokens
    ids = torch.tensor([text.encode(text.generation_prompt(prompt))], device=device)
    gc = GenerationConfig(do_sample=True, guidance_scale=5.0, temperature=1.0, top_k=0, top_p=1.0,
                          num_return_sequences=n, max_new_tokens=steps, bos_token_id=text.ids.bos,
                          eos_token_id=text.ids.eos, pad_token_id=text.ids.pad,
                          generation_kwargs={"boi_token_id": text.ids.boi})
    marks = {}

    def first_head_call(module, args, output):
        marks["calls"] = marks.get("calls", 0) + 1
        if "first" not in marks:
            sync(device)
            marks["first"] = time.perf_counter()
        if cancel_at is not None and marks["calls"] > cancel_at:
            raise Cancelled(marks["calls"])
    hook = janus.model.generation_head.register_forward_hook(first_head_call)
    torch.manual_seed(seed)
    try:
        sync(device)
        t0 = time.perf_counter()
        out = janus.generate(ids, attention_mask=torch.ones_like(ids), generation_mode="image", generation_config=gc)
        sync(device)
        end = time.perf_counter()
    finally:
        hook.remove()
    res = _timing(t0, marks["first"], end, steps)
    res["tokens"] = (out.sequences if hasattr(out, "sequences") else out).reshape(n, -1).cpu()
    return res


# ------------------------------------------------------------------------------------------------------------
# bandwidth probes and the environment

def copy_bandwidth(device, nbytes: int = 1 << 30, reps: int = 10) -> float:
    """Bytes/s of a large device copy, counting bytes read and written."""
    src = torch.empty(nbytes // 2, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    sync(device)
    return 2 * nbytes * reps / (time.perf_counter() - t)


def matvec_bandwidth(device, dtype, rows: int = 2, n: int = 1024, m: int = 16384, reps: int = 50) -> float:
    """Weight bytes/s of a skinny matmul [rows, n] x [m, n]^T: the per-step pattern of a decoder."""
    w = torch.randn(m, n, device=device, dtype=dtype)
    x = torch.randn(rows, n, device=device, dtype=dtype)
    for _ in range(3):
        x @ w.t()
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        x @ w.t()
    sync(device)
    return w.numel() * w.element_size() * reps / (time.perf_counter() - t)


def cpu_info() -> dict:
    info = {"cores": os.cpu_count(), "threads": torch.get_num_threads(), "loadavg": list(os.getloadavg())}
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        info["cpu"] = next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
        flags = set(next(x.split(":", 1)[1] for x in lines if x.startswith("flags")).split())
        info["bf16_flags"] = sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2"})
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    return info


def versions() -> dict:
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
            "torch": torch.__version__}
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    return info
