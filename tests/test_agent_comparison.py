"""Several agents on the same tasks, seeds and trials: paired differences that recover a
planted gap, and the cheapest agent that meets a bar."""

from __future__ import annotations

import anyio
import pytest

from tests.helpers import RETAIL
from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import load_scenario
from trialrun.variants import agent_variants, parse_agent


def test_parse_agent_takes_a_name_or_a_mapping():
    assert parse_agent("scripted:retail") == {"type": "scripted:retail"}
    assert parse_agent("{type: openai, name: small, params: {model: m}}")["name"] == "small"
    with pytest.raises(ValueError, match="expected a name or a mapping"):
        parse_agent("[1, 2]")
    with pytest.raises(ValueError, match="named twice"):
        agent_variants([load_scenario(RETAIL / "refund_in_window.yaml")],
                       [{"type": "scripted:retail"}, {"type": "scripted:retail"}])


def test_an_agent_of_the_scenarios_type_keeps_its_params_under_its_own():
    scenario = load_scenario(RETAIL / "known_error_rates.yaml")
    base = scenario.agent_options.model_dump()
    [same, other] = agent_variants([scenario], [
        {"type": "scripted:retail", "name": "asks", "params": {"ask": "always"}},
        {"type": "scripted:always_ask", "name": "baseline"}])
    assert same.scenario.agent.label == "asks"
    assert same.agent_options.ask == "always"  # its own param wins
    assert same.agent_options.error_rates == base["error_rates"]  # the scenario's is kept
    assert other.scenario.agent.params == {}  # another type takes none of them


def test_a_planted_gap_between_two_agents_is_recovered_paired(store):
    # `sloppy` errs at resolve 40% of the time; on this single-refund task every error at
    # resolve is fatal, so its success is 40 points lower than the clean agent's.
    # The scenario's own agent errs; an agent of its type keeps its params unless overridden.
    clean = {"error_rates": {}}
    agents = [{"type": "scripted:retail", "name": "clean", "params": clean},
              {"type": "scripted:retail", "name": "sloppy",
               "params": {"error_rates": {"resolve": 0.4}}},
              {"type": "scripted:retail", "name": "twin", "params": clean}]
    loaded = agent_variants([load_scenario(RETAIL / "known_error_rates.yaml")], agents)
    run = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(seeds=200)))
    a = summarize(load_run(store, run.run_id), deep=False, bar=0.9).agents
    assert [r.agent for r in a.rows] == ["clean", "sloppy", "twin"]  # as named; first = ref
    assert a.reference == "clean" and a.keys == 200
    clean, sloppy, twin = a.rows
    assert clean.success == 1.0 and clean.diff is None
    assert sloppy.diff_lo <= -0.4 <= sloppy.diff_hi and sloppy.diff_hi < 0
    assert sloppy.mcnemar_p < 1e-6
    assert twin.diff == 0 and twin.diff_lo <= 0 <= twin.diff_hi and twin.mcnemar_p == 1
    assert clean.meets_bar and twin.meets_bar and not sloppy.meets_bar
    assert [r.cheapest_meeting_bar for r in a.rows].count(True) == 1


def test_a_run_of_one_agent_has_no_comparison(store):
    loaded = [load_scenario(RETAIL / "refund_in_window.yaml")]
    run = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(seeds=3)))
    assert summarize(load_run(store, run.run_id), deep=False).agents is None
