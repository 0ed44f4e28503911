"""The sandbox interface: where a world's side effects happen.

A world that runs commands or touches files does it through a `Sandbox`: exec a command with
a timeout, read/write/list files in the workspace, snapshot and restore the workspace, close.
Two backends implement it: `local` (a temporary directory and subprocesses, for development
only: it is NOT a security boundary) and `docker` (one locked-down container per episode).

Faults of the infrastructure (daemon down, container failed to start) raise `SandboxFault`:
the runner retries those and records them as errors of the run, never as agent mistakes.
What the agent's command did (non-zero exit, timeout, OOM, fork bomb) is an `ExecResult`
with `violation` set, never an exception.
"""

from __future__ import annotations

import posixpath
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WORKSPACE = "/workspace"  # the workspace path inside a container (and what `pwd` shows there)

# Labels of the episode running in this context (`run`, `episode`), set by the runner; worlds
# pass them to `open_sandbox` so containers can be traced to runs. anyio's worker threads
# inherit the context, so a value set around `run_episode` reaches blocking worlds too.
sandbox_labels: ContextVar[Mapping[str, str]] = ContextVar(
    "sandbox_labels", default=MappingProxyType({})
)

# Values of ExecResult.violation: the agent's command hit a limit or a wall of the sandbox.
# The first six are limits (measured); the last two are classified from the error text of a
# failed command (the kernel enforces them; trialrun only names what happened).
Violation = Literal[
    "timeout", "episode_timeout", "output_limit", "oom", "pids", "disk", "network", "read_only_fs"
]


class SandboxFault(Exception):
    """An infrastructure fault (daemon down, container failed to start): retry, never score."""


class SandboxUnavailable(SandboxFault):
    """No engine or no image: retrying the episode will not help until someone sets them up."""


class SandboxPathError(ValueError):
    """A path that leaves the workspace (`..`, absolute paths elsewhere): the agent's error."""


class ExecResult(BaseModel):
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False  # output was cut at limits.output_bytes
    timed_out: bool = False
    violation: Violation | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.violation is None


class SandboxLimits(BaseModel):
    """Resource limits of one sandbox (one episode). Docker enforces all; local only some."""

    model_config = ConfigDict(extra="forbid")

    memory_mb: int = Field(512, ge=16, le=65_536, description="memory (and tmpfs) cap")
    cpus: float = Field(1.0, gt=0, le=64)
    pids: int = Field(128, ge=8, le=32_768, description="max processes and threads")
    output_bytes: int = Field(
        1 << 20, ge=1024, le=1 << 30, description="stdout+stderr bytes kept per command"
    )
    command_timeout_s: float = Field(60.0, gt=0, le=86_400)
    episode_timeout_s: float = Field(1800.0, gt=0, le=7 * 86_400)
    disk_mb: int = Field(256, ge=1, le=65_536, description="workspace size")
    tmp_mb: int = Field(64, ge=1, le=65_536, description="/tmp size")


class SandboxSpec(BaseModel):
    """A scenario's `world.sandbox` block. A bare string is the backend: `sandbox: docker`."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field("docker", description="local, docker, or a registered sandbox backend")
    image: str | None = Field(
        None, description="docker image; default: the image `trialrun sandbox build` makes"
    )
    dockerfile: str | None = Field(
        None, description="build the image from this Dockerfile (its folder is the context)"
    )
    setup: list[str] = Field(
        default_factory=list, description="shell commands run in the workspace at start"
    )
    files: dict[str, str] = Field(
        default_factory=dict, description="workspace path -> content, written before setup"
    )
    env: dict[str, str] = Field(default_factory=dict)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    pool: int = Field(
        0, ge=0, le=64, description="docker: warm containers kept ready (0: start one per episode)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"backend": data}
        return data

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from trialrun.registry import names

        known = names("sandbox")
        if v not in known and ":" not in v:
            from trialrun.registry import unknown_message

            raise ValueError(unknown_message("sandbox backend", v, known))
        return v

    @model_validator(mode="after")
    def _one_image_source(self) -> SandboxSpec:
        if self.image and self.dockerfile:
            raise ValueError("give either image or dockerfile, not both")
        if self.backend == "local" and (self.image or self.dockerfile or self.pool):
            raise ValueError("image, dockerfile and pool apply to the docker backend only")
        for path in self.files:
            confine(path)
        return self


def confine(path: str) -> str:
    """Normalise a workspace path to a relative POSIX path; refuse anything that leaves it."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise SandboxPathError(f"invalid path {path!r}")
    p = path.replace("\\", "/")
    if p.startswith("/"):
        if p == WORKSPACE or p.startswith(WORKSPACE + "/"):
            p = p[len(WORKSPACE):].lstrip("/") or "."
        else:
            raise SandboxPathError(f"path {path!r} is outside the workspace")
    parts = [s for s in p.split("/") if s not in ("", ".")]
    if ".." in parts:
        raise SandboxPathError(f"path {path!r} leaves the workspace ('..' is not allowed)")
    return posixpath.join(*parts) if parts else "."


