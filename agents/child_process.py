"""What the agents that run a user's command share (`process`, `mcp`): their options, the end
of the process's stderr kept for error messages, how an exit reads, and killing the whole
process group (an agent's children go with it)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from anyio.abc import Process
from pydantic import Field, SecretStr, field_validator

from trialrun.agents.base import NodeMapOptions

__all__ = ["POSIX", "CommandOptions", "StderrTail", "exit_text", "kill_group"]

POSIX = os.name == "posix"  # a process group of its own, killed as one


class CommandOptions(NodeMapOptions):
    """The options of an agent that is a command: what runs, where, with which variables."""

    command: list[str] = Field(min_length=1, description="the agent's argv, run without a "
                               "shell; a relative program or path is found from `cwd` (and "
                               "PATH)")
    cwd: str | None = Field(None, description="working directory (default: trialrun's)")
    env: dict[str, SecretStr] = Field(
        default_factory=dict, description="variables added to trialrun's environment, which "
        "the process inherits; values are never logged or shown")
    start_timeout_s: float = Field(30.0, gt=0, description="seconds from launch until the "
                                   "process first speaks (process: `ready`; mcp: its first "
                                   "MCP request)")
    close_timeout_s: float = Field(2.0, ge=0, description="seconds the process has to exit "
                                   "once the episode is over before it is killed")
    stderr_tail_bytes: int = Field(4096, ge=256, description="stderr kept for error messages")

    @field_validator("command")
    @classmethod
    def _program(cls, v: list[str]) -> list[str]:
        if not v[0].strip():
            raise ValueError("command[0] must name a program")
        return v

    @property
    def program(self) -> str:
        """The program's name, for messages (the rest of argv may hold secrets)."""
        return Path(self.command[0]).name

    def environment(self, **extra: str) -> dict[str, str]:
        """trialrun's environment, then `extra`, then the scenario's variables."""
        return {**os.environ, **extra, **{k: v.get_secret_value() for k, v in self.env.items()}}


class StderrTail:
    """The last `keep` bytes a process wrote to stderr: the end of a traceback says most."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.data = bytearray()
        self.cut = False  # older bytes were dropped

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.keep:
            del self.data[:-self.keep]
            self.cut = True

    def text(self) -> str:
        return ("..." if self.cut else "") + self.data.decode("utf-8", "replace").strip()


def exit_text(code: int | None) -> str:
    """How a process ended, in words: `exited with code 2`, `was killed by SIGKILL`."""
    if code is None:
        return "closed its output"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def kill_group(p: Process) -> None:
    """SIGKILL the process's session group (children included), or the process alone."""
    try:
        if POSIX:
            os.killpg(p.pid, signal.SIGKILL)
        elif p.returncode is None:
            p.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass  # already gone
