"""Generation speed: our sampler vs a faithful re-implementation of the official Janus loop, side by side.

The official loop (SPEC §5.1, generation_inference.py) runs transformers' LlamaForCausalLM with its default
cache, one forward per step, interleaved cond/uncond rows, gen_head, CFG, softmax and multinomial. Both loops
use the same weights (our fused q/k/v and gate/up split back into LlamaForCausalLM's) and the same gen heads.

    python benchmarks/bench_generate.py                 # CPU: tiny and mid-size models, fp32 (+ bf16 mid)
    python benchmarks/bench_generate.py --gpu           # CUDA: full-size Janus-Pro-1B and -7B LMs, bf16

Prints a table and writes benchmarks/results/generate_<mode>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from janus_runtime.config import parse_config  # noqa: E402
from janus_runtime.model import JanusModel, build_components, load_model  # noqa: E402
from janus_runtime import generate_image_tokens  # noqa: E402
from janus_runtime.tiny import TINY_OFFICIAL_CONFIG, make_tiny  # noqa: E402

PROMPT = "A red circle and a yellow triangle on a blue gradient background."
STEPS = 576
SIZES = {  # name: (hidden, layers, heads, intermediate, vocab)
    "tiny": (64, 2, 4, 176, 1024),
    "mid": (1024, 8, 16, 2816, 102400),
    "pro-1b": (2048, 24, 16, 5632, 102400),
    "pro-7b": (4096, 30, 32, 11008, 102400),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_model(size: str, text, device, dtype, seed=0) -> JanusModel:
    """A Janus LM + gen heads of the given size with random weights drawn on ``device`` (no files)."""
    hidden, layers, heads, inter, vocab = SIZES[size]
    raw = json.loads(json.dumps(TINY_OFFICIAL_CONFIG))
    raw["language_config"].update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                  num_key_value_heads=heads, intermediate_size=inter, vocab_size=vocab)
    for name in ("aligner_config", "gen_aligner_config"):
        raw[name]["params"]["n_embed"] = hidden
    raw["gen_head_config"]["params"].update(n_embed=hidden, image_token_embed=hidden)
    cfg = parse_config(raw)
    lm = build_components(cfg, ("lm",), dtype, torch.nn)["lm"].to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.fill_(1.0)
            elif p.ndim >= 2:
                p.normal_(0, p.shape[-1] ** -0.5, generator=g)
            else:
                p.normal_(0, 0.02, generator=g)
    return JanusModel(config=cfg, folder=Path("."), text=text, dtype=dtype, lm=lm.eval().requires_grad_(False))


def hf_llama(model: JanusModel):
    """transformers' LlamaForCausalLM holding exactly our Llama's weights."""
    from transformers import LlamaConfig, LlamaForCausalLM
    c = model.config.language
    ours = model.lm.language_model
    device = next(ours.parameters()).device
    hf_cfg = LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                         num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                         num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
                         rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta, tie_word_embeddings=False,
                         attn_implementation="sdpa")
    default = torch.get_default_dtype()
    torch.set_default_dtype(model.dtype)
    try:
        with torch.device(device):
            hf = LlamaForCausalLM(hf_cfg)
    finally:
        torch.set_default_dtype(default)
    sd = {}
    for k, v in ours.state_dict().items():
        if k.endswith("self_attn.qkv_proj.weight"):
            q, kk, vv = v.split(ours.model.layers[0].self_attn.split, 0)
            base = k[: -len("qkv_proj.weight")]
            sd.update({base + "q_proj.weight": q, base + "k_proj.weight": kk, base + "v_proj.weight": vv})
        elif k.endswith("mlp.gate_up_proj.weight"):
            gate, up = v.chunk(2, 0)
            base = k[: -len("gate_up_proj.weight")]
            sd.update({base + "gate_proj.weight": gate, base + "up_proj.weight": up})
        else:
            sd[k] = v
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all("rotary_emb" in k for k in missing), (missing, unexpected)
    return hf.eval()


@torch.inference_mode()
def official_loop(model: JanusModel, hf, parallel: int, cfg_weight=5.0, temperature=1.0):
    """SPEC §5.1 line by line. Returns (prefill seconds, seconds for the remaining 575 steps)."""
    lm = model.lm
    device = next(hf.parameters()).device
    ids = torch.tensor(model.text.encode(model.text.generation_prompt(PROMPT)), device=device)
    tokens = ids.repeat(parallel * 2, 1)
    tokens[1::2, 1:-1] = model.text.ids.pad
    inputs_embeds = hf.get_input_embeddings()(tokens)
    generated = torch.zeros(parallel, STEPS, dtype=torch.long, device=device)
    past = None
    sync(device)
    t0 = time.perf_counter()
    for i in range(STEPS):
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
            t1 = time.perf_counter()
    sync(device)
    return t1 - t0, time.perf_counter() - t1


def our_loop(model: JanusModel, parallel: int, compile=False):
    """Our sampler (same CFG, temperature 1, full-vocabulary sampling). Same split of the timing."""
    device = next(model.lm.parameters()).device
    marks = {}

    def mark(step, total, tokens):
        if step == 0:
            sync(device)
            marks["first"] = time.perf_counter()
    sync(device)
    t0 = time.perf_counter()
    generate_image_tokens(model, PROMPT, n=parallel, seed=0, callback=mark, compile=compile)
    sync(device)
    return marks["first"] - t0, time.perf_counter() - marks["first"]


def weight_bytes(model: JanusModel) -> int:
    """Bytes read per generation step: the decoder layers, final norm, gen_head and gen_aligner."""
    lm = model.lm
    mods = [lm.language_model.model.layers, lm.language_model.model.norm, lm.gen_head, lm.gen_aligner]
    return sum(p.numel() * p.element_size() for m in mods for p in m.parameters())


def matvec_bandwidth(device, dtype, rows=2, n=1024, m=16384, reps=50) -> float:
    """Bytes/s of a skinny matmul [rows, n] x [m, n]^T: the per-step pattern of a decoder."""
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


def copy_bandwidth(device, nbytes=1 << 30, reps=10) -> float:
    """Device memory bandwidth from a large copy (read + write)."""
    src = torch.empty(nbytes // 2, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    sync(device)
    return 2 * nbytes * reps / (time.perf_counter() - t)


def measure(name, model, parallel, repeats, with_official=True, compile=False):
    """Median timings of both loops, interleaved run by run so machine noise hits both alike."""
    hf = hf_llama(model) if with_official else None
    ours, official = [], []
    our_loop(model, parallel, compile=compile)  # warm-up (and compilation)
    if hf is not None:
        official_loop(model, hf, parallel)
    for _ in range(repeats):
        ours.append(our_loop(model, parallel, compile=compile))
        if hf is not None:
            official.append(official_loop(model, hf, parallel))

    def summary(runs):
        prefill = statistics.median(r[0] for r in runs)
        loop = statistics.median(r[1] for r in runs)
        step_ms = loop / (STEPS - 1) * 1e3
        return {"prefill_ms": prefill * 1e3, "step_ms": step_ms, "images_per_s": parallel / (prefill + loop),
                "runs_loop_s": [r[1] for r in runs]}
    row = {"model": name, "parallel_size": parallel, "dtype": str(model.dtype).replace("torch.", ""),
           "compiled": compile, "ours": summary(ours), "weight_bytes": weight_bytes(model)}
    if official:
        row["official"] = summary(official)
        row["speedup"] = row["official"]["step_ms"] / row["ours"]["step_ms"]
    del hf
    return row


def environment(device) -> dict:
    info = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "device": str(device)}
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        try:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                               if line.startswith("model name"))
        except (OSError, StopIteration):
            info["cpu"] = platform.processor()
        info["cores"] = os.cpu_count()
        info["loadavg_start"] = os.getloadavg()
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="full-size 1B/7B LMs on CUDA in bf16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"], help="CPU mode only")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)

    device = torch.device("cuda" if args.gpu else "cpu")
    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu: no CUDA device here")
    with tempfile.TemporaryDirectory() as tmp:
        text = load_model(make_tiny(Path(tmp) / "tiny"), components=("lm",)).text  # tokenizer only
    rows = []
    env = environment(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"generate_{'gpu' if args.gpu else 'cpu'}.json"

    def save():
        path.write_text(json.dumps({"environment": env, "results": rows}, indent=1))
    if args.gpu:
        bandwidth = copy_bandwidth(device)
        env["copy_bandwidth_GBps"] = bandwidth / 1e9
        for size in ("pro-1b", "pro-7b"):
            model = random_model(size, text, device, torch.bfloat16)
            for parallel in (1, 4):
                for compile in (False, True):
                    row = measure(size, model, parallel, args.repeats, with_official=not compile, compile=compile)
                    row["floor_step_ms"] = row["weight_bytes"] / bandwidth * 1e3
                    rows.append(row)
                    save()
                    print(json.dumps(row))
            del model
            torch.cuda.empty_cache()
    else:
        env["matvec_bandwidth_GBps"] = {str(dt).replace("torch.", ""): matvec_bandwidth(device, dt) / 1e9
                                        for dt in (torch.float32, torch.bfloat16)}
        plan = [("tiny", torch.float32, (1, 4)), ("mid", torch.float32, (1, 4)), ("mid", torch.bfloat16, (1,))]
        for size, dtype, parallels in plan:
            if size not in args.sizes:
                continue
            model = random_model(size, text, device, dtype)
            for parallel in parallels:
                row = measure(size, model, parallel, args.repeats)
                bw = env["matvec_bandwidth_GBps"][row["dtype"]] * 1e9
                for loop in ("ours", "official"):
                    achieved = row["weight_bytes"] / (row[loop]["step_ms"] / 1e3)
                    row[loop]["weight_GBps"] = achieved / 1e9
                    row[loop]["of_matvec_bandwidth"] = achieved / bw
                rows.append(row)
                save()
                print(json.dumps(row), flush=True)
            del model
        env["loadavg_end"] = os.getloadavg()

    print(f"\n{'model':8} {'dtype':9} {'P':>2} {'ours ms/step':>13} {'official':>10} {'speedup':>8} "
          f"{'ours img/s':>11} {'weights GB/s (ours/off)':>24}")
    for r in rows:
        off = r.get("official", {})
        bw = (f"{r['ours'].get('weight_GBps', 0):.1f} / {off.get('weight_GBps', 0):.1f}"
              if "weight_GBps" in r["ours"] else "")
        print(f"{r['model']:8} {r['dtype']:9} {r['parallel_size']:>2} {r['ours']['step_ms']:>13.2f} "
              f"{off.get('step_ms', float('nan')):>10.2f} {r.get('speedup', float('nan')):>8.2f} "
              f"{r['ours']['images_per_s']:>11.3f} {bw:>24}" + (" compiled" if r["compiled"] else ""))
    save()
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