# Error texts that classify a failed command (the limit itself is enforced by the kernel).
_TEXT_VIOLATIONS: tuple[tuple[bytes, Violation], ...] = (
    (b"No space left on device", "disk"),
    (b"Disk quota exceeded", "disk"),
    (b"File too large", "disk"),
    (b"Network is unreachable", "network"),
    (b"Temporary failure in name resolution", "network"),
    (b"Read-only file system", "read_only_fs"),
)


def text_violation(exit_code: int, stdout: bytes, stderr: bytes) -> Violation | None:
    """Name the wall a failed command hit, from its error text (None if it did not fail)."""
    if exit_code == 0:
        return None
    tail = stderr[-8192:] + b"\n" + stdout[-8192:]
    for text, name in _TEXT_VIOLATIONS:
        if text in tail:
            return name
    return None


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class Sandbox(ABC):
    """One episode's isolated place to run commands and keep files. Use as a context manager."""

    backend: str = ""

    @classmethod
    def open(cls, spec: SandboxSpec, labels: dict[str, str] | None = None) -> Sandbox:
        """A started sandbox for one episode (backends with warm pools override this)."""
        return cls(spec, labels)

    def __init__(self, spec: SandboxSpec, labels: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.limits = spec.limits
        self.labels = dict(labels or {})
        self.closed = False
        self.started = time.monotonic()  # the episode clock (episode_timeout_s)

    def time_left(self) -> float:
        return self.limits.episode_timeout_s - (time.monotonic() - self.started)

    def _command_budget(self, cmd: str | list[str], timeout: float | None
                        ) -> tuple[list[str], float, bool] | ExecResult:
        """What every backend's exec checks first: the sandbox is open, the episode has time
        left. Returns (argv, seconds allowed, whether the episode's deadline is what limits
        them) or the ExecResult that ends the command now."""
        if self.closed:
            raise SandboxFault("sandbox is closed")
        lim = self.limits
        left = self.time_left()
        if left <= 0:
            return ExecResult(exit_code=-1, timed_out=True, violation="episode_timeout",
                              stderr="episode time limit reached")
        t = min(timeout or lim.command_timeout_s, lim.command_timeout_s, left)
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return argv, t, t >= left

    def extend_deadline(self, seconds: float) -> None:
        """Give the harness time after the agent's (grading must not hit the episode limit)."""
        self.started = max(self.started, time.monotonic() - self.limits.episode_timeout_s) \
            + seconds

    @abstractmethod
    def exec(
        self,
        cmd: str | list[str],
        timeout: float | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run `cmd` (a string goes through `sh -c`) in the workspace, or `workdir` inside it."""

    @abstractmethod
    def read_file(self, path: str) -> str: ...

    @abstractmethod
    def write_file(self, path: str, text: str) -> None:
        """Create or replace a file, making parent folders."""

    @abstractmethod
    def list_files(self, path: str = ".") -> list[str]:
        """Files under `path`, recursively, as sorted workspace-relative POSIX paths."""

    @abstractmethod
    def snapshot(self) -> bytes:
        """The workspace as an uncompressed tar archive."""

    @abstractmethod
    def restore(self, data: bytes) -> None:
        """Replace the workspace with a `snapshot()`."""

    @abstractmethod
    def close(self) -> None:
        """Release everything; idempotent. Called also after errors."""

    def setup(self) -> None:
        """Write the spec's files and run its setup commands (a failing command is a fault)."""
        for path, text in self.spec.files.items():
            self.write_file(path, text)
        for cmd in self.spec.setup:
            r = self.exec(cmd)
            if not r.ok:
                raise SandboxFault(
                    f"sandbox setup command failed ({r.exit_code}, {r.violation}): {cmd}\n"
                    f"{r.stderr[-2000:]}"
                )

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_sandbox(spec: SandboxSpec | dict | str, labels: dict[str, str] | None = None) -> Sandbox:
    """Open a started, set-up sandbox for one episode.

    `labels` name the episode (`run`, `episode`, ...); the docker backend puts them on the
    container as `trialrun.<key>` so that `trialrun sandbox ls/prune` can find it.
    """
    from trialrun.registry import resolve

    if not isinstance(spec, SandboxSpec):
        spec = SandboxSpec.model_validate(spec)
    box: Sandbox = resolve("sandbox", spec.backend).open(spec, labels)
    try:
        box.setup()
    except BaseException:
        box.close()
        raise
    return box
