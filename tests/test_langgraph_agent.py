"""A user's LangGraph graph evaluated unmodified (`agent: {type: langgraph}`): every tool call
graded at the node that decided it, `interrupt()` approvals answered by the scenario's human
(a deny skips the action and the graph goes on), questions answered by the world's human,
a crash of the graph scored as the agent's failure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_openai import FakeOpenAI, say, tool
from tests.helpers import run_source
from trialrun.errors import TrialrunError
from trialrun.scenarios.loader import load_scenario_source
from trialrun.store import Store
from trialrun.trajectory import EndReason, EpisodeResult

EXAMPLE = Path(__file__).parent.parent / "examples" / "support_graph" / "scenario.yaml"
CANCEL = {"order_id": "O-3001"}
PLAN = [("find_customer", {"email": "chen.n@example.com"}),
        ("list_orders", {"customer_id": "C0001"}), ("cancel", CANCEL),
        ("reply", {"message": "Your order O-3001 is cancelled."})]


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE.parent.parent))


def doc(agent: dict[str, Any], **extra: Any) -> str:
    d = yaml.safe_load(EXAMPLE.read_text())
    d["agent"] = agent
    d.update(extra)
    return yaml.safe_dump(d)


def one(store: Store, text: str) -> EpisodeResult:
    summary = run_source(store, text)
    assert summary.errors == 0
    [result] = summary.results
    return result


def calls(result: EpisodeResult) -> list[tuple[str, str | None]]:
    return [(s.node, s.decision.tool) for s in result.steps]


def test_the_example_graph_runs_unmodified_with_its_approval_gate(tmp_path, monkeypatch):
    with FakeOpenAI() as fake:
        fake.script("m", [tool(n, a) for n, a in PLAN] + [say("Cancelled O-3001.")])
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_MODEL", "m")
        result = one(Store(f"sqlite:///{tmp_path}/s.db"),
                     EXAMPLE.read_text().replace("false_deny_rate: 0.1", "false_deny_rate: 0"))
        requests = fake.requests
    assert result.success and result.end_reason == EndReason.finished
    assert result.end_note == "Cancelled O-3001."  # the graph's final words
    assert calls(result) == [("verify_identity", "find_customer"), ("lookup_order", "list_orders"),
                             ("resolve", "cancel"), ("reply", "reply"), ("finish", None)]
    cancel = result.steps[2]
    # The graph's interrupt() is the review: always asked, whatever the policy says.
    assert cancel.checkpoint is not None and cancel.checkpoint.approved
    assert cancel.checkpoint.reason.startswith("the agent asked for approval")
    assert cancel.result is not None and cancel.result.ok
    assert all(g.passed for s in result.steps for g in s.grades)
    assert requests == 5  # one model turn per decision: the approved call did not run twice


def test_a_denied_interrupt_skips_the_action_and_the_graph_goes_on(tmp_path):
    text = doc({"type": "langgraph", "params": {"graph": "tests.lg_graphs:react",
                                                "graph_args": {"plan": PLAN}}},
               checkpoints={"on_deny": "retry",
                            "human": {"type": "scripted", "answers": ["deny"]}})
    result = one(Store(f"sqlite:///{tmp_path}/s.db"), text)
    cancel = next(s for s in result.steps if s.decision.tool == "cancel")
    assert cancel.checkpoint is not None and cancel.checkpoint.approved is False
    assert cancel.result is None  # it never ran
    # The graph went on past the deny: it replied and finished with its own words.
    assert [s.decision.tool for s in result.steps][-2:] == ["reply", None]
    assert result.end_note == "all done"
    assert not result.success  # the order was never cancelled


def test_calls_are_graded_at_the_node_that_decided_them(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    # Nodes that call tools themselves: the node that ran the call decided it.
    direct = one(store, doc({"type": "langgraph", "params": {"graph": "tests.lg_graphs:direct"}}))
    assert calls(direct) == [("verify", "find_customer"), ("lookup", "get_order"),
                             ("answer", "reply"), ("finish", None)]
    # A model node deciding and ToolNode running: the deciding node, not "tools".
    react = one(store, doc({"type": "langgraph", "params": {
        "graph": "tests.lg_graphs:react", "graph_args": {"plan": PLAN[:2]}}}))
    assert calls(react) == [("agent", "find_customer"), ("agent", "list_orders"),
                            ("finish", None)]


def test_an_interrupt_that_asks_a_question_is_answered_by_the_worlds_human(tmp_path):
    result = one(Store(f"sqlite:///{tmp_path}/s.db"),
                 doc({"type": "langgraph", "params": {"graph": "tests.lg_graphs:asks",
                                                      "node_map": {"ask_human": "clarify"}}}))
    ask = result.steps[0]
    assert (ask.decision.kind, ask.node) == ("ask_human", "clarify")
    assert ask.decision.text == "Which order does the customer mean?"
    # The answer went back into the graph, which finished with it.
    assert result.end_note == f"human said: {ask.result.output}"


def test_a_graph_that_raises_is_the_agents_failure_not_an_infrastructure_error(tmp_path):
    result = one(Store(f"sqlite:///{tmp_path}/s.db"),
                 doc({"type": "langgraph", "params": {"graph": "tests.lg_graphs:crashes"}}))
    assert result.end_reason == EndReason.finished and result.success is False
    assert "ValueError: the model's JSON had no 'action' key" in result.end_note
    assert calls(result)[0] == ("verify", "find_customer")  # the work before it is kept


def test_a_graph_path_that_does_not_import_is_a_load_error_with_its_line():
    text = doc({"type": "langgraph", "params": {"graph": "tests.lg_graphs:nope"}})
    with pytest.raises(TrialrunError) as e:
        load_scenario_source(text, "bad.yaml")
    msg = str(e.value)
    assert "bad.yaml:" in msg and "has no 'nope'" in msg and "graph" in msg


def test_a_graph_whose_model_endpoint_is_down_is_an_infrastructure_error(tmp_path):
    summary = run_source(Store(f"sqlite:///{tmp_path}/s.db"),
                         doc({"type": "langgraph",
                              "params": {"graph": "tests.lg_graphs:model_down"}}),
                         retry_backoff_s=0.0)
    [result] = summary.results
    assert result.end_reason == EndReason.error and result.success is None  # never scored
    assert "model endpoint failed: ConnectError" in result.error
    assert result.attempts > 1  # retried


def test_a_graph_paused_for_a_reviewer_goes_on_in_another_process(tmp_path):
    from tests.test_cli import trialrun

    env_path = str(Path(__file__).parent.parent)
    scenario = tmp_path / "reviewed.yaml"
    scenario.write_text(doc({"type": "langgraph", "params": {
        "graph": "tests.lg_graphs:react", "graph_args": {"plan": PLAN},
        "checkpointer": str(tmp_path / "graph.sqlite")}},
        checkpoints={"policy": "never", "on_deny": "retry", "human": {"type": "reviewer"}}))
    db = f"sqlite:///{tmp_path / 'runs.db'}"

    def cli(*args: str):
        out = trialrun(*args, "--db", db, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": env_path})
        assert out.returncode == 0, out.stdout + out.stderr
        return out

    cli("run", str(scenario), "--no-progress")
    store = Store(db)
    [run] = [r for r, _ in store.runs()]
    assert run.status == "waiting for review"
    [paused] = store.episodes(run.id)
    assert paused.end_reason == "paused" and paused.success is None
    [item] = store.reviews(run.id, "pending")
    assert item.step == 2 and "cancel" in item.decision
    assert "the agent asked for approval" in item.reason
    cli("review", "approve", item.id, "--by", "ana")
    cli("run", "--resume", run.id, "--no-progress")  # a second process
    [done] = store.episodes(run.id)
    result = store.load_episode(done.id)
    assert result.success and store.get_run(run.id).status == "complete"
    # Nothing ran twice: the graph went on from its checkpoint at the interrupt.
    assert [s.decision.tool for s in result.steps] == [
        "find_customer", "list_orders", "cancel", "reply", None]
    assert result.steps[2].checkpoint.approved and result.steps[2].checkpoint.reviewer == "ana"
