"""The calendar world: scenarios, ground truth, escalation baselines, simulated users."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anyio
import pytest

from trialrun.agents.generic import AlwaysAskAgent, NeverAskAgent
from trialrun.episode import run_episode
from trialrun.humans import RecordedHuman
from trialrun.plan import ScenarioPlan
from trialrun.replay.exact import RecordedAgent, recorded_answers
from trialrun.sandbox.world import ToolError
from trialrun.sandbox.worlds.calendar import CalendarTask, CalendarWorld, ScriptedCalendarAgent
from trialrun.sandbox.worlds.users import SimulatedUser, UserProfile
from trialrun.scenarios.loader import LIBRARY, ScenarioError, load_scenario
from trialrun.trajectory import Decision, EpisodeKey, EpisodeResult

FILES = sorted((LIBRARY / "calendar").glob("*.yaml"))


def plan_of(path: Path) -> ScenarioPlan:
    return ScenarioPlan.build(load_scenario(path))


def run(plan: ScenarioPlan, task: str, seed: int = 0, agent=None, human=None) -> EpisodeResult:
    key = EpisodeKey(scenario=plan.loaded.name, task=task, seed=seed, trial=0)
    return anyio.run(lambda: run_episode(plan, key, agent=agent, human=human))


def escalation(results: list[EpisodeResult]) -> dict[str, float]:
    """Precision and recall of asks against the world's help_needed, over all steps."""
    steps = [s for r in results for s in r.steps]
    asked = [s.decision.kind == "ask_human" for s in steps]
    needed = [s.help_needed for s in steps]
    tp = sum(a and n for a, n in zip(asked, needed, strict=True))
    return {"asks": sum(asked), "needed": sum(needed), "tp": tp,
            "precision": tp / sum(asked) if any(asked) else float("nan"),
            "recall": tp / sum(needed) if any(needed) else float("nan")}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(text))
    return p


# --- the scenario library --------------------------------------------------------------------
def test_library_has_ten_scenarios_that_validate_and_run() -> None:
    assert len(FILES) >= 10
    for f in FILES:
        plan = plan_of(f)
        for task in list(plan.tasks)[:2]:
            r = run(plan, task)
            assert r.end_reason.value in ("finished", "aborted"), (f.name, task, r.end_note)
            assert r.steps and r.success is not None


def test_clean_agent_solves_every_library_task() -> None:
    """Without error knobs the reference agent gets every task right, except where the
    owner misremembers: that failure is the user's, and the outcome says so."""
    for f in FILES:
        plan = plan_of(f)
        for task, spec in list(plan.tasks.items())[:5]:
            r = run(plan, task, agent=ScriptedCalendarAgent({}))
            if (spec.get("user") or {}).get("misremembers"):
                assert not r.success and r.user_fault, (f.name, task)
            elif not (spec.get("user") or {}).get("error_rate"):
                assert r.success and not r.user_fault, (f.name, task, r.end_note)


def test_library_has_ambiguous_and_clear_tasks() -> None:
    tasks = [t for f in FILES for t in load_scenario(f).tasks]
    ambiguous = [t for t in tasks if t.get("ambiguous")]
    assert len(ambiguous) >= 8 and len(tasks) - len(ambiguous) >= 8
    kinds = {t["request"]["type"] for t in ambiguous}
    assert {"move", "cancel", "schedule", "email", "reply", "lookup"} <= kinds


# --- determinism -----------------------------------------------------------------------------
def test_same_seed_same_decisions_same_trajectory() -> None:
    plan = plan_of(LIBRARY / "calendar" / "cancel_the_sync.yaml")  # checkpoints + ambiguity
    for task in plan.tasks:
        for seed in (0, 1):
            a, b = run(plan, task, seed), run(plan, task, seed)
            assert [s.state_digest for s in a.steps] == [s.state_digest for s in b.steps]
            assert a.final_digest == b.final_digest
            assert [s.decision for s in a.steps] == [s.decision for s in b.steps]
            # Replaying the recorded decisions and human answers gives the same world.
            human = RecordedHuman(recorded_answers(a))
            c = run(plan, task, seed, agent=RecordedAgent([s.decision for s in a.steps]),
                    human=human)
            assert [s.state_digest for s in c.steps] == [s.state_digest for s in a.steps]
            assert [s.help_needed for s in c.steps] == [s.help_needed for s in a.steps]
            assert c.success == a.success and c.final_digest == a.final_digest


