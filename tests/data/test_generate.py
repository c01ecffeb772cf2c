"""Data jobs: reproducible across worker counts, de-duplicated, resumable, loadable by `datasets`."""

import io
import json
import sys

import pytest

from apr.countdown.problems import ProblemSpec
from apr.countdown.problems import load_problems
from apr.data.generate import TraceSettings, generate_problems, generate_traces
from apr.data.io import DataFileError, ShardedJob, default_file_mode, partial_dir, read_rows
from apr.data.sft import SftOptions, export_sft, token_budget

SIZES = {"train": 240, "val": 30, "test": 30}


@pytest.fixture(scope="module")
def problems_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("problems")
    generate_problems(out, ProblemSpec(), SIZES, seed=3, workers=1, chunk_size=50)
    return out


def test_same_seed_gives_byte_identical_files_with_1_and_2_workers(problems_dir, tmp_path):
    generate_problems(tmp_path, ProblemSpec(), SIZES, seed=3, workers=2, chunk_size=50)
    for split in SIZES:
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (problems_dir / f"{split}.jsonl").read_bytes()
    for fmt in ("apr", "sosp"):
        one, two = tmp_path / f"{fmt}1.jsonl", tmp_path / f"{fmt}2.jsonl"
        generate_traces(problems_dir / "train.jsonl", one, TraceSettings(fmt), seed=5, workers=1, chunk_size=40)
        generate_traces(problems_dir / "train.jsonl", two, TraceSettings(fmt), seed=5, workers=2, chunk_size=40)
        assert one.read_bytes() == two.read_bytes()


def test_outputs_get_the_mode_a_plain_open_would_give(problems_dir):
    """Atomic writes go through 0600 temp files; the result must be readable by others as usual."""
    modes = {p.stat().st_mode & 0o777 for p in problems_dir.glob("*.jsonl")}
    assert modes == {default_file_mode()}


def test_splits_are_disjoint_and_sized(problems_dir):
    keys = {}
    for split, n in SIZES.items():
        problems = load_problems(problems_dir / f"{split}.jsonl")
        assert len(problems) == n
        keys[split] = {p.key for p in problems}
        assert len(keys[split]) == n
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])
    meta = json.loads((problems_dir / "meta.json").read_text())
    assert meta["spec"]["n_numbers"] == 4 and meta["seed"] == 3


def test_three_number_problems_respect_the_ranges(tmp_path):
    spec = ProblemSpec(n_numbers=3, min_number=1, max_number=20, min_target=10, max_target=30)
    generate_problems(tmp_path, spec, {"train": 50}, seed=0)
    for p in load_problems(tmp_path / "train.jsonl"):
        assert len(p.nums) == 3 and all(1 <= x <= 20 for x in p.nums) and 10 <= p.target <= 30


