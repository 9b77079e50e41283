"""Mutation testing: put known bug patterns into a copy of the repository, one at a time, and report which the
test suite misses.

Each mutation names a file, one or more (original, mutated) snippets and the tests that should catch it. The
copy is made once (the work tree as it is, uncommitted edits included; .git and virtual environments left out);
each mutation edits it, runs its tests with pytest -x, and is undone. An original snippet that is not in the file
exactly once is reported as ERROR (the pattern has gone stale after a refactor; update it), never as caught.

    python tools/mutation_test.py                 # all mutations, table on stdout
    python tools/mutation_test.py --list          # names only
    python tools/mutation_test.py -k rope -k top_p --json out.json

Not part of CI: it runs the selected tests once per mutation (minutes on a small CPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARITY = "tests/test_parity.py"
DECODE = "tests/test_parity_decode.py"
SAMPLING_HF = "tests/test_sampling_vs_transformers.py"
LOWP = "tests/test_llama_lowp_vs_hf.py"
JANUS_HF = "tests/test_vs_transformers_janus.py"
NODES = "tests/test_nodes.py"


@dataclass
class Mutation:
    name: str
    variants: list  # [(file, [(original, mutated), ...])]: the first variant whose originals all occur exactly
    #                 once in its file is applied (one variant per code layout the pattern has lived in)
    tests: list     # pytest arguments: files, node ids, or "-k" expressions
    why: str = ""
    issue: bool = False  # listed in issue 11's table (the others are siblings of those)

    @property
    def file(self) -> str:
        return self.variants[0][0]


def M(name, file, edits, tests, why, issue=False, alt=()):
    """A mutation of ``file``; ``alt``: (file, edits) of the same bug in another layout of the code."""
    return Mutation(name, [(file, edits), *alt], tests, why, issue)


SAMPLING, GENERATION = "janus_runtime/sampling.py", "janus_runtime/generation.py"
SESSION, UNDERSTANDING = "janus_runtime/lm_session.py", "janus_runtime/understanding.py"
# Most sampler patterns come in two layouts: sampling.py as one module, and after the sampler was split into
# sampling.py (primitives), generation.py, understanding.py and lm_session.py.
MUTATIONS = [
    # ---- the bugs of issue 11's table -------------------------------------------------------------------
    M("decode_rope_off_by_one", SAMPLING,
      [("self.next_pos = positions[:, -1:].to(self.device) + 1",
        "self.next_pos = positions[:, -1:].to(self.device) + 2")],
      [DECODE], "RoPE positions of cached decode steps one too far (prefill right)", True,
      alt=[(SESSION, [("torch.clamp(self.slot - self.pads, min=0, out=self.next_pos)",
                       "torch.clamp(self.slot - self.pads + 1, min=0, out=self.next_pos)")])]),
    M("top_p_before_temperature", SAMPLING,
      [("if temperature != 1:\n        logits = logits / temperature\n    logits = filter_logits(logits, top_k, top_p)",
        "logits = filter_logits(logits, top_k, top_p)\n"
        "    if temperature != 1:\n        logits = logits / temperature")],
      [SAMPLING_HF], "top-k/top-p filter before temperature (transformers: temperature first)", True,
      alt=[(SAMPLING, [("logits = filter_logits(apply_temperature(logits, temperature), top_k, top_p)",
                        "logits = apply_temperature(filter_logits(logits.float(), top_k, top_p), temperature)")])]),
    M("repetition_penalty_inverted", SAMPLING,
      [("torch.where(picked > 0, picked / repetition_penalty,",
        "torch.where(picked < 0, picked / repetition_penalty,")],
      [SAMPLING_HF], "repeated tokens rewarded instead of penalised", True,
      alt=[(SAMPLING, [("torch.where(picked > 0, picked / penalty,", "torch.where(picked < 0, picked / penalty,")])]),
    M("score_keeps_worst", "nodes/generate.py",
      [("torch.argsort(logprobs, descending=True)", "torch.argsort(logprobs, descending=False)")],
      [NODES], "Janus Score keeps the worst grids", True),
    M("preview_bare_pil", "nodes/generate.py",
      [('return ("JPEG", canvas, 512)', "return canvas")],
      [NODES], "preview sent as a bare PIL image instead of ('JPEG', image, size)", True,
      alt=[("nodes/generate.py", [('else ("JPEG", image, side)', "else image")])]),
    M("understand_skips_memory_manager", "nodes/understand.py",
      [("janus_model.load(parts, understanding_bytes(", "(lambda *a: None)(parts, understanding_bytes(")],
      [NODES], "Janus Understand never asks ComfyUI to load its components", True),
    M("rmsnorm_not_fp32", "janus_runtime/llama.py",
      [("h = x if x.dtype == torch.float32 else x.float()", "h = x")],
      [LOWP], "RMSNorm normalises in the activation dtype", True),
    M("score_ignores_cfg_until", SAMPLING,
      [("guided[guided_steps:] = cond[guided_steps:]", "pass")],
      [DECODE], "cfg_until ignored when scoring", True,
      alt=[(GENERATION, [("return guidance.combine(logits[0], logits[1], 0, total)",
                          "return Guidance(guidance.weight).combine(logits[0], logits[1], 0, total)")])]),
    M("hf_layout_qk_swapped_both_ways", "janus_runtime/weights.py",
      [('Recipe([parts[p] for p in "qkv"], "cat0")', 'Recipe([parts[p] for p in "kqv"], "cat0")'),
       ('for name, part in zip("qkv", t.chunk(3, 0)):', 'for name, part in zip("kqv", t.chunk(3, 0)):')],
      [JANUS_HF, "tests/test_config_and_keys.py", PARITY], "q/k swapped in both directions of the HF key mapping",
      True),

    # ---- siblings ---------------------------------------------------------------------------------------
    M("forced_prefix_hand_over_off_by_one", SAMPLING,
      [("torch.arange(embeds.shape[1] - valid_len)", "torch.arange(1, embeds.shape[1] - valid_len + 1)")],
      [DECODE], "partial regeneration: the kept prefix and the first sampled step misaligned",
      alt=[(GENERATION, [("return sampler.next_tokens(session.prefill(embeds)[:, -1], known.shape[1])",
                          "return sampler.next_tokens(session.prefill(embeds)[:, -1], known.shape[1] + 1)")])]),
    M("decode_cache_slot_off_by_one", SAMPLING,
      [("self.slot = torch.tensor([self.length], device=self.device)",
        "self.slot = torch.tensor([self.length + 1], device=self.device)")],
      [DECODE], "decode steps write the KV cache one slot late (attend an empty slot)",
      alt=[(SESSION, [("self.slot.fill_(length)", "self.slot.fill_(length + 1)")])]),
    M("decode_attends_one_slot_too_many", SAMPLING,
      [("hidden = self.llama(embeds, slots, positions, mask, kv_len=self.length)",
        "hidden = self.llama(embeds, slots, positions, mask, kv_len=self.length + 1)")],
      [DECODE], "decode steps attend a not-yet-written cache slot",
      alt=[(SESSION, [("hidden = self.llama(embeds, slots, positions, mask, kv_len=end)",
                       "hidden = self.llama(embeds, slots, positions, mask, kv_len=end + (t == 1))")])]),
    M("cfg_rows_swapped_in_generation", SAMPLING,
      [("cond, uncond = logits[:n], logits[n:]", "uncond, cond = logits[:n], logits[n:]")],
      [DECODE], "conditional and unconditional rows swapped in the sampling loop",
      alt=[(GENERATION, [("self.guidance.combine(logits[:n, None], logits[n:, None], step, self.total)",
                          "self.guidance.combine(logits[n:, None], logits[:n, None], step, self.total)")])]),
    M("cfg_rows_swapped_in_scoring", SAMPLING,
      [("cond, uncond = logits[0], logits[1]", "uncond, cond = logits[0], logits[1]")],
      [DECODE, PARITY], "conditional and unconditional rows swapped in the scorer",
      alt=[(GENERATION, [("return guidance.combine(logits[0], logits[1], 0, total)",
                          "return guidance.combine(logits[1], logits[0], 0, total)")])]),
    M("cfg_formula_wrong", SAMPLING,
      [("guided = uncond + cfg * (cond - uncond) if step < guided_steps else cond",
        "guided = cond + cfg * (cond - uncond) if step < guided_steps else cond")],
      [DECODE], "guidance added to the conditional logits instead of the unconditional",
      alt=[(SAMPLING, [("mixed = uncond + self.weight * (cond - uncond)",
                        "mixed = cond + self.weight * (cond - uncond)")])]),
    M("decode_code_fed_to_cond_row_only", SAMPLING,
      [("x = torch.cat([x, x])", "x = torch.cat([x, torch.zeros_like(x)])")],
      [DECODE], "the sampled code is not fed to the unconditional row",
      alt=[(GENERATION, [("return torch.cat([x] * self.rows_per_image)",
                          "return torch.cat([x] + [torch.zeros_like(x)] * (self.rows_per_image - 1))")])]),
    M("generation_ignores_cfg_until", SAMPLING,
      [("if step < guided_steps else cond", "if True else cond")],
      [DECODE], "cfg_until ignored when generating",
      alt=[(GENERATION, [("ImageSampler(model.lm, Guidance(cfg, cfg_until),",
                          "ImageSampler(model.lm, Guidance(cfg),")])]),
    M("uncond_row_not_padded", SAMPLING,
      [("[r[0]] + [text.ids.pad] * (len(r) - 2) + [r[-1]]", "[r[0]] + r[1:-1] + [r[-1]]")],
      [PARITY, DECODE], "unconditional row keeps the prompt (no guidance)",
      alt=[(GENERATION, [("[r[0]] + [text.ids.pad] * (len(r) - 2) + [r[-1]]", "[r[0]] + r[1:-1] + [r[-1]]")])]),
    M("sjd_residual_is_p", "janus_runtime/speculative.py",
      [("return draw((p - q).clamp(min=0), u)", "return draw(p, u)")],
      ["tests/test_speculative.py"], "speculative decoding resamples a rejected draft from p, not max(p - q, 0)"),
    M("sjd_accepts_every_draft", "janus_runtime/speculative.py",
      [("rejected = (~accepted).nonzero()", "rejected = (accepted & ~accepted).nonzero()")],
      ["tests/test_speculative.py"], "speculative decoding accepts every draft"),
    M("mcsjd_keeps_old_drafts", "janus_runtime/speculative.py",
      [("return torch.where(accept_mask(q_new, old, q_old, u), old, residual_draw(q_new, q_old, u_new))", "return old")],
      ["tests/test_speculative.py"], "MC-SJD keeps a position's old draft whatever the new distribution"),
    M("edit_blend_swapped", "janus_runtime/edit.py",
      [("(full + self.image_cfg * part)", "(part + self.image_cfg * full)")],
      ["tests/test_edit.py"], "Janus-4o guidance weighs the full row with w2 instead of the SigLIP-only row"),
    M("edit_vq_block_not_filled", "janus_runtime/edit.py",
      [("embeds[rows.vq.to(device)] = ", "embeds[rows.vq.to(device)] = embeds[rows.vq.to(device)] + 0 * ")],
      ["tests/test_edit.py"], "the reference image's VQ codes never reach the cond_full row"),
    M("boi_missing_in_generation_prompt", "janus_runtime/processing.py",
      [('(assistant, "")], "").parts) + [(BOI_TAG, True)])',
        '(assistant, "")], "").parts))')],
      [PARITY, DECODE], "generation prompt without <begin_of_image>"),
    M("left_padding_mask_off", "janus_runtime/llama.py",
      [("& self.key_valid[:, None, :s]", "")],
      ["tests/test_llama_vs_hf.py", DECODE], "pad slots of left-padded rows attended"),
    M("decode_step_ignores_padding", SAMPLING,
      [("if t > 1 or self.padded else None", "if t > 1 else None")],
      [DECODE], "one-token decode steps of a padded batch run without the pad mask",
      alt=[(SESSION, [("if t > 1 or self.padded else None", "if t > 1 else None")])]),
    M("image_placeholder_order", SAMPLING,
      [("flat = [im for imgs in images for im in imgs]", "flat = [im for imgs in images for im in reversed(imgs)]")],
      [JANUS_HF], "images put into the placeholders in reverse order",
      alt=[(UNDERSTANDING, [("flat = [im for imgs in images for im in imgs]",
                             "flat = [im for imgs in images for im in reversed(imgs)]")])]),
    M("codebook_not_l2_normalised", "janus_runtime/vq.py",
      [("return F.normalize(self.embedding.weight.to(device, dtype), p=2, dim=-1)",
        "return self.embedding.weight.to(device, dtype)")],
      [PARITY, JANUS_HF], "VQ codebook used without l2 normalisation"),
    M("vit_layernorm_eps", "janus_runtime/vit.py", [("LN_EPS = 1e-6", "LN_EPS = 1e-5")],
      [PARITY, JANUS_HF], "ViT LayerNorm eps 1e-5 instead of 1e-6"),
    M("vit_gelu_tanh", "janus_runtime/vit.py",
      [("return self.fc2(F.gelu(self.fc1(x)))", 'return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))')],
      [PARITY, JANUS_HF], "ViT MLP GELU tanh approximation instead of erf"),
    M("projector_gelu_tanh", "janus_runtime/vit.py",
      [("mods += [nn.GELU(), ", 'mods += [nn.GELU(approximate="tanh"), ')],
      [PARITY, JANUS_HF], "aligner/gen_aligner GELU tanh approximation"),
    M("gen_head_gelu_tanh", "janus_runtime/lm.py",
      [("F.gelu(self.output_mlp_projector(h))", 'F.gelu(self.output_mlp_projector(h), approximate="tanh")')],
      [PARITY, JANUS_HF], "gen_head GELU tanh approximation"),
    M("uint8_rounding", "janus_runtime/processing.py",
      [("return x.to(torch.uint8).permute(0, 2, 3, 1)", "return x.round().to(torch.uint8).permute(0, 2, 3, 1)")],
      [PARITY], "decoded pixels rounded instead of truncated (official: truncation)"),
    M("top_p_one_token_too_few", SAMPLING,
      [("drop = probs.cumsum(-1) - probs >= top_p", "drop = probs.cumsum(-1) >= top_p")],
      [SAMPLING_HF], "top-p drops the token that crosses the threshold"),
    M("top_k_one_too_many", SAMPLING,
      [("kth = torch.topk(logits, top_k, dim=-1)", "kth = torch.topk(logits, top_k + 1, dim=-1)")],
      [SAMPLING_HF], "top-k keeps k+1 tokens"),
    M("temperature_multiplies", SAMPLING,
      [("logits = logits / temperature", "logits = logits * temperature")],
      [SAMPLING_HF], "logits multiplied by the temperature",
      alt=[(SAMPLING, [("else logits / temperature", "else logits * temperature")])]),
    M("rope_table_in_low_precision", "janus_runtime/llama.py",
      [("freqs = torch.arange(length, device=device).float()[:, None] * inv_freq",
        "freqs = (torch.arange(length, device=device).to(dtype)[:, None] * inv_freq.to(dtype)).float()")],
      [LOWP], "RoPE angles computed in the activation dtype (bf16 positions > 256 are inexact)"),
    M("vq_upsample_bilinear", "janus_runtime/vq.py",
      [('F.interpolate(x, scale_factor=2.0, mode="nearest")', 'F.interpolate(x, scale_factor=2.0, mode="bilinear")')],
      [PARITY, JANUS_HF], "VQ decoder upsamples bilinearly instead of nearest"),
    M("vq_downsample_pad_side", "janus_runtime/vq.py",
      [("F.pad(x, (0, 1, 0, 1))", "F.pad(x, (1, 0, 1, 0))")],
      [PARITY, JANUS_HF], "VQ encoder pads the wrong side before its stride-2 conv"),
    M("vq_attention_scale", "janus_runtime/vq.py",
      [("torch.bmm(q, k) * c ** -0.5", "torch.bmm(q, k) * (c // 2) ** -0.5")],
      [PARITY, JANUS_HF], "VQ attention scaled by the wrong width"),
    M("vq_groupnorm_eps", "janus_runtime/vq.py", [("GN_GROUPS, GN_EPS = 32, 1e-6", "GN_GROUPS, GN_EPS = 32, 1e-5")],
      [PARITY, JANUS_HF], "VQ GroupNorm eps 1e-5 instead of 1e-6"),
    M("resize_bilinear", "janus_runtime/processing.py",
      [("image = image.resize((nw, nh), Image.BICUBIC)", "image = image.resize((nw, nh), Image.BILINEAR)")],
      [PARITY], "understanding images resized bilinearly (official: bicubic)"),
    M("hf_pos_embed_not_unsqueezed", "janus_runtime/weights.py",
      [('recipes["vision_model.vision_tower.pos_embed"] = Recipe([k], "unsqueeze0")',
        'recipes["vision_model.vision_tower.pos_embed"] = Recipe([k], "single")')],
      [JANUS_HF], "transformers-layout position embedding loaded without its batch axis"),
    M("hf_projector_index_off", "janus_runtime/weights.py",
      [("v = (v - 2) // 2 if to_hf else 2 * v + 2", "v = (v - 2) // 2 if to_hf else 2 * v + 1")],
      [JANUS_HF, "tests/test_config_and_keys.py"],
      "transformers-layout projector hidden layers mapped to the GELU slot"),
    M("regeneration_skips_no_draws", SAMPLING,
      [("_skip_draws(gens, start, device)", "None")],
      ["tests/test_sampling.py"], "regenerating from a kept prefix does not skip the prefix's draws",
      alt=[(GENERATION, [("skip_draws(sampler.gens, start, device)", "None")])]),
]


# ------------------------------------------------------------------------------------------------------------

def copy_tree(src: Path, dst: Path):
    ignore = shutil.ignore_patterns(".git", ".venv*", "__pycache__", "*.pyc", ".pytest_cache", "node_modules",
                                    ".ruff_cache")
    shutil.copytree(src, dst, ignore=ignore, symlinks=True)


def run_pytest(tree: Path, tests: list, timeout: int, env: dict, first_failure=True, deselect=()) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", *tests]
    cmd += ["-x"] if first_failure else []
    for node in deselect:
        cmd += ["--deselect", node]
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rc": None, "seconds": time.time() - start, "failed": [], "skipped": 0, "tail": "timeout"}
    out = proc.stdout + proc.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    m = re.search(r"(\d+) skipped", out)
    return {"rc": proc.returncode, "seconds": time.time() - start, "failed": failed,
            "skipped": int(m[1]) if m else 0, "tail": "\n".join(out.strip().splitlines()[-15:])}


def pick_variant(tree: Path, mutation: Mutation):
    """(file, edits) of the first variant whose originals each occur exactly once, or (None, why not)."""
    problems = []
    for file, edits in mutation.variants:
        path = tree / file
        text = path.read_text(encoding="utf-8") if path.is_file() else None
        counts = [text.count(original) if text is not None else 0 for original, _ in edits]
        if all(c == 1 for c in counts):
            return file, edits
        bad = next(i for i, c in enumerate(counts) if c != 1)
        problems.append(f"{file}: {edits[bad][0][:60]!r} found {counts[bad]} times" if text is not None
                        else f"{file} does not exist")
    return None, "; ".join(problems)


def apply(tree: Path, mutation: Mutation):
    """Edit the copy. Returns (file, None), or (None, error) when no variant's snippets match exactly once."""
    file, edits = pick_variant(tree, mutation)
    if file is None:
        return None, edits
    path = tree / file
    text = path.read_text(encoding="utf-8")
    for original, mutated in edits:
        text = text.replace(original, mutated)
    path.write_text(text, encoding="utf-8")
    return file, None


