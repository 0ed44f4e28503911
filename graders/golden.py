"""Golden sets: what a judge is measured against — contexts a person has labelled.

A golden set is a YAML or JSON-lines file, kept next to the scenarios and versioned with them:

    judge: polite_reply          # the judge (criterion) the labels are for; optional
    examples:
      - id: 3f2a…-9c1d:4         # optional; `<episode id>:<step>` or `<episode id>:outcome`
        label: fail              # pass / fail (yes/no, true/false), or a score on a 1–5 scale
        explanation: promises a refund the policy does not allow
        context:                 # exactly what the judge sees (see graders/judge.py)
          node: reply
          task: {...}
          decision: {kind: tool_call, tool: reply, args: {message: ...}}

A top-level list of examples is accepted too; in JSON lines, each line is one example. An
example without a label is skipped (an exported file starts with every label empty).

`trialrun export golden RUN_ID [--node N] [--sample K]` writes the steps (or outcomes) of a
stored run in this shape for a person to label; their ids name the run's items, so once
labelled and passed to `trialrun calibrate`, they also form the labelled subset of that run
that prediction-powered inference corrects the judge's rate with (`--sample` draws a seeded
random subset: PPI needs the labelled items to be a random sample of the run's).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from trialrun.graders.judge import Label, outcome_context, step_context

__all__ = ["Golden", "GoldenExample", "RunItem", "export_golden", "item_id", "load_golden",
           "run_items", "write_golden"]


class GoldenExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    label: Label | None = None
    explanation: str = ""
    context: dict[str, Any] | str


@dataclass
class Golden:
    path: str
    judge: str | None  # the criterion the labels are for, when the file says
    examples: list[GoldenExample]
    lines: list[int | None]  # where each example starts
    digest: str  # sha256 of the file's bytes

    def where(self, i: int) -> str:
        line = self.lines[i]
        return f"{self.path}:{line}" if line else f"{self.path}: examples[{i}]"


def _issues_error(issues: list[Any]) -> Exception:
    from trialrun.scenarios.issues import ScenarioError

    return ScenarioError(issues)


def load_golden(path: str | Path) -> Golden:
    """Read a golden set; every problem as `file:line:column: field: message` (raises
    ScenarioError, an InvalidScenario)."""
    from trialrun.scenarios.issues import Collector, Issue, in_line_order
    from trialrun.scenarios.yaml_source import SourceMap, YamlSyntaxError, load_yaml

    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise _issues_error([Issue(str(p), None, None, "", f"cannot read: {e.strerror}")]) \
            from None
    text = raw.decode("utf-8", errors="replace")
    digest = hashlib.sha256(raw).hexdigest()
    if p.suffix in (".jsonl", ".ndjson"):
        return _load_jsonl(p, text, digest)
    try:
        data, smap = load_yaml(text)
    except YamlSyntaxError as e:
        pos = e.position
        raise _issues_error([Issue(str(p), pos.line if pos else None,
                                   pos.column if pos else None, "", str(e))]) from None
    out = Collector(str(p), smap or SourceMap(), data)
    judge = None
    prefix: tuple[Any, ...] = ()
    if isinstance(data, dict):
        unknown = [k for k in data if k not in ("judge", "examples", "run", "note")]
        for k in unknown:
            out.add((k,), "unknown key; expected judge, examples (and run, note)")
        judge = data.get("judge")
        if judge is not None and not isinstance(judge, str):
            out.add(("judge",), "expected the judge's name")
            judge = None
        items = data.get("examples")
        prefix = ("examples",)
        if items is None:
            out.add((), "no `examples:` list")
            items = []
    else:
        items = data
    if not isinstance(items, list):
        out.add(prefix, "expected a list of examples (each with context, label, explanation)")
        items = []
    examples, lines = [], []
    for i, item in enumerate(items):
        loc = (*prefix, i)
        try:
            examples.append(GoldenExample.model_validate(item))
        except ValidationError as e:
            out.add_validation(loc, e, GoldenExample)
            continue
        pos = smap.find(loc) if smap else None
        lines.append(pos.line if pos else None)
    if out.errors:
        raise _issues_error(in_line_order(out.errors))
    return Golden(str(p), judge, examples, lines, digest)


def _load_jsonl(p: Path, text: str, digest: str) -> Golden:
    from trialrun.scenarios.issues import Issue

    examples, lines, issues = [], [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            examples.append(GoldenExample.model_validate_json(line))
            lines.append(n)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            msg = "not valid JSON" if err["type"] == "json_invalid" else err["msg"]
            issues.append(Issue(str(p), n, 1, where, msg))
    if issues:
        raise _issues_error(issues)
    return Golden(str(p), None, examples, lines, digest)


# --- the items of a stored run -------------------------------------------------------------
def item_id(episode_id: str, step: int | None) -> str:
    """The id of a run's item: a step (`<episode id>:<index>`) or an outcome."""
    return f"{episode_id}:{'outcome' if step is None or step < 0 else step}"


