"""Named Llama-architecture sizes, from a CPU toy to the paper's 228M model.

Every preset is a plain ``LlamaConfig`` (SwiGLU MLP, RMSNorm, RoPE, no biases), so checkpoints load
with stock ``transformers`` and serve on any Llama-capable engine. Only the sizes differ; the
vocabulary and special token ids always come from the tokenizer, never from the preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import LlamaConfig, PreTrainedTokenizerBase


class ModelConfigError(ValueError):
    """A model or tokenizer setting that cannot work (unknown preset, mismatched vocabulary...)."""


@dataclass(frozen=True)
class Preset:
    layers: int
    hidden: int
    heads: int
    ffn: int
    context_length: int  # default max positions; callers may override
    note: str


PRESETS: dict[str, Preset] = {
    # ~100k parameters: for tests and smoke runs of the pipeline, learns nothing useful.
    "tiny": Preset(layers=2, hidden=64, heads=4, ffn=176, context_length=4096, note="~0.1M, tests only"),
    # ~3.2M non-embedding parameters: about 20M training tokens an hour on a 2-core CPU in bf16.
    "cpu": Preset(layers=4, hidden=256, heads=4, ffn=688, context_length=4096, note="~3M, CPU-trainable"),
    # ~25M non-embedding parameters: a few hours on a CPU, minutes on one GPU.
    "mid": Preset(layers=8, hidden=512, heads=8, ffn=1376, context_length=4096, note="~25M, small GPU"),
    # Paper App. A.2 (spec §5.1): 18 x 1024, 16 heads, FFN 2752, 227.7M non-embedding parameters.
    "paper": Preset(layers=18, hidden=1024, heads=16, ffn=2752, context_length=4096, note="228M, the paper's model"),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        valid = ", ".join(f"{k} ({p.note})" for k, p in PRESETS.items())
        raise ModelConfigError(f"unknown model preset {name!r}; valid presets: {valid}") from None


def model_config(preset: str, tokenizer: PreTrainedTokenizerBase, context_length: int | None = None) -> LlamaConfig:
    """The ``LlamaConfig`` for ``preset``, with vocabulary and special ids taken from ``tokenizer``."""
    p = get_preset(preset)
    ids = {name: getattr(tokenizer, f"{name}_token_id") for name in ("bos", "eos", "pad")}
    missing = [name for name, i in ids.items() if i is None]
    if missing:
        raise ModelConfigError(f"tokenizer has no {', '.join(missing)} token; the model needs BOS, EOS and pad ids")
    n_ctx = context_length or p.context_length
    if n_ctx < 2:
        raise ModelConfigError(f"context length must be at least 2, got {n_ctx}")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=p.hidden,
        intermediate_size=p.ffn,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        num_key_value_heads=p.heads,  # plain multi-head attention, as in the paper (no GQA)
        hidden_act="silu",
        max_position_embeddings=n_ctx,
        initializer_range=0.02,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        use_cache=True,
    )


def non_embedding_parameters(model) -> int:
    """Parameters outside the token embedding and the LM head: the size the paper reports (228M)."""
    skip = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)
