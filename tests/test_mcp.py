"""Worlds served over MCP (trialrun.mcp_world), agents that speak MCP (`type: mcp`), and
`trialrun serve-world`: a real MCP client (the `mcp` package's) on both transports; every
call a stored, graded step; a crash, a hang or a missing command a clean end, never a hang;
a reviewer's denial reaches the client as an error result. Every server listens on
127.0.0.1 and is stopped.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

import trialrun.agents.mcp_agent  # noqa: F401 - registers mcp and mcp-served
from trialrun.agents.self_driving import DENIED, Port, SelfDrivingAgent
from trialrun.mcp_world import WorldServer, http_server
from trialrun.runner import RunOptions, run_episodes
from trialrun.sandbox.worlds.retail.world import RetailWorld
from trialrun.scenarios.loader import LIBRARY, load_scenario_source
from trialrun.store import Store
from trialrun.trajectory import EndReason

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mcp_agent" / "agent.py"
RETAIL_TOOLS = set(RetailWorld.declared_tools)
HARNESS = {"ask_human", "message_user", "finish"}
NODE_MAP = {"find_customer": "verify_identity", "list_orders": "lookup_order",
            "get_order": "lookup_order", "cancel": "resolve", "refund": "resolve",
            "ask_human": "clarify"}


def _serve_cmd() -> list[str]:
    """`trialrun serve-world` as test_cli runs the CLI."""
    return [sys.executable, "-m", "trialrun.cli", "serve-world"]


def _run(store: Store, source: str, **opts: Any):
    loaded = [load_scenario_source(source, "inline.yaml")]
    return anyio.run(lambda: run_episodes(store, loaded, keep_results=True,
                                          options=RunOptions(**opts)))


def _scenario(name: str, agent: dict[str, Any], **changes: Any) -> str:
    """A built-in retail scenario with another agent, one seed and one trial."""
    data = yaml.safe_load((LIBRARY / "retail" / f"{name}.yaml").read_text())
    data.update(agent=agent, seeds=1, trials=1, **changes)
    return yaml.safe_dump(data, sort_keys=False)


def _mcp_agent(script: Path | str, **params: Any) -> dict[str, Any]:
    return {"type": "mcp", "params": {"command": [sys.executable, str(script)],
                                      "node_map": NODE_MAP, **params}}


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def gone(pid: int, within: float = 3.0) -> bool:
    """The process no longer runs (a zombie reparented to init counts as dead)."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) != os.getpid():
                return True
        except (OSError, IndexError, ValueError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


# --- (a) a real MCP client against serve-world, over stdio and over HTTP ----------------------
async def _exercise(client: Client) -> None:
    """List the tools, call one well, three badly, then finish."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == RETAIL_TOOLS | HARNESS
    for name, declared in RetailWorld.declared_tools.items():
        assert tools[name].input_schema == declared.spec.parameters
        assert tools[name].description == declared.spec.description
    assert tools["cancel"].annotations.destructive_hint is True
    assert tools["get_order"].annotations is None
    assert "please cancel order O-3001" in (client.instructions or "")

    r = await client.call_tool("find_customer", {"email": "chen.n@example.com"})
    assert not r.is_error
    assert json.loads(_text(r)) == {"customer_id": "C0001", "name": "Chen Nakamura"}
    r = await client.call_tool("teleport", {"to": "mars"})
    assert r.is_error and "unknown tool 'teleport'" in _text(r)
    r = await client.call_tool("get_order", {"order_id": 3001})
    assert r.is_error and "order_id must be string" in _text(r)
    r = await client.call_tool("get_order", {})
    assert r.is_error and "missing required argument(s) order_id" in _text(r)
    r = await client.call_tool("finish", {"summary": "gave up"})
    assert not r.is_error


def _check_stored(db: str) -> None:
    store = Store(db)
    (run, _), = store.runs(5)
    (row,) = store.episodes(run.id)
    ep = store.load_episode(row.id)
    assert ep.agent == "mcp-served" and ep.key.task == "cancel-lamp"
    assert [s.decision.tool or s.decision.kind for s in ep.steps] == [
        "find_customer", "teleport", "get_order", "get_order", "finish"]
    assert ep.end_reason == EndReason.finished and ep.end_note == "gave up"
    assert ep.success is False  # nothing was cancelled
    first, *bad, last = ep.steps
    assert first.passed and first.result.ok
    for step in bad:  # refused by the episode: the agent's graded error
        assert step.result.fault == "agent"
        assert any(g.grader == "valid_call" and not g.passed for g in step.grades)


def test_serve_world_over_stdio(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    cmd = _serve_cmd()
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], "retail/cancel_pending",
                                                         "--db", db],
                                   env=dict(os.environ), cwd=str(ROOT))
    errlog = (tmp_path / "stderr.txt").open("w")

    async def main() -> None:
        with anyio.fail_after(30):
            async with Client(stdio_client(params, errlog=errlog)) as client:
                await _exercise(client)

    anyio.run(main)
    errlog.close()
    err = (tmp_path / "stderr.txt").read_text()
    assert re.search(r"run \w+: episode \S+ \(cancel-lamp, seed 0\): success no, end "
                     r"finished, 5 step\(s\)", err), err
    _check_stored(db)


def test_serve_world_over_http(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    proc = subprocess.Popen([*_serve_cmd(), "retail/cancel_pending", "--transport", "http",
                             "--db", db], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # the URL comes first
        url = re.search(r"http://127\.0\.0\.1:\d+/mcp", line)
        assert url, line

        async def main() -> None:
            async with Client(url.group(0)) as client:
                await _exercise(client)

        anyio.run(main)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # nothing on stdout
    assert "success no, end finished, 5 step(s)" in err
    _check_stored(db)


def test_a_client_that_goes_away_ends_the_episode(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    cmd = _serve_cmd()
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], "retail/order_status",
                                                         "--db", db],
                                   env=dict(os.environ), cwd=str(ROOT))

    async def main() -> None:
        async with Client(stdio_client(params, errlog=open(os.devnull, "w"))) as client:
            await client.call_tool("find_customer", {"email": "goran.s@example.com"})

    anyio.run(main)
    store = Store(db)
    (run, _), = store.runs(5)
    ep = store.load_episode(store.episodes(run.id)[0].id)
    assert [s.decision.kind for s in ep.steps] == ["tool_call", "finish"]
    assert ep.end_note == "the MCP client went away without calling finish"
    assert ep.success is False


class NoisyRetail(RetailWorld):
    """The retail world, printing on stdout (as careless code and child processes do)."""

    def execute(self, node: str, tool: str, args: dict[str, Any]) -> Any:
        print("NOISE from the world", flush=True)
        subprocess.run(["echo", "NOISE from a child"], check=False)
        return super().execute(node, tool, args)


def test_over_stdio_nothing_but_mcp_reaches_stdout(tmp_path):
    scenario = tmp_path / "noisy.yaml"
    scenario.write_text(_scenario("cancel_pending", {"type": "scripted:retail"},
                                  world={"type": f"{__name__}:NoisyRetail"}))
    cmd = _serve_cmd()
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], str(scenario), "--db",
                                                         f"sqlite:///{tmp_path / 'r.db'}"],
                                   env=dict(os.environ), cwd=str(ROOT))
    errlog = (tmp_path / "stderr.txt").open("w")

    async def main() -> None:
        with anyio.fail_after(30):
            async with Client(stdio_client(params, errlog=errlog)) as client:
                r = await client.call_tool("find_customer", {"email": "chen.n@example.com"})
                assert not r.is_error
                r = await client.call_tool("finish", {"summary": "ok"})
                assert not r.is_error

    anyio.run(main)
    errlog.close()
    err = (tmp_path / "stderr.txt").read_text()
    assert "NOISE from the world" in err and "NOISE from a child" in err


def test_serve_world_refuses_an_unknown_task():
    out = subprocess.run([*_serve_cmd(), "retail/cancel_pending", "--task", "cancel-lam"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and out.stdout == ""
    assert "no such task; did you mean 'cancel-lamp'?" in out.stderr


# --- (b) the example agent, `type: mcp`, on built-in retail scenarios -------------------------
@pytest.mark.parametrize(("scenario", "tools"), [
    ("cancel_pending", ["find_customer", "get_order", "cancel", "reply", "finish"]),
    ("order_status", ["find_customer", "get_order", "reply", "finish"]),
    ("ambiguous_refund", ["find_customer", "list_orders", "ask_human", "get_order", "refund",
                          "reply", "finish"]),
])
def test_the_example_agent_solves_retail_tasks(store, scenario, tools):
    summary = _run(store, _scenario(scenario, _mcp_agent(EXAMPLE)), max_attempts=1)
    (r,) = summary.results
    assert r.error is None and r.end_reason == EndReason.finished
    assert [s.decision.tool or s.decision.kind for s in r.steps] == tools
    assert all(s.grades for s in r.steps)  # every call graded at its node
    assert r.steps[0].node == "verify_identity" and r.steps[-1].node == "finish"
    denied = any(s.checkpoint and not s.checkpoint.approved for s in r.steps)
    assert r.success is (not denied)
    if not denied:
        assert all(s.passed for s in r.steps)
    stored = store.load_episode(store.episodes(summary.run_id)[0].id)
    assert [s.node for s in stored.steps] == [s.node for s in r.steps]


def test_the_example_scenario_validates():
    from trialrun.scenarios.loader import load_scenario

    ls = load_scenario(ROOT / "examples" / "mcp_agent" / "scenario.yaml")
    assert ls.agent_cls.name == "mcp" and len(ls.tasks) == 3


# --- (c) crashes, kills and hangs end the episode; the process group is gone ------------------
CLIENT = r"""
import asyncio, json, os, subprocess, sys
from mcp import Client

async def main():
    async with Client(os.environ["TRIALRUN_MCP_URL"]) as c:
        r = await c.call_tool("find_customer", {"email": "chen.n@example.com"})
        await body(c, r)

def child():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.environ["PIDS_FILE"], "w") as f:
        f.write(f"{os.getpid()} {p.pid}")
