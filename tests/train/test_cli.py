import json

import pytest
from typer.testing import CliRunner

from apr.cli import _register, app
from apr.models import build_model
from apr.tokenizer import load_tokenizer

_register()
TINY = ["--preset", "tiny", "--max-steps", "2", "--tokens-per-batch", "1024", "--no-progress", "--val-fraction", "0"]


def _run(*args):
    return CliRunner().invoke(app, ["train", "sft", *map(str, args)])


def test_cli_trains_and_reports_truncation(sft_file, tmp_path):
    result = _run("-d", sft_file, "-o", tmp_path / "run", *TINY, "--context-length", "40", "--truncate")
    assert result.exit_code == 0, result.output
    assert "sequences are longer than 41 tokens" in result.output and "truncated" in result.output
    assert result.output.startswith("apr train sft: tiny model on ")  # a first line before any slow step
    assert "ends inside the 100-step warmup" in result.output and "ended inside its warmup (step 2 of 100)" \
        in " ".join(result.output.split())
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    task = json.loads((tmp_path / "run" / "final" / "apr_train.json").read_text())["task"]
    assert task["counts"] == [4] and 1 <= task["min_number"] <= task["max_number"] <= 40  # read off the prompts


def _corrupt(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "Current State: 1:[1], Operations: []", "completion": "x"}\n{"prompt": "Curr\n')
    return path


def _no_completion(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"prompt": "Current State: 1:[1], Operations: []", "text": "x"}) + "\n")
    return path


def _rows(tmp_path, text):
    path = tmp_path / "rows.jsonl"
    path.write_text(text)
    return path


def _other_vocab_checkpoint(tmp_path):
    tok = load_tokenizer()
    tok.add_tokens(["<extra>"])
    build_model("tiny", tok).save_pretrained(tmp_path / "start")
    return tmp_path / "start"


@pytest.mark.parametrize("case,args,message", [
    ("missing file", lambda p, d: ["-d", p / "nope.jsonl"], "data file not found"),
    ("corrupt file", lambda p, d: ["-d", _corrupt(p)], "could not read"),
    ("missing field", lambda p, d: ["-d", _no_completion(p)], "lack field(s) completion"),
    ("unknown preset", lambda p, d: ["-d", d, "--preset", "gpt5"], "unknown model preset 'gpt5'; valid presets: tiny"),
    ("too long", lambda p, d: ["-d", d, "--context-length", "40"], "longer than 41 tokens (longest:"),
    ("two policies", lambda p, d: ["-d", d, "--truncate", "--drop-long"], "exclude each other"),
    ("tokenizer mismatch", lambda p, d: ["-d", d, "--init-from", _other_vocab_checkpoint(p)], "tokenizer does not match"),
    ("bad loss_on", lambda p, d: ["-d", d, "--loss-on", "prompt"], "'prompt' is not one of 'all', 'completion'"),
    ("zero steps", lambda p, d: ["-d", d, "--max-steps", "0"], "must be positive: max_steps"),
    ("empty file", lambda p, d: ["-d", _rows(p, "")], "is empty: it holds no rows"),
    ("number prompt", lambda p, d: ["-d", _rows(p, '{"prompt": 5, "completion": "x"}\n')],
     "field 'prompt' must be a string in every row, found int64"),
    ("mixed types", lambda p, d: ["-d", _rows(p, '{"prompt": "a", "completion": "x"}\n{"prompt": 7, "completion": "y"}\n')],
     "found mixed types"),
    ("list completion", lambda p, d: ["-d", _rows(p, '{"prompt": "a", "completion": ["x"]}\n')], "found list"),
    ("missing tokenizer", lambda p, d: ["-d", d, "--tokenizer", p / "nope"], "is not a tokenizer folder"),
    ("hub name as tokenizer", lambda p, d: ["-d", d, "--tokenizer", "gpt2"], "is not a tokenizer folder"),
])
def test_bad_input_is_one_clear_error_before_any_training(sft_file, tmp_path, case, args, message):
    # The bad option comes last, so it overrides TINY's value where both set it.
    result = _run("-o", tmp_path / "run", *TINY, *args(tmp_path, sft_file))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.replace("│", " ").split())  # rich wraps long lines
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing was trained or written
