"""What a checkpoint was trained on decides which problems ``apr eval`` runs it on."""

from __future__ import annotations

import json

import pytest

from apr.countdown.problems import make_problem
from apr.eval.load import check_range

TASK = {"counts": [3], "min_number": 1, "max_number": 30, "min_target": 10, "max_target": 60}


def test_eval_refuses_another_number_count_and_notes_other_out_of_range_problems(tmp_path):
    ckpt = tmp_path / "apr"
    ckpt.mkdir()
    (ckpt / "apr_train.json").write_text(json.dumps({"config": {}, "task": TASK}))
    inside = [make_problem([3, 4, 5], 12), make_problem([30, 1, 2], 60)]
    assert check_range("apr", str(ckpt), inside) is None
    with pytest.raises(ValueError, match=r"trained on 3 numbers in 1\.\.30, targets 10\.\.60, but 1 of 3 problems "
                                         r"have another number count \(first: 27 from \[22, 26, 31, 53\]\)"):
        check_range("apr", str(ckpt), inside + [make_problem([22, 26, 31, 53], 27)])
    note = check_range("apr", str(ckpt), inside + [make_problem([3, 4, 50], 12)])
    assert "1 of 3 problems lie outside" in note
    assert "records no training range" in check_range("apr", str(tmp_path / "served-name"), inside)


def test_the_bundled_models_record_what_they_were_trained_on():
    from apr.models.trained_range import trained_range
    from apr.serve.loading import DEFAULT_MODEL

    for name in ("apr-cpu", "sosp-cpu", "apr-grpo-cpu"):
        trained = trained_range(DEFAULT_MODEL.parent / name)
        assert str(trained) == "3 numbers in 1..30, targets 10..60"
