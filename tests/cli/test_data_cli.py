"""The data CLI end to end, and bad input turned into one clear line (exit 2, no traceback)."""

import json
import subprocess
import sys

import pytest


def apr(*args, cwd):
    return subprocess.run([sys.executable, "-m", "apr", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_problems_traces_sft_pipeline(tmp_path):
    r = apr("data", "problems", "--out", "d", "--train", "60", "--val", "10", "--test", "10", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = apr("data", "traces", "-p", "d/train.jsonl", "-o", "d/apr.jsonl", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0 and "solver success" in r.stderr
    r = apr("data", "sft", "-t", "d/apr.jsonl", "-o", "d/sft.parquet", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "d/sft.parquet").exists()
    rows = [json.loads(l) for l in (tmp_path / "d/apr.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(r["format"] == "apr" for r in rows)


@pytest.mark.parametrize("args,message", [
    (["data", "problems", "--out", "x", "--numbers", "1"], "n_numbers must be between 2 and 6"),
    (["data", "problems", "--out", "x", "--min-target", "50", "--max-target", "10"], "min_target <= max_target"),
    (["data", "problems", "--out", "x", "--train", "-5"], "split size must be >= 0"),
    (["data", "traces", "-p", "nope.jsonl", "-o", "t.jsonl"], "no such file"),
    (["data", "traces", "-p", "bad.jsonl", "-o", "t.jsonl"], "truncated"),
    (["data", "traces", "-p", "ok.jsonl", "-o", "t.jsonl", "--format", "bfs"], "'bfs' is not one of 'sosp', 'apr'"),
    (["data", "traces", "-p", ".", "-o", "t.jsonl"], ". is a folder; pass one of its files (bad.jsonl, empty.jsonl"),
    (["data", "traces", "-p", "empty.jsonl", "-o", "t.jsonl"], "empty.jsonl is empty"),
    (["data", "sft", "-t", ".", "-o", "s.jsonl"], "is a folder"),
    (["data", "stats", "empty.jsonl"], "is empty"),
    (["data", "stats", "ok.jsonl", "--tokenizer", "nope"], "nope is not a tokenizer folder"),
    (["data", "traces", "-p", "ok.jsonl", "-o", "stale.jsonl"], "holds shards of an unknown run"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    (tmp_path / "bad.jsonl").write_text('{"nums": [1, 2], "target": 3}\n{"nums": [1,')
    (tmp_path / "ok.jsonl").write_text('{"nums": [1, 2], "target": 3}\n')
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "stale.jsonl.partial").mkdir()
    (tmp_path / "stale.jsonl.partial" / "apr-000000000.jsonl").write_text("{}\n")
    r = apr(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in " ".join(r.stderr.replace("│", " ").split()) and "Traceback" not in r.stderr
    if r.stderr.startswith("error:"):  # ours; a bad choice gets click's usage box
        assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_option_is_rejected(tmp_path):
    r = apr("data", "problems", "--out", "x", "--colour", "red", cwd=tmp_path)
    assert r.returncode == 2 and "No such option" in r.stderr


def test_version(tmp_path):
    from importlib.metadata import version

    r = apr("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"apr {version('apr')}"
