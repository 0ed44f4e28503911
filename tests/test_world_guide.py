"""docs/writing-a-world.md and docs/reference.md against the code they describe.

The guide's code is examples/my_world/ verbatim, and its scenario runs end to end through the
real runner and the command line with what a user relies on: the agent's ask is recorded, the
irreversible step is reviewed, the outcome graders pass for the reference agent and fail for
an erring one. The reference names every hook, decision kind, feedback field, end reason,
built-in plugin and entry point group the code has.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import anyio
import pytest

from trialrun import registry
from trialrun.agents.base import Agent, Feedback
from trialrun.graders.base import Grader
from trialrun.runner import RunOptions, RunSummary, run_episodes
from trialrun.sandbox.world import World
from trialrun.scenarios.loader import ScenarioError, load_scenario
from trialrun.store import Store
from trialrun.trajectory import DecisionKind, EndReason, EpisodeResult

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "writing-a-world.md"
REFERENCE = ROOT / "docs" / "reference.md"
EXAMPLE = ROOT / "examples" / "my_world"
SCENARIO = EXAMPLE / "scenario.yaml"
BLOCK = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```$', re.DOTALL | re.MULTILINE)


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # `my_world.world:ThermostatWorld`


def run(tmp_path: Path, scenario: Path = SCENARIO, name: str = "t.db") -> RunSummary:
    store = Store(f"sqlite:///{tmp_path / name}")
    return anyio.run(lambda: run_episodes(store, [load_scenario(scenario)],
                                          options=RunOptions(retry_backoff_s=0),
                                          keep_results=True))


def variant(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    """The guide's scenario with text edits, as a user would make them."""
    text = SCENARIO.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def by_task(summary: RunSummary) -> dict[str, list[EpisodeResult]]:
    out: dict[str, list[EpisodeResult]] = {}
    for r in summary.results:
        out.setdefault(r.key.task, []).append(r)
    return out


def cli(*args: str, env_path: str = "") -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("trialrun")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "trialrun.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (env_path, str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")) if p),
        "COLUMNS": "200"}
    return subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


# --- the guide is the folder ----------------------------------------------------------------
def test_guide_shows_the_example_folder_verbatim() -> None:
    blocks = dict(BLOCK.findall(GUIDE.read_text()))
    files = {f"examples/my_world/{p.name}" for p in EXAMPLE.iterdir()
             if p.is_file() and p.suffix in (".py", ".yaml")}
    assert set(blocks) == files
    for path, code in blocks.items():
        assert (ROOT / path).read_text() == code, f"{path} differs from the guide"


def test_adding_a_world_touches_one_folder() -> None:
    """The scenario names only classes of the folder, and the folder is all it needs."""
    loaded = load_scenario(SCENARIO)
    for cls in (loaded.world_cls, loaded.agent_cls):
        assert Path(inspect.getfile(cls)).parent == EXAMPLE
    assert "one folder plus its scenarios" in " ".join(GUIDE.read_text().split())
    # Importing the package registers both, as a built-in world folder does.
    import my_world

    assert registry.resolve("world", "thermostat") is my_world.ThermostatWorld
    assert registry.resolve("agent", "scripted:thermostat") is my_world.ThermostatAgent


def test_the_example_uses_ask_human_an_irreversible_tool_and_a_checkpoint() -> None:
    loaded = load_scenario(SCENARIO)
    tools = loaded.world_cls.declared_tools
    assert [n for n, t in tools.items() if t.spec.irreversible] == ["lock"]
    assert tools["lock"].spec.parameters["required"] == ["celsius"]
    assert loaded.scenario.checkpoints.policy == "before_irreversible"
    assert loaded.world_cls.human_answer is not World.human_answer


