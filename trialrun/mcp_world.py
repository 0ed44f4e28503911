"""One episode's world as an MCP server: any MCP-capable agent, in any language, can be evaluated.

`WorldServer(port)` builds an MCP server (the `mcp` SDK's low-level `Server`, tools defined at
run time) on a `trialrun.agents.self_driving.Port`. It offers

- every tool of the world, with its description and JSON schema (`inputSchema`); irreversible
  tools carry the hint `destructiveHint: true`;
- `ask_human(question)`: ask the scenario's human; returns the answer;
- `message_user(text)`: a message to the world's user (not a tool call); returns their answer;
- `finish(summary)`: the agent is done; the episode ends with `summary` as its end note.

(A world tool of the same name wins: the harness tool is then offered as `trialrun_<name>`.)
The server's `instructions`, and the prompt `task`, are the task: its instruction and the
world's first observation.

Each call of a world tool is one decision of the episode (`await port.call(name, args)`):
reviewed at its checkpoint, executed by the world and graded at its node, and what became of
it comes back as text (`outcome_text`): the output (JSON), `Error: ...` or a reviewer's
denial, with `isError` set when the call failed, was refused, was denied or a human ran
something else instead. The server does not check arguments: an unknown tool or arguments
that break the schema go to the episode as the agent's call, where they are refused and
graded as the agent's error (`valid_call`), and come back as an `isError` result.

Transports: `serve_stdio` (the process's stdin/stdout; nothing else may write to stdout, so
fd 1 points at stderr while serving) and `http_server` (streamable HTTP on 127.0.0.1, a free
port unless one is given; the endpoint is `http://127.0.0.1:PORT/mcp`; DNS-rebinding
protection admits Host headers 127.0.0.1, localhost and [::1] only). `serve(port, ...)`
serves one episode over either until `finish`, until the client goes away (stdio: end of
input) or until the episode ends on its own (its task is then cancelled); nothing outlives it.
Calls made before `finish` are answered before the server stops; a call still waiting when
the episode ends on its own is answered with an error, never left hanging.

`mcp` is imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.lowlevel

from trialrun.agents.base import DENIED
from trialrun.agents.self_driving import Port, outcome_text

if TYPE_CHECKING:
    import mcp.types

__all__ = ["HOST", "ServeError", "WorldServer", "http_server", "serve", "serve_stdio"]

HOST = "127.0.0.1"
HARNESS_TOOLS = ("ask_human", "message_user", "finish")
PIPE_CHUNK = 4096  # bytes written per os.write once the pipe is writable (PIPE_BUF: no block)

_HARNESS_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "ask_human": (
        "Ask a human supervisor a question (when the request is ambiguous, or before acting "
        "if unsure); returns their answer.",
        {"type": "object", "properties": {"question": {
            "type": "string", "description": "the question, in full"}},
         "required": ["question"], "additionalProperties": False}),
    "message_user": (
        "Send a message to the user of this world (the customer, the requester); returns "
        "what they answer, if anything.",
        {"type": "object", "properties": {"text": {
            "type": "string", "description": "what the user reads"}},
         "required": ["text"], "additionalProperties": False}),
    "finish": (
        "Finish: call this once, when the task is done (or cannot be done). The episode ends; "
        "no call after it counts.",
        {"type": "object", "properties": {"summary": {
            "type": "string", "description": "a short note on what was done"}},
         "additionalProperties": False}),
}
_HARNESS_ARG = {"ask_human": "question", "message_user": "text", "finish": "summary"}


class ServeError(RuntimeError):
    """The MCP server could not start (the address is taken, the application failed)."""


class WorldServer:
    """The MCP face of one episode. `done` is set when the agent calls `finish` (its summary
    is `summary`); `calls` counts the tool calls served."""

    def __init__(self, port: Port, *, name: str = "trialrun-world") -> None:
        import mcp.types as t
        from mcp.server.lowlevel import Server

        from trialrun import __version__

        self.port = port
        self.done = anyio.Event()
        self.summary: str | None = None
        self.calls = 0
        self._finish_id: Any = None  # the JSON-RPC id of the finish call (stdio flushing)
        self._finish_sent = anyio.Event()
        self._in_flight: set[anyio.CancelScope] = set()  # calls waiting on the episode
        self._stopped = False
        world = {s.name for s in port.tools}
        # harness role -> the name it is offered under (a world tool of that name wins)
        self.harness = {role: role if role not in world else f"trialrun_{role}"
                        for role in HARNESS_TOOLS}
        self._roles = {exposed: role for role, exposed in self.harness.items()}
        tools = []
        for spec in port.tools:
            schema = dict(spec.parameters or {})
            schema.setdefault("type", "object")
            tools.append(t.Tool(name=spec.name, description=spec.description or None,
                                input_schema=schema, annotations=t.ToolAnnotations(
                                    destructive_hint=True, read_only_hint=False)
                                if spec.irreversible else None))
        for role, exposed in self.harness.items():
            desc, schema = _HARNESS_SPECS[role]
            tools.append(t.Tool(name=exposed, description=desc, input_schema=schema))
        self.tools = tools
        self.task = port.prompt()
        self.server = Server(name, version=__version__, instructions=self.task,
                             on_list_tools=self._list_tools, on_call_tool=self._call_tool,
                             on_list_prompts=self._list_prompts,
                             on_get_prompt=self._get_prompt)
        # No tracing spans per message: a no-op without an exporter, and a cost per call.
        self.server.middleware = []

    # --- handlers ------------------------------------------------------------------------
    async def _list_tools(self, ctx: Any, params: Any) -> mcp.types.ListToolsResult:
        import mcp.types as t

        return t.ListToolsResult(tools=self.tools)

    async def _list_prompts(self, ctx: Any, params: Any) -> mcp.types.ListPromptsResult:
        import mcp.types as t

        return t.ListPromptsResult(prompts=[t.Prompt(
            name="task", description="The task of this episode: the instruction and the "
            "world's first observation")])

    async def _get_prompt(self, ctx: Any, params: Any) -> mcp.types.GetPromptResult:
        import mcp.types as t
        from mcp import MCPError

        if params.name != "task":
            raise MCPError(code=t.INVALID_PARAMS, message=f"no prompt {params.name!r}; "
                           "prompts: task")
        return t.GetPromptResult(description="The task of this episode", messages=[
            t.PromptMessage(role="user", content=t.TextContent(text=self.task))])

    async def _call_tool(self, ctx: Any, params: Any) -> mcp.types.CallToolResult:
        name: str = params.name
        args = params.arguments if params.arguments is not None else {}
        if self.done.is_set() or self._stopped:
            return _result("The episode is over: no call after it counts.", True)
        with anyio.CancelScope() as scope:
            self._in_flight.add(scope)
            try:
                return await self._call(ctx, name, args)
            finally:
                self._in_flight.discard(scope)
        return _result("The episode ended before this call was answered.", True)

    def stop_calls(self) -> None:
        """The episode has ended (or the server stops): calls still waiting on it are
        answered at once, with an error, so that no request hangs."""
        self._stopped = True
        for scope in list(self._in_flight):
            scope.cancel()

    async def _call(self, ctx: Any, name: str, args: dict[str, Any]
                    ) -> mcp.types.CallToolResult:
        self.calls += 1
        role = self._roles.get(name)
        if role is None:  # a world tool, or a tool the world does not have: the episode says
            fb = await self.port.call(name, args)
            failed = fb.denied or fb.executed is not None or (
                fb.result is not None and not fb.result.ok)
            return _result(outcome_text(fb), failed)
        arg = _HARNESS_ARG[role]
        value = args.get(arg, "" if role == "finish" else None)
        extra = sorted(set(args) - {arg})
        if not isinstance(value, str) or extra:
            why = (f"unknown argument(s) {', '.join(extra)}" if extra
                   else f"`{arg}` must be a string")
            return _result(f"Error: {name}: {why}; call it as {name}({arg}=\"...\")", True)
        if role == "ask_human":
            return _result(await self.port.ask_human(value) or "(no answer)", False)
        if role == "message_user":
            said = await self.port.say(value)
            return _result(said or "(message sent; no answer)", said == DENIED)
        self.summary = value
        self._finish_id = ctx.request_id
        self.done.set()
        return _result("Finished. The episode is over; no further call counts.", False)

    async def settled(self, timeout: float = 2.0) -> None:
        """Wait (at most `timeout`) until no call is waiting on the episode: after `finish`,
        the calls made before it are answered before the server stops."""
        with anyio.move_on_after(timeout):
            while self._in_flight:
                await anyio.sleep(0.005)

    # --- stdio flushing ------------------------------------------------------------------
    def _sent(self, line: str) -> None:
        """A line went out on stdout: note when it is the answer to `finish`."""
        if self._finish_id is None or self._finish_sent.is_set():
            return
        try:
            sent_id = json.loads(line).get("id")
        except (ValueError, AttributeError):
            return
        if sent_id == self._finish_id:
            self._finish_sent.set()


def _result(text: str, is_error: bool) -> mcp.types.CallToolResult:
    import mcp.types as t

    return t.CallToolResult(content=[t.TextContent(text=text)], is_error=is_error)


# --- stdio -------------------------------------------------------------------------------------
class _FdLines:
    """Lines from a file descriptor, read on the event loop (no thread), so that serving
    can be cancelled at any time; blank lines are skipped."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False
        mode = os.fstat(fd).st_mode
        # Files never block (and cannot be polled): read them directly.
        self.pollable = not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) and
                             not os.isatty(fd))

    def __aiter__(self) -> _FdLines:
        return self

    async def __anext__(self) -> str:
        while True:
            line, sep, rest = self.buf.partition(b"\n")
            if sep:
                self.buf = rest
                if line.strip():
                    return line.decode("utf-8", "replace")
                continue
            if self.eof:
                self.buf = b""
                if line.strip():
                    return line.decode("utf-8", "replace")
                raise StopAsyncIteration
            if self.pollable:
                await anyio.wait_readable(self.fd)
            else:
                await anyio.lowlevel.checkpoint()
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk


