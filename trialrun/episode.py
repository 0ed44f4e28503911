"""The episode loop: world and agent step by step under budgets, every step recorded and graded.

    decide at node n -> checkpoint policy -> human approve/deny -> world executes -> graders

The loop never computes statistics and never writes to the store: it returns an
`EpisodeResult` that holds everything an exact replay needs (decisions verbatim, human
answers, state digests per step).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from trialrun.agents.base import Agent, AgentContext, AgentError, Feedback
from trialrun.agents.registry import agent_class
from trialrun.checkpoints import CheckpointPolicy, Human, HumanAnswer, ReviewRequest, make_human
from trialrun.graders.base import Grader, OutcomeContext, StepContext, build_grader
from trialrun.sandbox.world import ToolError, World, world_class
from trialrun.scenarios.loader import LoadedScenario
from trialrun.trajectory import (
    CheckpointEvent,
    Decision,
    EndReason,
    EpisodeKey,
    EpisodeResult,
    Grade,
    Observation,
    Step,
    ToolResult,
    ToolSpec,
)


class InfraError(Exception):
    """A fault of the harness, a model or a container: retried, recorded, never scored."""


@dataclass
class EpisodePlan:
    """What every episode of one scenario shares, built once: graders, world class, tasks."""

    loaded: LoadedScenario
    world_cls: type[World]
    agent_cls: type[Agent]
    node_graders: dict[str, list[Grader]]
    outcome_graders: list[Grader]
    world_grader: Grader
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, loaded: LoadedScenario) -> EpisodePlan:
        sc = loaded.scenario
        node_graders = {
            node: [build_grader(g.type, g.options, g.name) for g in spec.graders]
            for node, spec in sc.nodes.items()
        }
        outcome = [build_grader(g.type, g.options, g.name) for g in sc.graders]
        world_grader = build_grader("world", {})
        return cls(loaded, world_class(sc.world.type), agent_class(sc.agent.type),
                   node_graders, outcome or [world_grader], world_grader,
                   {t["id"]: t for t in loaded.tasks})


def stable_rng(*parts: object) -> random.Random:
    # str seeds hash with SHA-512 in random.Random: stable across processes and platforms.
    return random.Random(":".join(map(str, parts)))


def check_arguments(spec: ToolSpec, args: dict[str, Any]) -> str | None:
    """A light JSON-schema check of a tool call: required, unknown and primitive types."""
    if not isinstance(args, dict):
        return f"arguments must be an object, got {type(args).__name__}"
    params = spec.parameters
    props = params.get("properties", {})
    missing = [k for k in params.get("required", []) if k not in args]
    if missing:
        return f"{spec.name}: missing required argument(s) {', '.join(missing)}"
    if params.get("additionalProperties") is False:
        unknown = [k for k in args if k not in props]
        if unknown:
            return f"{spec.name}: unknown argument(s) {', '.join(unknown)}; " \
                   f"expected {', '.join(props)}"
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "array": list, "object": dict}
    for k, v in args.items():
        want = props.get(k, {}).get("type")
        if want in types and v is not None and not isinstance(v, types[want]):
            return f"{spec.name}: argument {k} must be {want}, got {type(v).__name__}"
    return None


async def run_episode(
    plan: EpisodePlan,
    key: EpisodeKey,
    *,
    agent: Agent | None = None,
    human: Human | None = None,
    agent_label: str | None = None,
    correct_at: int | None = None,
) -> EpisodeResult:
    """Run one episode; infrastructure faults raise InfraError (the runner retries).

    `correct_at=k` replaces the agent's decision at step k by the world's reference decision
    (counterfactual replay: would fixing this step have saved the episode?)."""
    sc = plan.loaded.scenario
    task = plan.tasks[key.task]
    world = plan.world_cls(sc.world.options, task, key.seed)
    blocking = plan.world_cls.blocking

    async def call(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args) if blocking else fn(*args)

    try:
        return await _loop(plan, key, task, world, call, agent, human, agent_label, correct_at)
    finally:
        try:
            await call(world.close)
        except Exception:  # noqa: BLE001 - closing must not mask the episode's own outcome
            pass


async def _loop(plan, key, task, world, call, agent, human, agent_label,
                correct_at) -> EpisodeResult:
    sc = plan.loaded.scenario
    budgets = sc.budgets
    t0 = time.perf_counter()
    try:
        obs: Observation = await call(world.reset)
    except Exception as e:  # a world that cannot start is an infrastructure fault
        # (bad tasks of in-process worlds are caught at load time by World.check_task)
        raise InfraError(f"world {sc.world.type!r} failed to start: {type(e).__name__}: {e}") \
            from e
    tools = await call(world.tools)
    tool_by_name = {t.name: t for t in tools}
    irreversible_nodes = {n for n, s in sc.nodes.items() if s.irreversible}
    reversible_nodes = {n for n, s in sc.nodes.items() if s.irreversible is False}
    if agent is None:
        agent = plan.agent_cls(sc.agent.params)
    # The agent sees the task's id and instruction only: the rest is ground truth and the
    # simulated user's private knowledge, which must never leak into a model's prompt.
    public_task = {"id": task["id"], "instruction": task.get("instruction", "")}
    ctx = AgentContext(instruction=task.get("instruction") or obs.text, tools=tools,
                       task=public_task,
                       seed=key.seed, params=sc.agent.params,
                       rng=stable_rng("agent", key.seed, key.trial, key.task))
    if human is None:
        human = make_human(sc.checkpoints.human, stable_rng("human", key.seed, key.trial))
    policy = CheckpointPolicy(sc.checkpoints)
    try:
        await agent.start(ctx, obs)
    except AgentError as e:
        raise InfraError(f"agent failed to start: {e}") from e

    steps: list[Step] = []
    reviews = denials_in_row = 0
    human_seconds = 0.0
    cost = 0.0
    tokens = 0
    end = EndReason.truncated
    end_note = f"step budget of {budgets.max_steps} ran out"

    # One cancel scope for the whole loop: a scope per await would cost more than a step.
    with anyio.move_on_after(budgets.max_wall_time) as wall:
        for index in range(budgets.max_steps):
            ts = time.perf_counter()
            try:
                decision = await agent.decide(obs)
            except AgentError as e:
                raise InfraError(f"agent: {e}") from e
            if not isinstance(decision, Decision):
                raise InfraError(f"agent returned {type(decision).__name__}, not a Decision")
            if index == correct_at:
                decision = await call(world.reference_decision, decision) or decision
            node = decision.node or sc.node_map.get(decision.tool or "", decision.tool or "unknown")
            if decision.node != node:
                decision = decision.model_copy(update={"node": node})
            cost += decision.cost
            tokens += decision.tokens

            spec = tool_by_name.get(decision.tool or "")
            bad_call = None
            if decision.kind == "tool_call":
                bad_call = (f"unknown tool {decision.tool!r}; tools: {', '.join(tool_by_name)}"
                            if spec is None else check_arguments(spec, decision.args))
            verdict = None if bad_call else await call(world.judge, decision)
            irreversible = (node in irreversible_nodes) or (
                spec is not None and spec.irreversible and node not in reversible_nodes)

            # --- checkpoint ---
            event: CheckpointEvent | None = None
            if bad_call is None and policy.should_review(
                    ReviewRequest(decision, index, irreversible, reviews)):
                correct = verdict.correct if verdict else None
                ans: HumanAnswer = human.review(decision, correct)
                reviews += 1
                human_seconds += ans.seconds
                event = CheckpointEvent(policy=policy.name, reviewed=True, approved=ans.approved,
                                        reviewer=ans.reviewer, seconds=ans.seconds, cost=ans.cost,
                                        decision_was_correct=correct)
                world.clock.advance(ans.seconds)
                if not ans.approved:
                    denials_in_row += 1
                    action = sc.checkpoints.on_deny
                    if action == "retry" and denials_in_row > sc.checkpoints.max_retries:
                        action = "abort"
                    if action == "takeover":
                        ref = await call(world.reference_decision, decision)
                        action = "takeover" if ref is not None else "retry"
                    event.action = action
                    if action in ("retry", "abort"):
                        step = Step(index=index, node=node, decision=decision, checkpoint=event,
                                    help_needed=bool(verdict and verdict.help_needed),
                                    irreversible=irreversible,
                                    state_digest=await call(world.digest),
                                    sim_time=world.clock.now,
                                    wall_us=int((time.perf_counter() - ts) * 1e6))
                        step.grades = _grade_step(plan, node, decision, verdict, None, task, world)
                        steps.append(step)
                        if action == "abort":
                            end, end_note = EndReason.aborted, "a human denied and the policy stops"
                            break
                        await agent.feedback(Feedback(decision=decision, denied=True))
                        continue
                    decision_to_run = ref  # the human does this step right
                else:
                    denials_in_row = 0
                    decision_to_run = decision
            else:
                decision_to_run = decision

            # --- effect ---
            result: ToolResult | None = None
            human_reply: str | None = None
            finished = False
            if bad_call is not None:
                result = ToolResult(ok=False, error=bad_call, fault="agent")
            elif decision_to_run.kind == "tool_call":
                try:
                    result = await call(world.execute, node, decision_to_run.tool,
                                        decision_to_run.args)
                except ToolError as e:
                    result = ToolResult(ok=False, error=str(e), fault="agent")
            elif decision_to_run.kind == "ask_human":
                human_reply = await call(world.human_answer, decision_to_run.text or "")
                world.clock.advance(sc.checkpoints.human.seconds_per_review)
                human_seconds += sc.checkpoints.human.seconds_per_review
                result = ToolResult(ok=True, output=human_reply)
            elif decision_to_run.kind == "message":
                obs_msg = await call(world.on_message, decision_to_run.text or "")
                result = ToolResult(ok=True, output=obs_msg.text)
            else:
                finished = True
            if not finished:
                world.clock.advance(0 if decision_to_run.kind == "tool_call"
                                    else plan.world_cls.sim_seconds_per_step)

            step = Step(index=index, node=node, decision=decision, result=result, checkpoint=event,
                        help_needed=bool(verdict and verdict.help_needed),
                        irreversible=irreversible, state_digest=await call(world.digest),
                        sim_time=world.clock.now)
            grades = _grade_step(plan, node, decision, verdict, result, task, world)
            if result is not None and not result.ok and result.fault == "agent":
                # A call the world rejects (bad arguments, against the rules) is the agent's error.
                grades.append(Grade(grader="valid_call", passed=False, score=0.0,
                                    reason=result.error or "rejected", node=node))
            step.grades = grades
            step.wall_us = int((time.perf_counter() - ts) * 1e6)
            steps.append(step)
            if finished:
                end, end_note = EndReason.finished, decision.text or "agent finished"
                break
            await agent.feedback(Feedback(
                decision=decision, result=result, human_answer=human_reply,
                executed=decision_to_run if decision_to_run is not decision else None))
            status = await call(world.status)
            if status.done:
                end, end_note = EndReason.terminated, status.reason
                break
            obs = await call(world.observe)
            if budgets.max_sim_time is not None and world.clock.now >= budgets.max_sim_time:
                end, end_note = EndReason.truncated, "simulated-time budget ran out"
                break
            if budgets.max_cost is not None and cost >= budgets.max_cost:
                end, end_note = EndReason.truncated, "cost budget ran out"
                break
    if wall.cancelled_caught:
        end, end_note = EndReason.truncated, "wall-time budget ran out"

    await agent.close()
    outcome = await call(world.outcome)
    octx = OutcomeContext(task=task, outcome=outcome, end_reason=end.value, steps=len(steps))
    outcome_grades = [g.grade_outcome(octx) for g in plan.outcome_graders]
    trusted = [g for g in outcome_grades if g.trust == "trusted"] or outcome_grades
    success = all(g.passed for g in trusted) if end != EndReason.aborted else False
    scores = [g.score for g in outcome_grades]
    status = await call(world.status)
    return EpisodeResult(
        key=key, agent=agent_label or sc.agent.label, end_reason=end, success=success,
        score=sum(scores) / len(scores) if scores else None, steps=steps,
        outcome_grades=outcome_grades,
        metrics={**status.metrics, "reviews": reviews, "human_seconds": human_seconds},
        sim_time=world.clock.now, wall_ms=(time.perf_counter() - t0) * 1e3, cost=cost,
        tokens=tokens, end_note=end_note,
        ambiguous=bool(task.get("ambiguous")), user_fault=bool(outcome.get("user_fault")),
        final_digest=await call(world.digest),
    )


def _grade_step(plan: EpisodePlan, node: str, decision: Decision, verdict, result, task,
                world: World) -> list[Grade]:
    graders = plan.node_graders.get(node, ())
    ctx = StepContext(node=node, decision=decision, verdict=verdict, result=result, task=task)
    if any(g.needs_state for g in graders):
        ctx.state = world.state()
    grades = []
    g = plan.world_grader.grade_step(ctx)
    if g is not None:
        grades.append(g)
    for grader in graders:
        g = grader.grade_step(ctx)
        if g is not None:
            grades.append(g)
    return grades
