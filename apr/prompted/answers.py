"""Find the final answer in a model's text, normalise it, and take a majority vote.

The extractor also says what to ask for ("End with a line Answer: ..."), so the instruction the
model gets and the parser that reads its reply are defined in one place.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

_ANSWER_LINE = re.compile(r"^[\s*#>_-]*(?:final\s+)?answer[\s*_]*[:：][\s*_]*(.+?)[\s*_]*$", re.I | re.M)
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


@dataclass(frozen=True)
class Extractor:
    spec: str  # how the user named it: answer, boxed, last-line, re:<pattern>
    instruction: str  # appended to final-answer prompts
    find: Callable[[str], str | None]


def extractor(spec: str) -> Extractor:
    """``answer`` (a final "Answer: ..." line), ``boxed`` (\\boxed{...}), ``last-line``, or
    ``re:<pattern>`` (the last match; its first group if it has one)."""
    if spec == "answer":
        return Extractor(spec, 'End with a final line of the form "Answer: <answer>".', _last_answer_line)
    if spec == "boxed":
        return Extractor(spec, "Put the final answer in \\boxed{}.", _last_boxed)
    if spec == "last-line":
        return Extractor(spec, "Give the final answer alone on the last line.", _last_line)
    if spec.startswith("re:"):
        try:
            pattern = re.compile(spec[3:], re.M)
        except re.error as e:
            raise ValueError(f"bad answer pattern {spec[3:]!r}: {e}") from None
        return Extractor(spec, "", lambda text: _last_match(pattern, text))
    raise ValueError(f"unknown answer format {spec!r}: use answer, boxed, last-line or re:<pattern>")


def lenient(text: str) -> str | None:
    """A guess at the answer of a reply that ignored the requested format: its last number, else its
    last line. Reported apart from the strict answer, never in its place."""
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else _last_line(text)


def _last_answer_line(text: str) -> str | None:
    found = _ANSWER_LINE.findall(text)
    return found[-1] if found else None


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j].strip()
    return None  # unbalanced braces: the answer was cut off


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _last_match(pattern: re.Pattern[str], text: str) -> str | None:
    matches = list(pattern.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    return (last.group(1) if pattern.groups else last.group(0)).strip()


def normalize(answer: str) -> str:
    """Canonical form for comparing answers: case, spacing, markup and number formatting."""
    a = " ".join(answer.strip().strip("*$").strip().rstrip(".").split()).lower()
    if _THOUSANDS.match(a):
        a = a.replace(",", "")
    try:
        x = float(a)
    except ValueError:
        return a
    if not math.isfinite(x):
        return a
    return str(int(x)) if x.is_integer() else repr(x)


def majority(answers: list[str | None]) -> tuple[str | None, Counter[str]]:
    """The most common normalised answer (ties: the one seen first) and the tally."""
    tally = Counter(normalize(a) for a in answers if a is not None)
    if not tally:
        return None, tally
    return tally.most_common(1)[0][0], tally
