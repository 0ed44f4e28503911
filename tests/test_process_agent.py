"""The external-process agent (`type: process`): an agent in any language over JSON lines.

The Node.js example plays a built-in scenario end to end with every step graded at its node;
faults of the process (crash, garbage, hang, protocol mistakes) are infrastructure errors
with the process killed; a wrong tool is the agent's graded mistake; replay needs no process.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import anyio
import pytest
import yaml

import trialrun.agents.process_agent as process_agent
from tests.docker_fixtures import need
from tests.helpers import RETAIL, run_source
from trialrun.agents.base import AgentContext, AgentError, Feedback
from trialrun.agents.process_agent import ProcessAgent, WireDecision
from trialrun.replay.exact import replay_episode
from trialrun.trajectory import Observation, ToolResult, ToolSpec

ROOT = Path(__file__).resolve().parents[1]
NODE_AGENT = ROOT / "examples" / "jsonl_agent" / "agent.js"
PROTOCOL_DOC = ROOT / "docs" / "jsonl-protocol.md"
RETAIL_NODES = ["verify_identity", "lookup_order", "resolve", "reply", "finish"]

# Test agents in Python: the prelude records the pid (PIDS_FILE), answers start with ready.
PRELUDE = r"""
import json, os, sys, time
def send(**m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
def read():
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    return json.loads(line)
if os.environ.get("PIDS_FILE"):
    with open(os.environ["PIDS_FILE"], "a") as f:
        f.write(f"{os.getpid()}\n")
sys.stderr.write("test agent: started\n"); sys.stderr.flush()
start = read()
send(type="ready", protocol=1)
"""

CRASHES_AT_STEP_1 = PRELUDE + r"""
while True:
    m = read()
    if m["type"] == "observe":
        if m["step"] == 1:
            sys.stderr.write("boom: the model exploded\n"); sys.stderr.flush()
            sys.exit(3)
        send(type="decision", kind="tool_call", tool="find_customer", node="verify_identity",
             args={"email": start["observation"]["data"]["customer"]["email"]})
"""

WRITES_REPLY_LINE = PRELUDE + r"""
while True:
    m = read()
    if m["type"] == "observe":
        sys.stdout.write(os.environ["REPLY_LINE"] + "\n"); sys.stdout.flush()
"""

# Starts a grandchild, ignores SIGTERM and `close`, never answers an observe.
HANGS = PRELUDE + r"""
import signal, subprocess
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.environ["PIDS_FILE"], "a") as f:
    f.write(f"{child.pid}\n")
while True:
    m = read()
    if m["type"] == "observe":
        time.sleep(120)
"""

# Makes mistakes the loop grades, tells what it heard (FEEDBACK_FILE), then finishes.
MISTAKES = PRELUDE + r"""
email = start["observation"]["data"]["customer"]["email"]
plan = [dict(kind="tool_call", tool="teleport", args={"to": "mars"}),
        dict(kind="tool_call", tool="find_customer", args={"email": 5}),
        dict(kind="tool_call", tool="find_customer", args={"email": email}),
        dict(kind="finish", text="done")]
while True:
    m = read()
    if m["type"] == "observe":
        send(type="decision", **plan[m["step"]])
    elif m["type"] == "feedback":
        with open(os.environ["FEEDBACK_FILE"], "a") as f:
            f.write(json.dumps(m) + "\n")
    elif m["type"] == "close":
        sys.exit(0)
"""

# Logs, then answers with what it was started with: cwd, an env variable, the start message.
ECHO = PRELUDE + r"""
m = read()
send(type="log", level="warning", message="thinking hard")
send(type="decision", kind="message", text=json.dumps({
    "cwd": os.getcwd(), "token": os.environ.get("AGENT_TOKEN"), "start": start,
    "observe": m}), confidence=0.25, tokens=12, cost=0.5)
read()
"""


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` binary; skips without it, fails under CI=true (like the Docker tests)."""
    path = shutil.which("node")
    need(path is not None, "node (Node.js) is not installed")
    return str(path)


