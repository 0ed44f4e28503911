"""τ-bench and τ²-bench result files.

τ-bench (sierra-research/tau-bench, `run.py`) writes a JSON list of `EnvRunResult`:
`{task_id, trial, reward, info, traj}`, where `info.task.actions` are the gold actions
(`{name, kwargs}`), `info.reward_info` the reward's breakdown, `info.error` an exception the
run caught, and `traj` the OpenAI-format messages (assistant `tool_calls` with JSON-string
`arguments`, `tool` results; the ReAct agents write `Action: {"name", "arguments"}` in the
assistant's text instead).

τ²-bench (sierra-research/tau2-bench, `data_model/simulation.py`) writes `Results`:
`{info, tasks, simulations}`; a simulation has `task_id`, `trial`, `termination_reason`,
`reward_info` (`reward`, `action_checks` with each gold action's `tool_type`), `messages`
(assistant `tool_calls` as `{id, name, arguments}` mappings, `tool` messages with `error`),
`agent_cost` and `duration`; a task's gold actions are `evaluation_criteria.actions` whose
`requestor` is the assistant (`compare_args` limits which arguments must match).

What they become: one episode per (task, trial), seed 0 (the trials of a task share it, as
pass^k needs; τ²'s own seed is kept in the episode's metrics); success is a reward within
1e-6 of 1, as both harnesses count it; a step per agent decision (a tool call at the node
named after the tool, a message at `respond`), each call of a tool that changes the world
graded against the gold actions (`GoldActions`); `transfer_to_human_agents` is an
`ask_human` decision. τ² termination reasons map to end reasons: agent_stop → finished,
user_stop → terminated, max_steps/timeout/context_window_exceeded → truncated (never a
success), infrastructure_error/unexpected_error → error (not scored), user_error →
terminated with the failure put on the simulated user. A τ-bench entry whose `info` holds an
`error` (an exception the harness caught) is imported as an infrastructure error, not
scored — τ-bench's own pass^k counts it as a failure.
"""

from __future__ import annotations

import json
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


# --- τ-bench ---------------------------------------------------------------------------------
class _Action(Loose):
    name: str
    kwargs: dict[str, Any] = {}


class _Task(Loose):
    actions: list[_Action] = []
    instruction: str = ""
    user_id: str | None = None


class _Info(Loose):
    task: _Task | None = None
    reward_info: dict[str, Any] | None = None
    error: str | None = None
    user_cost: float | None = None


class _RunResult(Loose):
    task_id: int | str
    trial: int = 0
    reward: float
    info: _Info = _Info()
    traj: list[dict[str, Any]] = []


# --- τ²-bench --------------------------------------------------------------------------------
class _T2ToolCall(Loose):
    id: str = ""
    name: str
    arguments: dict[str, Any] | str = {}
    requestor: str = "assistant"


class _T2Message(Loose):
    role: str
    content: Any = None
    tool_calls: list[_T2ToolCall] | None = None
    id: str | None = None
    error: bool = False
    cost: float | None = None
    usage: dict[str, Any] | None = None
    tool_messages: list[dict[str, Any]] | None = None


class _T2Action(Loose):
    name: str
    arguments: dict[str, Any] = {}
    requestor: str = "assistant"
    compare_args: list[str] | None = None


class _T2Criteria(Loose):
    actions: list[_T2Action] | None = None


class _T2Task(Loose):
    id: str | int
    evaluation_criteria: _T2Criteria | None = None


class _T2Reward(Loose):
    reward: float
    action_checks: list[dict[str, Any]] | None = None


class _T2Simulation(Loose):
    id: str = ""
    task_id: str | int
    trial: int | None = None
    seed: int | None = None
    termination_reason: str = "agent_stop"
    reward_info: _T2Reward | None = None
    messages: list[_T2Message] | None = None
    agent_cost: float | None = None
    duration: float | None = None


class _T2Results(Loose):
    info: dict[str, Any] = {}
    tasks: list[_T2Task] = []
    simulations: list[_T2Simulation]


_T2_END = {"agent_stop": EndReason.finished, "user_stop": EndReason.terminated,
           "max_steps": EndReason.truncated, "timeout": EndReason.truncated,
           "context_window_exceeded": EndReason.truncated,
           "too_many_errors": EndReason.terminated, "agent_error": EndReason.terminated,
           "user_error": EndReason.terminated, "infrastructure_error": EndReason.error,
           "unexpected_error": EndReason.error}


def _success(reward: float) -> bool:
    return abs(reward - 1.0) <= SUCCESS_TOLERANCE


