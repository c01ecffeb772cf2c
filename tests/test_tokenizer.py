"""The tokenizer is lossless, boundary-stable, compact and loadable without apr code."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from apr import grammar as g
from apr.countdown.search import AprSettings, apr_search, sosp
from apr.threads import Thread
from apr.tokenizer import (BOS, BUNDLED, EOS, PAD, PIECES, UNK, build_tokenizer, encode_segment,
                           load_tokenizer, save_tokenizer, token_id_of)

MAX_TOKENS_PER_CHAR = 0.35


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def corpus(tok) -> dict:
    """Random 3- and 4-number problems (solvable or not): APR trees, their segments, SoS+ traces, ids."""
    rng = random.Random(0)
    trees: list[Thread] = []
    sos: list[str] = []
    for n_numbers in (3, 4):
        for _ in range(125):
            nums, target = [rng.randint(1, 99) for _ in range(n_numbers)], rng.randint(10, 100)
            beam = rng.randint(1, 10)
            apr_settings = AprSettings(beam, rng.randint(beam, 15), 0.9, max_depth=rng.randint(1, 2))
            trees.append(apr_search(nums, target, apr_settings, rng))
            sos += [sosp(nums, target, rng.randint(1, 5), rng) for _ in range(4)]
    segments = [s for tree in trees for thread in tree.walk() for s in thread.segments()]
    texts = {"APR": [s.text for s in segments], "SoS+": sos}
    return {"trees": trees, "segments": segments, "texts": texts, "ids": {k: enc(tok, v) for k, v in texts.items()}}


def enc(tok, texts: list[str]) -> list[list[int]]:
    """Batch encode without special tokens (through the Rust backend: the wrapper's overhead is 3x)."""
    return [e.ids for e in tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]


# -- the vocabulary -------------------------------------------------------------------------
def test_special_tokens_have_llama_ids(tok):
    assert [tok.convert_tokens_to_ids(t) for t in (UNK, BOS, EOS, PAD)] == [0, 1, 2, 3]
    assert (tok.unk_token, tok.bos_token, tok.eos_token, tok.pad_token) == (UNK, BOS, EOS, PAD)
    assert 300 <= len(tok) <= 2000


@pytest.mark.parametrize("piece", PIECES + (g.SPAWN_OPEN, g.SPAWN_CLOSE, g.JOIN_OPEN, g.JOIN_CLOSE, "\n"))
def test_phrases_and_markers_are_single_tokens(tok, piece):
    assert tok.decode([token_id_of(tok, piece)]) == piece


def test_numbers_are_right_aligned_digit_pairs(tok):
    for n in range(100):
        assert tok.decode([token_id_of(tok, str(n))]) == str(n)
    pieces = {n: tok.convert_ids_to_tokens(tok.encode(n, add_special_tokens=False))
              for n in ("100", "155", "1643", "12345", "007")}
    assert pieces == {"100": ["1", "00"], "155": ["1", "55"], "1643": ["16", "43"],
                      "12345": ["1", "23", "45"], "007": ["0", "07"]}


def test_line_tokenization(tok):
    line = "Generated Node #0,1: 27:[26, 31, 31] Operation: 53-22=31\n"
    assert tok.convert_ids_to_tokens(tok.encode(line, add_special_tokens=False)) == [
        "Generated Node #", "0", ",", "1", ": ", "27", ":[", "26", ", ", "31", ", ", "31", "]",
        " Operation: ", "53", "-", "22", "=", "31", "\n"]


def test_token_id_of_rejects_multi_token_text(tok):
    assert token_id_of(tok, g.SPAWN_CLOSE) != token_id_of(tok, g.SPAWN_OPEN)
    assert token_id_of(tok, EOS) == tok.eos_token_id
    for text in ("Moving", "", "Current State: 27"):
        with pytest.raises(ValueError, match="not a single token"):
            token_id_of(tok, text)


# -- special tokens and segments ------------------------------------------------------------
def test_bos_is_added_once_and_eos_never(tok):
    text = g.apr_prompt(27, [22, 26, 31, 53])
    plain = tok.encode(text, add_special_tokens=False)
    assert tok(text)["input_ids"] == [tok.bos_token_id] + plain
    assert tok.encode(text) == [tok.bos_token_id] + plain
    assert tok.bos_token_id not in plain and tok.eos_token_id not in plain
    flagged = load_tokenizer()  # the add_bos_token switch rebuilds the post-processor: still one BOS
    flagged.add_bos_token = True
    assert flagged.encode(text) == [tok.bos_token_id] + plain


def test_encode_segment(tok):
    prompt, completion = g.apr_prompt(27, [22, 26, 31, 53]), "\n27,27 equal: Goal Reached\n"
    ids, n_prompt = encode_segment(tok, prompt, completion)
    assert ids[:n_prompt] == tok.encode(prompt)
    assert ids == [tok.bos_token_id] + tok.encode(prompt + completion, add_special_tokens=False) + [tok.eos_token_id]
    assert ids.count(tok.bos_token_id) == 1 and ids.count(tok.eos_token_id) == 1
    assert tok.decode(ids[n_prompt:-1]) == completion


# -- lossless -------------------------------------------------------------------------------
def test_traces_round_trip(tok, corpus):
    assert len(corpus["texts"]["APR"]) > 5000 and len(corpus["texts"]["SoS+"]) >= 1000
    for name, texts in corpus["texts"].items():
        decoded = tok.batch_decode(corpus["ids"][name])
        assert [i for i, (x, y) in enumerate(zip(decoded, texts)) if x != y] == [], name
        assert tok.unk_token_id not in {i for ids in corpus["ids"][name] for i in ids}


TRACE_ALPHABET = "".join(sorted(set("".join(PIECES)) | set("0123456789+-*/=#,:[]'<>\n .")))
trace_like = st.lists(st.sampled_from(PIECES + tuple(TRACE_ALPHABET) + ("10", "99", "100")), max_size=40).map("".join)
any_text = st.one_of(st.text(alphabet=TRACE_ALPHABET, max_size=80), trace_like, st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_any_text_round_trips(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.unk_token_id not in ids or UNK in text


# -- boundary-stable ------------------------------------------------------------------------
def assert_stable(tok, pairs: list[tuple[str, str]]) -> None:
    """Tokenizing the halves and concatenating equals tokenizing the whole."""
    left, right, whole = (enc(tok, [a for a, _ in pairs]), enc(tok, [b for _, b in pairs]),
                          enc(tok, [a + b for a, b in pairs]))
    bad = [(a, b) for (a, b), l, r, w in zip(pairs, left, right, whole) if l + r != w]
    assert bad == [], f"{len(bad)} unstable boundaries, e.g. {bad[0][0][-40:]!r} | {bad[0][1][:40]!r}"


def test_segment_boundaries_are_stable(tok, corpus):
    segments = corpus["segments"]
    assert {s.prompt[-1] for s in segments} == {"]", "\n"}
    assert {s.completion[:1] for s in segments} <= set("\n0123456789MCN<") | {""}
    prompts, completions = enc(tok, [s.prompt for s in segments]), enc(tok, [s.completion for s in segments])
    bad = [s for s, p, c, w in zip(segments, prompts, completions, corpus["ids"]["APR"]) if p + c != w]
    assert bad == [], f"{len(bad)} unstable, e.g. {bad[0].prompt[-40:]!r} | {bad[0].completion[:40]!r}"
    for s, whole in list(zip(segments, corpus["ids"]["APR"]))[:300]:
        assert encode_segment(tok, s.prompt, s.completion) == ([tok.bos_token_id, *whole, tok.eos_token_id],
                                                               1 + len(tok.encode(s.prompt, add_special_tokens=False)))


def test_runtime_boundaries_are_stable(tok, corpus):
    """Generated text | spawn block, and context before the spawn | join block, as the runtime splits."""
    pairs = []
    for tree in corpus["trees"]:
        for thread in tree.walk():
            context = thread.prompt
            for span in thread.spans:
                if span.kind == "spawn":
                    before, block = g.find_spawn(context + span.text)
                    pairs.append((before, block))
                elif span.kind == "join":
                    pairs.append((context, span.text))
                if span.kind != "spawn":
                    context += span.text
    assert len(pairs) > 500 and {b[:2] for _, b in pairs} == {"<C", "<S"}
    assert_stable(tok, pairs)


def test_no_piece_straddles_a_newline_or_a_marker_start():
    """The invariant behind stability: a cut at a newline or before ``<`` is never inside a piece."""
    assert [p for p in PIECES if "\n" in p or "<" in p[1:]] == []


UNITS = PIECES + tuple(TRACE_ALPHABET) + ("10", "100")


def test_every_pair_of_pieces_is_stable_across_newlines_and_markers(tok):
    assert_stable(tok, [pair for x in UNITS for y in UNITS for pair in ((x + "\n", y), (x, "\n" + y), (x, "<" + y))])


@settings(max_examples=200, deadline=None)
@given(any_text, st.sampled_from(["\n", g.SPAWN_OPEN, g.JOIN_OPEN, g.JOIN_CLOSE, "<Goal Reached in Sub Search "]),
       any_text)
def test_splits_at_newlines_and_markers_are_stable(tok, left, sep, right):
    assert_stable(tok, [(left + sep, right), (left, sep + right)] if sep == "\n" else [(left, sep + right)])


# -- compact --------------------------------------------------------------------------------
def test_tokens_per_char(corpus):
    for name, texts in corpus["texts"].items():
        ratio = sum(map(len, corpus["ids"][name])) / sum(map(len, texts))
        assert 0.15 < ratio <= MAX_TOKENS_PER_CHAR, f"{name}: {ratio:.3f} tokens/char"


# -- files ----------------------------------------------------------------------------------
def test_build_is_deterministic_and_bundled_files_are_current(tmp_path, tok):
    for d in ("a", "b"):
        save_tokenizer(build_tokenizer(), tmp_path / d)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in BUNDLED.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    # Compare what was loaded, not bytes, so files written by another library version still pass.
    fresh = load_tokenizer(tmp_path / "a")
    assert fresh.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str(), "run scripts/build_tokenizer.py"
    assert fresh.special_tokens_map == tok.special_tokens_map


def test_bundled_files_load_without_apr_code(tok):
    """Engines read tokenizer.json with the tokenizers library; nothing may point back to apr."""
    config = json.loads((BUNDLED / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and "auto_map" not in config
    assert isinstance(tok, PreTrainedTokenizerFast)  # load_tokenizer is plain AutoTokenizer
    raw = Tokenizer.from_file(str(BUNDLED / "tokenizer.json"))
    text = g.apr_prompt(27, [22, 26, 31, 53]) + "\n27,27 equal: Goal Reached\n"
    assert raw.encode(text).ids == tok.encode(text) == [tok.bos_token_id, *tok.encode(text, add_special_tokens=False)]
    assert raw.decode(raw.encode(text).ids) == text


def test_a_single_digit_tokenizer_shares_the_vocabulary_and_splits_every_number():
    import pytest

    from apr.tokenizer import build_tokenizer

    pairs, singles = build_tokenizer(), build_tokenizer(digits=1)
    assert pairs.get_vocab() == singles.get_vocab()  # same ids: only the pre-tokenizer differs
    text = "Current State: 27:[22, 31, 105], Operations: []"
    assert pairs.convert_ids_to_tokens(pairs.encode(text, add_special_tokens=False))[1:3] == ["27", ":["]
    digits = singles.convert_ids_to_tokens(singles.encode(text, add_special_tokens=False))
    assert digits[1:4] == ["2", "7", ":["] and "1" in digits and "05" not in digits
    assert singles.decode(singles.encode(text, add_special_tokens=False)) == text
    with pytest.raises(ValueError, match="digits must be 1 or 2"):
        build_tokenizer(digits=3)
