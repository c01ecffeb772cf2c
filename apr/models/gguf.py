"""Write a checkpoint as a GGUF file that llama.cpp serves with our tokenization.

llama.cpp's own converter turns our tokenizer (a fixed vocabulary cut by a regex pre-tokenizer,
which GGUF cannot carry) into a SentencePiece vocabulary that splits every phrase into bytes. What
llama.cpp can reproduce is a *unigram* vocabulary: its Viterbi picks the split with the best total
score, so with one equal score per token it picks the fewest tokens, which for this grammar is the
regex's split (phrases are whole tokens, numbers are digit pairs aligned from the right, and on a tie
the earlier, shorter first piece wins, as the regex's alignment does). For a single-digit tokenizer
the pair tokens are scored so low that digits always win. What is not exact: characters outside the
vocabulary (a tab, non-ASCII text) become ``<unk>`` instead of byte tokens (llama.cpp's unigram has no
byte fallback) and a literal U+2581 reads as a space; ``tests/models/test_gguf.py`` measures both.

The weights are the Llama architecture's: q/k rows are permuted from Hugging Face's half-split
rotary layout to GGML's interleaved one, as llama.cpp's converter does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from apr.models.loading import load_model

SPACE = "\u2581"  # how a unigram vocabulary spells a space
NORMAL_SCORE = -1.0
AVOID_SCORE = -100.0  # more than the digits it would replace could cost


def export_gguf(checkpoint: str | Path, out: str | Path, tokenizer: PreTrainedTokenizerBase,
                precision: str = "fp32") -> Path:
    """Write ``checkpoint`` (a Llama checkpoint folder) to ``out`` as GGUF; return ``out``."""
    import gguf

    model = load_model(checkpoint, tokenizer)
    cfg = model.config
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(tmp, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(Path(checkpoint).resolve().name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_rope_freq_base(_rope_theta(cfg))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if precision == "bf16" else gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, tokenizer)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for hf_name, weight in model.state_dict().items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"{checkpoint}: no GGUF name for tensor {hf_name}")
        w = weight.float()
        if hf_name.endswith("q_proj.weight"):
            w = _interleave_rotary(w, cfg.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            w = _interleave_rotary(w, cfg.num_key_value_heads)
        data = w.numpy()
        if precision == "bf16" and data.ndim == 2:  # norms stay fp32, as llama.cpp expects
            writer.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.BF16),
                              raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return out


def _rope_theta(cfg) -> float:
    params = getattr(cfg, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))


def _interleave_rotary(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of each head from (first half, second half) pairs to interleaved (x0, y0, x1, y1, ...)."""
    rows, cols = w.shape
    return w.reshape(n_heads, 2, rows // n_heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def unigram_vocabulary(tokenizer: PreTrainedTokenizerBase) -> tuple[list[str], list[float], list[int]]:
    """Token texts, scores and GGUF token types, by id."""
    from gguf import TokenType

    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = {tokenizer.convert_ids_to_tokens(i): i for i in tokenizer.all_special_ids}
    split_digits = len(tokenizer("12", add_special_tokens=False)["input_ids"]) == 2
    texts, scores, types = [], [], []
    for piece in pieces:
        if piece in special:
            texts.append(piece)
            scores.append(0.0)
            types.append(TokenType.UNKNOWN if piece == tokenizer.unk_token else TokenType.CONTROL)
        elif piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            texts.append(piece)
            scores.append(0.0)
            types.append(TokenType.BYTE)
        else:
            texts.append(piece.replace(" ", SPACE))
            scores.append(AVOID_SCORE if split_digits and len(piece) > 1 and piece.isdigit() else NORMAL_SCORE)
            types.append(TokenType.NORMAL)
    return texts, scores, types


def _add_tokenizer(writer, tokenizer: PreTrainedTokenizerBase) -> None:
    texts, scores, types = unigram_vocabulary(tokenizer)
    writer.add_tokenizer_model("t5")  # llama.cpp's unigram (UGM) tokenizer
    writer.add_token_list(texts)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(True)  # as our tokenizer's post-processor
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_remove_extra_whitespaces(False)
