"""docs/writing-a-world.md: its code is examples/my_world/ verbatim, and the scenario runs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import anyio
import pytest

from trialrun.episode import EpisodePlan, run_episode
from trialrun.scenarios.loader import ScenarioError, load_scenario
from trialrun.trajectory import EpisodeKey

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "writing-a-world.md"
EXAMPLE = ROOT / "examples" / "my_world"
BLOCK = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```$', re.DOTALL | re.MULTILINE)


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # `my_world.world:ThermostatWorld`


def test_guide_shows_the_example_files_verbatim() -> None:
    blocks = dict(BLOCK.findall(GUIDE.read_text()))
    assert set(blocks) == {f"examples/my_world/{n}" for n in
                           ("world.py", "agent.py", "scenario.yaml", "run.py")}
    for path, code in blocks.items():
        assert (ROOT / path).read_text() == code, f"{path} differs from the guide"


def test_the_guide_scenario_succeeds_end_to_end() -> None:
    plan = EpisodePlan.build(load_scenario(EXAMPLE / "scenario.yaml"))
    assert plan.world_cls.__module__ == "my_world.world"

    async def all_episodes():
        return [await run_episode(plan, EpisodeKey(scenario=plan.loaded.name, task=t, seed=s,
                                                   trial=0))
                for t in plan.tasks for s in plan.loaded.scenario.seed_list]

    results = anyio.run(all_episodes)
    assert len(results) == 6
    for r in results:
        assert r.success and r.end_reason.value == "finished", r.end_note
        assert all(s.passed for s in r.steps)
        assert r.steps[0].node == "set" and r.steps[-1].node == "finish"
    # Deterministic under the seed: the same episode twice gives the same digests.
    again = anyio.run(all_episodes)
    assert [r.final_digest for r in again] == [r.final_digest for r in results]


def test_the_guide_run_script_works(capsys) -> None:
    sys.modules.pop("my_world.run", None)
    from my_world import run as script

    results = anyio.run(script.main)
    assert all(r.success for r in results)
    assert "success=True" in capsys.readouterr().out


def test_the_error_knob_shows_up_at_its_node() -> None:
    plan = EpisodePlan.build(load_scenario(EXAMPLE / "scenario.yaml"))
    plan.loaded.scenario.agent.params = {"error_rate": 1.0}
    key = EpisodeKey(scenario=plan.loaded.name, task="warm-up", seed=0, trial=0)
    r = anyio.run(lambda: run_episode(plan, key))
    assert r.steps[0].passed is False and not r.success


def test_typos_in_the_guide_scenario_name_the_line(tmp_path: Path) -> None:
    text = (EXAMPLE / "scenario.yaml").read_text().replace("    target: 21\n", "    targte: 21\n")
    bad = tmp_path / "scenario.yaml"
    bad.write_text(text)
    with pytest.raises(ScenarioError, match=r"scenario.yaml:9:5: tasks\[0\].targte: unknown key"):
        load_scenario(bad)
