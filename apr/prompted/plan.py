"""The planner's answer: a JSON list of subtasks with declared dependencies, validated.

Models wrap JSON in prose, code fences or ``<think>`` blocks, so parsing takes the outermost
``[...]`` of what is left after dropping think blocks; everything else (ids, dependencies, cycles,
width) is checked by pydantic, and the first error comes back as one line the model can act on.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


class PlanError(ValueError):
    """The planner's reply is not a usable plan; the message says why, in one line."""


class Subtask(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True, str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=40)
    task: str = Field(min_length=1)
    depends_on: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    subtasks: list[Subtask] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_graph(self, info: ValidationInfo) -> "Plan":
        limit = (info.context or {}).get("max_subtasks")
        if limit is not None and len(self.subtasks) > limit:
            raise ValueError(f"{len(self.subtasks)} subtasks, at most {limit} allowed")
        ids = [s.id for s in self.subtasks]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate subtask ids: {', '.join(duplicates)}")
        for s in self.subtasks:
            unknown = [d for d in s.depends_on if d not in ids]
            if unknown:
                raise ValueError(f"subtask {s.id!r} depends on unknown ids: {', '.join(unknown)}")
        self.waves()  # raises on a cycle
        return self

    def waves(self) -> list[list[Subtask]]:
        """Subtasks grouped by depth: wave k holds those whose dependencies are all in earlier waves."""
        done: set[str] = set()
        pending = list(self.subtasks)
        waves: list[list[Subtask]] = []
        while pending:
            wave = [s for s in pending if set(s.depends_on) <= done]
            if not wave:
                raise ValueError(f"dependency cycle among: {', '.join(s.id for s in pending)}")
            waves.append(wave)
            done |= {s.id for s in wave}
            pending = [s for s in pending if s.id not in done]
        return waves

    def dependencies(self) -> dict[str, list[str]]:
        return {s.id: s.depends_on for s in self.subtasks}


def parse_plan(text: str, max_subtasks: int) -> Plan:
    """The plan in a planner reply, or ``PlanError`` with a one-line reason."""
    body = _THINK.sub("", text)
    start, end = body.find("["), body.rfind("]")
    if start < 0:
        raise PlanError("no JSON list found in the reply")
    try:  # an unclosed list (a reply cut off at max_tokens) gets the decoder's own message
        data = json.loads(body[start : end + 1] if end > start else body[start:])
    except json.JSONDecodeError as e:
        raise PlanError(f"not valid JSON: {e.msg} at character {e.pos}") from None
    try:
        return Plan.model_validate({"subtasks": data}, context={"max_subtasks": max_subtasks})
    except ValidationError as e:
        raise PlanError(_describe(e)) from None


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"][1:])
    message = first["msg"].removeprefix("Value error, ")
    return f"element{where}: {message}" if where else message