# --- the scenario, end to end --------------------------------------------------------------
def test_the_guide_scenario_runs_through_the_runner(tmp_path: Path) -> None:
    summary = run(tmp_path)
    assert summary.planned == summary.ran == 6 and summary.errors == 0
    for r in summary.results:
        assert r.success and r.end_reason == EndReason.finished, r.end_note
        assert all(g.passed for g in r.outcome_grades), r.outcome_grades
        assert {g.grader for g in r.outcome_grades} == {
            "world", "locked at the setting", "reply_contains"}
        assert all(s.passed for s in r.steps)
        # The irreversible step is reviewed, and only it.
        lock = [s for s in r.steps if s.node == "lock"]
        assert len(lock) == 1 and lock[0].irreversible
        assert lock[0].checkpoint.reason == "irreversible action"
        assert lock[0].checkpoint.approved and lock[0].checkpoint.decision_was_correct
        assert r.reviews == 1 and r.metrics["reviews"] == 1
        assert r.steps[-2].decision.kind == "message" and r.steps[-1].node == "finish"
    tasks = by_task(summary)
    for r in tasks["owners-setting"]:  # the setting is not given: the agent asks first
        ask = r.steps[0]
        assert r.asks == 1 and ask.decision.kind == "ask_human" and ask.node == "ask"
        assert ask.help_needed and ask.result.output == "I want 19 °C."
        assert r.ambiguous
    assert all(r.asks == 0 for r in tasks["warm-up"])
    # What the store keeps is what the runner returned.
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    rows = store.episodes(summary.run_id)
    assert len(rows) == 6 and all(e.success for e in rows)
    stored = store.load_episode(rows[0].id)
    assert [s.state_digest for s in stored.steps] == [
        s.state_digest for s in next(r for r in summary.results if r.key == stored.key).steps]


def test_the_guide_scenario_is_deterministic_and_replays(tmp_path: Path) -> None:
    first, again = run(tmp_path, name="a.db"), run(tmp_path, name="b.db")
    digests = {str(r.key): r.final_digest for r in first.results}
    assert digests == {str(r.key): r.final_digest for r in again.results}
    from trialrun.replay.exact import replay_episode

    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    for row in store.episodes(first.run_id)[:2]:
        report, _ = anyio.run(replay_episode, store, row.id)
        assert report.identical, report.differences


def test_an_erring_agent_fails_the_outcome_graders(tmp_path: Path) -> None:
    """Without the checkpoint, a wrong setpoint is locked for good."""
    path = variant(tmp_path, "erring", ("{set: 0.0}", "{set: 1.0}"),
                   ("policy: before_irreversible", "policy: never"))
    tasks = by_task(run(tmp_path, path))
    for r in tasks["warm-up"]:
        assert r.success is False and r.end_reason == EndReason.finished
        failed = {g.grader for g in r.outcome_grades if not g.passed}
        # It locked and reported its own wrong setting: every outcome grader says so.
        assert failed == {"world", "locked at the setting", "reply_contains"}, r.outcome_grades
        assert r.first_error.node == "set" and r.reviews == 0
        lock = next(s for s in r.steps if s.node == "lock")
        assert lock.irreversible and lock.checkpoint is None and lock.passed is False
    # A human's answer is never misread: the owner's setting is still right.
    assert all(r.success for r in tasks["owners-setting"])


def test_the_checkpoint_catches_the_erring_agent(tmp_path: Path) -> None:
    """A reviewer denies the wrong lock; the agent asks the owner and locks the right one."""
    path = variant(tmp_path, "caught", ("{set: 0.0}", "{set: 1.0}"),
                   ("{type: simulated, recall: 0.9, false_deny_rate: 0.05, ",
                    "{type: oracle, "))
    for r in by_task(run(tmp_path, path))["warm-up"]:
        assert r.success, r.end_note
        denied = next(s for s in r.steps if s.checkpoint and not s.checkpoint.approved)
        assert denied.node == "lock" and denied.result is None
        assert denied.checkpoint.action == "retry"
        assert denied.checkpoint.decision_was_correct is False
        after = r.steps[denied.index + 1]
        assert after.decision.kind == "ask_human" and "refused" in after.decision.text
        assert r.asks == 1 and r.reviews == 2


