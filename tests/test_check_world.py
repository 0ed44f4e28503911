"""trialrun/check_world/: every built-in world passes; each deliberately broken world in
tests/bad_worlds.py fails the check it breaks, with a message that says what and how to fix."""

from __future__ import annotations

import datetime
import random
import time

import pytest

from tests import bad_worlds
from trialrun.check_world import CHECKS, WorldReport, _example_args, check_world
from trialrun.episode import check_arguments
from trialrun.registry import resolve

BAD = "tests.bad_worlds:"
REAL_TIME = time.time


def problems(report: WorldReport) -> str:
    """The report's text, for assertion messages."""
    return report.text()


def statuses(report: WorldReport) -> dict[str, str]:
    return {c.id: c.status for c in report.checks}


# --- the built-in worlds ---------------------------------------------------------------------
BUILTIN = [
    pytest.param("retail", {"scenario": "retail/refund_in_window"}, id="retail"),
    pytest.param("vending", {}, id="vending"),
    pytest.param("calendar", {}, id="calendar"),
    pytest.param("workflow", {}, id="workflow"),
    pytest.param("codebase", {"sandbox": "local", "steps": 7}, id="codebase",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("world", "kwargs"), BUILTIN)
def test_builtin_world_passes_every_check(world, kwargs) -> None:
    report = check_world(world, **kwargs)
    assert report.ok, problems(report)
    assert not [c for c in report.checks if c.status == "skip"], problems(report)
    assert report.steps > 0


def test_retail_without_tasks_says_where_to_get_them() -> None:
    report = check_world("retail")  # no generate_tasks, no scenario
    tasks = report.get("tasks")
    assert tasks.status == "fail"
    assert "does not implement generate_tasks" in tasks.message
    assert "--scenario" in tasks.fix
    assert statuses(report)["same_seed"] == "skip"
    assert statuses(report)["tool_schemas"] == "pass"  # static checks still run


@pytest.mark.parametrize("world", ["retail", "vending", "calendar", "workflow", "codebase"])
def test_schema_made_arguments_pass_the_loops_own_check(world) -> None:
    for declared in resolve("world", world).declared_tools.values():
        spec = declared.spec
        assert check_arguments(spec, _example_args(spec.parameters)) is None, spec.name


# --- a world that follows every rule -----------------------------------------------------------
def test_a_sound_world_passes_everything_without_warnings() -> None:
    report = check_world(BAD + "CounterWorld", seed=3)
    assert [c.id for c in report.checks] == list(CHECKS)
    assert set(statuses(report).values()) == {"pass"}, problems(report)
    assert report.task == "count-0" and "generate_tasks" in report.task_source


def test_the_checks_leave_the_process_as_they_found_it() -> None:
    random.seed(7)
    before = random.getstate()
    check_world(BAD + "GlobalRandomWorld")
    assert random.getstate() == before
    assert time.time is REAL_TIME and time.time() > 1.7e9  # the real clock
    assert datetime.datetime.now().year >= 2024
    assert bad_worlds.datetime is datetime.datetime


# --- determinism -------------------------------------------------------------------------------
def test_reading_the_wall_clock_fails_wall_clock_only() -> None:
    report = check_world(BAD + "WallClockWorld")
    s = statuses(report)
    assert s["wall_clock"] == "fail", problems(report)
    assert s["same_seed"] == "pass" and s["global_rng"] == "pass"
    check = report.get("wall_clock")
    assert "wall clock moves" in check.message and "opened_at" in check.message
    assert "self.clock" in check.fix
    # every other check still ran: a report, not the first failure
    assert sum(v == "pass" for v in s.values()) == len(CHECKS) - 1


def test_datetime_now_bound_by_from_import_is_caught() -> None:
    report = check_world(BAD + "DatetimeWorld")
    check = report.get("wall_clock")
    assert check.status == "fail", problems(report)
    assert "result" in check.message and ".output.at" in check.message


def test_the_global_random_module_fails_global_rng() -> None:
    report = check_world(BAD + "GlobalRandomWorld")
    s = statuses(report)
    assert s["global_rng"] == "fail", problems(report)
    assert s["same_seed"] == "pass" and s["wall_clock"] == "pass"
    check = report.get("global_rng")
    assert "global `random` module" in check.message and ".noise" in check.message
    assert "self.rng" in check.fix


def test_numpys_global_rng_fails_global_rng() -> None:
    pytest.importorskip("numpy")
    report = check_world(BAD + "NumpyGlobalWorld")
    assert report.get("global_rng").status == "fail", problems(report)


def test_an_unseeded_rng_fails_same_seed_and_the_rest_is_inconclusive() -> None:
    report = check_world(BAD + "UnseededWorld")
    s = statuses(report)
    assert s["same_seed"] == "fail", problems(report)
    assert "two runs with seed 0 differ" in report.get("same_seed").message
    assert s["wall_clock"] == s["global_rng"] == "skip"
    assert "inconclusive" in report.get("wall_clock").message
    assert s["snapshot_restore"] == "pass"  # restore is judged within one world


# --- snapshot / restore ------------------------------------------------------------------------
def test_a_restore_that_loses_state_fails() -> None:
    report = check_world(BAD + "LeakyRestoreWorld")
    check = report.get("snapshot_restore")
    assert check.status == "fail", problems(report)
    assert "does not give the snapshot's state back" in check.message and ".log" in check.message
    assert "load_state must set everything state() reports" in check.fix


def test_state_kept_outside_state_fails_after_restore() -> None:
    report = check_world(BAD + "HiddenStateWorld")
    check = report.get("snapshot_restore")
    assert check.status == "fail", problems(report)
    assert "same calls give other results" in check.message and "peek" in check.message


def test_a_world_without_load_state_gets_a_cannot_restore_warning() -> None:
    report = check_world(BAD + "NoRestoreWorld")
    check = report.get("snapshot_restore")
    assert check.status == "warn" and "cannot restore" in check.message
    assert "load_state" in check.fix
    assert report.ok  # a warning, not a failure


# --- tools -------------------------------------------------------------------------------------
def test_a_broken_tool_schema_fails_with_each_problem() -> None:
    report = check_world(BAD + "BrokenSchemaWorld")
    check = report.get("tool_schemas")
    assert check.status == "fail", problems(report)
    said = "\n".join([check.message, *check.details])
    assert "type 'int' is not a JSON type" in said
    assert "required argument 'm' is not among the properties" in said
    assert "'add' is offered 2 times" in said
    assert "'peek now'" in said and "letters, digits" in said
    assert "no `properties` object" in said
    assert "has no description" in said
    assert "@tool" in check.fix


def test_a_tool_that_crashes_on_bad_arguments_fails_tool_errors() -> None:
    report = check_world(BAD + "CrashingToolWorld")
    check = report.get("tool_errors")
    assert check.status == "fail", problems(report)
    assert "execute('lookup'" in check.message and "KeyError" in check.message
    assert "bad_worlds.py" in check.message  # where it was raised
    assert "ToolError" in check.fix


# --- models, name, hooks, ground truth ---------------------------------------------------------
def test_models_that_accept_unknown_keys_fail() -> None:
    report = check_world(BAD + "LooseModelsWorld")
    assert report.get("options_model").status == "fail"
    assert "LooseOptions accept(s) unknown keys" in report.get("options_model").message
    task = report.get("task_model")
    assert task.status == "fail" and "Limits" in task.message  # a nested model, too
    assert 'extra="forbid"' in task.fix


def test_a_world_named_by_path_is_known_by_that_path() -> None:
    report = check_world(BAD + "UnnamedWorld")
    check = report.get("name")
    assert check.status == "pass" and BAD + "UnnamedWorld" in check.message


def test_no_ground_truth_warns() -> None:
    report = check_world(BAD + "SilentWorld")
    assert report.get("judge").status == "warn"
    assert "returned None for all" in report.get("judge").message
    assert report.get("reference_decision").status == "warn"
    assert report.ok


def test_a_judge_that_writes_the_state_fails() -> None:
    report = check_world(BAD + "MeddlingJudgeWorld")
    check = report.get("judge")
    assert check.status == "fail", problems(report)
    assert "changed the world's state" in check.message
    assert not check.details  # said once, not once per step


def test_hooks_returning_the_wrong_types_fail() -> None:
    report = check_world(BAD + "WrongTypesWorld")
    assert "expected a WorldStatus" in report.get("status").message
    assert "expected a dict" in report.get("outcome").message
    assert "not plain JSON" in report.get("state").message
    assert {report.get(c).status for c in ("status", "outcome", "state")} == {"fail"}


# --- finding the class and the task ------------------------------------------------------------
def test_a_typo_gets_did_you_mean_and_nothing_else_runs() -> None:
    report = check_world("retial")
    assert report.get("resolve").status == "fail"
    assert "did you mean 'retail'" in report.get("resolve").message
    assert {c.status for c in report.checks[1:]} == {"skip"}


def test_a_class_that_is_not_a_world_fails_resolve() -> None:
    report = check_world(BAD + "NotAWorld")
    assert "not a subclass" in report.get("resolve").message


SCENARIO = """\
name: counter/from-a-file
world:
  type: tests.bad_worlds:{world}
  step_max: 2
tasks:
  - id: to-four
    target: 4
  - id: to-six
    target: 6
agent:
  type: tests.bad_worlds:FinishAgent
"""


def test_tasks_come_from_a_scenario_file_when_the_world_generates_none(tmp_path) -> None:
    path = tmp_path / "counter.yaml"
    path.write_text(SCENARIO.format(world="NoTasksWorld"))
    assert check_world(BAD + "NoTasksWorld").get("tasks").status == "fail"
    report = check_world(BAD + "NoTasksWorld", scenario=path, task="to-six")
    assert report.ok and report.task == "to-six", problems(report)
    assert str(path) in report.task_source

    typo = check_world(BAD + "NoTasksWorld", scenario=path, task="to-sex")
    assert typo.get("tasks").status == "fail"
    assert "did you mean 'to-six'" in typo.get("tasks").message


def test_a_scenario_for_another_world_is_refused(tmp_path) -> None:
    path = tmp_path / "counter.yaml"
    path.write_text(SCENARIO.format(world="CounterWorld"))
    report = check_world(BAD + "NoTasksWorld", scenario=path)
    assert "is for world" in report.get("tasks").message


def test_the_report_reads_like_a_test_report_and_serialises() -> None:
    report = check_world(BAD + "WallClockWorld")
    text = report.text()
    assert "FAIL  wall_clock" in text and "fix: read time from self.clock" in text
    assert text.splitlines()[-1] == "17 passed, 0 warning(s), 1 failed, 0 skipped"
    again = WorldReport.model_validate_json(report.model_dump_json())
    assert again == report and not again.ok
