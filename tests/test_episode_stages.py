"""The episode loop's stages, each on its own, and the contracts around them: tools declared
once, success only for episodes that ended as the scenario counts, hooks that break their
contract named, graders and humans awaited."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.helpers import run_source
from trialrun.agents.base import Agent
from trialrun.episode import Episode
from trialrun.graders.base import Grader
from trialrun.humans import Human, HumanAnswer
from trialrun.plan import ScenarioPlan
from trialrun.sandbox.world import ToolError, Verdict, World, tool
from trialrun.scenarios.loader import load_scenario_source
from trialrun.trajectory import Decision, EpisodeKey, Observation


class Lamp(World):
    """A lamp with a switch, and a fuse that cannot be replaced once blown."""

    def reset(self) -> Observation:
        self.on = False
        self.fuse = True
        return Observation(text="the lamp is off")

    @tool(seconds=2)
    def switch(self, on: bool, times: int = 1) -> dict[str, Any]:
        """Turn the lamp on or off.

        Args:
            on: the new position
            times: how often to flick it
        """
        self.on = on
        return {"on": self.on}

    @tool(seconds=5, irreversible=True)
    def blow_fuse(self) -> str:
        """Blow the fuse (cannot be undone)."""
        self.fuse = False
        return "pop"

    def judge(self, decision: Decision) -> Verdict | None:
        return Verdict(correct=decision.tool != "blow_fuse")

    def state(self) -> dict[str, Any]:
        return {"on": self.on, "fuse": self.fuse}

    def outcome(self) -> dict[str, Any]:
        return {"state": self.state(), "success": self.on and self.fuse}


class Silent(Lamp):
    def on_message(self, text: str):  # breaks the contract: must return an Observation
        return None


class Flicker(Agent):
    """Switches the lamp on, then (option) keeps flicking instead of finishing."""

    async def decide(self, obs: Observation) -> Decision:
        return Decision(kind="tool_call", node="switch", tool="switch", args={"on": True})


class Talker(Agent):
    async def decide(self, obs: Observation) -> Decision:
        return Decision(kind="message", node="reply", text="hello")


SCENARIO = """
name: lamp
world: {{type: {world}}}
tasks: [{{id: t}}]
agent: {{type: {agent}}}
budgets: {{max_steps: 3{budgets}}}
"""


def lamp(world: str = "Lamp", agent: str = "Flicker", budgets: str = "", more: str = "") -> str:
    return SCENARIO.format(world=f"tests.test_episode_stages:{world}",
                           agent=f"tests.test_episode_stages:{agent}", budgets=budgets) + more


def test_a_tool_is_declared_once_from_its_signature_and_docstring():
    specs = Lamp.declared_tools
    switch = specs["switch"].spec
    assert switch.description == "Turn the lamp on or off."
    assert switch.parameters["properties"]["on"] == {"type": "boolean",
                                                     "description": "the new position"}
    assert switch.parameters["required"] == ["on"]
    assert switch.parameters["additionalProperties"] is False
    assert specs["blow_fuse"].spec.irreversible and not switch.irreversible
    w = Lamp(None, {"id": "t"}, 0)
    w.reset()
    assert w.execute("switch", "switch", {"on": True}).output == {"on": True}
    assert w.clock.now == 2  # the tool's simulated seconds
    for bad, why in (({"on": "yes"}, "on: Input should be a valid boolean"),
                     ({"on": True, "colour": "red"}, "unknown argument 'colour'"),
                     ({}, "missing required argument 'on'"),
                     ({"on": True, "times": "2"}, "times: Input should be a valid integer")):
        with pytest.raises(ToolError, match=why):
            w.execute("switch", "switch", bad)
    with pytest.raises(ToolError, match="unknown tool 'dim'; tools: switch, blow_fuse"):
        w.execute("dim", "dim", {})


def test_a_tool_may_not_shadow_the_world_protocol():
    with pytest.raises(TypeError, match="shadow World methods"):
        class Bad(Lamp):
            @tool()
            def reset(self) -> Observation:  # noqa: D102
                return Observation()


def test_stages_on_their_own():
    plan = ScenarioPlan.build(load_scenario_source(
        lamp(more="checkpoints: {policy: before_irreversible}\n"), "lamp.yaml"))
    ep = Episode(plan, EpisodeKey(scenario="lamp", task="t", seed=0, trial=0))
    ep.world.reset()
    ep.tools = {t.name: t for t in ep.world.tools()}
    unknown = Decision(kind="tool_call", node="x", tool="dim")
    assert ep.validate_call(unknown).startswith("unknown tool 'dim'")
    assert "must be boolean" in ep.validate_call(
        Decision(kind="tool_call", node="switch", tool="switch", args={"on": 1}))
    fuse = Decision(kind="tool_call", node="blow_fuse", tool="blow_fuse")
    assert ep.checkpoint(fuse, 0, irreversible=True) == "irreversible action"
    assert ep.checkpoint(Decision(kind="ask_human", node="ask", text="?"), 0, True) is None
    verdict = anyio.run(ep.judge, fuse)
    assert verdict.correct is False


def test_a_truncated_episode_is_not_a_success_unless_the_scenario_says_so(store):
    # Flicker never finishes: the step budget runs out with the lamp on and the fuse whole,
    # so the outcome grader passes — but the agent never said it was done.
    (r,) = run_source(store, lamp()).results
    assert r.end_reason == "truncated" and r.outcome_grades[0].passed
    assert r.success is False
    (r,) = run_source(store, lamp(budgets=", success_if_truncated: true")).results
    assert r.end_reason == "truncated" and r.success is True


def test_a_hook_that_breaks_its_contract_is_an_infrastructure_error_naming_it(store):
    (r,) = run_source(store, lamp("Silent", "Talker"), retry_backoff_s=0.0).results
    assert r.end_reason == "error" and r.success is None
    assert "on_message() returned NoneType, expected Observation" in r.error


class SlowHuman(Human):
    """Takes real time to answer; counts how many reviews are waiting at once."""

    waiting = 0
    most = 0

    async def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        SlowHuman.waiting += 1
        SlowHuman.most = max(SlowHuman.most, SlowHuman.waiting)
        await anyio.sleep(0.05)
        SlowHuman.waiting -= 1
        return self._answer(True)


class SlowGrader(Grader):
    async def grade_step(self, ctx):
        await anyio.sleep(0.01)
        return self.grade(ctx.decision.args.get("on") is True, "on", node=ctx.node)


def test_humans_and_graders_are_awaited_without_blocking_other_episodes(store):
    text = lamp(more="seeds: 6\n"
                "checkpoints: {policy: always, "
                "human: {type: 'tests.test_episode_stages:SlowHuman'}}\n"
                "nodes: {switch: {graders: [{type: 'tests.test_episode_stages:SlowGrader', "
                "name: slow}]}}\n")
    SlowHuman.most = 0
    run = run_source(store, text, concurrency=6)
    assert len(run.results) == 6 and all(r.end_reason == "truncated" for r in run.results)
    assert SlowHuman.most > 1  # reviews of several episodes were pending at once
    slow = [g for r in run.results for st in r.steps for g in st.grades if g.grader == "slow"]
    assert len(slow) == 18 and all(g.passed for g in slow)


class Shouter(Agent):
    """Says things that look like terminal markup, then finishes with more of it."""

    async def decide(self, obs: Observation) -> Decision:
        if getattr(self, "said", False):
            return Decision(kind="finish", node="finish", text="done [/bold] :thumbs_up:")
        self.said = True
        return Decision(kind="message", node="[red]reply[/red]", text="[bold]hi[/] :100:")


def test_what_agents_write_is_shown_as_plain_text_never_as_markup(store):
    from rich.console import Console

    from trialrun.analysis.data import load_run
    from trialrun.analysis.summary import summarize
    from trialrun.report import render_episode, render_summary

    run = run_source(store, lamp(agent="Shouter"))
    console = Console(record=True, width=200)
    (e,) = store.episodes(run.run_id)
    render_episode(store.load_episode(e.id), console)
    render_summary(summarize(load_run(store, run.run_id)), console)
    out = console.export_text()
    for raw in ("[bold]hi[/] :100:", "done [/bold] :thumbs_up:", "[red]reply[/red]"):
        assert raw in out


class SlowLamp(Lamp):
    """Takes real time on every switch, without ever letting the event loop run."""

    @tool(seconds=2)
    def switch(self, on: bool, times: int = 1) -> dict[str, Any]:
        """Turn the lamp on or off, slowly.

        Args:
            on: the new position
            times: how often to flick it
        """
        import time

        time.sleep(0.08)
        self.on = on
        return {"on": self.on}


class QuickFlicker(Flicker):
    waits = False  # never awaits anything: the episode is timed per step


class SleepyQuick(QuickFlicker):
    """Writes `decide` anew, awaiting a sleep, without saying `waits`: it does not inherit
    its parent's promise."""

    async def decide(self, obs: Observation) -> Decision:
        await anyio.sleep(0)
        return await super().decide(obs)


