"""Worlds (one folder each under `worlds/`) and the sandbox backends that isolate them."""

from trialrun.sandbox.backend import ExecResult, Sandbox, SandboxSpec, open_sandbox
from trialrun.sandbox.world import SimClock, ToolError, Verdict, World, WorldStatus, tool

__all__ = ["ExecResult", "Sandbox", "SandboxSpec", "SimClock", "ToolError", "Verdict", "World",
           "WorldStatus", "open_sandbox", "tool"]
