"""Agents that speak MCP, in any language or framework: the world is their MCP server.

    agent:
      type: mcp
      params:
        command: [python, my_agent.py, --server, "{url}"]   # argv, no shell
        env: {OPENAI_API_KEY: ...}                           # added; never logged or shown

For each episode trialrun serves the world over MCP (streamable HTTP on 127.0.0.1, a free
port: `trialrun.mcp_world`), then launches `command` in its own process group with the
endpoint's URL in `TRIALRUN_MCP_URL` and the task (the instruction and the world's first
observation) in `TRIALRUN_TASK`; `{url}` and `{task}` in the arguments are replaced by the
same. The process connects with any MCP client, lists the tools (the world's, plus
`ask_human`, `message_user` and `finish`) and calls them; each call is one decision of the
episode, reviewed, executed and graded at its node (`node_map`, else the scenario's, else the
tool's name), and returns what became of it.

The episode ends when the process calls `finish(summary)` (the summary is the end note; the
process then has `close_timeout_s` to exit before its group is killed), or when it exits:
with code 0, its last line on stdout is its final word; any other exit (a crash, a kill) is
the agent's own failure, an unfinished episode whose end note says how it died. A budget that
runs out (steps, wall time) ends the episode too and kills the process group.

Faults that are not the agent's are infrastructure errors (`AgentError`, never scored): the
command cannot be started (`MCPAgentStartError`: not found, not executable, a bad `cwd`, or the
process fails — exits non-zero — before it makes any MCP request; not retried), or it makes no
MCP request within `start_timeout_s`. Messages end with the tail of the process's stderr.

`type: mcp-served` is the same world served for an agent started by hand (`trialrun
serve-world`): over stdio (the agent runs `trialrun serve-world ... --transport stdio` as its
MCP server command) or over HTTP (the URL is printed on stderr), until `finish` or the client
goes away.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import deque
from typing import Any, Literal

import anyio
from anyio.abc import Process
from pydantic import Field

from trialrun.agents.base import AgentError
from trialrun.agents.child_process import (
    POSIX,
    CommandOptions,
    StderrTail,
    exit_text,
    kill_group,
)
from trialrun.agents.self_driving import Port, SelfDrivingAgent, SelfDrivingOptions
from trialrun.registry import register

__all__ = ["MCPAgent", "MCPAgentStartError", "MCPOptions", "MCPServedAgent",
           "MCPServedOptions", "ProcessCrashed"]

URL_VAR, TASK_VAR = "TRIALRUN_MCP_URL", "TRIALRUN_TASK"

log = logging.getLogger("trialrun.agents.mcp")


class MCPOptions(CommandOptions, SelfDrivingOptions):
    """`agent.params` of `type: mcp`: `command` may hold {url} and {task}, replaced by the MCP
    endpoint and the task."""

    timeout_s: float | None = Field(None, gt=0, description="seconds the process may run "
                                    "(default: only the scenario's max_wall_time bounds it); "
                                    "past it the process is killed, the agent's failure")


class MCPServedOptions(SelfDrivingOptions):
    """`agent.params` of `type: mcp-served` (set by `trialrun serve-world`)."""

    transport: Literal["stdio", "http"] = Field("stdio", description="stdio: this process's "
                                                "stdin/stdout; http: 127.0.0.1:port")
    port: int = Field(0, ge=0, le=65535, description="http: the port (0: a free one)")


class MCPAgentStartError(AgentError):
    """The agent's command could not be started, or died before it said anything: the
    same would happen on every try."""

    retryable = False


class ProcessCrashed(RuntimeError):
    """The agent's process died before calling finish: the agent's own failure."""


@register("agent", "mcp")
class MCPAgent(SelfDrivingAgent):
    """An MCP client in its own process; the world is its MCP server."""

    Options = MCPOptions
    options: MCPOptions

    def __init__(self, options: MCPOptions | dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.process: Process | None = None
        self.url: str | None = None
        self.stdout_lines: deque[str] = deque(maxlen=50)
        self.stderr = StderrTail(self.options.stderr_tail_bytes)

    @property
    def program(self) -> str:
        return self.options.program

    def _who(self) -> str:
        pid = f" (pid {self.process.pid})" if self.process is not None else ""
        return f"agent process {self.program!r}{pid}"

    async def drive(self, port: Port) -> str | None:
        from trialrun.mcp_world import ServeError, WorldServer, http_server

        world = WorldServer(port)
        contacted = anyio.Event()

        async def first_request(ctx: Any, call_next: Any) -> Any:
            contacted.set()
            return await call_next(ctx)

        world.server.middleware = [first_request]
        try:
            async with http_server(world) as url:
                self.url = url
                try:
                    return await self._run(port, world, url, contacted)
                finally:
                    await self._kill()  # first: the server then stops without waiting on it
        except ServeError as e:
            raise AgentError(f"could not serve the world over MCP: {e}") from None

    async def _run(self, port: Port, world: Any, url: str, contacted: anyio.Event) -> str | None:
        """Launch the process and watch it until it finishes, exits or times out."""
        opts = self.options
        task = port.prompt()
        argv = [a.replace("{url}", url).replace("{task}", task) for a in opts.command]
        env = opts.environment(**{URL_VAR: url, TASK_VAR: task})
        t0 = anyio.current_time()
        try:
            self.process = await anyio.open_process(
                argv, cwd=opts.cwd, env=env, start_new_session=POSIX,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:  # not found, not executable, a bad cwd
            where = f" (cwd {opts.cwd!r})" if opts.cwd else ""
            raise MCPAgentStartError(f"could not start the agent process {self.program!r}"
                                     f"{where}: {type(e).__name__}: {e.strerror or e}"
                                     ) from None
        p = self.process
        exited = anyio.Event()
        self._out_done, self._err_done = anyio.Event(), anyio.Event()
        outcome: list[Any] = []  # the words, or the exception to raise once the tasks are gone
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_stdout, self._out_done)
            tg.start_soon(self._read_stderr, self._err_done)

            async def reap() -> None:
                await p.wait()
                exited.set()

            tg.start_soon(reap)
            try:
                outcome.append(await self._watch(world, contacted, exited, t0))
            except Exception as e:  # noqa: BLE001 - raised below, outside the task group
                outcome.append(e)
            finally:
                tg.cancel_scope.cancel()
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    async def _watch(self, world: Any, contacted: anyio.Event, exited: anyio.Event,
                     t0: float) -> str | None:
        """Until the process finishes, exits or runs out of time: its final words."""
        opts = self.options
        p = self.process
        assert p is not None
        if not await _first(contacted, exited, world.done, timeout=opts.start_timeout_s):
            await self._kill()
            await self._drain()
            raise AgentError(self._with_stderr(
                f"{self._who()} made no MCP request within {opts.start_timeout_s:g} s of its "
                f"start (it finds the server's URL in ${URL_VAR}, and in place of {{url}} in "
                "its arguments); killed"))
        if exited.is_set() and not contacted.is_set() and p.returncode != 0:
            await self._drain()
            raise MCPAgentStartError(self._with_stderr(
                f"{self._who()} {exit_text(p.returncode)} before making any MCP request"))
        left = None if opts.timeout_s is None else max(
            0.0, opts.timeout_s - (anyio.current_time() - t0))
        if not await _first(exited, world.done, timeout=left):
            await self._kill()
            await self._drain()
            raise ProcessCrashed(self._with_stderr(
                f"{self._who()} ran past timeout_s ({opts.timeout_s:g} s) without calling "
                "finish; killed"))
        if world.done.is_set():
            with anyio.move_on_after(opts.close_timeout_s):
                await exited.wait()
            await self._kill()
            await self._drain()
            return world.summary or self._last_line()
        await self._drain()
        if p.returncode != 0:
            raise ProcessCrashed(self._with_stderr(
                f"{self._who()} {exit_text(p.returncode)} without calling finish"))
        return self._last_line()

    # --- the process's output ------------------------------------------------------------
    async def _drain(self) -> None:
        """Give the readers a moment to take a dead process's last words (a grandchild that
        holds the pipes open is not waited for)."""
        with anyio.move_on_after(0.5):
            await self._out_done.wait()
            await self._err_done.wait()

    async def _read_stdout(self, done: anyio.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        buf = b""
        try:
            async for chunk in self.process.stdout:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    self._stdout_line(raw)
                buf = buf[-65536:]  # a line without end keeps its tail
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            if buf.strip():
                self._stdout_line(buf)
            done.set()

    def _stdout_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").strip()
        if line:
            self.stdout_lines.append(line[:2000])
            log.debug("%s: %s", self._who(), line[:2000])

    async def _read_stderr(self, done: anyio.Event) -> None:
        assert self.process is not None and self.process.stderr is not None
        try:
            async for chunk in self.process.stderr:
                self.stderr.add(chunk)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            done.set()

    def _last_line(self) -> str | None:
        return self.stdout_lines[-1] if self.stdout_lines else None

    def _with_stderr(self, msg: str, keep: int = 1200) -> str:
        """`msg` and the end of the process's stderr (an episode's end note is at most 2000
        characters: the end of a traceback says the most)."""
        tail = self.stderr.text()
        if len(tail) > keep:
            tail = "..." + tail[-keep:]
        return f"{msg}\nstderr of the process (last lines):\n{tail}" if tail else msg

    async def _kill(self) -> None:
        """Kill the process group and reap the process."""
        p = self.process
        if p is None:
            return
        with anyio.CancelScope(shield=True):
            kill_group(p)
            with anyio.move_on_after(5.0):
                await p.wait()


async def _first(*events: anyio.Event, timeout: float | None = None) -> bool:
    """Wait until one of `events` is set; False when `timeout` passed first."""
    if any(e.is_set() for e in events):
        return True
    with anyio.move_on_after(timeout) as scope:
        async with anyio.create_task_group() as tg:
            async def wait(e: anyio.Event) -> None:
                await e.wait()
                tg.cancel_scope.cancel()

            for e in events:
                tg.start_soon(wait, e)
    return not scope.cancelled_caught


@register("agent", "mcp-served")
class MCPServedAgent(SelfDrivingAgent):
    """The world served over MCP for an agent started by hand (`trialrun serve-world`)."""

    Options = MCPServedOptions
    options: MCPServedOptions

    async def drive(self, port: Port) -> str | None:
        from trialrun.mcp_world import ServeError, serve

        def on_url(url: str) -> None:
            print(f"serving the world over MCP at {url} (streamable HTTP); the episode ends "
                  "when the agent calls finish", file=sys.stderr, flush=True)

        try:
            summary = await serve(port, self.options.transport, http_port=self.options.port,
                                  on_url=on_url)
        except ServeError as e:
            raise MCPAgentStartError(f"could not serve the world over MCP: {e}") from None
        if summary is None:
            return "the MCP client went away without calling finish"
        return summary
