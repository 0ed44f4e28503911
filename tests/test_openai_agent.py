"""The OpenAI-compatible agent against a real HTTP server on loopback (tests/fake_openai.py):
every decision graded at its node, endpoint faults retried as infrastructure, model mistakes
graded as the agent's, tokens and cost per step, the key never stored, replay with no HTTP."""

from __future__ import annotations

import json
import socket
import time
import warnings
from typing import Any

import anyio
import pytest
import yaml

from tests.fake_openai import FakeOpenAI, ask, call, finish, say, tool, turn
from tests.helpers import RETAIL, run_source
from trialrun.agents import openai_agent
from trialrun.agents.model_client import Conversation, request_key
from trialrun.agents.openai_agent import OpenAIAgent, UnmappedToolWarning
from trialrun.agents.tape import Tape, use_tape
from trialrun.replay.exact import replay_episode
from trialrun.trajectory import EndReason, EpisodeResult

KEY = "sk-test-7f3a9c1e5b2d4f608a1c3e5b7d9f0a2c"
NODE_MAP = {"find_customer": "verify_identity", "get_order": "lookup_order",
            "list_orders": "lookup_order", "refund": "resolve", "reply": "reply",
            "search_products": "lookup_product", "cancel": "resolve", "exchange": "resolve",
            "ask_human": "clarify"}
EMAIL = "ana.ruiz@example.com"
FIND = tool("find_customer", {"email": EMAIL})
GET = tool("get_order", {"order_id": "O-1001"})
REFUND = tool("refund", {"order_id": "O-1001", "amount": 149.0})
REPLY = tool("reply", {"message": "We refunded 149.00 to your card."})
HAPPY = [FIND, GET, REFUND, REPLY, finish("refunded")]
HAPPY_NODES = ["verify_identity", "lookup_order", "resolve", "reply", "finish"]


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TRIALRUN_TEST_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def scenario(fake: FakeOpenAI, model: str, *, trials: int = 1, seeds: int = 1,
             checkpoints: dict[str, Any] | None = None, **params: Any) -> str:
    doc = yaml.safe_load((RETAIL / "refund_in_window.yaml").read_text())
    doc["agent"] = {"type": "openai", "params": {
        "base_url": fake.base_url, "model": model, "api_key_env": "TRIALRUN_TEST_KEY",
        "node_map": NODE_MAP, "backoff_s": 0.001, "max_backoff_s": 0.005, "timeout_s": 2.0,
        **params}}
    doc["checkpoints"] = checkpoints or {"policy": "before_irreversible", "human": {
        "recall": 0.9, "false_deny_rate": 0.0, "seconds_per_review": 30}}
    doc["trials"], doc["seeds"] = trials, seeds
    return yaml.safe_dump(doc)


def run(store, text: str, **opts: Any):
    opts.setdefault("retry_backoff_s", 0.0)
    return run_source(store, text, **opts)


def only(summary) -> EpisodeResult:
    (ep,) = summary.results
    return ep


def last_tool_message(body: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "tool")


def test_retail_episode_is_graded_at_every_node(store, fake):
    fake.script("happy", HAPPY)
    summary = run(store, scenario(fake, "happy", trials=2, seeds=2))
    assert len(summary.results) == 4
    for ep in summary.results:
        assert ep.end_reason == EndReason.finished and ep.success, ep.error
        assert [st.node for st in ep.steps] == HAPPY_NODES
        assert all(st.passed for st in ep.steps), [(st.node, st.grades) for st in ep.steps]
        assert [st.decision.kind for st in ep.steps] == ["tool_call"] * 4 + ["finish"]
        assert all(len(st.decision.model_calls) == 1 for st in ep.steps)
        assert ep.steps[2].checkpoint is not None and ep.steps[2].checkpoint.approved
        assert all(d.confidence is None for d in (st.decision for st in ep.steps))
    assert fake.requests == 4 * 5
    assert set(fake.auth) == {f"Bearer {KEY}"}
    # What the model was offered, and what came back to it as the result of its call.
    first = fake.bodies[0]
    names = [t["function"]["name"] for t in first["tools"]]
    assert {"find_customer", "refund", "reply", "ask_human", "finish"} <= set(names)
    assert first["messages"][0]["role"] == "system"
    assert "Ana Ruiz" in first["messages"][1]["content"]
    second = next(b for b in fake.bodies if len(b["messages"]) == 4)
    assert second["messages"][2]["tool_calls"][0]["id"] == "call_0_0"
    assert second["messages"][3] == {"role": "tool", "tool_call_id": "call_0_0",
                                     "content": '{"customer_id": "C0001", "name": "Ana Ruiz"}'}