@register("importer", "tau-bench")
class TauBench(Importer):
    description = "τ-bench result files (JSON list) and τ²-bench results (tasks + simulations)"

    def read(self, path: Path) -> list[EpisodeResult]:
        data = load_json(path)
        if isinstance(data, list):
            return self._tau1(path, data)
        if isinstance(data, dict) and "simulations" in data:
            return self._tau2(path, data)
        raise ImportFormatError(path, "", "expected a τ-bench result file (a JSON list of "
                                "{task_id, trial, reward, info, traj}) or a τ²-bench results "
                                "file (a JSON object with 'simulations')")

    # -- τ-bench --------------------------------------------------------------------------
    def _tau1(self, path: Path, data: list[Any]) -> list[EpisodeResult]:
        scenario = self.scenario or "tau-bench"
        out = []
        for i, raw in enumerate(data):
            try:
                r = _RunResult.model_validate(raw)
            except ValidationError as e:
                raise validation_error(path, e, f"[{i}]") from None
            task = r.info.task
            gold = GoldActions([(a.name, a.kwargs, None) for a in (task.actions if task else [])
                                if a.name != RESPOND])
            steps = _openai_steps(r.traj, gold)
            key = EpisodeKey(scenario=scenario, task=str(r.task_id), seed=0, trial=r.trial)
            if r.info.error is not None:
                out.append(EpisodeResult(key=key, agent="tau-bench agent",
                                         end_reason=EndReason.error, steps=steps,
                                         error=_short(r.info.error),
                                         end_note="the τ-bench harness caught an exception"))
                continue
            ok = _success(r.reward)
            out.append(EpisodeResult(
                key=key, agent="tau-bench agent", end_reason=EndReason.terminated,
                end_note="the conversation ended", success=ok, score=r.reward, steps=steps,
                outcome_grades=[Grade(grader="reward", passed=ok, score=r.reward,
                                      reason=_reward_reason(r.reward, r.info.reward_info,
                                                            gold))]))
        return out

    # -- τ²-bench -------------------------------------------------------------------------
    def _tau2(self, path: Path, data: dict[str, Any]) -> list[EpisodeResult]:
        try:
            res = _T2Results.model_validate(data)
        except ValidationError as e:
            raise validation_error(path, e) from None
        env = (res.info.get("environment_info") or {}).get("domain_name")
        scenario = self.scenario or (f"tau2-bench/{env}" if env else "tau2-bench")
        agent_info = res.info.get("agent_info") or {}
        agent = str(agent_info.get("llm") or agent_info.get("implementation") or
                    "tau2-bench agent")
        tasks = {str(t.id): t for t in res.tasks}
        trials: dict[str, int] = {}
        out = []
        for i, sim in enumerate(res.simulations):
            tid = str(sim.task_id)
            task = tasks.get(tid)
            checks = (sim.reward_info.action_checks or []) if sim.reward_info else []
            types = {str((c.get("action") or {}).get("name")): str(c.get("tool_type"))
                     for c in checks if c.get("tool_type")}
            crit = task.evaluation_criteria if task else None
            gold = GoldActions([(a.name, a.arguments, a.compare_args)
                                for a in ((crit.actions or []) if crit else [])
                                if a.requestor == "assistant"], types)
            steps, cost, tokens = _tau2_steps(sim.messages or [], gold)
            trial = sim.trial if sim.trial is not None else trials.get(tid, 0)
            trials[tid] = trial + 1
            end = _T2_END.get(sim.termination_reason)
            if end is None:
                raise ImportFormatError(path, f"simulations[{i}].termination_reason",
                                        f"unknown reason {sim.termination_reason!r} "
                                        f"(expected one of {', '.join(_T2_END)})")
            key = EpisodeKey(scenario=scenario, task=tid, seed=0, trial=trial)
            metrics = {} if sim.seed is None else {"source_seed": float(sim.seed)}
            common = dict(key=key, agent=agent, end_reason=end, steps=steps,
                          cost=sim.agent_cost if sim.agent_cost is not None else cost,
                          tokens=tokens, wall_ms=1000 * (sim.duration or 0.0),
                          end_note=sim.termination_reason, metrics=metrics)
            if end == EndReason.error:
                out.append(EpisodeResult(**common, error=sim.termination_reason))
                continue
            reward = sim.reward_info.reward if sim.reward_info else 0.0
            ok = _success(reward) and end != EndReason.truncated
            out.append(EpisodeResult(
                **common, success=ok, score=reward,
                user_fault=sim.termination_reason == "user_error" and not ok,
                outcome_grades=[Grade(grader="reward", passed=ok, score=reward,
                                      reason=_reward_reason(reward, None, gold))]))
        return out


