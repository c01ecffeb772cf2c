from hypothesis import given, settings
from hypothesis import strategies as st

from apr.countdown.rules import check_operation, combine, is_solvable, solve, successors


def test_combine_follows_the_paper_rules():
    assert [str(o) for o in combine(3, 12)] == ["3+12=15", "3*12=36", "12-3=9", "12/3=4"]
    assert [str(o) for o in combine(12, 5)] == ["12+5=17", "12*5=60", "12-5=7"]  # inexact division dropped
    assert [str(o) for o in combine(0, 7)] == ["0+7=7", "0*7=0", "7-0=7"]  # no division by zero
    assert [str(o) for o in combine(4, 4)] == ["4+4=8", "4*4=16", "4-4=0", "4/4=1"]


def test_successors_append_the_result_after_the_remaining_numbers():
    out = [(str(op), nums) for op, nums in successors([22, 26, 31])]
    assert out[0] == ("22+26=48", [31, 48])
    assert ("31-26=5", [22, 5]) in out
    assert len(out) == 3 * 3  # 3 pairs, +,*,- each, no exact division among these


def test_check_operation_explains_each_violation():
    assert check_operation(12, "/", 3, 4) is None
    assert "exact" in check_operation(12, "/", 5, 2)
    assert "larger minus smaller" in check_operation(3, "-", 5, 2)
    assert "zero" in check_operation(3, "/", 0, 0)
    assert "not 7" in check_operation(3, "+", 5, 7)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=2, max_size=4), st.integers(0, 120))
def test_fast_solvability_agrees_with_exhaustive_search(nums, target):
    found = solve(nums, target)
    assert is_solvable(nums, target) == (found is not None)
    if found:
        board = list(nums)
        for op in found:
            assert check_operation(op.left, op.op, op.right, op.result) is None
            board.remove(op.left)
            board.remove(op.right)
            board.append(op.result)
        assert board == [target]
