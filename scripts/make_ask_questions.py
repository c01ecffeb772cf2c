"""Write the A/B question set of docs/prompted.md: arithmetic questions with known answers, each made
of independent parts a planner can split (three quantities, then one combination).

    python scripts/make_ask_questions.py                  # -> data/prompted/arith30.jsonl
    python scripts/make_ask_questions.py --n 100 --seed 1 --out /tmp/qs.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PARTS = (  # (wording, value) of one quantity from two numbers
    ("the product of {x} and {y}", lambda x, y: x * y),
    ("the sum of {x} and {y}", lambda x, y: x + y),
    ("{x} minus {y}", lambda x, y: x - y),
)


def question(rng: random.Random) -> dict:
    names = ("A", "B", "C")
    parts, values = [], []
    for name in names:
        wording, value = rng.choice(PARTS)
        x, y = rng.randint(11, 49), rng.randint(2, 19)
        parts.append(f"{name} is {wording.format(x=x, y=y)}")
        values.append(value(x, y))
    a, b, c = values
    return {"question": "; ".join(parts) + ". What is A + B - C?", "answer": str(a + b - c)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("data/prompted/arith30.jsonl"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(question(rng)) + "\n" for _ in range(args.n)))
    print(f"wrote {args.out} ({args.n} questions)")


if __name__ == "__main__":
    main()