def _killed_before_finishing(monkeypatch, job, *args, **kwargs) -> None:
    """Run a data job until every shard is written, then die as a kill would (no final file)."""
    with monkeypatch.context() as m:
        m.setattr(ShardedJob, "finish", lambda self, rows: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            job(*args, **kwargs)


def test_a_killed_trace_job_resumes_from_its_finished_shards(problems_dir, tmp_path, monkeypatch):
    train = problems_dir / "train.jsonl"
    full = tmp_path / "full.jsonl"
    generate_traces(train, full, TraceSettings("apr"), seed=1, chunk_size=40)
    out = tmp_path / "resumed.jsonl"
    _killed_before_finishing(monkeypatch, generate_traces, train, out, TraceSettings("apr"), seed=1, chunk_size=40)
    # Keep two shards as a kill after two chunks would, one poisoned to prove it is read back.
    shards = partial_dir(out)
    for late in sorted(shards.glob("apr-*.jsonl"))[2:]:
        late.unlink()
    second = shards / "apr-000000040.jsonl"
    rows = read_rows(second)
    second.write_text("".join(json.dumps(r) + "\n" for r in [dict(rows[0], beam=-1)] + rows[1:]))
    generate_traces(train, out, TraceSettings("apr"), seed=1, chunk_size=40)
    resumed = read_rows(out)
    assert resumed[40]["beam"] == -1  # the shard was reused, not recomputed
    assert resumed[:40] + resumed[41:] == read_rows(full)[:40] + read_rows(full)[41:]
    assert not shards.exists()
    generate_traces(train, out, TraceSettings("apr"), seed=1, chunk_size=40)  # uninterrupted: byte-identical
    assert out.read_bytes() == full.read_bytes()


@pytest.mark.parametrize("change,named", [
    (dict(seed=2), "seed"),
    (dict(settings=TraceSettings("apr", max_beam=6)), "settings"),
    (dict(problems="val.jsonl"), "n_problems, problems"),
    (dict(chunk_size=30), "chunk_size"),
])
def test_a_trace_job_refuses_to_resume_another_runs_shards(problems_dir, tmp_path, monkeypatch, change, named):
    out = tmp_path / "t.jsonl"
    base = dict(problems="train.jsonl", settings=TraceSettings("apr"), seed=1, chunk_size=40)

    def run(problems, settings, **kw):
        return generate_traces(problems_dir / problems, out, settings, **kw)

    _killed_before_finishing(monkeypatch, run, **base)
    with pytest.raises(ValueError, match=f"different run \\(differs in: {named}\\); pass --fresh"):
        run(**{**base, **change})
    assert run(**{**base, **change}, fresh=True)["traces"] > 0  # --fresh discards the old shards
    assert not partial_dir(out).exists()


def test_shards_of_unknown_origin_are_refused(problems_dir, tmp_path):
    out = tmp_path / "t.jsonl"
    partial_dir(out).mkdir()
    (partial_dir(out) / "apr-000000000.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="unknown run"):
        generate_traces(problems_dir / "train.jsonl", out, TraceSettings("apr"), seed=1)


def test_a_problems_job_refuses_to_resume_another_seed(tmp_path, monkeypatch):
    _killed_before_finishing(monkeypatch, generate_problems, tmp_path, ProblemSpec(), {"train": 60}, seed=0,
                             chunk_size=50)
    with pytest.raises(ValueError, match="differs in: seed"):
        generate_problems(tmp_path, ProblemSpec(), {"train": 60}, seed=1, chunk_size=50)
    generate_problems(tmp_path, ProblemSpec(), {"train": 60}, seed=0, chunk_size=50)  # same settings resume
    resumed = (tmp_path / "train.jsonl").read_bytes()
    generate_problems(tmp_path / "fresh", ProblemSpec(), {"train": 60}, seed=0, chunk_size=50)
    assert resumed == (tmp_path / "fresh" / "train.jsonl").read_bytes()


def test_outputs_load_with_hugging_face_datasets(problems_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    traces = tmp_path / "apr.parquet"
    generate_traces(problems_dir / "train.jsonl", traces, TraceSettings("apr", max_depth=2), seed=0, limit=60)
    sft = tmp_path / "sft.jsonl"
    summary = export_sft(traces, sft, SftOptions("sub-calls"))
    ds = datasets.load_dataset("json", data_files=str(sft), split="train")
    assert len(ds) == summary["examples"] and {"prompt", "completion", "thread_id"} <= set(ds.column_names)
    assert all(p.startswith("Sub Call Budget: ") for p, r in zip(ds["prompt"], ds["role"]) if r == "root")
    assert not any(p.startswith("Sub Call Budget") for p, r in zip(ds["prompt"], ds["role"]) if r == "child")
    tr = datasets.load_dataset("parquet", data_files=str(traces), split="train")
    assert len(tr) == 60 and tr[0]["threads"][0]["parent"] is None


def test_sft_rows_rebuild_every_thread_sequence(problems_dir, tmp_path):
    traces = tmp_path / "sosp.jsonl"
    generate_traces(problems_dir / "train.jsonl", traces, TraceSettings("sosp"), seed=0, limit=20)
    export_sft(traces, tmp_path / "sft.jsonl", SftOptions("tokens"), count_tokens=len)
    for trace, row in zip(read_rows(traces), read_rows(tmp_path / "sft.jsonl")):
        text = trace["threads"][0]["prompt"] + trace["threads"][0]["spans"][0]["text"]
        budget = token_budget(len(text))
        assert row["prompt"] + row["completion"] == f"Token Budget: {budget} " + text


def test_token_budget_bins():
    assert [token_budget(n) for n in (1, 512, 513, 4000, 9000)] == [512, 512, 1024, 4096, 4096]


def test_corrupt_and_missing_inputs_fail_clearly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nums": [1, 2], "target": 3}\n{"nums": [1, 2')
    with pytest.raises(DataFileError, match="bad.jsonl:2.*truncated"):
        load_problems(bad)
    bad.write_text('{"nums": [1, -2], "target": 3}\n')
    with pytest.raises(ValueError, match="row 1.*non-negative"):
        load_problems(bad)
    with pytest.raises(DataFileError, match="no such file"):
        load_problems(tmp_path / "missing.jsonl")
    bad.write_text('{"id": "x", "nums": [1, 2], "target": 3}\n')
    with pytest.raises(DataFileError, match="is this a traces file"):
        export_sft(bad, tmp_path / "o.jsonl", SftOptions())


def test_root_last_segments_keep_only_the_answer_after_the_join(problems_dir, tmp_path):
    traces = tmp_path / "apr.jsonl"
    generate_traces(problems_dir / "train.jsonl", traces, TraceSettings("apr", max_depth=1), seed=0, limit=30)
    export_sft(traces, tmp_path / "all.jsonl", SftOptions())
    export_sft(traces, tmp_path / "last.jsonl", SftOptions(segments="root-last"))
    every = read_rows(tmp_path / "all.jsonl")
    last = read_rows(tmp_path / "last.jsonl")
    expected = []
    for pid in dict.fromkeys(r["problem_id"] for r in every):
        root = [r for r in every if r["problem_id"] == pid and r["role"] == "root"]
        if len(root) > 1:
            expected.append(root[-1])
    assert last == expected and len(last) > 0
    assert all("<Sub Searches>" in r["prompt"] and "<Calling Sub Searches>" not in r["prompt"] for r in last)


def test_joined_last_segments_keep_every_threads_answer_after_its_join(problems_dir, tmp_path):
    traces = tmp_path / "apr.jsonl"
    generate_traces(problems_dir / "train.jsonl", traces, TraceSettings("apr", max_depth=2, p_spawn=1.0, min_beam=4, max_beam=4,
                                                                        max_sub_beam=4, order="canonical"),
                    seed=0, limit=20)
    export_sft(traces, tmp_path / "all.jsonl", SftOptions())
    export_sft(traces, tmp_path / "joined.jsonl", SftOptions(segments="joined-last"))
    export_sft(traces, tmp_path / "root.jsonl", SftOptions(segments="root-last"))
    every = read_rows(tmp_path / "all.jsonl")
    joined = read_rows(tmp_path / "joined.jsonl")
    threads = dict.fromkeys((r["problem_id"], r["thread_id"]) for r in every)
    expected = []
    for key in threads:
        rows = [r for r in every if (r["problem_id"], r["thread_id"]) == key]
        if len(rows) > 1:
            expected.append(rows[-1])
    assert sorted(map(str, joined)) == sorted(map(str, expected))
    assert any(r["role"] == "child" for r in joined)  # depth 2: children join their own children
    assert read_rows(tmp_path / "root.jsonl") == [r for r in joined if r["role"] == "root"]
    assert all("<Sub Searches>" in r["prompt"] and "<Calling Sub Searches>" not in r["prompt"] for r in joined)


def test_stats_report_the_share_of_traces_whose_threads_fit_each_window(problems_dir, tmp_path):
    from apr.data.stats import trace_stats
    from apr.threads import tree_metrics, unflatten

    out = tmp_path / "apr.jsonl"
    generate_traces(problems_dir / "train.jsonl", out, TraceSettings("apr"), seed=1, limit=60)
    count = len  # characters stand in for tokens: the arithmetic is the same
    stats = trace_stats(out, count, windows=(300, 1000, 10**6))
    longest = [tree_metrics(unflatten(r["threads"]), count).longest_context for r in read_rows(out)]
    assert stats["fits"] == {str(w): sum(n + 2 <= w for n in longest) / len(longest) for w in (300, 1000, 10**6)}
    assert stats["fits"]["300"] <= stats["fits"]["1000"] < stats["fits"]["1000000"] == 1.0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_a_sharded_job_shows_its_bar_on_a_terminal_unless_told_not_to(tmp_path, monkeypatch, progress):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    job = ShardedJob(tmp_path / "out.jsonl", lambda n: [{"n": n}], {"what": "test"}, desc="squares", progress=progress)
    assert [rows for rows in job.run([("a", 1), ("b", 2)], progress_total=2)] == [[{"n": 1}], [{"n": 2}]]
    assert ("squares" in terminal.getvalue()) is progress
