"""Regenerate the bundled tokenizer files, then measure tokens per character on generated traces.

    python scripts/build_tokenizer.py                    # write apr/assets/tokenizer/, print the table
    python scripts/build_tokenizer.py --out /tmp/tok --problems 100
    python scripts/build_tokenizer.py --out runs/tok-digits1 --digits 1   # single-digit numbers

Traces come from solvable problems with the data generator's settings (APR: beam U{1..10},
sub beam U{beam..15}, p_spawn 0.9; SoS+: beam U{1..5}). APR counts every segment (prompt +
completion, i.e. every SFT sequence); ratios exclude BOS/EOS.
"""

from __future__ import annotations

import argparse
import random

from apr.countdown.problems import ProblemSpec, draw_candidate
from apr.countdown.search import AprSettings, apr_search, sosp
from apr.tokenizer import BUNDLED, build_tokenizer, save_tokenizer


def traces(n_numbers: int, n_problems: int, seed: int) -> dict[str, list[str]]:
    spec = ProblemSpec(n_numbers=n_numbers)
    out: dict[str, list[str]] = {"APR segments": [], "SoS+ traces": []}
    for i in range(n_problems):
        problem = draw_candidate(spec, seed, "tokenizer", i)
        nums, target = list(problem.nums), problem.target
        rng = random.Random(f"{seed}:{n_numbers}:{i}")
        beam = rng.randint(1, 10)
        tree = apr_search(nums, target, AprSettings(beam, rng.randint(beam, 15), 0.9), rng)
        out["APR segments"] += [s.text for t in tree.walk() for s in t.segments()]
        out["SoS+ traces"].append(sosp(nums, target, rng.randint(1, 5), rng))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(BUNDLED), help="directory to write (default: the bundled one)")
    parser.add_argument("--problems", type=int, default=500, help="problems per input size to measure on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", type=int, choices=(1, 2), default=2,
                        help="digits per number token: 2 (the bundled tokenizer) or 1 (as the paper's Llama-2)")
    args = parser.parse_args()

    tok = build_tokenizer(args.digits)
    save_tokenizer(tok, args.out)
    print(f"wrote {args.out} (vocabulary: {len(tok)} tokens)\n")
    print("| traces | numbers | sequences | chars | tokens | tokens/char | tokens/sequence |")
    print("|---|---|---|---|---|---|---|")
    for n_numbers in (3, 4):
        for kind, texts in traces(n_numbers, args.problems, args.seed).items():
            chars = sum(map(len, texts))
            tokens = sum(map(len, tok(texts, add_special_tokens=False)["input_ids"]))
            print(f"| {kind} | {n_numbers} | {len(texts)} | {chars} | {tokens} | {tokens / chars:.3f} "
                  f"| {tokens / len(texts):.0f} |")


if __name__ == "__main__":
    main()
