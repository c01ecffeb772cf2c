"""Countdown as a task: everything evaluation, RL, serving and the CLI use of it, in one place.

The layers above import Countdown only from here (a test checks it), so the solver, the search and
the rules behind these names can change without edits across the package, and a second task is a
new folder offering the same names: problems (loading, drawing, the root prompt), whether a problem
is solvable, the verifier of a trace or a whole thread tree, and one problem solved end to end.
"""

from __future__ import annotations

from apr.countdown.problems import Problem, ProblemSpec, load_problems, make_problem
from apr.countdown.rules import check_operation, is_solvable
from apr.countdown.solve import SolveResult, check_problem, expression, judge, solve_problem
from apr.countdown.verifier import Failure, Verdict, solving_child, verify_countdown, verify_trace

__all__ = [
    "Failure", "Problem", "ProblemSpec", "SolveResult", "Verdict", "check_operation", "check_problem", "expression",
    "is_solvable", "judge", "load_problems", "make_problem", "solve_problem", "solving_child", "verify_countdown",
    "verify_trace",
]