class _FdWriter:
    """Text to a file descriptor in pipe-sized writes, each once the pipe has room."""

    def __init__(self, fd: int, on_sent: Callable[[str], None]) -> None:
        self.fd = fd
        self.on_sent = on_sent
        mode = os.fstat(fd).st_mode
        self.pollable = not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) and
                             not os.isatty(fd))

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            if self.pollable:
                await anyio.wait_writable(self.fd)
            try:
                n = os.write(self.fd, data[:PIPE_CHUNK])
            except BlockingIOError:
                continue
            except OSError:  # the client closed its end: nothing more can be said
                raise anyio.ClosedResourceError from None
            data = data[n:]
        self.on_sent(text)

    async def flush(self) -> None:
        return None


@contextmanager
def _claim_stdio(stdin_fd: int, stdout_fd: int):  # noqa: ANN202
    """While serving on the process's own stdin/stdout, point fd 0 at /dev/null and fd 1 at
    stderr, so that nothing else (the world, a library's print, a child process) reads the
    client's messages or writes into the wire. Yields the descriptors to serve on."""
    if (stdin_fd, stdout_fd) != (0, 1):
        yield stdin_fd, stdout_fd
        return
    import sys

    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
        yield wire_in, wire_out
    finally:
        sys.stdout.flush()
        os.dup2(wire_in, 0)
        os.dup2(wire_out, 1)
        for fd in (null, wire_in, wire_out):
            os.close(fd)


