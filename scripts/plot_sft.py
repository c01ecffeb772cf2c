"""Validation loss of SFT runs against training tokens, and greedy accuracy of their checkpoints.

    python scripts/plot_sft.py --run APR=runs/apr-c3 --run SoS+=runs/sosp-c3 \
        --accuracy APR=runs/ckpt-evals --out docs/results/sft_curves.png

``--accuracy LABEL=DIR`` reads ``DIR/<checkpoint-name>/summary.json`` files written by ``apr eval``
(one per checkpoint, e.g. ``checkpoint-0000900`` or ``final``) and plots their first setting's
accuracy at the tokens that checkpoint had seen.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _pairs(values: list[str], option: str) -> list[tuple[str, Path]]:
    out = []
    for v in values:
        label, sep, path = v.partition("=")
        if not sep:
            raise SystemExit(f"{option} takes LABEL=PATH, got {v!r}")
        out.append((label, Path(path)))
    return out


def val_curve(run: Path) -> tuple[list[float], list[float]]:
    """(tokens seen, validation loss) at every validation pass of a run."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    tokens_at = {r["step"]: r["tokens"] for r in records if "tokens" in r}
    points = [(tokens_at[r["step"]], r["val_loss"]) for r in records if "val_loss" in r and r["step"] in tokens_at]
    return [t / 1e6 for t, _ in points], [v for _, v in points]


def accuracy_curve(folder: Path) -> tuple[list[float], list[float]]:
    """(tokens seen, greedy accuracy %) of every evaluated checkpoint under ``folder``."""
    points = []
    for summary in sorted(folder.glob("*/summary.json")):
        data = json.loads(summary.read_text())
        ckpt = Path(data["run"]["models"]["apr" if "apr" in data["run"]["models"] else "sosp"]["name"])
        # A relative checkpoint path is relative to where `apr eval` ran: here, or the eval folders' parent.
        found = next((c for c in (ckpt, folder.parent / ckpt) if (c / "apr_train.json").is_file()), None)
        if found is None:
            raise SystemExit(f"{summary}: checkpoint {ckpt} (with apr_train.json) not found")
        state = json.loads((found / "apr_train.json").read_text())
        first = next(iter(data["settings"].values()))
        points.append((state["tokens"] / 1e6, 100 * first["accuracy"]))
    points.sort()
    return [t for t, _ in points], [a for _, a in points]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], help="LABEL=RUN_FOLDER (with metrics.jsonl)")
    ap.add_argument("--accuracy", action="append", default=[], help="LABEL=FOLDER of per-checkpoint apr eval runs")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for label, run in _pairs(args.run, "--run"):
        x, y = val_curve(run)
        loss_ax.plot(x, y, marker="o", label=label)
    loss_ax.set(xlabel="training tokens (M)", ylabel="validation loss", title="SFT validation loss")
    loss_ax.grid(alpha=0.3)
    loss_ax.legend()
    for label, folder in _pairs(args.accuracy, "--accuracy"):
        x, y = accuracy_curve(folder)
        acc_ax.plot(x, y, marker="o", label=label)
    acc_ax.set(xlabel="training tokens (M)", ylabel="held-out accuracy, greedy (%)", ylim=(0, 100),
               title="Accuracy of the checkpoints")
    acc_ax.grid(alpha=0.3)
    acc_ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
