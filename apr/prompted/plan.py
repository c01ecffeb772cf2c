"""The planner's answer: a JSON list of subtasks with declared dependencies, validated.

Models wrap JSON in prose, code fences or ``<think>`` blocks, so parsing takes the outermost
``[...]`` of what is left after dropping think blocks, or the ``{"subtasks": [...]}`` object that a
schema-constrained reply has at its root. Mistakes that have one obvious fix are repaired instead of
spending a retry on them (a dependency on itself, on an unknown id, or on the template's placeholder
is dropped; a repeated id is renamed), and each repair is noted. A plan that copies the template's
placeholders, or whose "tasks" are only subtask ids, is refused: it is no plan. Everything else (ids, cycles, width) is checked by pydantic, and
the first error comes back as one line the model can act on.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_PLACEHOLDER = re.compile(r"^\s*<[^<>]*>\s*$")  # "<short name>", "<self-contained instruction>", ...


class PlanError(ValueError):
    """The planner's reply is not a usable plan; the message says why, in one line."""


class Subtask(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True, str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=40)
    task: str = Field(min_length=1)
    depends_on: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    subtasks: list[Subtask] = Field(min_length=1)
    repairs: list[str] = Field(default_factory=list, exclude=True)  # what parse_plan fixed, for the tree

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


def plan_schema(max_subtasks: int) -> dict:
    """JSON Schema of a plan reply for servers that constrain decoding to one (the object form:
    llama-cpp-python's ``json_object`` needs an object at the root)."""
    subtask = {"type": "object", "properties": {"id": {"type": "string"}, "task": {"type": "string"},
                                                "depends_on": {"type": "array", "items": {"type": "string"}}},
               "required": ["id", "task", "depends_on"], "additionalProperties": False}
    return {"type": "object", "required": ["subtasks"], "additionalProperties": False,
            "properties": {"subtasks": {"type": "array", "items": subtask, "minItems": 1, "maxItems": max_subtasks}}}


def response_format(kind: str | None, max_subtasks: int) -> dict | None:
    """The ``response_format`` of a plan request: OpenAI's ``json_schema``, llama-cpp-python's
    ``json_object`` with a schema, or None (free text)."""
    if kind is None:
        return None
    schema = plan_schema(max_subtasks)
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema, "strict": True}}
    if kind == "json_object":
        return {"type": "json_object", "schema": schema}
    raise ValueError(f"unknown plan constraint {kind!r}")


def parse_plan(text: str, max_subtasks: int) -> Plan:
    """The plan in a planner reply, or ``PlanError`` with a one-line reason."""
    data = _subtask_list(_THINK.sub("", text))
    repairs = _repair(data) if isinstance(data, list) else []
    try:
        plan = Plan.model_validate({"subtasks": data}, context={"max_subtasks": max_subtasks})
    except ValidationError as e:
        raise PlanError(_describe(e)) from None
    plan.repairs = repairs
    return plan


def _subtask_list(body: str) -> object:
    """The reply's JSON: a ``{"subtasks": [...]}`` object's list, else its outermost list."""
    start_obj = body.find("{")
    if start_obj >= 0 and (body.find("[") < 0 or start_obj < body.find("[")):
        try:
            obj = json.loads(body[start_obj : body.rfind("}") + 1])
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and "subtasks" in obj:
            return obj["subtasks"]
    start, end = body.find("["), body.rfind("]")
    if start < 0:
        raise PlanError("no JSON list found in the reply")
    try:  # an unclosed list (a reply cut off at max_tokens) gets the decoder's own message
        return json.loads(body[start : end + 1] if end > start else body[start:])
    except json.JSONDecodeError as e:
        raise PlanError(f"not valid JSON: {e.msg} at character {e.pos}") from None


def _repair(items: list) -> list[str]:
    """Fix, in place, what has one obvious fix; refuse copied placeholders. Returns what was fixed."""
    notes: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        for field in ("id", "task"):
            if isinstance(item.get(field), str) and _PLACEHOLDER.match(item[field]):
                raise PlanError(f"a subtask's {field} is the template's placeholder {item[field].strip()!r}: "
                                "write a real one")
        if isinstance(item.get("id"), (str, int)):
            sid = original = str(item["id"])
            n = 2
            while sid in seen:
                sid, n = f"{original}-{n}", n + 1
            if sid != original:
                notes.append(f"renamed the repeated id {original!r} to {sid!r}")
                item["id"] = sid
            seen.add(sid)
    for item in items:
        task = item.get("task") if isinstance(item, dict) else None
        if isinstance(task, str) and task.strip() in seen:
            raise PlanError(f"subtask {str(item.get('id'))!r} has no instruction, only {task.strip()!r}: "
                            "write what the subtask must do")
    for item in items:
        deps = item.get("depends_on") if isinstance(item, dict) else None
        if not isinstance(deps, list):
            continue
        keep = [d for d in deps if isinstance(d, (str, int)) and str(d) in seen and str(d) != str(item.get("id"))]
        dropped = [d for d in deps if d not in keep]
        if dropped:
            notes.append(f"dropped dependencies of {str(item.get('id'))!r} on {', '.join(map(str, dropped))} "
                         "(itself, unknown or a placeholder)")
            item["depends_on"] = keep
    return notes


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"][1:])
    message = first["msg"].removeprefix("Value error, ")
    return f"element{where}: {message}" if where else message
