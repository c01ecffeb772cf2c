"""Finding what a checkpoint was trained on: its data paths are relative to wherever training ran."""

from __future__ import annotations

import json

from apr.eval.load import check_numbers, trained_numbers


def test_training_data_is_found_next_to_the_problems_or_the_checkpoint(tmp_path):
    data = tmp_path / "runs-x" / "c4"
    data.mkdir(parents=True)
    (data / "sft.jsonl").write_text(json.dumps({"prompt": "Moving to Node #0\nCurrent State: 9:[1, 2, 3], "
                                                          "Operations: []", "completion": ""}) + "\n")
    problems = data / "test.jsonl"
    ckpt = tmp_path / "models" / "apr"  # copied away from runs/, where `apr train` ran
    ckpt.mkdir(parents=True)
    (ckpt / "apr_train.json").write_text(json.dumps({"config": {"data": ["c4/sft.jsonl"]}}))
    assert trained_numbers(ckpt, problems) == 3  # runs/ + c4/sft.jsonl, found from the problems' side
    assert trained_numbers(ckpt, tmp_path / "elsewhere" / "test.jsonl") is None
    (data / "apr.jsonl").write_text(json.dumps({"id": "t", "threads": []}) + "\n")  # not SFT rows: skipped
    (ckpt / "apr_train.json").write_text(json.dumps({"config": {"data": ["runs-x/c4"]}}))  # a folder of files
    assert trained_numbers(ckpt, tmp_path / "elsewhere" / "test.jsonl") == 3  # tmp_path + runs-x/c4
    assert check_numbers("apr", str(ckpt), problems, 3) is None
    assert "not checked" in check_numbers("apr", str(tmp_path / "served-name"), problems, 3)
