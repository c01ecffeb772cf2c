"""Copy a trained checkpoint into ``models/NAME`` with a model card built from its run records.

The card's numbers come from the files the runs and the evaluation wrote (``apr_train.json``,
``metrics.jsonl``, an ``apr eval`` ``summary.json``), never typed by hand. A model trained in phases
(a later run with ``--init-from`` the earlier one's checkpoint) passes every run in order; the
weights are the last run's:

    python scripts/bundle_model.py --run runs/apr3c --run runs/p2/apr_mix --out models/apr-cpu --format apr \
        --eval runs/eval_c3/summary.json --data-command "apr data problems ..." --data-command "apr data traces ..."
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from safetensors import safe_open

from apr.rl.config import OLD_NAMES

FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "apr_train.json")
MAX_WEIGHTS_MB = 25


def _records(run: Path) -> tuple[dict, list[dict]]:
    final = run / "final"
    if not (final / "apr_train.json").is_file():
        sys.exit(f"{run}: no final/apr_train.json; pass the folder `apr train sft --out` wrote")
    state = json.loads((final / "apr_train.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return state, metrics


def _parameters(weights: Path) -> int:
    with safe_open(weights, "np") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def _flags(cfg: dict, keys: tuple[str, ...]) -> list[str]:
    """``--key value`` for each of ``keys`` the saved configuration sets."""
    return [f"--{key.replace('_', '-')} {cfg[key]}" for key in keys if cfg.get(key) is not None]


def _train_command(cfg: dict) -> str:
    """The ``apr train sft`` line that reproduces the run, from its saved configuration."""
    parts = ["apr train sft"]
    parts += [f"-d {d}" for d in cfg["data"]]
    parts += [f"--val-data {d}" for d in cfg.get("val_data") or []]
    parts.append(f"-o {cfg['out']}")
    parts += _flags(cfg, ("init_from", "preset", "context_length", "tokens_per_batch", "lr", "warmup_steps",
                          "max_minutes", "max_steps", "loss_on", "seed"))
    if cfg.get("long_policy") == "truncate":
        parts.append("--truncate")
    return " ".join(parts)


def _accuracy_table(summary: dict, fmt: str) -> list[str]:
    rows = ["| setting | problems x samples | accuracy % | total tokens | sequential tokens | longest context |",
            "|---|---|---|---|---|---|"]
    for name, s in summary["settings"].items():
        if s["setting"]["fmt"] != fmt:
            continue
        rows.append(f"| {s['label']} | {s['problems']} x {s['samples']} | {100 * s['accuracy']:.1f} | "
                    f"{s['total_tokens']:.0f} | {s['sequential_tokens']:.0f} | {s['longest_context']:.0f} |")
    return rows


def _grpo_command(cfg: dict) -> str:
    """The ``apr train grpo`` line that reproduces a GRPO run (settings left at their defaults are omitted)."""
    parts = [f"apr train grpo --init-from {cfg['init_from']} -p {cfg['problems']} -o {cfg['out']}"]
    if cfg.get("val_problems"):
        parts.append(f"--val-problems {cfg['val_problems']} --val-size {cfg['val_size']} --val-every {cfg['val_every']}")
    parts += _flags(cfg, ("prompts_per_step", "num_generations", "temperature", "num_iterations", "lr", "beta",
                          "advantage", "max_minutes", "seed"))
    if cfg.get("join_samples"):
        parts += _flags(cfg, ("join_samples", "join_weight"))
    parts.append(f"--max-total-tokens {cfg['limits']['max_total_tokens']}")
    return " ".join(parts)


def _grpo_lines(state: dict, metrics: list[dict]) -> list[str]:
    cfg = {OLD_NAMES.get(k, k): v for k, v in state["config"].items()}  # runs saved before the TRL names
    vals = [m for m in metrics if "val_accuracy" in m]
    steps = [m for m in metrics if "reward" in m]
    lines = [
        f"- GRPO over whole thread trees: {state['step']} steps of {cfg['prompts_per_step']} problems x "
        f"{cfg['num_generations']} rollouts at temperature {cfg.get('temperature', 1.0)}, {state['elapsed_s'] / 60:.1f} min "
        f"on a 2-core x86-64 CPU; lr {cfg['lr']}, KL coefficient {cfg['beta']}, {cfg['advantage']} advantages.",
    ]
    if cfg.get("join_samples"):
        lines.append(f"- Post-join continuation groups: {cfg['join_samples']} more root continuations sampled after "
                     f"each join whose children found an answer, each group weighing {cfg['join_weight']} episodes.")
    if vals:
        lines.append(f"- Greedy validation accuracy (first {cfg['val_size']} validation problems): "
                     + " -> ".join(f"{100 * v['val_accuracy']:.0f}% (step {v['step']})" for v in vals) + ".")
    if steps:
        lines.append(f"- Mean rollout reward: {sum(m['reward'] for m in steps[:5]) / len(steps[:5]):.2f} over the "
                     f"first 5 steps, {sum(m['reward'] for m in steps[-5:]) / len(steps[-5:]):.2f} over the last 5.")
    return lines + ["", "```bash", _grpo_command(cfg), "```"]


def _phase_lines(state: dict, metrics: list[dict]) -> list[str]:
    if state.get("trained_with") == "grpo":
        return _grpo_lines(state, metrics)
    cfg = state["config"]
    vals = [m for m in metrics if "val_loss" in m]
    train_rates = [m["tokens_per_s"] for m in metrics if "tokens_per_s" in m]
    return [
        f"- Steps: {state['step']}; tokens: {state['tokens']:,} ({state['tokens'] / 1e6:.1f}M, padded batches); "
        f"wall time: {state['elapsed_s'] / 60:.1f} min on a 2-core x86-64 CPU "
        f"(median {sorted(train_rates)[len(train_rates) // 2]:,.0f} tokens/s).",
        f"- Final validation loss: {vals[-1]['val_loss']:.4f} (step {vals[-1]['step']})." if vals else
        "- No validation loss recorded.",
        f"- Peak lr {cfg['lr']}, warmup {cfg['warmup_steps']} steps, cosine to {cfg['min_lr_ratio']}x, AdamW "
        f"(weight decay {cfg['weight_decay']}), {cfg['precision']} autocast, "
        f"{cfg['tokens_per_batch']} tokens per batch, loss on {cfg['loss_on']} tokens.",
        "", "```bash", _train_command(cfg), "```",
    ]


def front_matter(name: str, fmt: str, summary: dict | None, base_model: str | None, dataset: str) -> list[str]:
    """The Hub's card metadata: license, lineage, data and the measured greedy accuracy (model-index)."""
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation", "license: apache-2.0",
             "tags: [countdown, adaptive-parallel-reasoning, llama]", f"datasets: [{dataset}]"]
    if base_model:
        lines += [f"base_model: {base_model}", "base_model_relation: finetune"]
    setting = f"{fmt}-t0"
    if summary is not None and setting in summary["settings"]:
        s = summary["settings"][setting]
        lines += ["model-index:", f"- name: {name}", "  results:", "  - task: {type: text-generation, name: Countdown}",
                  f"    dataset: {{type: {dataset}, name: {summary['run']['problems_file']} (first {s['problems']})}}",
                  f"    metrics: [{{type: accuracy, name: greedy accuracy (strict verifier), "
                  f"value: {100 * s['accuracy']:.1f}}}]"]
    return lines + ["---", ""]


