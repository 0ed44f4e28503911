"""Inspect AI eval logs (UKGovernmentBEIS/inspect_ai, `log/_log.py`).

A log is an `EvalLog`: `eval` (the task, the model), `results` (its scorers, the first being
the primary), and `samples`, each an `EvalSample` with `id`, `epoch`, `messages` (assistant
`tool_calls` as `{id, function, arguments, parse_error}`, tool messages with an optional
`error`), `scores` (`{scorer: {value, answer, explanation}}`), `error`, `limit`,
`model_usage` and `total_time`. Both file forms are read: the JSON log (`--log-format json`)
and the `.eval` zip (`header.json` plus `samples/*.json`).

What they become: one episode per sample and epoch (task = the sample id, trial = epoch − 1,
seed 0), scenario `inspect/<task>`, agent the model. Success is the primary scorer's value
counting as 1 under Inspect's own `value_to_float` (C, yes, true, 1; P is 0.5, so partial
credit is no success); every scorer is an outcome grade. A sample with an `error` is an
infrastructure error (not scored); one that hit a `limit` is truncated (never a success). A
step per agent decision: a tool call at the node named after the tool, a text reply at
`respond`. Inspect logs carry no gold actions, so steps are graded only where the model's
arguments could not be parsed (`parse_error`, the agent's error); a sample whose metadata
holds `gold_actions` (`[{function|name, arguments}]`, a trialrun convention) is graded
against them as τ-bench is.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trialrun.importers.base import (
    ASK_TOOLS,
    RESPOND,
    SUCCESS_TOLERANCE,
    GoldActions,
    Importer,
    ImportFormatError,
    Loose,
    is_read_only,
    load_json,
    parse_args,
    text_of,
    validation_error,
)
from trialrun.registry import register
from trialrun.trajectory import (
    Decision,
    EndReason,
    EpisodeKey,
    EpisodeResult,
    Grade,
    Step,
    ToolResult,
)


class _Score(Loose):
    value: Any
    answer: str | None = None
    explanation: str | None = None


class _Sample(Loose):
    id: int | str
    epoch: int = 1
    messages: list[dict[str, Any]] = []
    scores: dict[str, _Score] | None = None
    error: dict[str, Any] | str | None = None
    limit: dict[str, Any] | str | None = None
    model_usage: dict[str, dict[str, Any]] = {}
    total_time: float | None = None
    metadata: dict[str, Any] = {}


class _Spec(Loose):
    task: str
    model: str = ""


class _Log(Loose):
    eval: _Spec
    status: str = "success"
    results: dict[str, Any] | None = None
    samples: list[_Sample] | None = None


def value_to_float(value: Any) -> float | None:
    """Inspect's `value_to_float` with its default letters: C 1, P 0.5, I and N 0, yes/true
    1, no/false 0, numbers as numbers; None when the value cannot be read (a list, a dict)."""
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        v = {"C": 1.0, "P": 0.5, "I": 0.0, "N": 0.0}.get(value)
        if v is not None:
            return v
        low = value.lower()
        if low in ("yes", "true"):
            return 1.0
        if low in ("no", "false"):
            return 0.0
        try:
            return float(value)
        except ValueError:
            return None
    return None


@register("importer", "inspect")
class InspectLog(Importer):
    description = "Inspect AI eval logs (.json or .eval)"

    def read(self, path: Path) -> list[EpisodeResult]:
        raw = self._load(path)
        try:
            log = _Log.model_validate(raw)
        except ValidationError as e:
            raise validation_error(path, e) from None
        if log.samples is None:
            raise ImportFormatError(path, "samples", "the log has no samples (written with "
                                    "log_samples off?): nothing to import")
        scorers = [s.get("scorer") or s.get("name") for s in
                   (log.results or {}).get("scores", []) if isinstance(s, dict)]
        scenario = self.scenario or f"inspect/{log.eval.task}"
        out = []
        for i, sample in enumerate(log.samples):
            out.append(self._episode(path, i, sample, scenario, log.eval.model or "model",
                                     scorers))
        return out

    def _load(self, path: Path) -> Any:
        if path.suffix == ".eval" or zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as z:
                    names = z.namelist()
                    if "header.json" not in names:
                        raise ImportFormatError(path, "", "an .eval log without header.json "
                                                "(still being written?)")
                    header = json.loads(z.read("header.json"))
                    header["samples"] = [json.loads(z.read(n)) for n in sorted(names)
                                         if n.startswith("samples/") and n.endswith(".json")]
                    return header
            except (zipfile.BadZipFile, json.JSONDecodeError, KeyError) as e:
                raise ImportFormatError(path, "", f"not a readable .eval log: {e}") from None
        return load_json(path)

    def _episode(self, path: Path, i: int, s: _Sample, scenario: str, model: str,
                 scorers: list[str]) -> EpisodeResult:
        key = EpisodeKey(scenario=scenario, task=str(s.id), seed=0, trial=max(s.epoch - 1, 0))
        gold = _gold(path, i, s.metadata.get("gold_actions"))
        steps = _steps(s.messages, gold)
        tokens = sum(int(u.get("total_tokens") or 0) for u in s.model_usage.values())
        cost = sum(float(u.get("total_cost") or 0.0) for u in s.model_usage.values())
        common = dict(key=key, agent=model, steps=steps, tokens=tokens, cost=cost,
                      wall_ms=1000 * (s.total_time or 0.0))
        if s.error:
            msg = s.error.get("message") if isinstance(s.error, dict) else s.error
            return EpisodeResult(**common, end_reason=EndReason.error, error=str(msg)[:500],
                                 end_note="the sample raised an error")
        grades = []
        for name, score in (s.scores or {}).items():
            v = value_to_float(score.value)
            if v is None or math.isnan(v):
                continue
            grades.append(Grade(grader=name, passed=abs(v - 1) <= SUCCESS_TOLERANCE, score=v,
                                reason=(score.explanation or f"value {score.value!r}")[:300]))
        if not grades:
            raise ImportFormatError(path, f"samples[{i}].scores",
                                    "no score that reads as a number (C/I/P/N, yes/no, a "
                                    "number): cannot tell success")
        primary = next((g for g in grades if g.grader in scorers), grades[0])
        limited = s.limit is not None
        ok = primary.passed and not limited
        note = (f"hit its {s.limit.get('type', 'limit') if isinstance(s.limit, dict) else s.limit}"
                " limit" if limited else "the solver finished")
        return EpisodeResult(**common, end_reason=EndReason.truncated if limited else
                             EndReason.finished, end_note=note, success=ok, score=primary.score,
                             outcome_grades=grades)


def _gold(path: Path, i: int, raw: Any) -> GoldActions:
    if raw is None:
        return GoldActions([])
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise ImportFormatError(path, f"samples[{i}].metadata.gold_actions",
                                "expected a list of {function, arguments}")
    return GoldActions([(str(a.get("function") or a.get("name")),
                         parse_args(a.get("arguments") or a.get("kwargs"))[0],
                         a.get("compare_args")) for a in raw])


def _steps(messages: list[dict[str, Any]], gold: GoldActions) -> list[Step]:
    results: dict[str, ToolResult] = {}
    for m in messages:
        if m.get("role") == "tool" and m.get("tool_call_id"):
            err = m.get("error")
            content = text_of(m.get("content"))
            results[str(m["tool_call_id"])] = ToolResult(
                ok=not err, output=content,
                error=(err.get("message") if isinstance(err, dict) else str(err)) if err
                else None)
    steps: list[Step] = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        calls = m.get("tool_calls") or []
        for c in calls:
            tool = str(c.get("function", ""))
            args, err = parse_args(c.get("arguments"))
            err = c.get("parse_error") or err
            kind = "ask_human" if tool in ASK_TOOLS else "tool_call"
            d = Decision(kind=kind, node=tool, tool=tool, args=args, args_error=err)
            grades = []
            if err:
                grades = [Grade(grader="arguments", passed=False, node=tool, reason=str(err))]
            elif gold:
                g = gold.grade(tool, args, tool)
                grades = [g] if g is not None else []
            steps.append(Step(index=len(steps), node=tool, decision=d,
                              result=results.get(str(c.get("id"))), grades=grades,
                              irreversible=not is_read_only(tool)))
        if not calls and text_of(m.get("content")):
            steps.append(Step(index=len(steps), node=RESPOND, decision=Decision(
                kind="message", node=RESPOND, text=text_of(m.get("content")))))
    return steps
