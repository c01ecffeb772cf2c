"""Is checkpoint B better than checkpoint A? A paired comparison of two `apr eval` runs on the same problems.

    python scripts/compare_evals.py runs/ev_sft runs/ev_grpo
    python scripts/compare_evals.py runs/ev_sft,runs/ev_sft_more runs/ev_grpo,runs/ev_grpo_more --setting apr-t0
    python scripts/compare_evals.py runs/ev_sft_subset runs/ev_grpo_all --common
    python scripts/compare_evals.py runs/ev runs/ev --setting sosp-t0 --setting-b apr-d2-t0   # SoS+ vs APR, one run

Each side is one `apr eval --out` folder, or several joined by commas (their problems are pooled).
The verdict per problem is its first sample's (greedy runs draw one). Prints both accuracies, the
paired difference with its standard error, the problems only one side solves and the exact sign
test on them, and the tree shape of each side (tokens per thread, children per spawn, answers a
child had found but the root lost after the join).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apr.data.io import iter_jsonl
from apr.eval.metrics import SampleScore, compare_paired
from apr.eval.metrics import summarise


def load(folders: str, setting: str) -> dict[str, SampleScore]:
    """First sample of every problem, by id, pooled over the comma-separated eval folders."""
    samples: dict[str, SampleScore] = {}
    for folder in folders.split(","):
        path = Path(folder) / "samples" / f"{setting}.jsonl"
        if not path.exists():
            raise SystemExit(f"{path} not found: run `apr eval --out {folder}` first, or pick --setting")
        for row in iter_jsonl(path):
            if row["id"] in samples:
                raise SystemExit(f"problem {row['id']!r} appears twice on one side ({folder})")
            samples[row["id"]] = SampleScore.from_dict(row["samples"][0])
    return samples


def shape(samples: dict[str, SampleScore]) -> str:
    """The trees' shape, as GRPO's metrics report it, and the answers lost after a join."""
    m = summarise(list(samples.values()))
    failures = [s for s in samples.values() if not s.correct]
    lost = sum(s.solved_by_child for s in failures)
    return (f"{m['tokens_per_thread']:.1f} tokens/thread, {m['children_per_spawn']:.2f} children/spawn, "
            f"{m['sequential_tokens']:.0f} sequential tokens, lost at join {lost} of {len(failures)} failures")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="eval folder(s) of the baseline")
    parser.add_argument("b", help="eval folder(s) of the candidate")
    parser.add_argument("--setting", default="apr-t0", help="the setting to compare (a samples/*.jsonl name)")
    parser.add_argument("--setting-b", help="B's setting when it differs from A's (e.g. APR against SoS+)")
    parser.add_argument("--common", action="store_true",
                        help="compare only the problems both sides hold (e.g. a subset's run against a full one)")
    args = parser.parse_args()
    setting_b = args.setting_b or args.setting
    a, b = load(args.a, args.setting), load(args.b, setting_b)
    if args.common:
        shared = a.keys() & b.keys()
        if not shared:
            raise SystemExit("the two sides share no problem")
        a, b = {k: a[k] for k in shared}, {k: b[k] for k in shared}
    try:
        c = compare_paired({k: s.correct for k, s in a.items()}, {k: s.correct for k, s in b.items()})
    except ValueError as e:
        raise SystemExit(str(e)) from None
    print("| | problems | A solves | B solves | B - A | paired SE | only A | only B | sign test p |")
    print("|---|---|---|---|---|---|---|---|---|")
    label = args.setting if setting_b == args.setting else f"{args.setting} vs {setting_b}"
    print(f"| {label} | {c.n} | {c.correct_a} ({c.correct_a / c.n:.1%}) | {c.correct_b} ({c.correct_b / c.n:.1%}) | "
          f"{c.difference * 100:+.1f} pts | {c.standard_error * 100:.1f} pts | {c.only_a} | {c.only_b} | {c.p_value:.3f} |")
    print(f"\nA: {shape(a)}\nB: {shape(b)}")


if __name__ == "__main__":
    main()