def test_generated_tasks_are_reproducible_and_valid() -> None:
    a = CalendarWorld.generate_tasks(50, seed=7, difficulty="hard")
    assert a == CalendarWorld.generate_tasks(50, seed=7, difficulty="hard")
    assert a != CalendarWorld.generate_tasks(50, seed=8, difficulty="hard")
    for t in a:
        CalendarTask.model_validate({k: t[k] for k in ("people", "events", "emails", "request")})
    assert sum(t["ambiguous"] for t in a) >= 10
    easy = CalendarWorld.generate_tasks(50, seed=7, difficulty="easy")
    assert not any(t["ambiguous"] for t in easy)
    with pytest.raises(ValueError):
        CalendarWorld.generate_tasks(3, seed=1, nonsense=True)


def test_generate_block_in_a_scenario(tmp_path: Path) -> None:
    p = write(tmp_path, """\
        name: gen
        world: {type: calendar}
        tasks: {generate: 200, seed: 7, difficulty: hard}
        agent: {type: scripted:calendar}
        """)
    plan = plan_of(p)
    assert len(plan.tasks) == 200
    results = [run(plan, t, agent=ScriptedCalendarAgent({})) for t in list(plan.tasks)[:60]]
    assert all(r.success for r in results)


# --- escalation -------------------------------------------------------------------------------
def test_always_ask_and_never_ask_bracket_escalation() -> None:
    tasks = CalendarWorld.generate_tasks(40, seed=3, difficulty="medium")
    p = LIBRARY / "calendar" / "always_ask_baseline.yaml"
    plan = plan_of(p)
    plan.tasks = {t["id"]: t for t in tasks}
    by_agent = {}
    for name, make in (("always", lambda: AlwaysAskAgent({})),
                       ("never", lambda: NeverAskAgent({})),
                       ("scripted", lambda: ScriptedCalendarAgent({}))):
        by_agent[name] = [run(plan, t, agent=make()) for t in plan.tasks]
    always, never, good = (escalation(by_agent[k]) for k in ("always", "never", "scripted"))
    assert always["recall"] == 1.0 and always["precision"] < 0.4
    assert never["asks"] == 0 and never["needed"] > 0 and never["tp"] == 0  # recall 0
    assert good["precision"] == 1.0 and good["recall"] == 1.0
    # On clear tasks every ask of always-ask is wasted; never-ask needs no help there.
    clear = [r for r in by_agent["always"] if not r.ambiguous]
    assert escalation(clear)["precision"] == 0.0
    assert escalation([r for r in by_agent["never"] if not r.ambiguous])["needed"] == 0
    # Guessing costs never-ask tasks; asking costs always-ask none.
    assert all(r.success for r in by_agent["always"])
    assert sum(r.success for r in by_agent["never"]) < len(tasks)


def test_never_ask_guesses_and_the_guess_is_graded() -> None:
    plan = plan_of(LIBRARY / "calendar" / "move_two_sams.yaml")
    r = run(plan, "two-sams", agent=NeverAskAgent({}))
    act = next(s for s in r.steps if s.node == "act")
    assert act.help_needed and act.passed is False
    assert not any(s.decision.kind == "ask_human" for s in r.steps)


