"""Text to token ids and back, the same way for every backend, and the prefix two id lists share.

Tokens are decoded one by one into bytes (byte-fallback tokens carry single UTF-8 bytes), which is
what stop strings and incremental text need; the tokenizer is checked to allow that once, up front.
"""

from __future__ import annotations

import re

from transformers import PreTrainedTokenizerBase

from apr import grammar as g

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class TokenCodec:
    """Text to prompt ids and token ids back to text, the same way for every backend."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        self.eos_token_id: int = tokenizer.eos_token_id
        special = set(tokenizer.all_special_ids)
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.token_bytes: list[bytes] = [
            b"" if i in special else
            bytes([int(m.group(1), 16)]) if (m := _BYTE_TOKEN.fullmatch(piece or "")) else
            tokenizer.decode([i]).encode("utf-8")
            for i, piece in enumerate(pieces)
        ]
        if self.decode(self.encode(g.SAMPLE_TEXT, bos=False)) != g.SAMPLE_TEXT:
            raise ValueError("this tokenizer's tokens do not decode one by one; the runtime needs that for stop strings")

    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Prompt ids as the model was trained on them (the tokenizer adds BOS)."""
        return self.tokenizer(text, add_special_tokens=bos)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", errors="replace")

    def count(self, text: str) -> int:
        return len(self.encode(text, bos=False))


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
