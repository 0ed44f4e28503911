"""Node-level and outcome graders (built-in ones in `builtin.py`, registered by name)."""

from trialrun.graders.base import Grader, GraderOptions, OutcomeContext, StepContext

__all__ = ["Grader", "GraderOptions", "OutcomeContext", "StepContext"]
