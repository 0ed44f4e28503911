"""The scenario schema, its loader with line-accurate errors, and the built-in library."""

from trialrun.scenarios.loader import (
    LIBRARY,
    LoadedScenario,
    ScenarioError,
    load_scenario,
    load_scenario_source,
    load_targets,
)
from trialrun.scenarios.schema import Scenario

__all__ = ["LIBRARY", "LoadedScenario", "Scenario", "ScenarioError", "load_scenario",
           "load_scenario_source", "load_targets"]
