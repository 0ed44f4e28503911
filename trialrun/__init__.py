"""trialrun: evaluate AI agents and long-running workflows in sandboxed, simulated worlds,
decision by decision.

The public names are listed in `__all__` and imported on first use, so that `import trialrun`
(and `trialrun --help`) stays fast; everything else is internal and may change.

    import trialrun

    summary = trialrun.run(["retail"], db="sqlite:///trialrun.db")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_PUBLIC = {
    # worlds and tools
    "World": "trialrun.sandbox.world", "tool": "trialrun.sandbox.world",
    "ToolError": "trialrun.sandbox.world", "Verdict": "trialrun.sandbox.world",
    "WorldStatus": "trialrun.sandbox.world", "SimClock": "trialrun.sandbox.world",
    # agents
    "Agent": "trialrun.agents.base", "AgentContext": "trialrun.agents.base",
    "AgentOptions": "trialrun.agents.base", "AgentError": "trialrun.agents.base",
    "Feedback": "trialrun.agents.base",
    # records
    "Decision": "trialrun.trajectory", "Observation": "trialrun.trajectory",
    "ToolResult": "trialrun.trajectory", "ToolSpec": "trialrun.trajectory",
    "Step": "trialrun.trajectory", "Grade": "trialrun.trajectory", "Trust": "trialrun.trajectory",
    "EndReason": "trialrun.trajectory", "EpisodeKey": "trialrun.trajectory",
    "EpisodeResult": "trialrun.trajectory", "CheckpointEvent": "trialrun.trajectory",
    # graders, humans, checkpoint policies
    "Grader": "trialrun.graders.base", "GraderOptions": "trialrun.graders.base",
    "StepContext": "trialrun.graders.base", "OutcomeContext": "trialrun.graders.base",
    "Human": "trialrun.humans", "HumanAnswer": "trialrun.humans",
    "CheckpointPolicy": "trialrun.checkpoints", "ReviewRequest": "trialrun.checkpoints",
    # scenarios
    "Scenario": "trialrun.scenarios.schema", "LoadedScenario": "trialrun.scenarios.loader",
    "load_scenario": "trialrun.scenarios.loader", "load_targets": "trialrun.scenarios.loader",
    "ScenarioError": "trialrun.scenarios.loader",
    # running
    "run": "trialrun.runner", "run_episodes": "trialrun.runner",
    "RunOptions": "trialrun.runner", "RunSummary": "trialrun.runner",
    "RunPlan": "trialrun.plan", "ScenarioPlan": "trialrun.plan",
    "Executor": "trialrun.executors", "run_episode": "trialrun.episode",
    "Store": "trialrun.store",
    # plugins and errors
    "register": "trialrun.registry", "resolve": "trialrun.registry",
    "TrialrunError": "trialrun.errors", "InfraError": "trialrun.errors",
    "PluginNotFound": "trialrun.errors", "NotFound": "trialrun.errors",
    "InvalidScenario": "trialrun.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'trialrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