def scenario(params: dict, **top) -> str:
    """refund_in_window.yaml with `agent: {type: process, params: ...}`."""
    doc = yaml.safe_load((RETAIL / "refund_in_window.yaml").read_text())
    doc["agent"] = {"type": "process", "params": params}
    doc.update(top)
    return yaml.safe_dump(doc, sort_keys=False)


def python_agent(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def pids_in(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def gone(pid: int, within: float = 3.0) -> bool:
    """The process no longer runs, and is no zombie of ours (a grandchild reparented to
    init may wait there to be reaped: dead all the same)."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # Linux: a zombie shows its state and parent
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) != os.getpid():
                return True
        except (OSError, IndexError, ValueError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def context() -> AgentContext:
    return AgentContext(instruction="Help the customer.", task={"id": "t1", "instruction":
                        "Help the customer."}, seed=7,
                        tools=[ToolSpec(name="find_customer", description="find",
                                        parameters={"type": "object", "properties": {
                                            "email": {"type": "string"}}})])


def drive(agent: ProcessAgent, steps: int = 1) -> list:
    """start, `steps` decisions, close: as the episode loop calls them."""
    out = []

    async def main() -> None:
        try:
            await agent.start(context(), Observation(text="hello", data={"n": 1}))
            for _ in range(steps):
                out.append(await agent.decide(Observation(text="next")))
        finally:
            await agent.close()

    anyio.run(main)
    return out


# --- the Node.js example -------------------------------------------------------------------
def test_node_example_plays_the_retail_scenario_graded_at_every_node(store, node):
    run = run_source(store, scenario({"command": [node, str(NODE_AGENT)], "timeout_s": 20}))
    assert len(run.results) == 6  # 3 seeds x 2 trials
    for r in run.results:
        assert r.end_reason == "finished" and r.success is True, (r.key, r.error, r.end_note)
        nodes = [st.node for st in r.steps]
        # A checkpoint may deny the refund (false denials): the agent retries it.
        assert [n for i, n in enumerate(nodes) if i == 0 or n != nodes[i - 1]] == RETAIL_NODES
        for st in r.steps:
            assert st.grades and st.passed is True, (st.node, st.grades)
            assert all(g.node == st.node for g in st.grades)
        refund = next(st for st in r.steps if st.node == "resolve")
        assert refund.decision.tool == "refund" and refund.decision.args == {
            "order_id": "O-1001", "amount": 149}
        assert {g.grader for g in refund.grades} == {"world", "assert"}
        assert refund.checkpoint is not None  # before_irreversible reviewed it


def test_replay_of_a_process_episode_is_identical_without_starting_it(store, node,
                                                                      monkeypatch):
    run = run_source(store, scenario({"command": [node, str(NODE_AGENT)]}), seeds=2, trials=1)
    assert all(r.success for r in run.results)

    def no_process(*args, **kwargs):
        raise AssertionError("a replay must not start the agent's process")

    monkeypatch.setattr(anyio, "open_process", no_process)
    monkeypatch.setattr(ProcessAgent, "start", no_process)
    for e in store.episodes(run.run_id):
        report, replayed = anyio.run(replay_episode, store, e.id)
        assert report.identical, report.differences
        assert replayed.success is True and report.steps == e.n_steps == 5 + e.reviews - 1


# --- faults of the process are infrastructure errors --------------------------------------
def test_a_process_that_crashes_mid_episode_is_an_error_after_retries(store, tmp_path):
    pids = tmp_path / "pids"
    run = run_source(store, scenario({"command": python_agent(CRASHES_AT_STEP_1),
                                      "env": {"PIDS_FILE": str(pids)}}, seeds=1, trials=1),
                     retry_backoff_s=0.0)
    (r,) = run.results
    assert r.end_reason == "error" and r.success is None and r.attempts == 3
    assert r.steps == []  # nothing of a failed attempt is kept, nothing is scored
    assert "exited with code 3 before sending decision (at step 1)" in r.error
    assert "boom: the model exploded" in r.error  # the tail of its stderr
    assert len(pids_in(pids)) == 3 and all(gone(p) for p in pids_in(pids))


def test_a_process_that_hangs_is_killed_after_timeout_with_its_children(store, tmp_path):
    pids = tmp_path / "pids"
    t0 = time.monotonic()
    run = run_source(store, scenario({"command": python_agent(HANGS), "timeout_s": 0.5,
                                      "env": {"PIDS_FILE": str(pids)}}, seeds=1, trials=1),
                     retry_backoff_s=0.0, max_attempts=2)
    (r,) = run.results
    assert r.end_reason == "error" and r.success is None and r.attempts == 2
    assert "sent no decision within 0.5 s; killed (at step 0)" in r.error
    assert time.monotonic() - t0 < 15
    found = pids_in(pids)
    assert len(found) == 4  # two attempts, each a process and its grandchild
    assert all(gone(p) for p in found), [p for p in found if not gone(p, 0)]


GARBAGE = [
    ("hello, I am not JSON", r"wrote a line that is not JSON: 'hello, I am not JSON' "),
    ("[1, 2]", r"wrote a line that is not a message .*'\[1, 2\]'"),
    ('{"type": "decisoin", "kind": "finish"}',
     r"unknown message type 'decisoin'; did you mean 'decision'\?"),
    ('{"type": "decision", "kind": "tool-call", "tool": "x"}',
     r"malformed decision: kind 'tool-call' is not one of tool_call, message, ask_human, "
     r"finish; did you mean 'tool_call'\?"),
    ('{"type": "decision", "kind": "tool_call", "tool": "x", "args": "{}"}',
     r"malformed decision: args: "),
    ('{"type": "decision", "kind": "tool_call", "tool": 3}', r"malformed decision: tool: "),
    ('{"type": "decision", "kind": "finish", "argz": {}}',
     r"unknown field 'argz'; did you mean 'args'\?"),
    ('{"type": "decision", "kind": "finish", "confidence": 2}',
     r"malformed decision: confidence: "),
    ('{"type": "decision", "kind": "finish", "cost": Infinity}',
     r"malformed decision: cost: Input should be a finite number"),
    ('{"type": "ready", "protocol": 1}', r"sent 'ready' in answer to 'observe'; expected "
     r"'decision'"),
    ('{"type": "error", "message": "model API unreachable"}',
     r"reported an error: 'model API unreachable'"),
]


@pytest.mark.parametrize(("line", "message"), GARBAGE, ids=[g[0][:30] for g in GARBAGE])
def test_protocol_faults_are_agent_errors_naming_the_line(tmp_path, line, message):
    pids = tmp_path / "pids"
    agent = ProcessAgent({"command": python_agent(WRITES_REPLY_LINE),
                          "env": {"REPLY_LINE": line, "PIDS_FILE": str(pids)}})
    with pytest.raises(AgentError, match=message) as err:
        drive(agent)
    text = str(err.value)
    assert text.startswith(f"agent process {Path(sys.executable).name!r} (pid ")
    assert "(at step 0)" in text and "test agent: started" in text  # stderr tail
    assert all(gone(p) for p in pids_in(pids))


def test_start_faults_are_agent_errors(tmp_path):
    with pytest.raises(AgentError, match=r"could not start the agent process "
                       r"'no-such-agent-binary': FileNotFoundError"):
        drive(ProcessAgent({"command": ["no-such-agent-binary", "--key=sk-secret"]}))
    with pytest.raises(AgentError, match=r"exited with code 2 before sending ready \(at start\)"
                       r"[\s\S]*cannot start: no model"):
        drive(ProcessAgent({"command": python_agent(
            "import sys; sys.stderr.write('cannot start: no model'); sys.exit(2)")}))
    with pytest.raises(AgentError, match=r"answered start with .*speaks protocol 1"):
        drive(ProcessAgent({"command": python_agent(
            "import json, sys; sys.stdin.readline();"
            "print(json.dumps({'type': 'ready', 'protocol': 2}), flush=True);"
            "sys.stdin.readline()")}))
    with pytest.raises(AgentError, match=r"sent no ready within 0.3 s; killed \(at start\)"):
        drive(ProcessAgent({"command": python_agent("import time; time.sleep(30)"),
                            "start_timeout_s": 0.3}))


# --- the agent's own mistakes are graded ---------------------------------------------------
def test_a_wrong_tool_or_bad_arguments_are_graded_and_the_episode_goes_on(store, tmp_path):
    heard = tmp_path / "feedback.jsonl"
    run = run_source(store, scenario({
        "command": python_agent(MISTAKES), "env": {"FEEDBACK_FILE": str(heard)},
        "node_map": {"find_customer": "verify_identity", "finish": "done"}},
        seeds=1, trials=1))
    (r,) = run.results
    assert r.end_reason == "finished" and r.success is False  # graded, not an error
    teleport, bad_args, found, done = r.steps
    assert teleport.node == "teleport"  # neither the process nor node_map named it
    assert teleport.result.fault == "agent" and "unknown tool 'teleport'" in \
        teleport.result.error
    assert [(g.grader, g.passed) for g in teleport.grades] == [("valid_call", False)]
    assert bad_args.node == "verify_identity" and bad_args.passed is False
    assert bad_args.result.fault == "agent" and "email" in bad_args.result.error
    assert found.passed is True and found.result.ok
    assert done.node == "done" and done.decision.kind == "finish"
    # The process was told each outcome, with the node the loop recorded.
    told = [json.loads(x) for x in heard.read_text().splitlines()]
    assert [m["step"] for m in told] == [0, 1, 2]
    assert told[0]["decision"]["node"] == "teleport"
    assert set(told[0]["decision"]) == process_agent.DECISION_FIELDS  # the wire shape only
    assert told[0]["result"]["ok"] is False and "unknown tool" in told[0]["result"]["error"]
    assert told[2]["result"] == {"ok": True, "output": {"customer_id": "C0001",
                                                         "name": "Ana Ruiz"},
                                 "error": None, "fault": None}


# --- what the process is given, and how it ends ------------------------------------------
def test_the_process_gets_start_observe_env_and_cwd_and_logs_are_kept(tmp_path):
    agent = ProcessAgent({"command": python_agent(ECHO), "cwd": str(tmp_path),
                          "env": {"AGENT_TOKEN": "hunter2"}})
    (d,) = drive(agent)
    said = json.loads(d.text)
    assert said["cwd"] == str(tmp_path) and said["token"] == "hunter2"
    start = said["start"]
    assert start["type"] == "start" and start["protocol"] == 1 and start["seed"] == 7
    assert start["task"] == {"id": "t1", "instruction": "Help the customer."}
    assert start["observation"] == {"text": "hello", "data": {"n": 1}}
    assert start["tools"][0]["name"] == "find_customer"
    assert set(start["tools"][0]) == process_agent.TOOL_FIELDS
    assert isinstance(start["rng_seed"], int)
    assert said["observe"] == {"type": "observe", "step": 0,
                               "observation": {"text": "next", "data": {}}}
    assert (d.kind, d.node, d.confidence, d.tokens, d.cost) == ("message", "reply", 0.25, 12,
                                                                 0.5)
    assert list(agent.logs) == [{"type": "log", "level": "warning", "message": "thinking hard"}]
    assert gone(agent.process.pid)
    # env values are secrets: never in a repr or a dump of the options.
    assert "hunter2" not in repr(agent.options)
    assert "hunter2" not in agent.options.model_dump_json()


def test_close_kills_a_process_that_ignores_close(tmp_path):
    pids = tmp_path / "pids"
    agent = ProcessAgent({"command": python_agent(PRELUDE + "import signal\n"
                                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                                  "time.sleep(60)\n"),
                          "close_timeout_s": 0.2, "env": {"PIDS_FILE": str(pids)}})
    t0 = time.monotonic()
    drive(agent, steps=0)
    assert time.monotonic() - t0 < 5
    assert all(gone(p) for p in pids_in(pids)) and pids_in(pids)


def test_a_wall_time_budget_ends_a_hanging_decision_and_kills_the_process(store, tmp_path):
    pids = tmp_path / "pids"
    run = run_source(store, scenario({"command": python_agent(HANGS), "timeout_s": 60,
                                      "env": {"PIDS_FILE": str(pids)}},
                                     budgets={"max_steps": 20, "max_wall_time": 0.5},
                                     seeds=1, trials=1))
    (r,) = run.results
    assert r.end_reason == "truncated" and r.end_note == "wall-time budget ran out"
    assert r.success is False and r.steps == []
    assert len(pids_in(pids)) == 2 and all(gone(p) for p in pids_in(pids))


def test_an_agent_dropped_without_close_takes_its_process_with_it(tmp_path):
    pids = tmp_path / "pids"

    async def main() -> None:
        agent = ProcessAgent({"command": python_agent(HANGS), "env": {"PIDS_FILE": str(pids)}})
        await agent.start(context(), Observation())
        del agent  # an episode that failed elsewhere before the loop could close it
        gc.collect()
        await anyio.sleep(0.1)  # the event loop reaps the child

    anyio.run(main)
    assert len(pids_in(pids)) == 2 and all(gone(p) for p in pids_in(pids))


def test_a_process_that_dies_after_feedback_fails_at_the_next_decision():
    agent = ProcessAgent({"command": python_agent(
        PRELUDE + "read()\nsend(type='decision', kind='message', text='hi')\nsys.exit(0)\n")})

    async def main() -> None:
        try:
            await agent.start(context(), Observation())
            d = await agent.decide(Observation())
            await anyio.sleep(0.2)  # it has exited by now
            await agent.feedback(Feedback(decision=d, result=ToolResult(ok=True)))
            with pytest.raises(AgentError, match=r"exited with code 0 before"):
                await agent.decide(Observation())
        finally:
            await agent.close()

    anyio.run(main)


def test_options_are_checked_at_load():
    from trialrun.scenarios.loader import load_scenario_source

    with pytest.raises(Exception, match=r"timeout_s"):
        load_scenario_source(scenario({"command": ["x"], "timeout_s": 0}), "bad.yaml")
    with pytest.raises(Exception, match=r"comand"):
        load_scenario_source(scenario({"comand": ["x"]}), "bad.yaml")
    assert process_agent.ProcessAgent.name == "process"


# --- the protocol document -----------------------------------------------------------------
def test_every_message_is_documented_with_an_example_that_parses():
    doc = PROTOCOL_DOC.read_text()
    blocks = re.findall(r"```json\n(.*?)```", doc, re.S)
    messages = [json.loads(line) for b in blocks for line in b.splitlines() if line.strip()]
    types = {m["type"] for m in messages}
    assert types == {"start", "observe", "feedback", "close", *process_agent.MESSAGES_IN}
    for m in messages:
        if m["type"] == "decision":
            WireDecision.model_validate(m)
        if m["type"] == "start":
            assert m["protocol"] == process_agent.PROTOCOL
    kinds = {m["kind"] for m in messages if m["type"] == "decision"}
    assert kinds == set(process_agent.KINDS)


def test_the_example_scenario_runs_from_the_repository_root(store, node, monkeypatch):
    from tests.helpers import run_scenarios

    monkeypatch.chdir(ROOT)  # its command is relative, as a user runs it
    run = run_scenarios(store, [NODE_AGENT.parent / "scenario.yaml"])
    assert len(run.results) == 3 and all(r.success for r in run.results), \
        [(r.end_reason, r.error) for r in run.results]
    assert {r.agent for r in run.results} == {"node-jsonl"}
