"""Our compact Llama against transformers' LlamaForCausalLM on the same random weights."""

import pytest
import torch
from transformers import LlamaConfig as HFLlamaConfig
from transformers import LlamaForCausalLM

from janus_runtime.config import LlamaConfig
from janus_runtime.llama import Llama


def pair(kv_heads=4, seed=0):
    torch.manual_seed(seed)
    hf_cfg = HFLlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=176, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=512,
                           rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                           attn_implementation="sdpa")
    hf = LlamaForCausalLM(hf_cfg).eval()
    with torch.no_grad():  # non-trivial norm weights, so a mistake in RMSNorm shows
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
    ours = Llama(LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=176, num_hidden_layers=3,
                             num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=512))
    ours.load_state_dict(hf.state_dict(), strict=True)  # q/k/v and gate/up fuse while loading
    return hf, ours.eval()


def run_ours(model, ids, valid=None, chunks=(None,)):
    """Logits for every position of ``ids``, fed in ``chunks`` (sizes; None = all at once) through the cache."""
    b, t = ids.shape
    valid = torch.ones(b, t, dtype=torch.bool) if valid is None else valid
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    model.setup_cache(b, t, "cpu", torch.float32)
    model.key_valid[:, :t] = valid
    out, start = [], 0
    sizes = [t] if chunks == (None,) else list(chunks)
    for n in sizes:
        slots = torch.arange(start, start + n)
        mask = model.attention_mask(slots, start + n)
        h = model(model.model.embed_tokens(ids[:, start:start + n]), slots, positions[:, start:start + n], mask,
                  kv_len=start + n)
        out.append(model.logits(h))
        start += n
    model.free_cache()
    return torch.cat(out, 1)


@pytest.mark.parametrize("kv_heads", [4, 2])
@torch.inference_mode()
def test_logits_match_without_cache(kv_heads):
    hf, ours = pair(kv_heads)
    ids = torch.randint(0, 300, (2, 37))
    ref = hf(ids).logits
    torch.testing.assert_close(run_ours(ours, ids), ref, rtol=1e-5, atol=1e-5)


@torch.inference_mode()
def test_logits_match_with_kv_cache_token_by_token():
    hf, ours = pair()
    ids = torch.randint(0, 300, (2, 30))
    ref = hf(ids).logits
    got = run_ours(ours, ids, chunks=[20] + [1] * 10)  # prefill 20, then one token per step
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@torch.inference_mode()
def test_left_padding_matches_hf_attention_mask():
    hf, ours = pair()
    ids = torch.randint(0, 300, (2, 24))
    valid = torch.ones(2, 24, dtype=torch.bool)
    valid[1, :7] = False  # row 1 is a shorter prompt, left-padded
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    ref = hf(ids, attention_mask=valid.long(), position_ids=positions).logits
    got = run_ours(ours, ids, valid, chunks=[20, 1, 1, 1, 1])
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1, 7:], ref[1, 7:], rtol=1e-5, atol=1e-5)
    # and the padded row equals the same prompt run alone, unpadded
    alone = run_ours(ours, ids[1:, 7:], chunks=[13, 1, 1, 1, 1])
    torch.testing.assert_close(got[1:, 7:], alone, rtol=1e-5, atol=1e-5)