def test_a_reviewer_who_takes_over_locks_the_right_setting(tmp_path: Path) -> None:
    """`on_deny: takeover` runs the world's reference decision; the agent learns it from
    `Feedback.executed` and reports the setting that was really locked."""
    path = variant(tmp_path, "takeover", ("{set: 0.0}", "{set: 1.0}"),
                   ("on_deny: retry", "on_deny: takeover"),
                   ("{type: simulated, recall: 0.9, false_deny_rate: 0.05, ",
                    "{type: oracle, "))
    for r in by_task(run(tmp_path, path))["warm-up"]:
        assert r.success, r.end_note
        lock = next(s for s in r.steps if s.node == "lock")
        assert lock.checkpoint.action == "takeover" and lock.decision.args == {"celsius": 24.0}
        assert lock.result.output == {"locked": 21.0}
        assert r.steps[-2].decision.text == "The thermostat is locked at 21 °C."


def test_the_command_line_runs_the_guide_scenario(tmp_path: Path) -> None:
    rel = str(SCENARIO.relative_to(ROOT))
    ok = cli("validate", rel)
    assert ok.returncode == 0 and ok.stdout.startswith(f"ok  {rel}"), ok.stderr
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    done = cli("run", rel, "--db", db, "--no-progress", "--fail-under", "1.0")
    assert done.returncode == 0, done.stderr
    assert "(6/6)" in done.stdout and "Traceback" not in done.stderr
    assert Store(db).runs(1)[0][1]["successes"] == 6


def test_the_guide_run_script_works(tmp_path: Path, capsys) -> None:
    sys.modules.pop("my_world.run", None)
    from my_world import run as script

    summary = anyio.run(script.main, f"sqlite:///{tmp_path / 'script.db'}")
    assert len(summary.results) == 6 and all(r.success for r in summary.results)
    assert "success=True" in capsys.readouterr().out


def test_the_typo_the_guide_quotes_is_reported_as_quoted(tmp_path: Path) -> None:
    quoted = re.search(r"`scenario\.yaml:(\d+:\d+: tasks\[0\]\.targte: [^`]+)`",
                       " ".join(GUIDE.read_text().split()))
    assert quoted, "the guide quotes no error for `targte`"
    bad = variant(tmp_path, "scenario", ("    target: 21\n", "    targte: 21\n"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad)
    assert [str(i) for i in caught.value.issues] == [f"{bad}:{quoted.group(1)}"]


@pytest.mark.parametrize("old, new, error", [
    ("{set: 0.0}", "{sett: 0.0}", r":17:\d+: agent\.params\.error_rates.*unknown node 'sett'; "
                                  r"did you mean 'set'"),
    ("rate: 0.2", "rat: 0.2", r":5:3: world\.rat: unknown key; did you mean 'rate'"),
    ("args.celsius", "arg.celsius", r":22:\d+: nodes\.lock\.graders\[0\]\.expr: expression "
                                    r"uses unknown name 'arg'; did you mean 'args'"),
    ("state.locked", "stat.locked", r":28:\d+: graders\[1\]\.expr: expression uses unknown "
                                    r"name 'stat'; did you mean 'state'"),
    ("policy: before_irreversible", "policy: before_irreversable",
     r":32:\d+: checkpoints\.policy: unknown checkpoint 'before_irreversable'; did you mean"),
])
def test_typos_in_the_guide_scenario_name_the_line(tmp_path: Path, old: str, new: str,
                                                    error: str) -> None:
    bad = variant(tmp_path, "typo", (old, new))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad)
    assert len(caught.value.issues) == 1, caught.value
    assert re.search(error, str(caught.value.issues[0])), caught.value