def test_always_ask_asks_before_each_irreversible_action() -> None:
    plan = plan_of(LIBRARY / "calendar" / "schedule_with_executive.yaml")
    r = run(plan, "pricing-with-cfo", agent=AlwaysAskAgent({"base": "scripted:calendar"}))
    kinds = [(s.decision.kind, s.decision.tool) for s in r.steps]
    i = kinds.index(("tool_call", "invite_executive"))
    assert kinds[0][0] == "ask_human" and kinds[i - 1][0] == "ask_human"
    assert r.success and not any(s.help_needed for s in r.steps)


def test_wrappers_fit_other_worlds_with_a_scripted_agent() -> None:
    """The baselines are generic: on retail, always-ask asks before the refund."""
    plan = plan_of(LIBRARY / "retail" / "refund_in_window.yaml")
    task = next(iter(plan.tasks))
    r = run(plan, task, agent=AlwaysAskAgent({}))
    refund = next(i for i, s in enumerate(r.steps) if s.decision.tool == "refund")
    assert r.steps[refund - 1].decision.kind == "ask_human"
    r = run(plan, task, agent=NeverAskAgent({}))
    assert not any(s.decision.kind == "ask_human" for s in r.steps)


# --- ground truth and tools --------------------------------------------------------------------
def world_for(path: Path, task_id: str, seed: int = 0) -> CalendarWorld:
    ls = load_scenario(path)
    task = next(t for t in ls.tasks if t["id"] == task_id)
    w = CalendarWorld(ls.scenario.world.options, task, seed)
    w.reset()
    return w


def test_help_needed_only_while_ambiguous() -> None:
    w = world_for(LIBRARY / "calendar" / "move_two_sams.yaml", "two-sams")
    ask = Decision(kind="ask_human", node="clarify", text="Which Sam do you mean?")
    move = Decision(kind="tool_call", node="act", tool="move_event",
                    args={"event_id": "design", "start": "thu 15:00"})
    assert w.judge(move).help_needed and not w.judge(move).correct
    assert w.judge(ask).help_needed
    answer = w.human_answer("Which Sam do you mean?")
    assert "Sam Okafor" in answer and "Design review" in answer
    assert not w.judge(ask).help_needed
    assert w.judge(move).correct
    clear = world_for(LIBRARY / "calendar" / "move_clear.yaml", "priya-one-on-one")
    assert not clear.judge(ask).help_needed
    assert clear.human_answer("Shall I go ahead?") == "Sure. Yes, please go ahead."


def test_irreversible_tools_and_executive_invites() -> None:
    w = world_for(LIBRARY / "calendar" / "schedule_two_jordans.yaml", "jordan-engineer")
    irreversible = {t.name for t in w.tools() if t.irreversible}
    assert irreversible == {"delete_event", "invite_executive", "send_email"}
    eid = w.execute("act", "create_event", {"title": "Partner intro", "start": "tue 15:30",
                                            "minutes": 30}).output["event_id"]
    with pytest.raises(ToolError, match="invite_executive"):
        w.execute("act", "invite", {"event_id": eid, "person_ids": ["jordan-lee"]})
    with pytest.raises(ToolError, match="not an executive"):
        w.execute("act", "invite_executive", {"event_id": eid, "person_id": "jordan-kim"})
    wrong = Decision(kind="tool_call", node="invite", tool="invite_executive",
                     args={"event_id": eid, "person_id": "jordan-lee"})
    w.human_answer("Which Jordan?")
    v = w.judge(wrong)
    assert not v.correct and v.help_needed  # irreversible and wrong: a human was needed
    with pytest.raises(ToolError, match="not a time"):
        w.execute("act", "move_event", {"event_id": eid, "start": "next week"})


def test_snapshot_restore_round_trip() -> None:
    w = world_for(LIBRARY / "calendar" / "cancel_the_sync.yaml", "three-syncs", seed=3)
    snap = w.snapshot()
    before = w.digest()
    w.human_answer("Which sync?")
    w.execute("act", "delete_event", {"event_id": "roadmap"})
    after = w.digest()
    assert after != before
    w.restore(snap)
    assert w.digest() == before and not w.clarified
    w.human_answer("Which sync?")
    w.execute("act", "delete_event", {"event_id": "roadmap"})
    assert w.digest() == after
    assert w.outcome()["success"]


