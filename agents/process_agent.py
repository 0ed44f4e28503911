"""An agent in any language: an external process that speaks JSON lines over stdin/stdout.

    agent:
      type: process
      params:
        command: [node, examples/jsonl_agent/agent.js]   # argv, no shell
        timeout_s: 30                                     # per decision

The protocol (docs/jsonl-protocol.md, version `PROTOCOL`) is request/response, one JSON
object per line. trialrun writes `start` and waits for `ready`; each `decide` writes one
`observe` and reads exactly one `decision`; each `feedback` writes one `feedback` (no answer);
`close` writes `close`, waits `close_timeout_s` for the process to exit, then kills it. The
process may write `log` lines at any time (kept in `self.logs` and sent to the logger
`trialrun.agents.process`) and an `error` line for a fault outside its control.

Faults of the process are infrastructure errors (`AgentError`: retried, never scored): it
does not start, exits, times out, writes a line that is not JSON or not a known message, or
a decision whose fields have the wrong types or an unknown `kind`. The tail of its stderr ends
the message. What a well-formed decision *says* is the agent's own: an unknown tool or
arguments that break the tool's schema go to the loop as a `tool_call` and are graded.

The process runs in its own session (process group) with async pipes and no threads; on
close and on every fault the whole group is killed and reaped, and a finalizer kills it if the
agent is dropped without `close`. Its stderr is drained whenever trialrun waits on it, so a
chatty process never blocks, and only the last `stderr_tail_bytes` are kept. `env` values
are secrets as far as trialrun is concerned: never logged, never in messages or reprs.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections import deque
from typing import Any, Literal, NoReturn, get_args

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trialrun.agents.base import Agent, AgentContext, AgentError, Feedback
from trialrun.agents.child_process import (
    POSIX,
    CommandOptions,
    StderrTail,
    exit_text,
    kill_group,
)
from trialrun.registry import did_you_mean, register
from trialrun.trajectory import Decision, DecisionKind, Observation

__all__ = ["PROTOCOL", "ProcessAgent", "ProcessOptions"]

PROTOCOL = 1
KINDS: tuple[str, ...] = get_args(DecisionKind)
# What goes over the wire, whatever else the records grow: the protocol's fixed shapes.
DECISION_FIELDS = {"kind", "node", "tool", "args", "text", "confidence", "tokens", "cost"}
RESULT_FIELDS = {"ok", "output", "error", "fault"}
TOOL_FIELDS = {"name", "description", "parameters", "irreversible"}
OBSERVATION_FIELDS = {"text", "data"}
MESSAGES_IN = ("ready", "decision", "log", "error")  # what a process may write
CLIP = 200  # characters of an offending line quoted in an error message

log = logging.getLogger("trialrun.agents.process")


class ProcessOptions(CommandOptions):
    """`agent.params` of `type: process`."""

    timeout_s: float = Field(60.0, gt=0, description="seconds per decision (and per write)")
    max_line_bytes: int = Field(16 * 2**20, ge=1024, description="longest line accepted")


class WireDecision(BaseModel):
    """A `decision` line as the protocol defines it: types are checked (a mismatch is a
    protocol fault), values are not (an unknown tool is the agent's graded mistake)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    type: Literal["decision"]
    kind: DecisionKind
    node: str | None = None
    tool: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    text: str | None = None
    confidence: float | None = Field(None, ge=0, le=1)
    tokens: int = Field(0, ge=0)
    cost: float = Field(0.0, ge=0)


class _Fault(Exception):
    """A protocol fault found while talking; `_talk` kills the process and raises it."""


@register("agent", "process")
class ProcessAgent(Agent):
    """An agent in its own process, in any language, over the JSON-lines protocol."""

    Options = ProcessOptions
    options: ProcessOptions

    def __init__(self, options: ProcessOptions | dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.process: Process | None = None
        self.logs: deque[dict[str, Any]] = deque(maxlen=200)  # the process's `log` lines
        self.step = 0  # observe messages sent (the loop's step index of the next decision)
        self._stdout: BufferedByteReceiveStream | None = None
        self.stderr = StderrTail(self.options.stderr_tail_bytes)
        self._pending: AgentError | None = None  # a fault met while giving feedback
        self._finalizer: weakref.finalize | None = None
        self._closed = False

    # --- the agent protocol ------------------------------------------------------------
    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        opts = self.options
        env = opts.environment()
        try:
            self.process = await anyio.open_process(
                opts.command, cwd=opts.cwd, env=env, start_new_session=POSIX)
        except OSError as e:  # not found, not executable, a bad cwd
            raise AgentError(f"could not start the agent process {self.program!r}: "
                             f"{type(e).__name__}: {e}") from None
        self._stdout = BufferedByteReceiveStream(self.process.stdout)  # type: ignore[arg-type]
        self._finalizer = weakref.finalize(self, kill_group, self.process)
        hello = {"type": "start", "protocol": PROTOCOL, "task": ctx.task,
                 "instruction": ctx.instruction,
                 "tools": [t.model_dump(mode="json", include=TOOL_FIELDS) for t in ctx.tools],
                 "observation": first.model_dump(mode="json", include=OBSERVATION_FIELDS),
                 "seed": ctx.seed,
                 # Differs between trials of one seed; the process's only randomness source.
                 "rng_seed": ctx.rng.getrandbits(31)}
        ready = await self._talk("at start", opts.start_timeout_s, hello, "ready")
        assert ready is not None
        if ready.get("protocol") != PROTOCOL:
            await self._fail(f"answered start with {_clip(json.dumps(ready))}; trialrun "
                             f"speaks protocol {PROTOCOL}: expected "
                             f'{{"type": "ready", "protocol": {PROTOCOL}}}', "at start")

    async def decide(self, obs: Observation) -> Decision:
        if self._pending is not None:
            raise self._pending
        if self.process is None or self._closed:
            raise AgentError("the agent process is not running (start was not called, or "
                             "it was closed)")
        step, self.step = self.step, self.step + 1
        when = f"at step {step}"
        msg = await self._talk(when, self.options.timeout_s,
                               {"type": "observe", "step": step,
                                "observation": obs.model_dump(
                                    mode="json", include=OBSERVATION_FIELDS)}, "decision")
        assert msg is not None
        try:
            wire = WireDecision.model_validate(msg)
        except ValidationError as e:
            await self._fail(f"sent a malformed decision: {_first_error(e)}: "
                             f"{_clip(json.dumps(msg))}", when)
        node = wire.node or self.options.node_of(wire.kind, wire.tool)
        return Decision(kind=wire.kind, node=node, tool=wire.tool, args=wire.args, text=wire.text,
                        confidence=wire.confidence, tokens=wire.tokens, cost=wire.cost)

    async def feedback(self, fb: Feedback) -> None:
        if self.process is None or self._closed or self._pending is not None:
            return
        msg = {"type": "feedback", "step": self.step - 1,
               "decision": _wire(fb.decision),
               "result": fb.result.model_dump(mode="json", include=RESULT_FIELDS)
               if fb.result else None,
               "denied": fb.denied, "human_answer": fb.human_answer,
               "executed": _wire(fb.executed) if fb.executed else None}
        try:
            await self._talk(f"sending the feedback of step {self.step - 1}",
                             self.options.timeout_s, msg, None)
        except AgentError as e:
            # Raised at the next decision, which the loop turns into an infrastructure error;
            # a process that dies after the episode's last step does not change its outcome.
            self._pending = e

    async def close(self) -> None:
        """Say `close`, give the process `close_timeout_s` to exit, then kill its group.
        Never raises: the episode's own outcome must not be masked by a closing fault."""
        p = self.process
        if p is None or self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if p.returncode is None:
                with anyio.move_on_after(self.options.close_timeout_s):
                    try:
                        await self._write({"type": "close"})
                        await p.stdin.aclose()  # type: ignore[union-attr]
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        pass
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._drain_stderr)
                        await p.wait()
                        tg.cancel_scope.cancel()
            await self._kill()

    @property
    def program(self) -> str:
        return self.options.program

    def _who(self) -> str:
        pid = f" (pid {self.process.pid})" if self.process is not None else ""
        return f"agent process {self.program!r}{pid}"

    # --- talking -----------------------------------------------------------------------
    async def _talk(self, when: str, timeout: float, send: dict[str, Any] | None,
                    expect: str | None) -> dict[str, Any] | None:
        """Write `send`, then read up to the next message of type `expect` (log lines
        aside), within `timeout`, draining stderr meanwhile. Every fault kills the process
        and raises AgentError."""
        got: dict[str, Any] | None = None
        fault: str | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drain_stderr)
            try:
                with anyio.fail_after(timeout):
                    if send is not None:
                        try:
                            await self._write(send)
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                            why = await self._gone(f"before reading {send['type']}")
                            raise _Fault(why) from None
                    if expect is not None:
                        got = await self._read(expect, send["type"] if send else "")
            except TimeoutError:
                fault = (f"sent no {expect} within {timeout:g} s" if expect else
                         f"did not read its stdin within {timeout:g} s") + "; killed"
            except _Fault as e:
                fault = str(e)
            finally:
                tg.cancel_scope.cancel()
        if fault is not None:
            await self._fail(fault, when)
        return got

    async def _write(self, msg: dict[str, Any]) -> None:
        line = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), default=str)
        await self.process.stdin.send(line.encode() + b"\n")  # type: ignore[union-attr]

    async def _read(self, expect: str, answering: str) -> dict[str, Any]:
        assert self._stdout is not None
        limit = self.options.max_line_bytes
        while True:
            try:
                raw = await self._stdout.receive_until(b"\n", limit)
            except anyio.IncompleteRead:
                rest = self._stdout.buffer.strip()
                tail = f" (after a partial line {_clip(rest)})" if rest else ""
                raise _Fault(await self._gone(f"before sending {expect}") + tail) from None
            except anyio.DelimiterNotFound:
                raise _Fault(f"wrote a line longer than max_line_bytes ({limit}): "
                             f"{_clip(self._stdout.buffer)}") from None
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise _Fault(await self._gone(f"before sending {expect}")) from None
            if not raw.strip():
                continue  # a stray empty line
            try:
                msg = json.loads(raw)
            except ValueError:
                raise _Fault(f"wrote a line that is not JSON: {_clip(raw)} (write one JSON "
                             "object per line on stdout; debug output goes to stderr)"
                             ) from None
            kind = msg.get("type") if isinstance(msg, dict) else None
            if not isinstance(kind, str):
                raise _Fault(f"wrote a line that is not a message (a JSON object with a "
                             f"\"type\"): {_clip(raw)}")
            if kind == "log":
                self._log(msg)
                continue
            if kind == "error":
                raise _Fault(f"reported an error: {_clip(str(msg.get('message', '')), 2000)}")
            if kind == expect:
                return msg
            if kind in MESSAGES_IN:
                raise _Fault(f"sent {kind!r} in answer to {answering!r}; expected {expect!r}")
            raise _Fault(f"sent an unknown message type {kind!r}"
                         f"{did_you_mean(kind, list(MESSAGES_IN))} (a process writes "
                         f"{', '.join(MESSAGES_IN)}): {_clip(raw)}")

    def _log(self, msg: dict[str, Any]) -> None:
        self.logs.append(msg)
        level = logging.getLevelName(str(msg.get("level", "info")).upper())
        log.log(level if isinstance(level, int) else logging.INFO, "%s: %s", self._who(),
                msg.get("message", ""))

    async def _gone(self, when: str) -> str:
        """Why the pipe broke: the exit status, if the process exits within a second."""
        p = self.process
        assert p is not None
        with anyio.move_on_after(1.0):
            await p.wait()
        code = p.returncode
        return f"closed its stdout {when}" if code is None else f"{exit_text(code)} {when}"

    async def _drain_stderr(self) -> None:
        err = self.process.stderr if self.process is not None else None
        if err is None:
            return
        try:
            while True:
                self.stderr.add(await err.receive(65536))
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return

    # --- faults ------------------------------------------------------------------------
    async def _fail(self, fault: str, when: str) -> NoReturn:
        who = self._who()
        await self._kill()
        self._closed = True
        tail = self.stderr.text()
        note = f"\nstderr of the process (last lines):\n{tail}" if tail else ""
        raise AgentError(f"{who} {fault} ({when}){note}")

    async def _kill(self) -> None:
        """Kill the process group, reap it, and keep its last stderr."""
        p = self.process
        if p is None:
            return
        with anyio.CancelScope(shield=True):
            kill_group(p)
            with anyio.move_on_after(5.0):
                await p.wait()
            with anyio.move_on_after(0.5):  # its last words, unless a grandchild holds on
                await self._drain_stderr()
            with anyio.move_on_after(1.0):
                await p.aclose()
        if self._finalizer is not None:
            self._finalizer.detach()


def _wire(d: Decision) -> dict[str, Any]:
    return d.model_dump(mode="json", include=DECISION_FIELDS)


def _clip(text: str | bytes, n: int = CLIP) -> str:
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    text = text.strip()
    return repr(text if len(text) <= n else text[:n] + "...")


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "decision"
    if err["type"] == "extra_forbidden":
        fields = [f for f in WireDecision.model_fields if f != "type"]
        return (f"unknown field {loc!r}{did_you_mean(str(loc), fields)} (fields: "
                f"{', '.join(fields)})")
    if err["type"] == "literal_error" and loc == "kind":
        return f"kind {err['input']!r} is not one of {', '.join(KINDS)}" + did_you_mean(
            str(err["input"]), list(KINDS))
    return f"{loc}: {err['msg']}"
