"""OpenTelemetry GenAI spans exported as JSON: traces from production.

Read forms: OTLP/JSON (`{"resourceSpans": [{"resource", "scopeSpans": [{"spans"}]}]}`, as the
collector's file exporter writes it, one document or one per line) and the OpenTelemetry
SDK's console exporter (one JSON object per span: `name`, `context.trace_id`, `parent_id`,
`attributes`, `status`, `events`). Attribute names follow the GenAI semantic conventions:
`gen_ai.operation.name` (`execute_tool`, `chat`, `invoke_agent`), `gen_ai.tool.name`,
`gen_ai.tool.call.arguments`, `gen_ai.tool.call.result`, `gen_ai.agent.name`,
`gen_ai.usage.input_tokens`/`output_tokens`, `error.type`, and the `gen_ai.evaluation.result`
event (`gen_ai.evaluation.name`, `gen_ai.evaluation.score.label`/`.value`).

What they become: one episode per trace. Its decisions are the trace's `execute_tool`
spans in start order (node: the tool's name, or a `trialrun.node` attribute). A tool span
is graded by its `gen_ai.evaluation.result` events when it has any (label pass/correct/
true/yes passes, fail/incorrect/false/no fails, a score value of exactly 1 or 0 without a
label likewise; other scores are not judged), else by its status: a tool call that ended in
an error is the node's error (grader `tool_status`) — a proxy, as production has no gold.
The episode's success: the root span's evaluation events if any, else a boolean
`trialrun.success` attribute on the root, else the root's status (an error fails). Task:
a `trialrun.task` attribute on the root, else the trace id (each trace its own task, one
trial); trial: a `trialrun.trial` attribute, else the trace's rank among its task's traces.
Scenario: `trialrun.scenario`, else the resource's `service.name`, else `otel`. Tokens are
summed over model-call spans (`chat`, `text_completion`, `generate_content`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from trialrun.importers.base import (
    ASK_TOOLS,
    Importer,
    ImportFormatError,
    is_read_only,
    load_json_values,
    parse_args,
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

PASS_LABELS = {"pass", "passed", "correct", "true", "yes", "success", "ok"}
FAIL_LABELS = {"fail", "failed", "incorrect", "false", "no", "failure", "error", "wrong"}
MODEL_CALLS = {"chat", "text_completion", "generate_content"}


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: float  # seconds
    end: float
    attrs: dict[str, Any]
    error: bool
    status_message: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def operation(self) -> str:
        op = self.attrs.get("gen_ai.operation.name")
        if op:
            return str(op)
        return self.name.split(" ", 1)[0] if self.name.startswith(
            ("execute_tool", "chat", "invoke_agent")) else ""


def _any_value(v: Any) -> Any:
    """An OTLP/JSON AnyValue as a Python value."""
    if not isinstance(v, dict):
        return v
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        return int(v["intValue"])  # OTLP/JSON writes 64-bit integers as strings
    if "arrayValue" in v:
        return [_any_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return _attrs((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attrs(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):  # the console exporter's flat mapping
        return dict(raw)
    return {a["key"]: _any_value(a.get("value")) for a in raw or []
            if isinstance(a, dict) and "key" in a}


def _nanos(v: Any) -> float:
    return int(v) / 1e9 if v not in (None, "") else 0.0


def _iso(v: Any) -> float:
    if not v:
        return 0.0
    return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()


def _hex(v: Any) -> str:
    s = str(v or "")
    return s[2:] if s.startswith("0x") else s


def _otlp_spans(path: Path, doc: dict[str, Any], where: str) -> list[Span]:
    out = []
    for r, rs in enumerate(doc.get("resourceSpans") or []):
        if not isinstance(rs, dict):
            raise ImportFormatError(path, f"{where}resourceSpans[{r}]", "expected an object")
        resource = _attrs((rs.get("resource") or {}).get("attributes"))
        for s, ss in enumerate(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")
                               or []):
            for k, sp in enumerate(ss.get("spans") or []):
                loc = f"{where}resourceSpans[{r}].scopeSpans[{s}].spans[{k}]"
                if not isinstance(sp, dict) or not sp.get("traceId") or not sp.get("spanId"):
                    raise ImportFormatError(path, loc, "expected a span with traceId and "
                                            "spanId")
                status = sp.get("status") or {}
                code = status.get("code")
                out.append(Span(
                    trace_id=str(sp["traceId"]), span_id=str(sp["spanId"]),
                    parent_id=sp.get("parentSpanId") or None, name=str(sp.get("name", "")),
                    start=_nanos(sp.get("startTimeUnixNano")),
                    end=_nanos(sp.get("endTimeUnixNano")), attrs=_attrs(sp.get("attributes")),
                    error=code in (2, "2", "STATUS_CODE_ERROR"),
                    status_message=str(status.get("message") or ""),
                    events=[(str(e.get("name", "")), _attrs(e.get("attributes")))
                            for e in sp.get("events") or []], resource=resource))
    return out


def _console_span(path: Path, sp: dict[str, Any], where: str) -> Span:
    ctx = sp.get("context") or {}
    if not ctx.get("trace_id") or not ctx.get("span_id"):
        raise ImportFormatError(path, f"{where}context", "expected trace_id and span_id")
    status = sp.get("status") or {}
    try:
        start, end = _iso(sp.get("start_time")), _iso(sp.get("end_time"))
    except ValueError as e:
        raise ImportFormatError(path, f"{where}start_time", f"not an ISO time: {e}") from None
    return Span(trace_id=_hex(ctx["trace_id"]), span_id=_hex(ctx["span_id"]),
                parent_id=_hex(sp.get("parent_id")) or None, name=str(sp.get("name", "")),
                start=start, end=end, attrs=_attrs(sp.get("attributes")),
                error=status.get("status_code") == "ERROR",
                status_message=str(status.get("description") or ""),
                events=[(str(e.get("name", "")), _attrs(e.get("attributes")))
                        for e in sp.get("events") or []],
                resource=_attrs((sp.get("resource") or {}).get("attributes")))


def read_spans(path: Path) -> list[Span]:
    spans: list[Span] = []
    for n, doc in enumerate(load_json_values(path)):
        where = f"document {n + 1}: " if n else ""
        docs = doc if isinstance(doc, list) else [doc]
        for j, d in enumerate(docs):
            w = f"{where}[{j}]." if isinstance(doc, list) else where
            if isinstance(d, dict) and "resourceSpans" in d:
                spans += _otlp_spans(path, d, w)
            elif isinstance(d, dict) and "context" in d:
                spans.append(_console_span(path, d, w))
            else:
                raise ImportFormatError(path, w.rstrip(". ") or "(top level)",
                                        "expected OTLP/JSON ({\"resourceSpans\": ...}) or a "
                                        "console-exporter span ({\"name\", \"context\", ...})")
    return spans


def _verdict(attrs: dict[str, Any]) -> bool | None:
    label = attrs.get("gen_ai.evaluation.score.label")
    if label is not None:
        low = str(label).strip().lower()
        return True if low in PASS_LABELS else False if low in FAIL_LABELS else None
    value = attrs.get("gen_ai.evaluation.score.value")
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return value == 1
    return None


def _evaluations(span: Span, node: str | None) -> list[Grade]:
    out = []
    for name, attrs in span.events:
        if name != "gen_ai.evaluation.result":
            continue
        passed = _verdict(attrs)
        if passed is None:
            continue
        score = attrs.get("gen_ai.evaluation.score.value")
        out.append(Grade(grader=str(attrs.get("gen_ai.evaluation.name") or "evaluation"),
                         passed=passed, node=node,
                         score=float(score) if isinstance(score, int | float) else
                         float(passed),
                         reason=str(attrs.get("gen_ai.evaluation.explanation")
                                    or attrs.get("gen_ai.evaluation.score.label") or "")[:300]))
    return out


@register("importer", "otel")
class OTelSpans(Importer):
    description = "OpenTelemetry GenAI spans as JSON (OTLP/JSON or console exporter)"

    def read(self, path: Path) -> list[EpisodeResult]:
        by_trace: dict[str, list[Span]] = defaultdict(list)
        for s in read_spans(path):
            by_trace[s.trace_id].append(s)
        traces = []
        for tid, spans in by_trace.items():
            ids = {s.span_id for s in spans}
            roots = [s for s in spans if not s.parent_id or s.parent_id not in ids]
            root = min(roots or spans, key=lambda s: s.start)
            traces.append((tid, spans, root))
        traces.sort(key=lambda t: (t[2].start, t[0]))
        ranks: dict[tuple[str, str], int] = defaultdict(int)
        out = []
        for tid, spans, root in traces:
            scenario = self.scenario or str(
                root.attrs.get("trialrun.scenario") or root.resource.get("service.name")
                or "otel")
            task = str(root.attrs.get("trialrun.task") or tid)
            trial = root.attrs.get("trialrun.trial")
            if trial is None:
                trial = ranks[(scenario, task)]
            ranks[(scenario, task)] += 1
            out.append(self._episode(spans, root, EpisodeKey(
                scenario=scenario, task=task, seed=0, trial=int(trial))))
        return out

    def _episode(self, spans: list[Span], root: Span, key: EpisodeKey) -> EpisodeResult:
        agent = next((str(s.attrs["gen_ai.agent.name"]) for s in spans
                      if "gen_ai.agent.name" in s.attrs), None) or str(
            root.resource.get("service.name") or "otel agent")
        steps = []
        for s in sorted((s for s in spans if s.operation == "execute_tool"),
                        key=lambda s: (s.start, s.span_id)):
            tool = str(s.attrs.get("gen_ai.tool.name") or s.name.removeprefix("execute_tool ")
                       or "tool")
            node = str(s.attrs.get("trialrun.node") or tool)
            args, err = parse_args(s.attrs.get("gen_ai.tool.call.arguments"))
            ask = tool in ASK_TOOLS or s.attrs.get("trialrun.ask_human") is True
            d = Decision(kind="ask_human" if ask else "tool_call", node=node, tool=tool,
                         args=args, args_error=err)
            failed = s.error or bool(s.attrs.get("error.type"))
            why = s.status_message or str(s.attrs.get("error.type") or "")
            out = s.attrs.get("gen_ai.tool.call.result")
            result = ToolResult(ok=not failed, output=out,
                                error=(why or "error") if failed else None)
            grades = _evaluations(s, node) or [Grade(
                grader="tool_status", passed=not failed, node=node,
                reason=f"the tool call ended in an error: {why or 'error status'}" if failed
                else "the tool call succeeded")]
            steps.append(Step(index=len(steps), node=node, decision=d, result=result,
                              grades=grades, irreversible=not is_read_only(tool),
                              sim_time=max(0.0, s.end - root.start),
                              wall_us=int(1e6 * max(0.0, s.end - s.start))))
        tokens = sum(int(s.attrs.get("gen_ai.usage.input_tokens") or 0)
                     + int(s.attrs.get("gen_ai.usage.output_tokens") or 0)
                     for s in spans if s.operation in MODEL_CALLS)
        outcome = _evaluations(root, None)
        if outcome:
            ok = all(g.passed for g in outcome)
        elif isinstance(root.attrs.get("trialrun.success"), bool):
            ok = root.attrs["trialrun.success"]
            outcome = [Grade(grader="trialrun.success", passed=ok,
                             reason="the trace's trialrun.success attribute")]
        else:
            ok = not root.error
            reason = root.status_message or str(root.attrs.get("error.type") or "")
            outcome = [Grade(grader="root_status", passed=ok, reason=(
                f"the trace's root span ended in an error: {reason}" if not ok else
                "the trace's root span did not end in an error"))]
        return EpisodeResult(
            key=key, agent=agent, end_reason=EndReason.finished, end_note="the trace ended",
            success=ok, score=float(ok), steps=steps, outcome_grades=outcome, tokens=tokens,
            wall_ms=1000 * max(0.0, root.end - root.start),
            metrics={"spans": float(len(spans))})

