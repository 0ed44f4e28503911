"""The built-in scripted agents declare every node their decisions name (so `validate` can
warn about graders on nodes no step reaches), checked against what they actually do."""

from __future__ import annotations

import pytest

from tests.helpers import run_scenarios
from trialrun.registry import resolve
from trialrun.scenarios.loader import LIBRARY


@pytest.mark.parametrize("world", ["retail", "calendar", "workflow", "vending"])
def test_scripted_agents_declare_the_nodes_they_decide_at(store, world):
    agent = resolve("agent", f"scripted:{world}")
    run = run_scenarios(store, sorted((LIBRARY / world).glob("*.yaml")), seeds=1, trials=1)
    seen = {st.node for r in run.results for st in r.steps}
    assert seen and seen <= agent.nodes, seen - agent.nodes


@pytest.mark.parametrize("world,scenario", [("retail", "refund_in_window"),
                                            ("calendar", "cancel_clear"),
                                            ("workflow", "cancel_new_credit"),
                                            ("vending", "competent_365")])
def test_worlds_declare_the_keys_their_outcome_has(world, scenario):
    from trialrun.plan import ScenarioPlan
    from trialrun.scenarios.loader import load_scenario
    from trialrun.trajectory import EpisodeKey

    plan = ScenarioPlan.build(load_scenario(LIBRARY / world / f"{scenario}.yaml"))
    w = plan.new_world(EpisodeKey(scenario="x", task=plan.loaded.tasks[0]["id"], seed=0,
                                  trial=0))
    w.reset()
    assert set(w.outcome()) == w.outcome_keys
