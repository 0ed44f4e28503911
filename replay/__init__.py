"""Exact replay of stored episodes and decisive-error attribution by counterfactual replay."""

from trialrun.replay.counterfactual import Attribution, attribute_run
from trialrun.replay.exact import RecordedAgent, ReplayReport, replay_episode

__all__ = ["Attribution", "RecordedAgent", "ReplayReport", "attribute_run", "replay_episode"]