def classify(result: dict) -> str:
    if result["rc"] is None:
        return "ERROR (timeout)"
    if result["rc"] == 0:
        return "SURVIVED"
    if result["rc"] == 1 and result["failed"]:
        return "caught"
    return f"ERROR (pytest exit {result['rc']})"  # collection error, usage error, no tests collected


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", dest="only", action="append", default=[],
                    help="run only mutations whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutations, say which patterns still apply, exit")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per pytest run (default 900)")
    ap.add_argument("--tests", nargs="+", help="run these pytest arguments instead of each mutation's own tests")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the selected tests")
    ap.add_argument("--repo", type=Path, default=ROOT, help="work tree to copy (default: this repository)")
    args = ap.parse_args(argv)

    selected = [m for m in MUTATIONS if not args.only or any(k in m.name for k in args.only)]
    if args.tests:
        selected = [Mutation(m.name, m.variants, list(args.tests), m.why, m.issue) for m in selected]
    if args.list:
        stale = 0
        for m in selected:
            file, why = pick_variant(args.repo, m)
            stale += file is None
            print(f"{m.name:36s} {file or 'STALE ' + why:32s} {' '.join(m.tests)}")
        return 1 if stale else 0
    if not selected:
        print("no mutation matches", file=sys.stderr)
        return 2

    repo = args.repo.resolve()
    shared = Path(os.environ.get("JANUS_SHARED", repo.parent / "shared")).resolve()
    env = dict(os.environ)
    env.update(JANUS_SHARED=str(shared), OMP_WAIT_POLICY=env.get("OMP_WAIT_POLICY", "PASSIVE"),
               PYTHONDONTWRITEBYTECODE="1")
    results = []
    with tempfile.TemporaryDirectory(prefix="janus-mutants-") as tmp:
        tree = Path(tmp) / "repo"
        copy_tree(repo, tree)
        env["PYTHONPATH"] = os.pathsep.join([str(tree)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        broken = []
        if not args.no_baseline:
            tests = sorted({t for m in selected for t in m.tests})
            base = run_pytest(tree, tests, args.timeout * 3, env, first_failure=False)
            print(f"baseline: {' '.join(tests)}: exit {base['rc']}, {base['skipped']} skipped, "
                  f"{base['seconds']:.0f}s", flush=True)
            if base["rc"] not in (0, 1) or (base["rc"] == 1 and not base["failed"]):
                print("The unmutated tests cannot run:\n" + base["tail"], file=sys.stderr)
                return 2
            broken = base["failed"]
            if broken:  # a mutation "caught" by a test that fails anyway proves nothing: leave those out
                print(f"warning: {len(broken)} test(s) fail without any mutation and are deselected: "
                      f"{', '.join(broken)}", file=sys.stderr)
            if base["skipped"]:
                print(f"warning: {base['skipped']} test(s) skipped in the baseline (reference missing?); "
                      f"a mutation only they would catch survives", file=sys.stderr)
        originals = {}
        for m in selected:
            for file, _ in m.variants:
                if (tree / file).is_file():
                    originals.setdefault(file, (tree / file).read_bytes())
            file, error = apply(tree, m)
            if error:
                res = {"rc": None, "seconds": 0.0, "failed": [], "skipped": 0, "tail": error}
                status = f"ERROR (stale pattern: {error})"
            else:
                try:
                    res = run_pytest(tree, m.tests, args.timeout, env, deselect=broken)
                finally:
                    (tree / file).write_bytes(originals[file])
                status = classify(res)
            results.append({"name": m.name, "file": file or m.file, "issue_table": m.issue, "why": m.why,
                            "tests": m.tests, "status": status, "caught_by": res["failed"][:3],
                            "seconds": round(res["seconds"], 1)})
            print(f"{m.name:40s} {status:10s} {', '.join(res['failed'][:2])} ({res['seconds']:.0f}s)", flush=True)
            if status.startswith("ERROR") and not error:
                print("    " + res["tail"].replace("\n", "\n    "), flush=True)

    print("\n| mutation | file | result | caught by |\n|---|---|---|---|")
    for r in results:
        mark = " (issue)" if r["issue_table"] else ""
        print(f"| {r['name']}{mark} | {r['file']} | {r['status']} | {', '.join(r['caught_by']) or '-'} |")
    survived = [r["name"] for r in results if r["status"] == "SURVIVED"]
    errors = [r["name"] for r in results if r["status"].startswith("ERROR")]
    print(f"\n{len(results)} mutations: {len(results) - len(survived) - len(errors)} caught, "
          f"{len(survived)} survived {survived or ''}, {len(errors)} errors {errors or ''}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if survived or errors else 0


if __name__ == "__main__":
    sys.exit(main())
