"""The workflow world: per-stage ground truth, and how stage errors propagate downstream."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from trialrun.episode import run_episode
from trialrun.plan import ScenarioPlan
from trialrun.replay.exact import RecordedAgent
from trialrun.sandbox.world import ToolError
from trialrun.sandbox.worlds.workflow import (
    STAGES,
    ScriptedWorkflowAgent,
    WorkflowTask,
    WorkflowWorld,
    extract_call,
)
from trialrun.scenarios.loader import LIBRARY, load_scenario
from trialrun.trajectory import Decision, EpisodeKey, EpisodeResult

FILES = sorted((LIBRARY / "workflow").glob("*.yaml"))


def plan_of(path: Path) -> ScenarioPlan:
    return ScenarioPlan.build(load_scenario(path))


def run(plan: ScenarioPlan, task: str, seed: int = 0, agent=None) -> EpisodeResult:
    key = EpisodeKey(scenario=plan.loaded.name, task=task, seed=seed, trial=0)
    return anyio.run(lambda: run_episode(plan, key, agent=agent))


def generated_plan(n: int, seed: int, difficulty: str = "medium") -> ScenarioPlan:
    plan = plan_of(LIBRARY / "workflow" / "generated_hard.yaml")
    plan.tasks = {t["id"]: t for t in WorkflowWorld.generate_tasks(n, seed, difficulty)}
    return plan


def stage_results(results: list[EpisodeResult]) -> list[dict[str, bool]]:
    """Per episode, per stage: did its graded step pass (the last attempt at that stage)."""
    out = []
    for r in results:
        passed = {s.decision.tool: bool(s.passed) for s in r.steps if s.decision.tool in STAGES}
        out.append({st: passed.get(st, False) for st in STAGES})
    return out


def fail_rate(rows: list[dict[str, bool]], stage: str) -> float:
    return sum(not r[stage] for r in rows) / len(rows) if rows else 0.0


# --- the scenario library --------------------------------------------------------------------
def test_library_has_ten_scenarios_that_validate_and_run() -> None:
    assert len(FILES) >= 10
    for f in FILES:
        plan = plan_of(f)
        for task in list(plan.tasks)[:2]:
            r = run(plan, task)
            assert r.end_reason.value == "terminated", (f.name, task, r.end_note)
            assert [s.decision.tool for s in r.steps][-1] == "crm_update"


def test_clean_pipeline_is_right_at_every_stage() -> None:
    for f in FILES:
        plan = plan_of(f)
        for task in list(plan.tasks)[:3]:
            r = run(plan, task, agent=ScriptedWorkflowAgent({}))
            assert r.success and all(s.passed for s in r.steps), (f.name, task)
    plan = generated_plan(150, seed=1, difficulty="hard")
    for i, task in enumerate(plan.tasks):
        r = run(plan, task, seed=i, agent=ScriptedWorkflowAgent({}))
        assert r.success, (task, r.outcome_grades)
        assert r.metrics["stage_extract"] == 1.0


def test_outcome_reports_each_stage() -> None:
    ls = load_scenario(LIBRARY / "workflow" / "outage_credit.yaml")
    w = WorkflowWorld(ls.scenario.world.options, ls.tasks[0], 0)
    w.reset()
    truth = w.truth
    w.execute("retrieve", "retrieve", {"customer_id": truth["retrieve"]})
    wrong_ex = dict(truth["extract"], commitments=["callback"])  # no technician promised
    w.execute("extract", "extract", wrong_ex)
    rules_d = Decision(kind="tool_call", node="rules", tool="rules",
                       args={"outcome": "credit", "amount": 7.2})
    v = w.judge(rules_d)
    assert not v.correct and "propagated" in v.reason
    w.execute("rules", "rules", rules_d.args)
    out = w.outcome()
    assert out["stages"] == {"retrieve": True, "extract": False, "rules": False,
                             "crm_update": None}
    assert out["first_error"] == "extract" and out["faithful"]["rules"]
    assert out["fields"] == {"intent": True, "products": True, "sentiment": True,
                             "commitments": False}
    assert not out["success"] and out["user_fault"] is False


def test_stages_run_in_order_and_the_record_is_final() -> None:
    w = WorkflowWorld({}, {"id": "t"}, 4)
    w.reset()
    with pytest.raises(ToolError, match="run retrieve and extract first"):
        w.execute("rules", "rules", {"outcome": "none", "amount": 0})
    with pytest.raises(ToolError, match="run the rules stage first"):
        w.execute("crm_update", "crm_update", {"customer_id": "x", "intent": "outage",
                                               "outcome": "none", "amount": 0,
                                               "follow_ups": []})
    with pytest.raises(ToolError, match="intent must be one of"):
        w.execute("extract", "extract", {"intent": "chat", "products": [], "sentiment": "angry",
                                         "commitments": []})
    assert [t.name for t in w.tools() if t.irreversible] == ["crm_update"]


# --- determinism -----------------------------------------------------------------------------
def test_same_seed_same_decisions_same_trajectory() -> None:
    plan = plan_of(LIBRARY / "workflow" / "stage_errors_compound.yaml")
    for task in list(plan.tasks)[:8]:
        a, b = run(plan, task, seed=2), run(plan, task, seed=2)
        assert [s.state_digest for s in a.steps] == [s.state_digest for s in b.steps]
        assert [s.decision for s in a.steps] == [s.decision for s in b.steps]
        assert a.final_digest == b.final_digest and a.metrics == b.metrics
        c = run(plan, task, seed=2, agent=RecordedAgent([s.decision for s in a.steps]))
        assert [s.state_digest for s in c.steps] == [s.state_digest for s in a.steps]
        assert [s.passed for s in c.steps] == [s.passed for s in a.steps]
    # The transcript and the database come from the seed alone.
    w1, w2, w3 = (WorkflowWorld({}, {"id": "t"}, s) for s in (5, 5, 6))
    assert w1.reset() == w2.reset() != w3.reset()


def test_generated_tasks_are_reproducible_and_valid() -> None:
    a = WorkflowWorld.generate_tasks(40, seed=7, difficulty="hard")
    assert a == WorkflowWorld.generate_tasks(40, seed=7, difficulty="hard")
    for t in a:
        WorkflowTask.model_validate({k: v for k, v in t.items() if k not in ("id", "instruction")})
    assert all(t["namesakes"] >= 1 for t in a)
    assert not any(t["namesakes"] for t in WorkflowWorld.generate_tasks(20, 7, "easy"))
    only = WorkflowWorld.generate_tasks(10, 1, intents=["outage"])
    assert {t["call"]["intent"] for t in only} == {"outage"}


def test_extractor_reads_the_transcript_not_the_truth() -> None:
    w = WorkflowWorld({}, {"id": "t", "small_talk": 4, "distractors": 2, "namesakes": 2}, 11)
    obs = w.reset()
    facts = extract_call(obs.data["transcript"])
    assert {k: facts[k] for k in w.truth["extract"]} == w.truth["extract"]
    assert not any(cid in obs.text for cid in w.customers)  # no ids leak into the input


# --- propagation -----------------------------------------------------------------------------
def test_extract_errors_raise_later_stage_failure_rates() -> None:
    plan = generated_plan(120, seed=3)
    clean = stage_results([run(plan, t, agent=ScriptedWorkflowAgent({})) for t in plan.tasks])
    noisy = stage_results([run(plan, t, agent=ScriptedWorkflowAgent(
        {"error_rates": {"extract": 0.5}})) for t in plan.tasks])
    assert fail_rate(clean, "rules") == fail_rate(clean, "crm_update") == 0.0
    assert 0.3 < fail_rate(noisy, "extract") < 0.7
    assert fail_rate(noisy, "retrieve") == 0.0  # upstream of the error: untouched
    after_bad = [r for r in noisy if not r["extract"]]
    after_good = [r for r in noisy if r["extract"]]
    # Given a clean extraction the later stages never fail; after a bad one they often do.
    assert fail_rate(after_good, "rules") == fail_rate(after_good, "crm_update") == 0.0
    assert fail_rate(after_bad, "rules") > 0.25
    assert fail_rate(after_bad, "crm_update") > fail_rate(after_bad, "rules") > 0.0


def test_retrieval_errors_propagate_through_the_record() -> None:
    plan = generated_plan(60, seed=4, difficulty="hard")  # namesakes in every task
    rows = stage_results([run(plan, t, agent=ScriptedWorkflowAgent(
        {"error_rates": {"retrieve": 1.0}})) for t in plan.tasks])
    assert fail_rate(rows, "retrieve") == 1.0
    assert fail_rate(rows, "extract") == 0.0  # extraction reads the transcript only
    assert fail_rate(rows, "crm_update") == 1.0  # the record names the wrong customer
    assert 0.0 < fail_rate(rows, "rules") < 1.0  # a namesake's plan sometimes gives the same


def test_stage_errors_compound_end_to_end() -> None:
    plan = plan_of(LIBRARY / "workflow" / "stage_errors_compound.yaml")
    results = [run(plan, t, seed=s) for t in plan.tasks for s in range(3)]
    success = sum(bool(r.success) for r in results) / len(results)
    assert 0.45 < success < 0.85  # about 0.9 ** 4 = 0.66
    # Failures begin at every stage, and the world's metrics agree with the step grades.
    firsts = {next(s.decision.tool for s in r.steps if s.passed is False)
              for r in results if not r.success}
    assert firsts == set(STAGES)
    for r, row in zip(results, stage_results(results), strict=True):
        assert {st: r.metrics[f"stage_{st}"] == 1.0 for st in STAGES} == row