def card(name: str, fmt: str, phases: list[tuple[dict, list[dict]]], params: int, summary: dict | None,
         data_commands: list[str], notes: list[str], base_model: str | None = None,
         dataset: str = "countdown") -> str:
    cfg = phases[0][0]["config"]  # the SFT phase that made the model: preset, context
    kind = "an APR (fork-join threads)" if fmt == "apr" else "a SoS+ (serialized search)"
    grpo = " and improved with `apr train grpo`" if any(s.get("trained_with") == "grpo" for s, _ in phases) else ""
    lines = [
        *front_matter(name, fmt, summary, base_model, dataset),
        f"# {name}: {kind} Countdown model trained on a CPU", "",
        f"A Llama-architecture model ({params / 1e6:.2f}M parameters, preset `{cfg['preset']}`, context "
        f"{cfg['context_length']}) trained from scratch by `apr train sft`{grpo}. Loads with stock `transformers` "
        "(`AutoModelForCausalLM.from_pretrained`, `AutoTokenizer.from_pretrained`); `apr solve` and `apr serve` "
        "run it with the fork-join runtime.", "",
        "## Training", "",
    ]
    if len(phases) > 1:
        tokens = sum(state.get("tokens", 0) for state, _ in phases)
        minutes = sum(state["elapsed_s"] for state, _ in phases) / 60
        lines += [f"{len(phases)} phases, each starting from the previous one's checkpoint: "
                  f"{tokens / 1e6:.1f}M SFT tokens and {minutes:.1f} min in all.", ""]
    for i, (state, metrics) in enumerate(phases, start=1):
        if len(phases) > 1:
            lines += [f"### Phase {i}", ""]
        lines += [*_phase_lines(state, metrics), ""]
    lines += [*[f"- {note}" for note in notes], "", "## Data", "", "```bash", *data_commands, "```", ""]
    if summary is not None:
        lines += ["## Measured accuracy", "",
                  f"Held-out problems `{summary['run']['problems_file']}` (first {summary['run']['problems']}), "
                  "verified by the strict verifier; made by:", "", "```bash", summary["run"]["command"], "```", "",
                  *_accuracy_table(summary, fmt), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, action="append", required=True,
                    help="training run folder (with final/ and metrics.jsonl); repeat for phases, in order")
    ap.add_argument("--out", type=Path, required=True, help="destination, e.g. models/apr-cpu")
    ap.add_argument("--format", choices=("apr", "sosp"), required=True, help="what the model was trained on")
    ap.add_argument("--eval", type=Path, help="summary.json of an `apr eval` run of this checkpoint")
    ap.add_argument("--data-command", action="append", default=[], help="a command that made the data (repeatable)")
    ap.add_argument("--note", action="append", default=[], help="a line for the training section (repeatable)")
    ap.add_argument("--base-model", help="the bundled model this one was fine-tuned from (card lineage), e.g. apr-cpu")
    ap.add_argument("--dataset", default="countdown", help="dataset name for the card (the data commands make it)")
    args = ap.parse_args()

    phases = [_records(run) for run in args.run]
    final = args.run[-1] / "final"
    weights_mb = (final / "model.safetensors").stat().st_size / 2**20
    if weights_mb > MAX_WEIGHTS_MB:
        sys.exit(f"{final / 'model.safetensors'} is {weights_mb:.1f} MB; bundled models must stay under "
                 f"{MAX_WEIGHTS_MB} MB")
    summary = json.loads(args.eval.read_text()) if args.eval else None
    args.out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (final / name).is_file():
            shutil.copy2(final / name, args.out / name)
    text = card(args.out.name, args.format, phases, _parameters(final / "model.safetensors"), summary,
                args.data_command, args.note, args.base_model, args.dataset)
    (args.out / "README.md").write_text(text)
    print(f"wrote {args.out} ({weights_mb:.1f} MB of weights) and its model card")


if __name__ == "__main__":
    main()
