"""The agent protocol, and the adapters that put agents under test.

Scripted reference agents live with their worlds (`trialrun.sandbox.worlds.<name>.agent`);
the generic escalation baselines (`scripted:always_ask`, `scripted:never_ask`) wrap them.
"""

from trialrun.agents.base import Agent, AgentContext, AgentError, AgentOptions, Feedback
from trialrun.agents.scripted import ScriptedAgent, ScriptedOptions

__all__ = ["Agent", "AgentContext", "AgentError", "AgentOptions", "Feedback", "ScriptedAgent",
           "ScriptedOptions"]
