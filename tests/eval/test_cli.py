"""`apr eval` end to end on tiny random-weight checkpoints: every output, resume, clean errors."""

from __future__ import annotations

import json
import shutil

from tests.eval.conftest import run, write_problems


def test_eval_writes_every_output(tmp_path, checkpoints):
    problems = write_problems(tmp_path / "test.jsonl")
    out = tmp_path / "results"
    result = run("--problems", str(problems), "--apr", str(checkpoints["apr"]), "--sosp", str(checkpoints["sosp"]),
                 "--out", str(out), "--limit", "3", "--sub-call-budgets", "2", "--max-children", "1",
                 "--sosp-samples", "1,3", "--temperatures", "1.0", "--max-tokens", "48")
    assert result.exit_code == 0, result.output
    names = ["apr-t1", "apr-scb2-t1", "apr-max1-t1", "sosp-t1", "sosp-n3-t1"]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["settings"]) == names
    for name in names:
        rows = [json.loads(line) for line in (out / "samples" / f"{name}.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == ["p0", "p1", "p2"]
        s = summary["settings"][name]
        assert s["problems"] == 3 and len(rows[0]["samples"]) == s["samples"]
        assert s["accuracy"] == sum(r["correct"] for r in rows) / (3 * s["samples"])
        for sample in (x for r in rows for x in r["samples"]):
            tree = sample["tree"]
            assert tree["prompt"].startswith("Sub Call Budget: 2 " if "scb2" in name else "")
            assert sample["total_tokens"] > sample["sequential_tokens"] > 0  # the prompt counts in the total only
            assert sample["latency_s"] > 0 and tree["meta"]["calls"]
    n3 = summary["settings"]["sosp-n3-t1"]
    assert len(n3["pass_at"]) == len(n3["cons_at"]) == 3
    assert all(c <= p for p, c in zip(n3["pass_at"], n3["cons_at"]))
    assert len(summary["settings"]["sosp-t1"]["capped"]) == 8
    assert summary["run"]["command"].startswith("apr eval --problems")
    report = (out / "report.md").read_text()
    for heading in ("## Results per setting", "## pass@n and cons@n", "## Cumulative accuracy", "## Figures"):
        assert heading in report
    for png in ("fig4a_total_tokens", "fig4b_context_window", "fig6a_sequential_tokens", "fig6b_latency"):
        data = (out / f"{png}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        assert f"({png}.png)" in report


def test_a_rerun_resumes_and_a_changed_run_is_refused(tmp_path, checkpoints):
    problems = write_problems(tmp_path / "test.jsonl")
    out = tmp_path / "results"
    args = ["--problems", str(problems), "--sosp", str(checkpoints["sosp"]), "--out", str(out),
            "--temperatures", "1.0", "--max-tokens", "32"]
    assert run(*args, "--limit", "2").exit_code == 0
    path = out / "samples" / "sosp-t1.jsonl"
    first = path.read_text().splitlines()
    # Grow the run: the two finished problems are read back, not decoded again (same timings).
    assert run(*args, "--limit", "4").exit_code == 0
    grown = path.read_text().splitlines()
    assert grown[:2] == first and len(grown) == 4
    assert not path.with_name(path.name + ".partial").exists()
    changed = run(*args, "--limit", "4", "--seed", "1")
    assert changed.exit_code == 2 and "different run" in changed.text and "seed" in changed.text


def test_clean_errors(tmp_path, checkpoints):
    problems = write_problems(tmp_path / "test.jsonl")
    three = write_problems(tmp_path / "three.jsonl", [([1, 2, 3], 6)])
    cases = [
        (["--problems", str(problems), "--apr", str(tmp_path / "missing")], "does not exist"),
        (["--problems", str(three), "--apr", str(checkpoints["apr"])], "trained on 4 numbers in 1..99"),
        (["--problems", str(tmp_path / "nope.jsonl"), "--apr", str(checkpoints["apr"])], "no such file"),
        (["--apr", str(checkpoints["apr"])], "--problems"),
        (["--problems", str(problems)], "--apr"),
        (["--problems", str(problems), "--apr", str(checkpoints["apr"]), "--sub-call-budgets", "2,x"],
         "comma-separated"),
    ]
    no_out = run("--problems", str(problems), "--apr", str(checkpoints["apr"]))
    assert no_out.exit_code == 2 and "give --out" in no_out.text  # never a silent write into ./docs/results
    for args, message in cases:
        result = run(*args, "--out", str(tmp_path / "o"))
        assert result.exit_code == 2, (args, result.output)
        assert message in result.text, (args, result.output)
    mixed = tmp_path / "mixed.jsonl"
    write_problems(mixed, [([1, 2, 3], 6), ([1, 2, 3, 4], 10)])
    result = run("--problems", str(mixed), "--apr", str(checkpoints["apr"]), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "mixes problems with 3, 4 numbers" in result.text
    other = tmp_path / "other-tok"
    shutil.copytree(checkpoints["apr"], other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(config | {"vocab_size": config["vocab_size"] + 5}))
    result = run("--problems", str(problems), "--apr", str(other), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "tokenizer does not match" in result.text