def _short(text: str, limit: int = 500) -> str:
    text = str(text).strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _reward_reason(reward: float, info: dict[str, Any] | None, gold: GoldActions) -> str:
    parts = [f"reward {reward:g}"]
    inner = (info or {}).get("info") or {}
    if "r_actions" in inner:
        parts.append("database matches the gold actions' result" if inner["r_actions"]
                     else "database differs from the gold actions' result")
    outputs = inner.get("outputs")
    if isinstance(outputs, dict):
        missing = [k for k, v in outputs.items() if not v]
        if missing:
            parts.append("missing output(s): " + ", ".join(map(str, missing)))
    missed = gold.missed()
    if missed:
        parts.append("gold action(s) never taken: " + ", ".join(missed[:5]))
    return "; ".join(parts)


def _step(index: int, decision: Decision, result: ToolResult | None,
          gold: GoldActions) -> Step:
    grades = []
    if decision.kind in ("tool_call", "ask_human") and decision.tool and gold:
        g = gold.grade(decision.tool, decision.args, decision.node)
        if g is not None:
            grades.append(g)
    if decision.args_error:
        grades = [Grade(grader="arguments", passed=False, node=decision.node,
                        reason=decision.args_error)]
    help_needed = decision.kind == "ask_human" and decision.tool in gold.tools
    return Step(index=index, node=decision.node, decision=decision, result=result,
                grades=grades, help_needed=help_needed,
                irreversible=decision.kind == "tool_call" and bool(decision.tool)
                and not is_read_only(decision.tool, gold.tool_types))


def _call(tool: str, raw_args: Any) -> Decision:
    args, err = parse_args(raw_args)
    kind = "ask_human" if tool in ASK_TOOLS else "tool_call"
    return Decision(kind=kind, node=tool, tool=tool, args=args, args_error=err,
                    text=None if kind == "tool_call" else json.dumps(args)[:200])


def _openai_steps(traj: list[dict[str, Any]], gold: GoldActions) -> list[Step]:
    """τ-bench's messages: assistant tool calls (or ReAct `Action:` text) and their results."""
    steps: list[Step] = []
    results: dict[str, ToolResult] = {}
    for m in traj:
        if m.get("role") == "tool" and m.get("tool_call_id"):
            content = text_of(m.get("content"))
            bad = content.startswith(("Error:", "Unknown action"))
            results[str(m["tool_call_id"])] = ToolResult(ok=not bad, output=content,
                                                         error=content if bad else None)
    pending: list[tuple[Decision, str | None]] = []
    for m in traj:
        if m.get("role") != "assistant":
            continue
        calls = m.get("tool_calls") or []
        if calls:
            for c in calls:
                fn = c.get("function") or {}
                pending.append((_call(str(fn.get("name", "")), fn.get("arguments")),
                                c.get("id")))
            continue
        text = text_of(m.get("content"))
        action = _react_action(text)
        if action is not None and action[0] != RESPOND:
            pending.append((_call(action[0], action[1]), None))
        else:
            said = (action[1] or {}).get("content", text) if action else text
            pending.append((Decision(kind="message", node=RESPOND, text=str(said)), None))
    for i, (d, call_id) in enumerate(pending):
        steps.append(_step(i, d, results.get(call_id) if call_id else None, gold))
    return steps


def _react_action(text: str) -> tuple[str, Any] | None:
    """A ReAct agent's `Action: {"name": ..., "arguments": ...}`, if the text has one."""
    if "Action:" not in text:
        return None
    try:
        parsed = json.loads(text.split("Action:")[-1].strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or "name" not in parsed:
        return None
    return str(parsed["name"]), parsed.get("arguments") or {}


def _tau2_steps(messages: list[_T2Message], gold: GoldActions
                ) -> tuple[list[Step], float, int]:
    results: dict[str, ToolResult] = {}
    for m in messages:
        if m.role != "tool":
            continue
        for t in ([m.model_dump()] if m.tool_messages is None else m.tool_messages):
            if t.get("requestor", "assistant") != "assistant" or not t.get("id"):
                continue
            content = text_of(t.get("content"))
            results[str(t["id"])] = ToolResult(ok=not t.get("error"), output=content,
                                               error=content if t.get("error") else None)
    steps: list[Step] = []
    cost, tokens = 0.0, 0
    for m in messages:
        if m.role != "assistant":
            continue
        cost += m.cost or 0.0
        usage = m.usage or {}
        tokens += int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
        if m.tool_calls:
            for c in m.tool_calls:
                steps.append(_step(len(steps), _call(c.name, c.arguments),
                                   results.get(c.id), gold))
        elif text_of(m.content):
            steps.append(_step(len(steps), Decision(kind="message", node=RESPOND,
                                                     text=text_of(m.content)), None, gold))
    return steps, cost, tokens
