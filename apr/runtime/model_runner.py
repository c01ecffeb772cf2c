"""The model forward of one engine step: a flat batch of decoders and prefills against the KV cache.

A thin re-implementation over the model's own modules rather than a call to ``model(...)``: the
batch is a flat list of tokens (decoders and prefills mixed, no padding) that needs per-token
cache slots and positions, a cache that HF's ``Cache`` classes do not express, and on CPU it skips
HF's per-call mask and cache bookkeeping. Attention uses ``scaled_dot_product_attention`` with a
boolean mask, which on CPU is far faster than eager matmul attention in bf16 for one query token
per row (docs/runtime.md). Tests check the result against ``model.generate`` token for token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from apr.runtime.kv_cache import KVCache
from apr.runtime.sequence import Sequence


def transpose_weight_storage(model: LlamaForCausalLM) -> None:
    """Store each fp32 linear weight of the decoder layers on CPU as the transposed view of a contiguous
    ``[in, out]`` matrix: same values and shape, but MKL's products with a few rows (a decode step's batch)
    run faster against that layout (``python benchmarks/linear_layout.py``, docs/runtime.md). For models
    the engine owns: saving one afterwards needs ``contiguous()`` weights."""
    for layer in model.model.layers:
        for linear in layer.modules():
            w = linear.weight if isinstance(linear, nn.Linear) else None
            if w is not None and w.device.type == "cpu" and w.dtype == torch.float32 and w.is_contiguous():
                w.data = w.data.t().contiguous().t()


class ModelRunner:
    def __init__(self, model: LlamaForCausalLM, cache: KVCache):
        cfg = model.config
        attn = model.model.layers[0].self_attn
        self.model, self.cache = model, cache
        self.n_heads, self.n_kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim, self.scaling = attn.head_dim, attn.scaling
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def forward(self, batch: list[Sequence], d: int) -> torch.Tensor:
        """Logits ``[len(batch), vocab]`` (fp32) of the last token each sequence feeds (``seq.n_feed``).

        ``batch`` is laid out by ``KVCache.pack``: decoders (one token each) in slots 0..d-1, then
        prefills. All fed tokens go through the projections and MLPs as one flat matrix;
        decoders share one attention call over a view of the cache, each prefill gets its own.
        """
        ids, pos, last = [], [], []
        for seq in batch:
            end = seq.n_cached + seq.n_feed
            ids += seq.tokens[seq.n_cached:end]
            pos += range(seq.n_cached, end)
            last.append(len(ids) - 1)
        dev = self.device
        ids_t = torch.tensor(ids, device=dev)
        pos_t = torch.tensor(pos, device=dev)
        dec_slots = torch.arange(d, device=dev)
        n = len(ids)
        # Decoder rows attend to positions <= their own; one mask serves every layer.
        dec_len = max((s.n_cached + 1 for s in batch[:d]), default=0)
        dec_mask = (torch.arange(dec_len, device=dev)[None, :] <= pos_t[:d, None])[:, None, None, :]
        prefill_spans = []  # (slot, first flat row, first position, new tokens, mask or None: causal)
        row = d
        for seq in batch[d:]:
            n_new = seq.n_feed
            mask = None  # a fresh prefill is plainly causal, which SDPA does in half the time
            if seq.n_cached:
                q_pos = torch.arange(seq.n_cached, seq.n_cached + n_new, device=dev)
                mask = torch.arange(seq.n_cached + n_new, device=dev)[None, :] <= q_pos[:, None]
            prefill_spans.append((seq.slot, row, seq.n_cached, n_new, mask))
            row += n_new

        m = self.model.model
        h = m.embed_tokens(ids_t)
        cos, sin = m.rotary_emb(h, pos_t[None])
        cos, sin = cos[0], sin[0]
        gqa = self.n_kv_heads != self.n_heads
        kv_dtype = self.cache.dtype
        for layer_idx, layer in enumerate(m.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(n, self.n_heads, self.head_dim)
            k = attn.k_proj(x).view(n, self.n_kv_heads, self.head_dim)
            v = attn.v_proj(x).view(n, self.n_kv_heads, self.head_dim)
            q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1)
            q, k, v = q.to(kv_dtype), k.to(kv_dtype), v.to(kv_dtype)  # no-ops unless attention runs wider
            k_cache, v_cache = self.cache.k[layer_idx], self.cache.v[layer_idx]
            # Decoders scatter one position each; a prefill's positions are contiguous, so it copies
            # a slice (a scatter of the same rows costs several times more on CPU).
            k_cache[dec_slots, :, pos_t[:d]] = k[:d]
            v_cache[dec_slots, :, pos_t[:d]] = v[:d]
            for slot, r, p0, k_len, _ in prefill_spans:
                k_cache[slot, :, p0:p0 + k_len] = k[r:r + k_len].transpose(0, 1)
                v_cache[slot, :, p0:p0 + k_len] = v[r:r + k_len].transpose(0, 1)
            out = torch.empty_like(q)
            if d:
                out[:d] = F.scaled_dot_product_attention(
                    q[:d, :, None], k_cache[:d, :, :dec_len], v_cache[:d, :, :dec_len],
                    attn_mask=dec_mask, scale=self.scaling, enable_gqa=gqa)[:, :, 0]
            for slot, r, p0, k_len, mask in prefill_spans:
                out[r:r + k_len] = F.scaled_dot_product_attention(
                    q[r:r + k_len].transpose(0, 1)[None], k_cache[slot:slot + 1, :, :p0 + k_len],
                    v_cache[slot:slot + 1, :, :p0 + k_len], attn_mask=mask, is_causal=mask is None,
                    scale=self.scaling, enable_gqa=gqa)[0].transpose(0, 1)
            h = h + attn.o_proj(out.view(n, -1).to(h.dtype))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        h = m.norm(h[torch.tensor(last, device=dev)])
        return self.model.lm_head(h).float()