def test_outcome_keys_are_the_keys_outcome_returns() -> None:
    from my_world.world import ThermostatWorld

    loaded = load_scenario(SCENARIO)
    for task in loaded.tasks:
        world = ThermostatWorld(loaded.world_options, task, 0)
        world.reset()
        assert set(world.outcome()) == ThermostatWorld.outcome_keys


def test_publishing_by_entry_point(tmp_path: Path) -> None:
    """The guide's `pyproject.toml` entry points make `type: thermostat` work."""
    dist = tmp_path / "thermostat_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thermostat-plugin\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[trialrun.worlds]\nthermostat = my_world.world:ThermostatWorld\n\n"
        "[trialrun.agents]\nscripted:thermostat = my_world.agent:ThermostatAgent\n")
    path = variant(tmp_path, "by_name", ("type: my_world.world:ThermostatWorld",
                                         "type: thermostat"),
                   ("type: my_world.agent:ThermostatAgent", "type: scripted:thermostat"))
    out = cli("validate", str(path), env_path=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert '[project.entry-points."trialrun.worlds"]' in GUIDE.read_text()


@pytest.mark.parametrize("task", ["warm-up", "owners-setting"])
def test_check_world_passes_on_the_example(task: str) -> None:
    from trialrun.check_world import check_world

    report = check_world("my_world.world:ThermostatWorld", scenario=SCENARIO, task=task)
    assert report.ok and not report.warnings, report.text()
    assert {c.status for c in report.checks} == {"pass"}, report.text()


def test_check_world_command_as_the_guide_gives_it() -> None:
    command = re.search(r"^\$ PYTHONPATH=examples trialrun (check-world .*)$",
                        GUIDE.read_text(), re.MULTILINE)
    assert command, "the guide shows no check-world command"
    out = cli(*command.group(1).split())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failed" in out.stdout


# --- the reference names what the code has ----------------------------------------------------
def _reference() -> str:
    return REFERENCE.read_text()


def _own_methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if not n.startswith("_")
            and (inspect.isfunction(v) or isinstance(v, classmethod))}


def test_the_reference_lists_every_hook_with_its_signature() -> None:
    ref = _reference()
    hooks = _own_methods(World) - {"call_tool"} | {"__init__"}
    for cls, names in ((World, hooks), (Agent, _own_methods(Agent) | {"__init__"}),
                       (Grader, _own_methods(Grader))):
        for name in sorted(names):
            fn = getattr(cls, name)
            params = [p for p in inspect.signature(fn).parameters if p != "self"]
            assert re.search(rf"`(async )?{name}\(self", ref) or f"`{name}(cls" in ref, \
                f"{cls.__name__}.{name} is missing from docs/reference.md"
            for p in params:
                assert p in ref, f"{cls.__name__}.{name}: parameter {p} is not documented"
    for name in ("reset", "observe", "on_message", "execute", "status", "judge", "outcome"):
        assert f"naming `{name}()`" in ref or f"`{name}(self" in ref


def test_the_reference_lists_decisions_feedback_and_end_reasons() -> None:
    ref = _reference()
    for kind in get_args(DecisionKind):
        assert f"| `{kind}` |" in ref, kind
    for field in Feedback.model_fields:
        assert f"| `{field}` |" in ref, field
    for reason in EndReason:
        assert f"| `{reason.value}` |" in ref, reason
    assert "success_if_truncated: true" in ref


def test_the_reference_lists_every_built_in_plugin_and_entry_point_group() -> None:
    ref = _reference()
    for kind in registry.KINDS:
        group = f"`{registry.GROUPS[kind]}`"
        row = next((line for line in ref.splitlines()
                    if line.startswith(f"| `{kind}` |") and line.endswith(f"| {group} |")), "")
        assert row, f"no registry row for {kind}"
        listed = set(re.findall(r"`([^`]+)`", row.split("|")[3]))
        assert listed == set(registry._builtin(kind)), kind  # the table names the built-ins
