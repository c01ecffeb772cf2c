"""The training range a checkpoint records, and the one-line refusal of a problem outside it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from apr import grammar as g
from apr.models.trained_range import TrainedRange, check_in_range, trained_range

PROMPTS = [g.apr_prompt(12, [3, 4, 5]), g.sosp_prompt(60, [30, 1, 2]),
           "Moving to Node #0,1\nCurrent State: 27:[22, 31, 27], Operations: ['53-26=27']",  # a child: skipped
           g.apr_prompt(12, [3, 4, 5], sub_call_budget=4), "not a prompt"]


def test_the_range_is_read_off_the_root_prompts_and_unions_with_an_initial_checkpoint():
    trained = TrainedRange.from_prompts(PROMPTS)
    assert trained == TrainedRange((3,), 1, 30, 12, 60)
    assert TrainedRange.from_prompts(PROMPTS[2:3]) is None
    wider = trained.union(TrainedRange((4,), 1, 99, 10, 100))
    assert str(wider) == "3 or 4 numbers in 1..99, targets 10..100"
    assert TrainedRange.from_dict(wider.to_dict()) == wider


@pytest.mark.parametrize("nums,target,why", [
    ([22, 26, 31, 53], 27, "it has 4 numbers"), ([3, 4, 50], 12, "50 is outside the numbers"),
    ([3, 4, 5], 61, "the target 61 is outside the targets"), ([3, 4, 5], 12, None),
])
def test_a_problem_outside_the_range_is_refused_with_the_way_out(tmp_path, nums, target, why):
    (tmp_path / "apr_train.json").write_text(json.dumps({"task": TrainedRange((3,), 1, 30, 12, 60).to_dict()}))
    assert trained_range(tmp_path).refusal(nums, target) == why
    if why is None:
        check_in_range(tmp_path, nums, target)
        return
    with pytest.raises(ValueError, match=rf"trained on 3 numbers in 1\.\.30, targets 12\.\.60; .*\({why}\): "
                                         r"pass --model .* or --symbolic"):
        check_in_range(tmp_path, nums, target)


def test_a_checkpoint_without_a_record_is_not_checked(tmp_path):
    assert trained_range(tmp_path) is None
    (tmp_path / "apr_train.json").write_text("{not json")
    assert trained_range(tmp_path) is None
    check_in_range(tmp_path, [1, 2, 3, 4, 5], 1000)


def test_checking_the_range_imports_neither_torch_nor_transformers():
    """A problem outside the range is refused at once, not after seconds of imports."""
    code = "import sys, apr.models.trained_range; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