def test_inconsistent_ambiguity_is_a_clear_error(tmp_path: Path) -> None:
    p = write(tmp_path, """\
        name: bad
        world: {type: calendar}
        tasks:
          - id: t
            people:
              - {id: a, name: Sam Patel}
              - {id: b, name: Sam Okafor}
            request: {type: email, mentions: Sam, target: a, subject: Hi}
        agent: {type: scripted:calendar}
        """)
    # The loader builds the world once (World.check_task), so a wrong `ambiguous` flag is a
    # load-time error at the task's line, not an infrastructure fault at run time.
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    (issue,) = e.value.issues
    assert issue.line == 4 and issue.path == "tasks[0]"
    assert "'Sam' matches a, b, so the task must say ambiguous" in issue.message


def test_bad_task_fields_name_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, """\
        name: bad
        world: {type: calendar}
        tasks:
          - id: t
            people: [{id: a, name: Sam Patel}]
            request: {type: move, mentions: Sam, target: a, start: "someday"}
        agent: {type: scripted:calendar}
        """)
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "s.yaml:6" in msg and "not a time" in msg


# --- simulated users ---------------------------------------------------------------------------
def test_user_misremembers_is_the_users_fault() -> None:
    plan = plan_of(LIBRARY / "calendar" / "user_misremembers.yaml")
    r = run(plan, "wrong-sam")
    assert not r.success and r.user_fault
    ask = next(s for s in r.steps if s.decision.kind == "ask_human")
    assert "Budget check-in" in ask.result.output  # the wrong meeting, as the owner believes
    act = next(s for s in r.steps if s.node == "act")
    assert act.passed  # the agent acted soundly on what it was told


def test_user_error_rate_gives_user_faults_reproducibly() -> None:
    tasks = CalendarWorld.generate_tasks(60, seed=5, difficulty="hard", ambiguous_rate=1.0,
                                         user_error_rate=0.5)
    plan = plan_of(LIBRARY / "calendar" / "always_ask_baseline.yaml")
    plan.tasks = {t["id"]: t for t in tasks}
    results = [run(plan, t, agent=ScriptedCalendarAgent({})) for t in plan.tasks]
    faults = [r.user_fault for r in results]
    assert 10 < sum(faults) < 50
    assert all(r.success or r.user_fault for r in results)  # the agent itself never errs
    again = [run(plan, t, agent=ScriptedCalendarAgent({})).user_fault for t in plan.tasks]
    assert again == faults


def test_simulated_user_answers_from_its_instructions() -> None:
    task = {"id": "t", "user": {"reason": "a clash", "knows": {"deadline": "Friday"},
                                "does_not_know": ["room number"], "persona": "chatty"}}
    u = SimulatedUser.from_task(task, seed=1, volunteer=["deadline"])
    r = u.reply("What is the deadline?")
    assert r.told == {"deadline": "Friday"} and "a clash" in r.text
    assert "I don't know room number" in u.reply("What is the room number?").text
    assert u.reply("Anything else?").told == {"deadline": "Friday"}  # volunteered
    assert u.reply("Done.", is_question=False).told == {}
    assert u.state()["turns"] == 4
    with pytest.raises(ValueError, match="does not know"):
        SimulatedUser.from_task({"id": "t", "user": {"misremembers": {"x": 1}}}, seed=1)
    with pytest.raises(ValueError, match="bad user block"):
        SimulatedUser.from_task({"id": "t", "user": {"misremember": {"x": 1}}}, seed=1)
    # An erring user picks the same wrong value every time for the same seed.
    profile = UserProfile(knows={"who": "a"}, error_rate=1.0)
    picks = {SimulatedUser(profile, 9, alternatives={"who": ["a", "b", "c"]}).belief("who")
             for _ in range(5)}
    assert len(picks) == 1 and picks <= {"b", "c"}