@dataclass
class RunItem:
    item: str
    episode_id: str
    step_idx: int  # -1: the outcome
    node: str | None
    context: dict[str, Any]
    group: tuple[str, str, int, int]  # (scenario, task, seed, trial): pairs across agents
    agent: str


def run_items(store: Any, run_id: str, nodes: set[str] | None = None) -> Iterator[RunItem]:
    """The judgeable items of a stored run, by scenario, task, seed and trial: with `nodes`,
    every scored step at those nodes; without, every scored episode's outcome. The contexts
    are the ones a judge sees live (`step_context`, `outcome_context`). Two columnar reads,
    no per-episode queries."""
    from trialrun.runner import scenarios_of_run
    from trialrun.trajectory import Decision, Step, ToolResult

    run_id = store.get_run(run_id).id
    try:
        tasks = {ls.name: {t["id"]: t for t in ls.tasks} for ls in scenarios_of_run(store, run_id)}
    except Exception:  # noqa: BLE001 - a run whose scenarios no longer load: task ids only
        tasks = {}
    e = store.episode_columns(run_id, ["id", "scenario", "task", "seed", "trial", "agent",
                                       "end_reason"])
    s = store.step_columns(run_id, ["episode_id", "idx", "node", "decision", "result"])
    steps: dict[str, list[Step]] = {}
    for eid, idx, node, decision, result in zip(s["episode_id"], s["idx"], s["node"],
                                                s["decision"], s["result"], strict=True):
        if nodes is None or node in nodes:
            steps.setdefault(eid, []).append(Step(
                index=idx, node=node, decision=Decision.model_validate_json(decision),
                result=ToolResult.model_validate_json(result) if result else None))
    order = sorted(range(len(e["id"])), key=lambda i: (e["scenario"][i], e["task"][i],
                                                       e["seed"][i], e["trial"][i]))
    for i in order:
        eid, reason = e["id"][i], e["end_reason"][i]
        if reason == "error":
            continue
        scenario, task_id = e["scenario"][i], e["task"][i]
        task = tasks.get(scenario, {}).get(task_id, {"id": task_id})
        group = (scenario, task_id, e["seed"][i], e["trial"][i])
        mine = steps.get(eid, [])
        if nodes is None:
            yield RunItem(item_id(eid, None), eid, -1, None,
                          outcome_context(task, mine, reason), group, e["agent"][i])
            continue
        for st in mine:
            yield RunItem(item_id(eid, st.index), eid, st.index, st.node,
                          step_context(st.node, st.decision, st.result, task), group,
                          e["agent"][i])


def export_golden(store: Any, run_id: str, node: str | None = None, sample: int | None = None,
                  seed: int = 0) -> list[dict[str, Any]]:
    """A run's items as unlabelled golden examples; `sample` draws that many at random
    (seeded), in store order."""
    items = list(run_items(store, run_id, {node} if node else None))
    if sample is not None and sample < len(items):
        keep = set(random.Random(seed).sample(range(len(items)), sample))
        items = [x for i, x in enumerate(items) if i in keep]
    return [{"id": x.item, "label": None, "explanation": "", "context": x.context}
            for x in items]


def write_golden(examples: list[dict[str, Any]], out: Any, *, judge: str | None = None,
                 run_id: str | None = None, jsonl: bool = False) -> None:
    """Write examples as a golden file to a text stream."""
    if jsonl:
        for ex in examples:
            out.write(json.dumps(ex, ensure_ascii=False) + "\n")
        return
    out.write("# A golden set: give each example a label (pass or fail, or a score on the "
              "judge's scale)\n# and say why in `explanation`; unlabelled examples are "
              "skipped. Then:\n#   trialrun calibrate JUDGE.yaml THIS_FILE\n")
    doc = {"judge": judge, **({"run": run_id} if run_id else {}), "examples": examples}
    yaml.safe_dump(doc, out, sort_keys=False, allow_unicode=True, width=100)