"""

CRASH = CLIENT + r"""
async def body(c, r):
    child()
    print("about to fail", file=sys.stderr, flush=True)
    if os.environ["HOW"] == "kill":
        os.kill(os.getpid(), 9)
    raise RuntimeError("the model exploded")
asyncio.run(main())
"""

HANG = CLIENT + r"""
async def body(c, r):
    child()
    await asyncio.sleep(60)
asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["kill", "raise"])
def test_a_crash_mid_episode_is_the_agents_failure(store, tmp_path, how):
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    pids = tmp_path / "pids"
    agent = _mcp_agent(script, env={"PIDS_FILE": str(pids), "HOW": how})
    t0 = time.monotonic()
    (r,) = _run(store, _scenario("cancel_pending", agent), max_attempts=1).results
    assert time.monotonic() - t0 < 10
    assert r.error is None and r.end_reason == EndReason.finished and r.success is False
    assert [s.decision.kind for s in r.steps] == ["tool_call", "finish"]
    note = r.end_note
    assert "ProcessCrashed" in note and "without calling finish" in note
    if how == "kill":
        assert "was killed by SIGKILL" in note
    else:
        assert "exited with code 1" in note and "the model exploded" in note
    for pid in map(int, pids.read_text().split()):
        assert gone(pid), f"pid {pid} survived"