async def serve_stdio(world: WorldServer, *, stdin_fd: int = 0, stdout_fd: int = 1,
                      flush_timeout_s: float = 2.0) -> None:
    """Serve MCP over stdin/stdout (newline-delimited JSON-RPC) until the client closes its
    end or calls `finish` (its answer is written first, within `flush_timeout_s`)."""
    from mcp.server.stdio import stdio_server

    with _claim_stdio(stdin_fd, stdout_fd) as (fd_in, fd_out):
        reader, writer = _FdLines(fd_in), _FdWriter(fd_out, world._sent)
        # One scope over the SDK's transport too: its reader waits on stdin until cancelled.
        with anyio.CancelScope() as scope:
            async with stdio_server(stdin=reader, stdout=writer) as (read, write):  # type: ignore[arg-type]
                async with anyio.create_task_group() as tg:
                    async def run() -> None:
                        await world.server.run(read, write,
                                               world.server.create_initialization_options())
                        scope.cancel()  # the client closed its end

                    tg.start_soon(run)
                    await world.done.wait()
                    await world.settled()
                    with anyio.move_on_after(flush_timeout_s):
                        await world._finish_sent.wait()
                    scope.cancel()


# --- streamable HTTP ---------------------------------------------------------------------------
def _uvicorn_server(config: Any, ready: anyio.Event) -> Any:
    import asyncio

    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn serving inside a host program: no signal handlers of its own (Ctrl-C is
        the host's), a stop without polling, and a signal once it listens."""

        stop: asyncio.Event

        @contextmanager
        def capture_signals(self):  # noqa: ANN202
            yield

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.stop = asyncio.Event()
            try:
                await super().startup(sockets)
            finally:
                ready.set()

        async def main_loop(self) -> None:
            await self.on_tick(0)  # default headers
            if not self.should_exit:
                await self.stop.wait()

    return _Server(config)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=TCP: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@asynccontextmanager
async def http_server(world: WorldServer, *, host: str = HOST, port: int = 0,
                      json_response: bool = True,
                      shutdown_timeout_s: float = 1.0) -> AsyncIterator[str]:
    """Serve MCP over streamable HTTP on `host:port` (0: a free port) while the block runs;
    yields the endpoint's URL. On leaving (also when cancelled) the server stops: calls in
    flight get `shutdown_timeout_s` to finish, then the socket and sessions are closed.
    Raises ServeError when the address cannot be bound or the server does not start."""
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    try:
        sock = _bind(host, port)
    except OSError as e:
        raise ServeError(f"could not listen on {host}:{port}: {e.strerror or e}") from None
    try:
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
        app = world.server.streamable_http_app(host=host, transport_security=security,
                                               json_response=json_response)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                                ws="none", timeout_graceful_shutdown=shutdown_timeout_s)
        ready = anyio.Event()
        server = _uvicorn_server(config, ready)
        failed: list[str] = []

        async def run() -> None:
            # Shielded: a cancelled episode still stops the server in order (sessions, socket).
            with anyio.CancelScope(shield=True):
                try:
                    await server.serve(sockets=[sock])
                except SystemExit:  # uvicorn's way of saying the app did not start
                    failed.append("the MCP server's application did not start")
                except Exception as e:  # noqa: BLE001 - reported to the caller below
                    failed.append(f"{type(e).__name__}: {e}")
                finally:
                    ready.set()

        bound = sock.getsockname()
        url_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        # Raised after the task group, not in it: it would wrap them in an ExceptionGroup.
        caught: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                await ready.wait()
                if failed or not server.started:
                    caught = ServeError("could not start the MCP server: "
                                        + (failed[0] if failed else "unknown"))
                else:
                    try:
                        yield f"http://{url_host}:{bound[1]}/mcp"
                    except Exception as e:  # noqa: BLE001 - the caller's, raised below
                        caught = e
            finally:
                world.stop_calls()
                server.should_exit = True
                if getattr(server, "stop", None) is not None:
                    server.stop.set()
        if caught is not None:
            raise caught
    finally:
        sock.close()


async def serve(port: Port, transport: Literal["stdio", "http"] = "stdio", *,
                http_port: int = 0, on_url: Callable[[str], None] | None = None,
                world: WorldServer | None = None) -> str | None:
    """Serve one episode's world over `transport` until the agent calls `finish` (returns its
    summary) or the client goes away (returns None; over HTTP, where a client may come and
    go, only `finish` or the episode's end stop it). `on_url` is told the HTTP endpoint."""
    world = world or WorldServer(port)
    if transport == "stdio":
        await serve_stdio(world)
    else:
        async with http_server(world, port=http_port) as url:
            if on_url is not None:
                on_url(url)
            await world.done.wait()
            await world.settled()
    return world.summary if world.done.is_set() else None
