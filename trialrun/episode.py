"""The episode loop: world and agent step by step under budgets, every step recorded and graded.

Each step goes through typed stages, each a method of `Episode` testable alone:

    decide -> validate the call -> judge -> checkpoint -> human -> execute -> grade -> budget

The loop never computes statistics and never writes to the store: it returns an
`EpisodeResult` that holds everything an exact replay needs (decisions verbatim, human
answers, state digests per step). Graders and humans are awaited, so an LLM judge or a real
reviewer never blocks the event loop; a world whose tools block on I/O (containers) runs in
a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import anyio
from pydantic import BaseModel

from trialrun.agents.base import Agent, AgentContext, AgentError, Feedback
from trialrun.checkpoints import CheckpointPolicy, ReviewRequest
from trialrun.errors import InfraError
from trialrun.graders.base import OutcomeContext, StepContext
from trialrun.humans import AwaitingReview, Human, deny_choices
from trialrun.plan import ScenarioPlan, stable_rng
from trialrun.sandbox.world import ToolError, Verdict, World, WorldStatus
from trialrun.scope import episode_scope
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

__all__ = ["Episode", "InfraError", "check_arguments", "run_episode"]

_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": (int, float),
                          "boolean": bool, "array": list, "object": dict}


def check_arguments(spec: ToolSpec, args: Any) -> str | None:
    """A light JSON-schema check of a tool call (required, unknown, primitive types), for
    tools whatever declared them; a world's `@tool` methods check strictly again."""
    return _checker(spec)(args)


_Check = Callable[[Any], "str | None"]
# Compiled checks by tool spec (held with their spec, so an id is never reused meanwhile):
# worlds hand out the same specs every episode, and reading the schema costs more than the
# check. Bounded: specs built fresh per episode (a world's own `tools()`) start it over.
_CHECKS: dict[int, tuple[ToolSpec, _Check]] = {}


def _checker(spec: ToolSpec) -> _Check:
    held = _CHECKS.get(id(spec))
    if held is not None and held[0] is spec:
        return held[1]
    if len(_CHECKS) >= 4096:
        _CHECKS.clear()
    check = _compile_check(spec)
    _CHECKS[id(spec)] = (spec, check)
    return check


def _compile_check(spec: ToolSpec) -> _Check:
    params = spec.parameters
    props = params.get("properties", {})
    required = tuple(params.get("required", []))
    closed = params.get("additionalProperties") is False
    types = {k: (_TYPES[p["type"]], p["type"]) for k, p in props.items()
             if isinstance(p, dict) and isinstance(p.get("type"), str) and p["type"] in _TYPES}
    name = spec.name

    def check(args: Any) -> str | None:
        if not isinstance(args, dict):
            return f"arguments must be an object, got {type(args).__name__}"
        missing = [k for k in required if k not in args]
        if missing:
            return f"{name}: missing required argument(s) {', '.join(missing)}"
        if closed:
            unknown = [k for k in args if k not in props]
            if unknown:
                return f"{name}: unknown argument(s) {', '.join(unknown)}; " \
                       f"expected {', '.join(props)}"
        for k, v in args.items():
            want = types.get(k)
            if want is not None and v is not None and (
                    not isinstance(v, want[0]) or (want[1] != "boolean" and isinstance(v, bool))):
                return f"{name}: argument {k} must be {want[1]}, got {type(v).__name__}"
        return None

    return check


DenyAction = Literal["retry", "takeover", "abort"]


class _Untimed:
    """In place of a cancel scope where nothing can wait: a timer could never fire."""

    cancelled_caught = False

    def __enter__(self) -> _Untimed:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_UNTIMED = _Untimed()


@dataclass
class Review:
    """The checkpoint stage's outcome for one decision."""

    event: CheckpointEvent
    action: Literal["proceed", "retry", "takeover", "abort"]
    run: Decision | None  # what takes effect: the decision, the human's, or nothing


@dataclass
class Effect:
    result: ToolResult | None
    human_reply: str | None = None
    finished: bool = False


async def run_episode(plan: ScenarioPlan, key: EpisodeKey, *, agent: Agent | None = None,
                      human: Human | None = None, agent_label: str | None = None,
                      correct_at: int | None = None) -> EpisodeResult:
    """Run one episode; infrastructure faults raise InfraError (the executor retries).

    `correct_at=k` replaces the agent's decision at step k by the world's reference decision
    (counterfactual replay: would fixing this step have saved the episode?)."""
    episode = Episode(plan, key, agent=agent, human=human, agent_label=agent_label,
                      correct_at=correct_at)
    try:
        return await episode.run()
    finally:
        try:
            await episode.call(episode.world.close)
        except Exception:  # noqa: BLE001 - closing must not mask the episode's own outcome
            pass