def test_a_hung_agent_is_stopped_by_the_wall_time_budget(store, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    pids = tmp_path / "pids"
    agent = _mcp_agent(script, env={"PIDS_FILE": str(pids)})
    t0 = time.monotonic()
    (r,) = _run(store, _scenario("cancel_pending", agent,
                                 budgets={"max_wall_time": 2}), max_attempts=1).results
    assert time.monotonic() - t0 < 10
    assert r.end_reason == EndReason.truncated and r.success is False
    assert len(r.steps) == 1
    for pid in map(int, pids.read_text().split()):
        assert gone(pid), f"pid {pid} survived"


# --- (d) a command that cannot start is one clear, unretried error ----------------------------
def test_a_missing_command_is_one_clear_error(store, tmp_path):
    agent = {"type": "mcp", "params": {"command": [str(tmp_path / "no-such-agent")]}}
    summary = _run(store, _scenario("cancel_pending", agent), max_attempts=3,
                   retry_backoff_s=0)
    (r,) = summary.results
    assert r.end_reason == EndReason.error and r.attempts == 1  # not retried
    assert r.error == ("agent: could not start the agent process 'no-such-agent': "
                       "FileNotFoundError: No such file or directory")


def test_a_process_that_exits_before_connecting_is_a_start_error(store, tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("import sys\nsys.stderr.write('no module named llm\\n')\nsys.exit(2)\n")
    summary = _run(store, _scenario("cancel_pending", _mcp_agent(script)), max_attempts=3,
                   retry_backoff_s=0)
    (r,) = summary.results
    assert r.end_reason == EndReason.error and r.attempts == 1
    assert "exited with code 2 before making any MCP request" in r.error
    assert "no module named llm" in r.error


def test_a_process_that_quits_quietly_is_its_own_finish(store, tmp_path):
    script = tmp_path / "quits.py"
    script.write_text("print('warming up')\nprint('nothing to do here')\n")
    (r,) = _run(store, _scenario("cancel_pending", _mcp_agent(script)), max_attempts=1).results
    assert r.end_reason == EndReason.finished and r.end_note == "nothing to do here"
    assert r.success is False and len(r.steps) == 1


def test_a_process_that_never_connects_times_out(store, tmp_path):
    script = tmp_path / "mute.py"
    script.write_text("import time\ntime.sleep(60)\n")
    summary = _run(store, _scenario("cancel_pending", _mcp_agent(
        script, start_timeout_s=0.5)), max_attempts=1)
    (r,) = summary.results
    assert r.end_reason == EndReason.error
    assert "made no MCP request within 0.5 s" in r.error and "TRIALRUN_MCP_URL" in r.error


def test_options_are_checked_at_load():
    from trialrun.scenarios.loader import ScenarioError

    with pytest.raises(ScenarioError, match="command"):
        load_scenario_source(_scenario("cancel_pending", {"type": "mcp", "params": {
            "command": []}}), "inline.yaml")
    with pytest.raises(ScenarioError, match="comand"):
        load_scenario_source(_scenario("cancel_pending", {"type": "mcp", "params": {
            "comand": ["x"]}}), "inline.yaml")


# --- (e) a reviewer's denial reaches the MCP client as an error result ------------------------
DENIED_CLIENT = r"""
import asyncio, json, os, sys
from mcp import Client

async def main():
    task = os.environ["TRIALRUN_TASK"]
    assert "please cancel order O-3001" in task and sys.argv[1] == os.environ["TRIALRUN_MCP_URL"]
    async with Client(sys.argv[1]) as c:
        await c.call_tool("find_customer", {"email": "chen.n@example.com"})
        first = await c.call_tool("cancel", {"order_id": "O-3001"})
        again = await c.call_tool("cancel", {"order_id": "O-3001"})
        text = lambda r: r.content[0].text
        print(json.dumps([first.is_error, text(first), again.is_error, text(again)]))
asyncio.run(main())
"""


def test_a_denial_reaches_the_client_as_an_error(store, tmp_path):
    script = tmp_path / "denied.py"
    script.write_text(DENIED_CLIENT)
    agent = {"type": "mcp", "params": {"command": [sys.executable, str(script), "{url}"]}}
    checkpoints = {"policy": "before_irreversible", "on_deny": "retry",
                   "human": {"type": "scripted", "answers": ["deny"]}}
    (r,) = _run(store, _scenario("cancel_pending", agent, checkpoints=checkpoints),
                max_attempts=1).results
    # The process exits without finish: its last stdout line is its final word.
    first_error, first, again_error, again = json.loads(r.end_note)
    assert first_error is True and first == DENIED
    assert again_error is False and json.loads(again)["status"] == "cancelled"
    reviews = [s.checkpoint.approved for s in r.steps if s.checkpoint]
    assert reviews == [False, True]


# --- the server itself -------------------------------------------------------------------------
class _Inline(SelfDrivingAgent):
    """A test agent whose MCP client runs in-process, over HTTP: `script(client)`."""

    script: Any = None
    url: str = ""

    async def drive(self, port: Port) -> str | None:
        world = WorldServer(port)
        async with http_server(world) as url:
            type(self).url = url
            async with Client(url) as client:
                return await type(self).script(client)


def _inline(store: Store, script: Any, scenario: str = "cancel_pending", **changes: Any):
    _Inline.script = staticmethod(script)
    source = _scenario(scenario, {"type": f"{__name__}:_Inline"}, **changes)
    (r,) = _run(store, source, max_attempts=1).results
    return r


def test_harness_tools_ask_a_human_and_message_the_user(store):
    async def script(c: Client) -> str:
        r = await c.call_tool("ask_human", {"question": "Which order?"})
        assert not r.is_error and _text(r) == "The customer means order O-3001."
        r = await c.call_tool("message_user", {"text": "On it."})
        assert not r.is_error and _text(r) == "(message sent; no answer)"
        r = await c.call_tool("ask_human", {"q": "?"})  # a harness tool misused: not a step
        assert r.is_error and "unknown argument(s) q" in _text(r)
        prompt = await c.get_prompt("task")
        assert "please cancel order O-3001" in prompt.messages[0].content.text
        return "bye"

    r = _inline(store, script)
    assert [s.decision.kind for s in r.steps] == ["ask_human", "message", "finish"]
    assert r.steps[0].node == "ask_human" and r.steps[1].node == "reply"
    assert r.end_note == "bye"


def test_a_world_tool_named_like_a_harness_tool_wins():
    from trialrun.agents.base import AgentContext
    from trialrun.agents.self_driving import SelfDrivingOptions
    from trialrun.trajectory import Observation, ToolSpec

    class _Agent:
        options = SelfDrivingOptions()
        observation = Observation()

    ctx = AgentContext(instruction="do", tools=[ToolSpec(name="finish"), ToolSpec(name="x")])
    world = WorldServer(Port(_Agent(), ctx, Observation(text="hi"), None))  # type: ignore[arg-type]
    assert [t.name for t in world.tools] == ["finish", "x", "ask_human", "message_user",
                                             "trialrun_finish"]


def test_a_call_the_episode_never_reaches_is_answered():
    # The episode ends (a budget) while a call waits on it: when the server stops, the call
    # is answered with an error, at once, instead of hanging or being cut off.
    results: list[Any] = []
    world = _fake_world(hang=True)

    async def main() -> None:
        stop, ready = anyio.Event(), anyio.Event()
        where: dict[str, str] = {}

        async def serve() -> None:
            async with http_server(world) as url:
                where["url"] = url
                ready.set()
                await stop.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            await ready.wait()
            async with Client(where["url"]) as c:
                async def call() -> None:
                    results.append(await c.call_tool("x", {}))

                async with anyio.create_task_group() as calls:
                    calls.start_soon(call)
                    while not world._in_flight:
                        await anyio.sleep(0.01)
                    stop.set()

    t0 = time.monotonic()
    anyio.run(main)
    assert time.monotonic() - t0 < 1.0  # no graceful-shutdown wait
    (r,) = results
    assert r.is_error and _text(r) == "The episode ended before this call was answered."


def test_the_http_server_refuses_other_hosts():
    import httpx

    async def main() -> int:
        async with http_server(_fake_world()) as url, httpx.AsyncClient() as http:
            r = await http.post(url, headers={"Host": "evil.example:80"}, json={})
            return r.status_code

    assert anyio.run(main) == 421  # DNS-rebinding protection


def test_the_http_server_stops_when_cancelled():
    async def main() -> int:
        world = _fake_world()
        with anyio.move_on_after(0.5):
            async with http_server(world) as url:
                port = int(url.rsplit(":", 1)[1].split("/")[0])
                async with Client(url) as c:
                    await c.list_tools()
                await anyio.sleep(5)
        return port

    port = anyio.run(main)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def _fake_world(hang: bool = False) -> WorldServer:
    """A world server on a port with one tool `x`; with `hang`, no call ever comes back."""
    from trialrun.agents.base import AgentContext
    from trialrun.agents.self_driving import SelfDrivingOptions
    from trialrun.trajectory import Observation, ToolSpec

    class _Agent:
        options = SelfDrivingOptions()
        observation = Observation()

    class _Port(Port):
        async def submit(self, decision: Any) -> Any:
            await anyio.sleep_forever()

    ctx = AgentContext(instruction="do", tools=[ToolSpec(name="x")])
    cls = _Port if hang else Port
    return WorldServer(cls(_Agent(), ctx, Observation(), None))  # type: ignore[arg-type]


def test_tool_calls_over_http_are_fast(store):
    times: list[float] = []

    async def script(c: Client) -> str:
        for _ in range(60):
            t0 = time.perf_counter()
            r = await c.call_tool("search_products", {"query": "lamp"})
            times.append(time.perf_counter() - t0)
            assert not r.is_error
        return "done"

    r = _inline(store, script, budgets={"max_steps": 100})
    assert len(r.steps) == 61 and r.end_note == "done"
    # ~2 ms here; a socket without TCP_NODELAY would make it ~44 ms (Nagle, delayed ACK)
    assert statistics.median(times[10:]) < 0.025, times


def test_the_example_agent_prints_usage_without_a_server():
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                         timeout=30, env={k: v for k, v in os.environ.items()
                                          if k != "TRIALRUN_MCP_URL"})
    assert out.returncode == 2 and "TRIALRUN_MCP_URL" in out.stderr


DOC = ROOT / "docs" / "mcp.md"


def test_the_doc_names_what_the_code_offers():
    text = DOC.read_text()
    for name in [*HARNESS, "TRIALRUN_MCP_URL", "TRIALRUN_TASK", "{url}", "{task}",
                 "serve-world", "--transport", "mcp-served", "trialrun_"]:
        assert name in text, name
    for field in trialrun.agents.mcp_agent.MCPOptions.model_fields:
        assert f"`{field}`" in text, field
