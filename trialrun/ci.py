"""Continuous integration: gates on any metric of a run, and a JUnit XML file CI systems read.

Gates
-----
`--gate EXPR` (repeatable) states what a run must reach; every gate is checked and reported,
and the command exits 1 if any fails. An expression is `METRIC[.BOUND] OP NUMBER[%]`:

    success>=0.9              the success rate (Wilson 95% CI in the report)
    success.lo>=0.8           the lower end of its 95% CI must reach 0.8
    pass^3>=0.7               pass^k: the chance that k fresh trials of a task all succeed
    pass@3>=0.95              pass@k: at least one of k trials succeeds
    node:resolve>=0.95        a node's accuracy per episode (given a clean prefix)
    node:resolve.lo>=0.9      ... on the lower end of its Wilson CI
    ask_f1>=0.6               Ask-F1 (also ask_precision, ask_recall, over_escalation,
                              under_escalation, help_rate)
    predicted_success>=0.8    the chain-rule prediction
    errors<=0                 episodes that ended in an infrastructure error
    episode_cost.p90<=0.05    a cost/latency percentile (episode_wall_ms, episode_steps,
                              episode_sim_seconds, episode_cost, step_harness_us; p50/p90/p99)

OP is one of >=, >, <=, <, ==. `.lo`/`.hi` pick an end of the metric's 95% CI instead of the
point estimate (success, node:NAME: Wilson; pass^k, pass@k: bootstrap over tasks); a metric
without a CI refuses them. A gate whose metric is undefined in the run (nobody asked, so
Ask-F1 is 0/0; pass^5 on 4 trials) fails: a gate that cannot judge never passes.
`--fail-under X` is the gate `success>=X`.

Exit codes (`run`, `report`, `import`; documented in docs/ci.md):
    0  every gate passed (or none was given)
    1  a gate failed
    2  usage or input error: a bad --gate, a malformed scenario or import file, an unknown run
    3  the gates could not judge the run (only when gates are given): episodes ended in an
       infrastructure error after retries, or still wait for a reviewer

JUnit
-----
`--junit out.xml` writes one <testsuite> per scenario and one <testcase> per scenario × task,
its time the episodes' wall time. A test case fails if any of its scored episodes failed: the
<failure> message names how many, the first error (step, node, the grader's reason) of the
first failed episode, and the command that shows its trajectory (`trialrun show EPISODE`);
the body lists every failed episode. A test case whose episodes all ended in an
infrastructure error is an <error>; a failure is of type `flaky` when one seed (the same
world) both passed and failed across its trials. The file follows the common JUnit XML
schema (Jenkins xUnit's junit-10 layout: testsuites > testsuite > properties, testcase >
failure | error | system-out) that GitHub, GitLab, Jenkins and Azure read.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from trialrun.errors import TrialrunError

if TYPE_CHECKING:
    from trialrun.analysis.data import RunData
    from trialrun.analysis.summary import RunSummary
    from trialrun.store import Store

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_INFRA = 0, 1, 2, 3


class GateError(TrialrunError, ValueError):
    """A --gate expression that does not parse, or names a metric the run does not have."""


# --- gates -----------------------------------------------------------------------------------
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
_ESCALATION = {"ask_f1": "f1", "ask_precision": "precision", "ask_recall": "recall",
               "over_escalation": "over_escalation", "under_escalation": "under_escalation",
               "help_rate": "help_rate"}
_LATENCY = ("episode_wall_ms", "episode_sim_seconds", "episode_steps", "episode_cost",
            "step_harness_us")
_PLAIN = ("predicted_success", "errors")
_EXPR = re.compile(
    r"^\s*(?P<metric>node:.+?|pass[\^@]\d+|[a-z_][a-z0-9_]*)(?:\.(?P<field>lo|hi|p50|p90|p99))?\s*"
    r"(?P<op>>=|<=|==|>|<)\s*(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
    r"(?P<pct>%)?\s*$")
KNOWN = ["success", "pass^K", "pass@K", "node:NAME", *_ESCALATION, *_PLAIN,
         *(f"{x}.p50|p90|p99" for x in _LATENCY)]


@dataclass(frozen=True)
class Gate:
    text: str  # as the user wrote it
    metric: str  # success, pass^3, node:resolve, ask_f1, episode_cost, ...
    field: str | None  # lo, hi, p50, p90, p99, or None for the point estimate
    op: str
    threshold: float

    @property
    def name(self) -> str:
        return self.metric + (f".{self.field}" if self.field else "")


@dataclass
class GateResult:
    gate: Gate
    value: float | None
    passed: bool
    note: str = ""  # why a gate could not judge

    def line(self) -> str:
        g = self.gate
        if self.value is None:
            return f"{'PASS' if self.passed else 'FAIL'}  {g.text}: {self.note}"
        return (f"{'PASS' if self.passed else 'FAIL'}  {g.name} = {self.value:.4g} "
                f"(needs {g.op} {g.threshold:g})" + (f"; {self.note}" if self.note else ""))


def parse_gate(text: str) -> Gate:
    """One --gate expression; GateError (one line: what was expected) if it is malformed."""
    m = _EXPR.match(text)
    if not m:
        raise GateError(f"--gate {text!r}: expected METRIC[.lo|.hi] OP NUMBER, e.g. "
                        "'success>=0.9', 'pass^3>=0.7', 'node:resolve.lo>=0.9' "
                        f"(metrics: {', '.join(KNOWN)}; OP: >=, >, <=, <, ==)")
    metric, field, op = m["metric"].strip(), m["field"], m["op"]
    value = float(m["num"]) / (100 if m["pct"] else 1)
    if metric.startswith("node:") and not metric[5:].strip():
        raise GateError(f"--gate {text!r}: node: needs a node name, e.g. node:resolve>=0.95")
    if metric.startswith(("pass^", "pass@")) and int(metric[5:]) < 1:
        raise GateError(f"--gate {text!r}: k in {metric[:5]}k must be at least 1")
    known = metric in ("success", *_ESCALATION, *_PLAIN, *_LATENCY) or metric.startswith(
        ("node:", "pass^", "pass@"))
    if not known:
        from trialrun.registry import did_you_mean

        raise GateError(f"--gate {text!r}: unknown metric {metric!r}"
                        f"{did_you_mean(metric, [*_ESCALATION, *_PLAIN, *_LATENCY, 'success'])}"
                        f" (metrics: {', '.join(KNOWN)})")
    if metric in _LATENCY and field not in ("p50", "p90", "p99"):
        raise GateError(f"--gate {text!r}: {metric} is a distribution: name a percentile, "
                        f"e.g. {metric}.p90<=...")
    if field in ("p50", "p90", "p99") and metric not in _LATENCY:
        raise GateError(f"--gate {text!r}: .{field} applies to {', '.join(_LATENCY)}")
    if field in ("lo", "hi") and not (metric == "success" or metric.startswith(
            ("node:", "pass^", "pass@"))):
        raise GateError(f"--gate {text!r}: {metric} has no confidence interval; gate on its "
                        "value (.lo/.hi apply to success, node:NAME, pass^k, pass@k)")
    return Gate(text=text.strip(), metric=metric, field=field, op=op, threshold=value)


def parse_gates(texts: list[str] | None, fail_under: float | None = None) -> list[Gate]:
    """Every --gate, plus --fail-under as `success>=X`; all problems in one GateError."""
    gates, problems = [], []
    for t in texts or []:
        try:
            gates.append(parse_gate(t))
        except GateError as e:
            problems.append(str(e))
    if fail_under is not None and not 0 <= fail_under <= 1:  # NaN fails this too
        problems.append(f"--fail-under {fail_under}: expected a success rate from 0 to 1")
    if problems:
        raise GateError("; ".join(problems))
    if fail_under is not None:
        gates.append(Gate(text=f"--fail-under {fail_under:g}", metric="success", field=None,
                          op=">=", threshold=fail_under))
    return gates


def evaluate_gates(gates: list[Gate], s: RunSummary, data: RunData | None = None,
                   load: Callable[[], RunData] | None = None) -> list[GateResult]:
    """Check each gate against the run's summary (`data`, or `load()`, only for the CI of a
    pass^k whose k the summary has no CI for). A node the run lacks is a GateError."""
    out = []
    for g in gates:
        value, note = _value(g, s, data, load)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(GateResult(g, None, False, note or f"{g.name} is undefined in this run"))
        else:
            out.append(GateResult(g, float(value), _OPS[g.op](float(value), g.threshold), note))
    return out


def _value(g: Gate, s: RunSummary, data: RunData | None,
           load: Callable[[], RunData] | None) -> tuple[float | None, str]:
    m, f = g.metric, g.field
    if m == "success":
        return _prop(s.success, f), ""
    if m == "errors":
        return float(s.errors), ""
    if m == "predicted_success":
        return s.predicted_success, ""
    if m.startswith("node:"):
        name = m[5:]
        node = next((n for n in s.nodes if n.node == name), None)
        if node is None:
            from trialrun.registry import did_you_mean

            known = [n.node for n in s.nodes]
            raise GateError(f"--gate {g.text!r}: the run has no graded node {name!r}"
                            f"{did_you_mean(name, known)} (nodes: {', '.join(known) or 'none'})")
        return _prop(node.accuracy_per_episode, f), ""
    if m in _ESCALATION:
        r = s.reliability
        if r is None:
            return None, "no escalation analysis in this run"
        v = getattr(r.escalation, _ESCALATION[m])
        return v, "" if v is not None else (
            f"{m} is undefined: {r.escalation.tp + r.escalation.fp} ask(s), "
            f"{r.escalation.tp + r.escalation.fn} step(s) that needed help")
    if m in _LATENCY:
        p = s.latency.get(m)
        return (None if p is None else getattr(p, f)), ""
    k = int(m[5:])
    hat = m[4] == "^"
    row = next((t for t in s.trials if t.k == k), None)
    if f is None:
        if row is None:
            return None, _no_k(s, k)
        return (row.pass_hat_k if hat else row.pass_at_k), ""
    d = s.reliability.trials if s.reliability is not None else None
    if d is not None and d.k == k:
        iv = d.pass_hat_k if hat else d.pass_at_k
        return (iv.lo if f == "lo" else iv.hi), ""
    if data is None and load is not None:
        data = load()
    if data is None:
        return None, f"no CI for {m} in this run"
    ci = pass_k_ci(data, k, hat)
    if ci is None:
        return None, _no_k(s, k)
    return (ci[0] if f == "lo" else ci[1]), ""


def _no_k(s: RunSummary, k: int) -> str:
    most = max((t.k for t in s.trials), default=0)
    return f"no task has {k} scored trials (at most {most})"


def _prop(p: Any, field: str | None) -> float | None:
    return {None: p.rate, "lo": p.lo, "hi": p.hi}[field]


def pass_k_ci(d: RunData, k: int, hat: bool, n_boot: int = 1000
              ) -> tuple[float, float] | None:
    """95% CI of pass^k (or pass@k) at any k: the tasks (scenario × task × seed) with at least
    k scored trials resampled, as `reliability.trials_detail` does at its own k."""
    import numpy as np

    from trialrun.analysis.stats import bootstrap_ci, pass_at_k, pass_hat_k

    groups: dict[tuple, list[float]] = {}
    for i in np.flatnonzero(d.scored):
        groups.setdefault((d.scenario[i], d.task[i], int(d.seed[i])), []).append(d.success[i])
    per = [(pass_hat_k if hat else pass_at_k)(len(v), int(sum(v)), k)
           for v in groups.values() if len(v) >= k]
    if not per:
        return None
    rows = np.column_stack([np.ones(len(per)), per])
    ci = bootstrap_ci(lambda s_: s_[..., 1] / s_[..., 0], rows, n_boot=n_boot)
    return ci.lo, ci.hi


def exit_code(results: list[GateResult], infra_errors: int, paused: int = 0) -> int:
    """0 pass, 1 a gate failed, 3 the gates could not judge the run: infrastructure errors,
    or episodes still waiting for a reviewer."""
    if not results:
        return EXIT_OK
    if infra_errors or paused:
        return EXIT_INFRA
    return EXIT_OK if all(r.passed for r in results) else EXIT_GATE


# --- JUnit -------------------------------------------------------------------------------------
def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _xml_safe(text: str) -> str:
    # XML 1.0 cannot carry most control characters, even escaped: agents' text can hold them.
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "\ufffd", str(text))


def first_error_text(store: Store, episode_id: str) -> str:
    """Where an episode first went wrong, in one line: the first step graded wrong (its node
    and the failing graders' reasons), else the failing outcome grades, else its end."""
    ep = store.load_episode(episode_id)
    step = ep.first_error
    if step is not None:
        reasons = "; ".join(f"{g.grader}: {g.reason}" for g in step.grades if not g.passed)
        return _one_line(f"first error at step {step.index}, node {step.node}: "
                         f"{reasons or 'graded wrong'}")
    failed = [g for g in ep.outcome_grades if not g.passed]
    if failed:
        return _one_line("no step graded wrong; outcome: " + "; ".join(
            f"{g.grader}: {g.reason}" for g in failed))
    return _one_line(f"no step graded wrong; ended {ep.end_reason.value}: {ep.end_note}")


def write_junit(store: Store, run_id: str, path: str | Path,
                gates: list[GateResult] | None = None) -> Path:
    """The run as JUnit XML: a testsuite per scenario, a testcase per scenario × task, and a
    testsuite `trialrun gates` with a testcase per gate checked."""
    episodes = store.episodes(run_id)
    by_case: dict[tuple[str, str], list[Any]] = {}
    for e in episodes:
        by_case.setdefault((e.scenario, e.task), []).append(e)
    root = ET.Element("testsuites", name=f"trialrun run {run_id}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    suites: dict[str, ET.Element] = {}
    counts: dict[str, dict[str, float]] = {}
    for (scenario, task), eps in sorted(by_case.items()):
        if scenario not in suites:
            suite = suites[scenario] = ET.SubElement(root, "testsuite", name=_xml_safe(scenario))
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="trialrun.run", value=run_id)
            counts[scenario] = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
        suite, c = suites[scenario], counts[scenario]
        seconds = sum(e.wall_ms for e in eps) / 1000
        case = ET.SubElement(suite, "testcase", name=_xml_safe(task),
                             classname=_xml_safe(scenario), time=f"{seconds:.3f}")
        scored = [e for e in eps if e.end_reason not in ("error", "paused")]
        failed = [e for e in scored if e.success is False]
        errors = [e for e in eps if e.end_reason == "error"]
        paused = [e for e in eps if e.end_reason == "paused"]
        c["tests"] += 1
        c["time"] += seconds
        lines = [f"{e.id}  seed {e.seed} trial {e.trial}  "
                 f"{'ok' if e.success else 'error' if e.end_reason == 'error' else 'FAILED'}"
                 f"  ({e.end_reason}, {e.n_steps} steps)" for e in eps]
        if failed:
            c["failures"] += 1
            first = failed[0]
            where = first_error_text(store, first.id)
            msg = (f"{len(failed)} of {len(scored)} episode(s) failed; seed {first.seed} "
                   f"trial {first.trial}: {where}; see `trialrun show {first.id}`")
            body = "\n".join([f"{e.id}: {first_error_text(store, e.id)}  (trialrun show {e.id})"
                              for e in failed[:20]]
                             + ([f"... and {len(failed) - 20} more"] if len(failed) > 20 else []))
            # flaky: the same world (seed) both passed and failed across trials
            outcomes: dict[int, set[bool]] = {}
            for e in scored:
                outcomes.setdefault(e.seed, set()).add(bool(e.success))
            flaky = any(len(v) == 2 for v in outcomes.values())
            el = ET.SubElement(case, "failure", message=_xml_safe(msg),
                               type="flaky" if flaky else "failed")
            el.text = _xml_safe(body)
        elif errors and not scored:
            c["errors"] += 1
            el = ET.SubElement(case, "error", type="infrastructure", message=_xml_safe(
                _one_line(f"every episode ended in an infrastructure error: "
                          f"{errors[0].error or errors[0].end_note}")))
            el.text = _xml_safe("\n".join(f"{e.id}: {e.error or e.end_note}" for e in errors))
        elif paused and not scored:
            ET.SubElement(case, "skipped", message=_xml_safe(
                f"{len(paused)} episode(s) wait for a reviewer (trialrun review list)"))
        out = ET.SubElement(case, "system-out")
        out.text = _xml_safe("\n".join(lines))
    if gates:
        suite = suites["\x00gates"] = ET.SubElement(root, "testsuite", name="trialrun gates")
        c = counts["\x00gates"] = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
        for r in gates:
            case = ET.SubElement(suite, "testcase", name=_xml_safe(r.gate.text),
                                 classname="trialrun.gates", time="0")
            c["tests"] += 1
            if not r.passed:
                c["failures"] += 1
                ET.SubElement(case, "failure", type="gate", message=_xml_safe(r.line()))
    for scenario, suite in suites.items():
        c = counts[scenario]
        suite.set("tests", str(int(c["tests"])))
        suite.set("failures", str(int(c["failures"])))
        suite.set("errors", str(int(c["errors"])))
        suite.set("time", f"{c['time']:.3f}")
        for k in totals:
            totals[k] += c[k]
    root.set("tests", str(int(totals["tests"])))
    root.set("failures", str(int(totals["failures"])))
    root.set("errors", str(int(totals["errors"])))
    root.set("time", f"{totals['time']:.3f}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def gates_json(results: list[GateResult]) -> list[dict[str, Any]]:
    """The verdicts as `--json` carries them."""
    return [{"gate": r.gate.text, "metric": r.gate.name, "op": r.gate.op,
             "threshold": r.gate.threshold, "value": r.value, "passed": r.passed,
             "note": r.note} for r in results]