class Episode:
    """One episode's state and its stages."""

    def __init__(self, plan: ScenarioPlan, key: EpisodeKey, *, agent: Agent | None = None,
                 human: Human | None = None, policy: CheckpointPolicy | None = None,
                 agent_label: str | None = None, correct_at: int | None = None) -> None:
        self.plan = plan
        self.sc = plan.scenario
        self.key = key
        self.task = plan.tasks[key.task]
        self.world: World = plan.new_world(key)
        self.agent = agent or plan.new_agent()
        # The scenario's human is built when a checkpoint first asks it (most episodes never
        # do; seeding its generator costs more than a step).
        self._human = human
        prefix = plan.prefix_for(key) if agent is None and human is None else None
        if prefix is not None:  # a regression case that starts where the agent went wrong
            from trialrun.humans import HumanAnswer, RecordedHuman
            from trialrun.replay.exact import RecordedAgent

            self.agent = RecordedAgent(prefix.decisions, then=self.agent)
            self.human = RecordedHuman([HumanAnswer(**a.model_dump()) for a in prefix.answers],
                                       then=self.human)
        self.policy = policy or plan.new_policy()
        self.agent_label = agent_label or self.sc.agent.label
        self.correct_at = correct_at
        self.blocking = plan.world_cls.blocking
        # Whether anything here may wait outside this process: then a timer bounds the wall
        # time. An episode in which nothing waits never lets the event loop run a timer (one
        # would only cost a cancel scope, more than a step), so the loop checks per step.
        human = self._human if self._human is not None else plan.loaded.human_cls
        self.waits = self.blocking or plan.graders_wait or getattr(self.agent, "waits", True) \
            or getattr(human, "waits", True)
        # An agent that keeps the base (no-op) `feedback` is not sent any: building it is
        # most of what a step costs such an agent.
        self.wants_feedback = type(self.agent).feedback is not Agent.feedback
        self.steps: list[Step] = []
        self.reviews = 0
        self.denials_in_row = 0
        self.human_seconds = 0.0
        self.cost = 0.0
        self.tokens = 0
        self.tools: dict[str, ToolSpec] = {}

    @property
    def human(self) -> Human:
        if self._human is None:
            self._human = self.plan.new_human(self.key)
        return self._human

    @human.setter
    def human(self, human: Human) -> None:
        self._human = human

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a world hook: in a worker thread for worlds that block on I/O."""
        return await anyio.to_thread.run_sync(fn, *args) if self.blocking else fn(*args)

    async def hook(self, name: str, returns: type[BaseModel], *args: Any) -> Any:
        """Call the world hook `name` and check what it returns: a world that breaks its
        contract is a harness fault with a message that names the hook."""
        fn = getattr(self.world, name)
        out = await anyio.to_thread.run_sync(fn, *args) if self.blocking else fn(*args)
        if not isinstance(out, returns):
            self.broken(name, out, returns)
        return out

    def broken(self, name: str, out: Any, returns: type) -> NoReturn:
        """A world broke a hook's contract: a harness fault that names the hook."""
        raise InfraError(f"world {self.sc.world.type!r}: {name}() returned "
                         f"{type(out).__name__}, expected {returns.__name__}")

    # --- the loop ----------------------------------------------------------------------
    async def run(self) -> EpisodeResult:
        t0 = time.perf_counter()
        try:
            obs: Observation = await self.hook("reset", Observation)
            self.tools = {t.name: t for t in await self.call(self.world.tools)}
        except InfraError:
            raise
        except Exception as e:  # a world that cannot start is an infrastructure fault
            raise InfraError(f"world {self.sc.world.type!r} failed to start: "
                             f"{type(e).__name__}: {e}") from e
        # The agent sees the task's id and instruction only: the rest is ground truth and the
        # simulated user's private knowledge, which must never leak into a model's prompt.
        ctx = AgentContext(
            instruction=self.task.get("instruction") or obs.text,
            tools=list(self.tools.values()),
            task={"id": self.task["id"], "instruction": self.task.get("instruction", "")},
            seed=self.key.seed, rng=stable_rng("agent", self.key.seed, self.key.trial,
                                               self.key.task))
        budgets = self.sc.budgets
        end, note = EndReason.truncated, f"step budget of {budgets.max_steps} ran out"
        started = False
        scope = episode_scope.set(episode_scope.get().with_(key=str(self.key)))
        try:
            # The agent is closed (connections, processes, its own task) whatever ends this.
            async with self.agent.running(ctx, obs):
                started = True
                # One cancel scope for the whole loop (a scope per await costs more than a
                # step), and none where nothing can wait (`self.waits`).
                with anyio.move_on_after(budgets.max_wall_time) if self.waits \
                        else _UNTIMED as wall:
                    for index in range(budgets.max_steps):
                        ended = await self.step(index, obs)
                        if ended is not None:
                            end, note = ended
                            break
                        if self.blocking:
                            obs = await self.hook("observe", Observation)
                        else:
                            obs = self.world.observe()
                            if not isinstance(obs, Observation):
                                self.broken("observe", obs, Observation)
                        over = self.over_budget(t0)
                        if over is not None:
                            end, note = EndReason.truncated, over
                            break
        except AgentError as e:
            if started:
                raise InfraError(f"agent: {e}") from e
            raise InfraError(f"agent failed to start: {e}") from e
        finally:
            episode_scope.reset(scope)
        if wall.cancelled_caught:
            end, note = EndReason.truncated, "wall-time budget ran out"
        return await self.finish(end, note, t0)

    async def step(self, index: int, obs: Observation) -> tuple[EndReason, str] | None:
        """One step through every stage; the end reason if the episode ends here."""
        ts = time.perf_counter()
        decision = await self.decide(index, obs)
        node = decision.node
        bad_call = self.validate_call(decision)
        verdict = None if bad_call else await self.judge(decision)
        spec = self.tools.get(decision.tool or "")
        irreversible = node in self.plan.irreversible_nodes or (
            spec is not None and spec.irreversible and node not in self.plan.reversible_nodes)

        review = None
        if bad_call is None:
            reason = self.checkpoint(decision, index, irreversible)
            if reason is not None:
                try:
                    review = await self.review(decision, verdict, reason, index)
                except AwaitingReview as e:  # a real reviewer: pause here, durably
                    event = CheckpointEvent(policy=self.plan.policy_label, reason=reason,
                                            reviewed=False, reviewer="reviewer")
                    await self.record(index, decision, verdict, None, event, irreversible, ts)
                    return EndReason.paused, str(e)
        to_run = review.run if review else decision
        if review is not None and review.action in ("retry", "abort"):
            await self.record(index, decision, verdict, None, review.event,
                                     irreversible, ts)
            if review.action == "abort":
                return EndReason.aborted, "a human denied and the policy stops"
            await self.agent.feedback(Feedback(decision=decision, denied=True))
            return None

        assert to_run is not None
        effect = Effect(ToolResult(ok=False, error=bad_call, fault="agent")) \
            if bad_call else await self.execute(to_run)
        await self.record(index, decision, verdict, effect.result,
                                 review.event if review else None, irreversible, ts)
        if effect.finished:
            return EndReason.finished, decision.text or "agent finished"
        if self.wants_feedback:
            await self.agent.feedback(Feedback(
                decision=decision, result=effect.result, human_answer=effect.human_reply,
                executed=to_run if to_run is not decision else None))
        if self.blocking:
            status: WorldStatus = await self.hook("status", WorldStatus)
        else:
            status = self.world.status()
            if not isinstance(status, WorldStatus):
                self.broken("status", status, WorldStatus)
        if status.done:
            return EndReason.terminated, status.reason
        return None

    # --- stages ------------------------------------------------------------------------
    async def decide(self, index: int, obs: Observation) -> Decision:
        """The agent's decision, named by its node (the scenario's node_map for agents that
        name none), with cost and tokens counted."""
        try:
            decision = await self.agent.decide(obs)
        except AgentError as e:
            raise InfraError(f"agent: {e}") from e
        if not isinstance(decision, Decision):
            raise InfraError(f"agent returned {type(decision).__name__}, not a Decision")
        if index == self.correct_at:
            decision = await self.reference(decision) or decision
        node = decision.node or self.sc.node_map.get(decision.tool or "",
                                                     decision.tool or "unknown")
        if decision.node != node:
            decision = decision.model_copy(update={"node": node})
        self.cost += decision.cost
        self.tokens += decision.tokens
        return decision

    def validate_call(self, decision: Decision) -> str | None:
        """Why a tool call cannot run (unknown tool, arguments against the schema): the
        agent's error, graded, never a crash. None for a well-formed call."""
        if decision.kind != "tool_call":
            return None
        spec = self.tools.get(decision.tool or "")
        if spec is None:
            return f"unknown tool {decision.tool!r}; tools: {', '.join(self.tools)}"
        if decision.args_error is not None:
            return f"{decision.tool}: {decision.args_error}"
        return check_arguments(spec, decision.args)

    async def judge(self, decision: Decision) -> Verdict | None:
        """The world's ground truth on the decision, before it takes effect."""
        verdict = await self.call(self.world.judge, decision) if self.blocking \
            else self.world.judge(decision)
        if verdict is not None and not isinstance(verdict, Verdict):
            raise InfraError(f"world {self.sc.world.type!r}: judge() returned "
                             f"{type(verdict).__name__}, expected Verdict or None")
        return verdict

    async def reference(self, decision: Decision) -> Decision | None:
        """The world's sound decision in place of this one (take-over, counterfactuals)."""
        ref = await self.call(self.world.reference_decision, decision)
        if ref is not None and not isinstance(ref, Decision):
            raise InfraError(f"world {self.sc.world.type!r}: reference_decision() returned "
                             f"{type(ref).__name__}, expected Decision or None")
        return ref

    def checkpoint(self, decision: Decision, index: int, irreversible: bool) -> str | None:
        """Why a human must approve this decision first, or None. Asking for help is the
        agent's own escalation and finishing changes nothing: neither is reviewed. An action
        the agent itself asked to have approved always is."""
        if decision.kind in ("ask_human", "finish"):
            return None
        if decision.approval is not None:
            return f"the agent asked for approval: {decision.approval}"[:500]
        return self.policy.should_review(ReviewRequest(decision, index, irreversible,
                                                       self.reviews))

    async def review(self, decision: Decision, verdict: Verdict | None, reason: str,
                     index: int) -> Review:
        """The human answers; on a deny the scenario's `on_deny` says what happens. A real
        reviewer who has not answered yet raises `AwaitingReview`."""
        correct = verdict.correct if verdict else None
        scope = episode_scope.get()
        token = episode_scope.set(scope.with_(step=index, reason=reason))  # run() set the key
        try:
            ans = await self.human.review(decision, correct)
        finally:
            episode_scope.reset(token)
        self.reviews += 1
        self.human_seconds += ans.seconds
        self.world.clock.advance(ans.seconds)
        event = CheckpointEvent(policy=self.plan.policy_label, reason=reason, reviewed=True,
                                approved=ans.approved, reviewer=ans.reviewer,
                                seconds=ans.seconds, cost=ans.cost,
                                decision_was_correct=correct)
        if ans.approved:
            self.denials_in_row = 0
            return Review(event, "proceed", decision)
        self.denials_in_row += 1
        cp = self.sc.checkpoints
        action: DenyAction = cp.on_deny
        if ans.action is not None and ans.action in deny_choices(cp.on_deny):
            action = ans.action  # a real reviewer chose, within what the scenario allows
        if action == "retry" and self.denials_in_row > cp.max_retries:
            action = "abort"
        if action == "takeover":
            ref = ans.takeover or await self.reference(decision)
            if ref is not None:
                event.action = "takeover"
                event.takeover = ans.takeover  # a person's own action (None: the world's)
                return Review(event, "takeover", ref)  # the human does this step right
            action = "retry"
        event.action = action
        return Review(event, action, None)

    async def execute(self, decision: Decision) -> Effect:
        """The decision takes effect in the world."""
        kind = decision.kind
        if kind == "finish":
            return Effect(None, finished=True)
        if kind == "tool_call":
            try:
                if self.blocking:
                    result = await self.hook("execute", ToolResult, decision.node,
                                             decision.tool, decision.args)
                else:
                    result = self.world.execute(decision.node, decision.tool, decision.args)
                    if not isinstance(result, ToolResult):
                        self.broken("execute", result, ToolResult)
            except ToolError as e:
                result = ToolResult(ok=False, error=str(e), fault="agent")
            return Effect(result)
        self.world.clock.advance(self.plan.world_cls.sim_seconds_per_step)
        if kind == "ask_human":
            reply = await self.call(self.world.human_answer, decision.text or "")
            if not isinstance(reply, str):
                raise InfraError(f"world {self.sc.world.type!r}: human_answer() returned "
                                 f"{type(reply).__name__}, expected str")
            seconds = self.plan.loaded.human_options.seconds_per_review
            self.world.clock.advance(seconds)
            self.human_seconds += seconds
            return Effect(ToolResult(ok=True, output=reply), human_reply=reply)
        said: Observation = await self.hook("on_message", Observation, decision.text or "")
        return Effect(ToolResult(ok=True, output=said.text))

    async def grade(self, node: str, decision: Decision, verdict: Verdict | None,
                    result: ToolResult | None) -> list[Grade]:
        """The world's verdict, the node's graders, and `valid_call` for a rejected call."""
        graders, needs_state = self.plan.graders_at(node)
        ctx = StepContext(node, decision, verdict, result, self.task)
        if needs_state:
            ctx.state = await self.call(self.world.state)
        grades = []
        for grader in graders:
            g = await grader.grade_step(ctx)
            if g is not None:
                grades.append(g)
        if result is not None and not result.ok and result.fault == "agent":
            # A call the world rejects (bad arguments, against the rules) is the agent's error.
            grades.append(Grade(grader="valid_call", passed=False, score=0.0,
                                reason=result.error or "rejected", node=node))
        return grades

    def over_budget(self, t0: float) -> str | None:
        """Which budget ran out after this step, if any (steps are the loop's; wall time is
        also the timer's, in an episode where something can wait)."""
        b = self.sc.budgets
        if b.max_wall_time is not None and time.perf_counter() - t0 >= b.max_wall_time:
            return "wall-time budget ran out"
        if b.max_sim_time is not None and self.world.clock.now >= b.max_sim_time:
            return "simulated-time budget ran out"
        if b.max_cost is not None and self.cost >= b.max_cost:
            return "cost budget ran out"
        return None

    # --- records -----------------------------------------------------------------------
    async def record(self, index: int, decision: Decision, verdict: Verdict | None,
                     result: ToolResult | None, event: CheckpointEvent | None,
                     irreversible: bool, ts: float) -> Step:
        digest = await self.call(self.world.digest) if self.blocking else self.world.digest()
        now = self.world.clock.now
        grades = await self.grade(decision.node, decision, verdict, result)
        # One validated construction with every field: assigning fields afterwards costs
        # more than the model itself.
        step = Step(index=index, node=decision.node, decision=decision, result=result,
                    checkpoint=event, help_needed=bool(verdict and verdict.help_needed),
                    irreversible=irreversible, state_digest=digest, sim_time=now,
                    grades=grades, wall_us=int((time.perf_counter() - ts) * 1e6))
        self.steps.append(step)
        return step

    async def finish(self, end: EndReason, note: str, t0: float) -> EpisodeResult:
        """Outcome grades and the episode's record. Success needs every trusted outcome
        grade to pass and an end the scenario counts: an aborted episode never succeeds, a
        truncated one only where the scenario says `budgets.success_if_truncated: true`."""
        if end == EndReason.paused:  # not over: nothing to score yet
            return EpisodeResult(
                key=self.key, agent=self.agent_label, end_reason=end, success=None,
                steps=self.steps, policy=self.plan.policy_label, end_note=note,
                metrics={"reviews": self.reviews, "human_seconds": self.human_seconds},
                sim_time=self.world.clock.now, wall_ms=(time.perf_counter() - t0) * 1e3,
                cost=self.cost, tokens=self.tokens, final_digest=await self.call(
                    self.world.digest))
        outcome = await self.call(self.world.outcome)
        if not isinstance(outcome, dict):
            raise InfraError(f"world {self.sc.world.type!r}: outcome() returned "
                             f"{type(outcome).__name__}, expected a dict")
        octx = OutcomeContext(task=self.task, outcome=outcome, end_reason=end.value,
                              steps=len(self.steps), extra={"steps": self.steps})
        grades = [await g.grade_outcome(octx) for g in self.plan.outcome_graders]
        trusted = [g for g in grades if g.trust == "trusted"] or grades
        counts = end in (EndReason.finished, EndReason.terminated) or (
            end == EndReason.truncated and self.sc.budgets.success_if_truncated)
        success = counts and all(g.passed for g in trusted)
        scores = [g.score for g in grades]
        status: WorldStatus = await self.hook("status", WorldStatus)
        return EpisodeResult(
            key=self.key, agent=self.agent_label, end_reason=end, success=success,
            score=sum(scores) / len(scores) if scores else None, steps=self.steps,
            outcome_grades=grades, policy=self.plan.policy_label,
            metrics={**status.metrics, "reviews": self.reviews,
                     "human_seconds": self.human_seconds},
            sim_time=self.world.clock.now, wall_ms=(time.perf_counter() - t0) * 1e3,
            cost=self.cost, tokens=self.tokens, end_note=note,
            ambiguous=bool(self.task.get("ambiguous")),
            user_fault=bool(outcome.get("user_fault")),
            final_digest=await self.call(self.world.digest))