def test_model_calls_store_only_the_new_messages(store, fake):
    fake.script("happy", HAPPY)
    ep = only(run(store, scenario(fake, "happy")))
    calls = [st.decision.model_calls[0] for st in ep.steps]
    assert [c.index for c in calls] == list(range(5))
    assert [len(c.messages) for c in calls] == [2, 2, 2, 2, 2]  # system+user, then call+result
    # The messages of every call, put together, are the conversation the endpoint saw last.
    assert [m for c in calls for m in c.messages] == fake.bodies[-1]["messages"]
    for c, body in zip(calls, fake.bodies, strict=True):
        assert c.key == request_key(body["model"], body["messages"], body["tools"],
                                    {k: v for k, v in body.items()
                                     if k not in ("model", "messages", "tools")})
        assert c.latency_ms > 0 and c.attempts == 1


def test_endpoint_faults_are_retried_and_the_run_completes(store, fake):
    fake.script("flaky", HAPPY)
    fake.inject("flaky", ("429", "0"), "500", "503", ("stall", 0.6), "truncated", "nonjson",
                "nochoices", "reset")
    ep = only(run(store, scenario(fake, "flaky", timeout_s=0.2, max_attempts=10)))
    assert ep.success and ep.attempts == 1, ep.error
    assert [st.node for st in ep.steps] == HAPPY_NODES
    first = ep.steps[0].decision.model_calls[0]
    assert first.attempts == 9  # eight faults, then the answer
    assert fake.requests == 5 + 8


def test_retry_after_is_honoured(store, fake):
    fake.script("slow-down", HAPPY)
    fake.inject("slow-down", ("429", "0.3"))
    t0 = time.perf_counter()
    ep = only(run(store, scenario(fake, "slow-down")))
    assert ep.success and time.perf_counter() - t0 >= 0.3


def test_a_persistent_fault_is_an_error_episode_not_a_failure(store, fake):
    fake.fail("down", "500")
    summary = run(store, scenario(fake, "down", max_attempts=3), max_attempts=2)
    ep = only(summary)
    assert ep.end_reason == EndReason.error and ep.success is None and ep.steps == []
    assert "HTTP 500" in ep.error and "gave up after 3" in ep.error
    assert fake.requests == 2 * 3  # two episode attempts of three HTTP attempts
    (row,) = store.episodes(summary.run_id)
    assert row.success is None and row.end_reason == "error"


def test_client_errors_are_not_retried_and_never_show_the_key(store, fake):
    fake.fail("bad", ("400", f"context_length_exceeded (key {KEY})"))
    ep = only(run(store, scenario(fake, "bad"), max_attempts=2))
    assert ep.end_reason == EndReason.error
    assert "HTTP 400" in ep.error and "context_length_exceeded" in ep.error
    assert KEY not in ep.error and "***" in ep.error
    assert fake.requests == 2  # one per episode attempt: a 400 is not retried


def test_connection_refused_is_an_infrastructure_error(store, fake):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = scenario(fake, "x", max_attempts=2).replace(fake.base_url,
                                                       f"http://127.0.0.1:{port}/v1")
    ep = only(run(store, text, max_attempts=1))
    assert ep.end_reason == EndReason.error and "connection failed" in ep.error


def test_model_mistakes_are_graded_at_their_node_and_the_model_is_told(store, fake):
    fake.script("sloppy", [
        FIND,
        tool("delete_everything", {"really": True}),  # a tool the world does not have
        tool("get_order", raw='{"order_id": "O-1001"'),  # arguments that are not JSON
        tool("get_order", {"order_id": 1001}),  # arguments that break the schema
        tool("get_order", {"order_id": "O-1001", "verbose": True}),  # an unknown argument
        GET, REFUND, REPLY, finish()])
    ep = only(run(store, scenario(fake, "sloppy")))
    assert ep.end_reason == EndReason.finished and ep.success
    assert [st.node for st in ep.steps] == ["verify_identity", "delete_everything",
                                            "lookup_order", "lookup_order", "lookup_order",
                                            *HAPPY_NODES[1:]]
    for st in ep.steps[1:5]:
        assert st.passed is False and st.result is not None and st.result.fault == "agent"
        assert any(g.grader == "valid_call" and not g.passed and g.node == st.node
                   for g in st.grades)
    bad = ep.steps[2].decision
    assert bad.tool == "get_order" and bad.args == {}
    assert bad.args_error.startswith("unreadable arguments: ")
    assert '{"order_id": "O-1001"' in bad.text
    assert all(st.passed for st in ep.steps[5:])
    told = [last_tool_message(b) for b in fake.bodies[2:6]]
    assert "unknown tool 'delete_everything'" in told[0]
    assert "not a JSON object" in told[1] and "Nothing ran" in told[1]
    assert "order_id must be string" in told[2]
    assert told[3].startswith("Error:") and "verbose" in told[3]