class SleepyFlicker(Flicker):
    """Waits (as a model call would) before each decision."""

    async def decide(self, obs: Observation) -> Decision:
        await anyio.sleep(0.08)
        return await super().decide(obs)


@pytest.mark.parametrize("world,agent", [("SlowLamp", "QuickFlicker"), ("Lamp", "SleepyFlicker")])
def test_the_wall_time_budget_ends_an_episode_whether_or_not_anything_waits(store, world, agent):
    # A CPU-bound episode (nothing waits, no timer is armed) is checked after each step; one
    # that waits is also cut by the timer.
    text = lamp(world, agent, budgets=", max_wall_time: 0.1").replace("max_steps: 3",
                                                                      "max_steps: 50")
    (r,) = run_source(store, text).results
    assert r.end_reason == "truncated" and r.end_note == "wall-time budget ran out"
    assert 1 <= len(r.steps) <= 3


def test_an_episode_waits_if_any_of_its_parts_may():
    plan = ScenarioPlan.build(load_scenario_source(lamp(agent="QuickFlicker"), "l.yaml"))
    key = EpisodeKey(scenario="lamp", task="t", seed=0, trial=0)
    assert Episode(plan, key).waits is False
    assert Episode(plan, key, agent=SleepyFlicker()).waits is True
    assert Episode(plan, key, agent=SleepyQuick()).waits is True
    assert Episode(plan, key, human=SlowHuman()).waits is True
    judged = lamp(agent="QuickFlicker", more="nodes: {switch: {graders: [{type: "
                  "'tests.test_episode_stages:SlowGrader'}]}}\n")
    assert Episode(ScenarioPlan.build(load_scenario_source(judged, "l.yaml")), key).waits


def test_a_subclass_that_writes_its_coroutines_anew_waits_unless_it_says_otherwise():
    from tests.slow_agent import SlowAgent
    from trialrun.graders.builtin import WorldVerdict
    from trialrun.humans import SimulatedHuman
    from trialrun.sandbox.worlds.retail import ScriptedRetailAgent

    assert ScriptedRetailAgent.waits is False and WorldVerdict.waits is False
    assert SlowAgent.waits is True  # sleeps in `decide`: a timer must be able to cut it

    class Asking(SimulatedHuman):
        async def review(self, decision, correct):
            return await super().review(decision, correct)

    class Judging(WorldVerdict):
        async def grade_step(self, ctx):
            return await super().grade_step(ctx)

    class Quiet(Asking):  # says it again: its own promise
        waits = False

    assert Asking.waits and Judging.waits and not Quiet.waits
