"""The project's tokenizer: one token per keyword phrase, digit pairs for numbers, bytes for the rest.

Traces are machine-written in the tiny grammar of ``apr.grammar``, so a learned BPE would only
rediscover its phrases, and merges across a newline would make token counts depend on where a
prompt ends. The vocabulary is therefore fixed by hand and a regex pre-tokenizer cuts text into
exactly the vocabulary's pieces:

* every keyword phrase and marker of the grammar (plus a few frequent punctuation runs) is one token;
* numbers are cut into digit pairs aligned from the right (``27``, ``1|55``, ``16|43``), so every
  number of the task (1..99) is one token and a pair always means the same two decimal places;
* ``\\n`` is always its own token and no piece contains ``<`` after its first character, so text
  split at a newline or before a marker tokenizes exactly as the whole (see ``docs/tokenizer.md``);
* any other character is one token if printable ASCII, else its UTF-8 bytes (``<0xNN>``), so
  ``decode(encode(x)) == x`` for every string.

The files in ``assets/tokenizer`` are a plain ``tokenizer.json`` that ``AutoTokenizer`` (and so
vLLM and SGLang) loads without this module; ``scripts/build_tokenizer.py`` regenerates them.
"""

from __future__ import annotations

import json
import re
from os import PathLike
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from apr import grammar as g

BUNDLED = Path(__file__).parent / "assets" / "tokenizer"

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIALS = (UNK, BOS, EOS, PAD)  # ids 0..3, in Llama's order

# Punctuation runs of the line templates: list separators, ``T:[``, op lists, ``Node #id: ``, ``> Moving``.
PUNCTUATION = (", ", ": ", ":[", "[]", "['", "', '", "']", "> ")
MARKERS = (g.SPAWN_OPEN, g.SPAWN_CLOSE, g.JOIN_OPEN, g.JOIN_CLOSE)
# Longest first: the regex alternation takes the first piece that matches at a position.
PIECES = tuple(sorted(set(g.PHRASES) | set(MARKERS) | set(PUNCTUATION), key=lambda p: (-len(p), p)))

# Numbers split into digit pairs (1-2 digits leaving an even count), or into single digits as the
# paper's Llama-2 tokenizer does (ASCII only either way).
_NUMBER = {2: r"[0-9]{1,2}(?=(?:[0-9]{2})*(?![0-9]))", 1: r"[0-9]"}


def pattern(digits: int = 2) -> str:
    return "|".join(map(re.escape, PIECES)) + "|" + _NUMBER[digits] + "|\n"


PATTERN = pattern()


def build_tokenizer(digits: int = 2) -> PreTrainedTokenizerFast:
    """Build the tokenizer from the grammar (deterministic: same vocabulary and ids every time).

    ``digits``: how many digits a number token holds at most, 2 (the bundled tokenizer) or 1. Both
    have the same vocabulary and ids, so the choice is the pre-tokenizer's alone.
    """
    if digits not in _NUMBER:
        raise ValueError(f"digits must be 1 or 2, got {digits}")
    vocab = [
        *SPECIALS,
        *(f"<0x{b:02X}>" for b in range(256)),  # byte fallback for characters not listed below
        "\n",
        *map(chr, range(0x20, 0x7F)),  # printable ASCII, digits included
        *(f"{n:02d}" for n in range(100)),  # digit pairs; "05" occurs inside longer numbers
        *PIECES,
    ]
    # No merges: with ignore_merges a pre-token found in the vocabulary is one token, any other
    # pre-token (text between regex matches) falls apart into characters, then bytes.
    model = models.BPE({t: i for i, t in enumerate(vocab)}, [], unk_token=UNK, byte_fallback=True,
                       ignore_merges=True)
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern(digits)), "isolated")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    # BOS lives in tokenizer.json, where every loader finds it: tok(text) adds one BOS and no EOS.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS}:1 $B:1", special_tokens=[(BOS, SPECIALS.index(BOS))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=PAD, clean_up_tokenization_spaces=False)


def save_tokenizer(tok: PreTrainedTokenizerFast, directory: str | PathLike[str]) -> None:
    """``save_pretrained``, naming the class so transformers 4.x (which vLLM/SGLang may pin) loads it too.

    transformers 5 writes ``tokenizer_class: TokenizersBackend``, a name 4.x does not know.
    """
    tok.save_pretrained(directory)
    path = Path(directory) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def load_tokenizer(path: str | PathLike[str] | None = None) -> PreTrainedTokenizerFast:
    """Load a saved tokenizer folder (None: the bundled one) the way inference engines do.

    Only local folders: a name that is not one is an error here, not a download from the Hub.
    """
    folder = Path(BUNDLED if path is None else path)
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder} is not a tokenizer folder (no tokenizer.json in it); pass a checkpoint "
                                "or a folder written by save_tokenizer")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # tokenizers and transformers raise several types for a corrupt file
        raise ValueError(f"{folder}: cannot load the tokenizer ({' '.join(str(e).split())})") from None


def checkpoint_tokenizer(checkpoint: str | PathLike[str], override: str | PathLike[str] | None = None
                         ) -> PreTrainedTokenizerFast:
    """The tokenizer a checkpoint runs with: ``override``, else its own, else the bundled one."""
    if override is not None:
        return load_tokenizer(override)
    return load_tokenizer(checkpoint if (Path(checkpoint) / "tokenizer.json").is_file() else None)


def encode_segment(tok: PreTrainedTokenizerFast, prompt: str, completion: str) -> tuple[list[int], int]:
    """BOS + prompt + completion + EOS ids, and how many of them are BOS + prompt.

    Prompt and completion are encoded separately so the count is exact; for every boundary the
    grammar produces this equals encoding the joined text (tested).
    """
    head = [tok.bos_token_id, *tok.encode(prompt, add_special_tokens=False)]
    return head + tok.encode(completion, add_special_tokens=False) + [tok.eos_token_id], len(head)


def token_id_of(tok: PreTrainedTokenizerFast, text: str) -> int:
    """The id of ``text`` if it is exactly one token (e.g. a stop marker), else ValueError."""
    ids = tok.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{text!r} is not a single token: it encodes to {tok.convert_ids_to_tokens(ids)}")
    return ids[0]