def test_tokens_and_cost_per_step_and_the_key_is_nowhere_in_the_store(store, fake, tmp_path):
    fake.script("priced", HAPPY)
    summary = run(store, scenario(fake, "priced", prices={"input_per_1m": 2.5,
                                                          "output_per_1m": 10.0}))
    ep = only(summary)
    for st in ep.steps:
        (c,) = st.decision.model_calls
        usage = c.response["usage"]
        assert (c.tokens_in, c.tokens_out) == (usage["prompt_tokens"],
                                               usage["completion_tokens"])
        assert st.decision.tokens == usage["total_tokens"] > 0
        assert st.decision.cost == pytest.approx(c.tokens_in * 2.5e-6 + c.tokens_out * 1e-5)
    assert ep.tokens == sum(st.decision.tokens for st in ep.steps)
    assert ep.cost == pytest.approx(sum(st.decision.cost for st in ep.steps)) and ep.cost > 0
    stored = store.load_episode(store.episodes(summary.run_id)[0].id)
    assert stored.steps[3].decision == ep.steps[3].decision  # model calls round-trip
    assert fake.auth[0] == f"Bearer {KEY}"
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*"))
    assert blob and KEY.encode() not in blob


def test_several_tool_calls_in_one_turn_become_consecutive_decisions(store, fake):
    fake.script("parallel", [
        FIND, turn(call("get_order", {"order_id": "O-1001"}), call("list_orders", {
            "customer_id": "C0001"}), text="Looking at the order and the history."),
        REFUND, REPLY, finish()])
    ep = only(run(store, scenario(fake, "parallel")))
    assert ep.success
    assert [st.decision.tool for st in ep.steps[:4]] == ["find_customer", "get_order",
                                                          "list_orders", "refund"]
    second, third = ep.steps[1].decision, ep.steps[2].decision
    assert len(second.model_calls) == 1 and second.tokens > 0
    assert third.model_calls == [] and third.tokens == 0 and third.cost == 0
    assert fake.requests == 5  # one per turn
    msgs = fake.bodies[2]["messages"]
    assert [m["role"] for m in msgs[-3:]] == ["assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in msgs[-2:]] == ["call_1_0", "call_1_1"]
    assert msgs[-3]["content"] == "Looking at the order and the history."


def test_ask_human_reply_and_denial_go_back_to_the_model(store, fake):
    fake.script("chatty", [
        say("Let me look into that for you."), ask("Which order does she mean?"),
        FIND, GET, REFUND, REFUND, REPLY, finish()])
    text = scenario(fake, "chatty", checkpoints={
        "policy": "before_irreversible", "on_deny": "retry",
        "human": {"type": "scripted", "answers": ["deny"]}})
    ep = only(run(store, text))
    assert ep.success, [(st.node, st.decision.label(), st.result) for st in ep.steps]
    kinds = [(st.decision.kind, st.node) for st in ep.steps]
    assert kinds[:2] == [("message", "reply"), ("ask_human", "clarify")]
    assert ep.steps[0].decision.text == "Let me look into that for you."
    assert ep.steps[4].checkpoint.approved is False and ep.steps[5].checkpoint.approved
    bodies = fake.bodies
    assert bodies[1]["messages"][-1] == {"role": "user",
                                         "content": OpenAIAgent.Options().no_reply_text}
    assert last_tool_message(bodies[2]) == "The customer means order O-1001."
    assert last_tool_message(bodies[5]) == openai_agent.DENIED


def test_unmapped_tools_warn_once_each_and_are_named_by_the_scenario(store, fake):
    fake.script("unmapped", [FIND, tool("search_products", {"query": "jacket"}), GET,
                             tool("search_products", {"query": "rain"}), REFUND, REPLY,
                             finish()])
    openai_agent._warned.clear()
    nm = {k: v for k, v in NODE_MAP.items() if k != "search_products"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run(store, scenario(fake, "unmapped", trials=3, node_map=nm))
    unmapped = [str(w.message) for w in caught if w.category is UnmappedToolWarning]
    assert len(unmapped) == 1 and "'search_products'" in unmapped[0]
    for ep in summary.results:
        assert ep.steps[1].node == "search_products" and ep.success


def test_endpoint_concurrency_and_rate_limits(store, fake):
    fake.script("busy", HAPPY)
    fake.delay = 0.01
    run(store, scenario(fake, "busy", trials=4, concurrency=1), concurrency=4)
    assert fake.max_in_flight == 1
    fake.max_in_flight = 0
    run(store, scenario(fake, "busy", trials=4, concurrency=4), concurrency=4)
    assert fake.max_in_flight > 1
    fake.delay = 0.0
    t0 = time.perf_counter()
    run(store, scenario(fake, "busy", trials=2, requests_per_second=100), concurrency=2)
    assert time.perf_counter() - t0 >= 9 / 100  # ten requests, 10 ms apart


# --- replay ------------------------------------------------------------------------------
REPLAY_SCRIPT = [say("Checking."), FIND, tool("get_order", raw="{oops"),
                 turn(call("get_order", {"order_id": "O-1001"}), call("list_orders", {
                     "customer_id": "C0001"})), ask("OK to refund?"), REFUND, REPLY, finish()]


def assert_same_trajectories(store, run_a: str, run_b: str) -> None:
    a = {e.key: store.load_episode(e.id) for e in store.episodes(run_a)}
    b = {e.key: store.load_episode(e.id) for e in store.episodes(run_b)}
    assert a.keys() == b.keys() and a
    for k in a:
        x, y = a[k], b[k]
        assert [st.decision for st in x.steps] == [st.decision for st in y.steps], k
        assert [st.state_digest for st in x.steps] == [st.state_digest for st in y.steps]
        assert [st.result for st in x.steps] == [st.result for st in y.steps]
        assert (x.final_digest, x.success, x.tokens, x.cost) == (
            y.final_digest, y.success, y.tokens, y.cost)


def test_replay_from_the_tape_makes_no_http_requests(store, fake):
    fake.script("replayed", REPLAY_SCRIPT)
    text = scenario(fake, "replayed", trials=2, seeds=2)
    first = run(store, text)
    assert all(ep.success for ep in first.results)
    sent = fake.requests
    tape = Tape.from_run(store, first.run_id)
    # Trials send the same requests; seeds differ from the list of orders on (turn 4 of 8).
    assert len(tape) == 4 + 2 * 4
    with use_tape(tape):
        second = run(store, text)
    assert fake.requests == sent and tape.misses == 0
    assert_same_trajectories(store, first.run_id, second.run_id)
    # The exact replay of a stored LLM episode needs no model either.
    for e in store.episodes(first.run_id)[:2]:
        report, _ = anyio.run(replay_episode, store, e.id)
        assert report.identical, report.differences
    assert fake.requests == sent


def test_each_episode_replays_its_own_answers(store, fake):
    # A sampling model answers the same first request differently from trial to trial.
    seen = {"n": 0}

    def coin(body: dict[str, Any]) -> dict[str, Any]:
        msgs = body["messages"]
        assistants = [m for m in msgs if m["role"] == "assistant"]
        if not assistants:
            seen["n"] += 1
            return FIND if seen["n"] % 2 else tool("find_customer", {
                "name": "Ana Ruiz", "zip": "94110"})
        return HAPPY[len(assistants)] if len(assistants) < len(HAPPY) else finish()

    fake.script("coin", coin)
    text = scenario(fake, "coin", trials=4)
    first = run(store, text)
    firsts = {json.dumps(ep.steps[0].decision.args) for ep in first.results}
    assert len(firsts) == 2
    sent = fake.requests
    with use_tape(Tape.from_run(store, first.run_id)):
        second = run(store, text)
    assert fake.requests == sent
    assert_same_trajectories(store, first.run_id, second.run_id)


def test_a_tape_miss_fails_loudly_unless_told_to_go_live(store, fake):
    fake.script("happy", HAPPY)
    text = scenario(fake, "happy")
    with use_tape(Tape()):
        ep = only(run(store, text, max_attempts=3))
    assert ep.end_reason == EndReason.error and "replay tape has no recorded response" in ep.error
    assert ep.attempts == 1  # a miss would miss again: not retried
    assert fake.requests == 0
    tape = Tape(live_on_miss=True)
    with use_tape(tape):
        ep = only(run(store, text))
    assert ep.success and fake.requests == 5 and len(tape) == 5
    with use_tape(tape):  # now recorded
        assert only(run(store, text)).success
    assert fake.requests == 5


def test_request_key_is_incremental_and_excludes_the_secret():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    conv = Conversation("m", tools, {"temperature": 0})
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "é"},
            {"role": "assistant", "content": "", "tool_calls": []}]
    for i, m in enumerate(msgs):
        conv.add(m)
        req = conv.request()
        assert req.key == request_key("m", msgs[: i + 1], tools, {"temperature": 0})
        assert json.loads(req.body) == {"model": "m", "messages": msgs[: i + 1],
                                        "tools": tools, "temperature": 0}
        assert req.new_messages == [m] and req.index == i
    assert request_key("m", msgs, tools, {"temperature": 0.5}) != req.key
    with pytest.raises(ValueError, match="api_key"):  # a key in a scenario would be stored
        OpenAIAgent.Options(api_key=KEY, model="m")
