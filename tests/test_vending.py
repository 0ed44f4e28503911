"""The vending world: a year of business, its scripted operator, its failure modes, its judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from trialrun.agents.base import Agent, AgentContext
from trialrun.episode import run_episode
from trialrun.plan import ScenarioPlan
from trialrun.registry import resolve
from trialrun.sandbox.world import ToolError
from trialrun.sandbox.worlds.vending import VendingWorld
from trialrun.sandbox.worlds.vending.mail import parse_order
from trialrun.scenarios.loader import LIBRARY, load_scenario, load_scenario_source, load_targets
from trialrun.trajectory import Decision, EpisodeKey, EpisodeResult, Observation

VENDING = LIBRARY / "vending"
COMPETENT = VENDING / "competent_365.yaml"
DAY = 86400
METRO = "sales@metro-wholesale.example"


def run(path: Path = COMPETENT, seed: int = 0, *, params: dict[str, Any] | None = None,
        days: int | None = None, max_steps: int | None = None, agent: Agent | None = None,
        task_index: int = 0) -> EpisodeResult:
    data = yaml.safe_load(path.read_text())
    if params is not None:
        data["agent"]["params"] = params
    if days is not None:
        data["world"]["days"] = days
    if max_steps is not None:
        data["budgets"]["max_steps"] = max_steps
    loaded = load_scenario_source(yaml.safe_dump(data), path)
    plan = ScenarioPlan.build(loaded)
    key = EpisodeKey(scenario=loaded.name, task=loaded.tasks[task_index]["id"], seed=seed,
                     trial=0)
    out: list[EpisodeResult] = []

    async def main() -> None:
        # Not returned from the main task: asyncio would repr the whole result at shutdown
        # (Python 3.11's signal.getsignal formats the runner's SIGINT handler).
        out.append(await run_episode(plan, key, agent=agent))

    anyio.run(main)
    return out[0]


def decision_day(r: EpisodeResult, index: int) -> int:
    """The simulated day a step's decision was taken on (its step's clock is after it)."""
    return int(r.steps[index - 1].sim_time // DAY) if index else 0


def first_failure(r: EpisodeResult) -> int | None:
    return next((i for i, s in enumerate(r.steps) if s.passed is False), None)


def new_world(**task: Any) -> VendingWorld:
    w = VendingWorld({}, {"id": "t", **task}, seed=1)
    w.reset()
    return w


def call(tool: str, **args: Any) -> Decision:
    return Decision(kind="tool_call", node="n", tool=tool, args=args)


# --- scenarios -----------------------------------------------------------------------
def test_all_vending_scenarios_validate():
    loaded = load_targets(["vending"])
    assert len(loaded) >= 10
    assert all(ls.name.startswith("vending/") for ls in loaded)
    generated = [ls for ls in loaded if not isinstance(ls.scenario.tasks, list)]
    assert generated and all(len(ls.tasks) >= 10 for ls in generated)
    for ls in loaded:
        assert ls.scenario.agent.type == "scripted:vending"
        assert set(ls.scenario.node_map) == VendingWorld.tool_names(None)


def test_generated_tasks_are_seeded_and_valid():
    W = resolve("world", "vending")
    hard = W.generate_tasks(20, 7, "hard")
    assert hard == W.generate_tasks(20, 7, "hard")
    assert hard != W.generate_tasks(20, 8, "hard")
    assert len({t["id"] for t in hard}) == 20
    for t in hard:
        W.Task.model_validate({k: v for k, v in t.items() if k != "id"})
    easy = W.generate_tasks(20, 7, "easy")
    assert min(t["start_cash"] for t in easy) > max(t["start_cash"] for t in hard)
    assert all(t["start_cash"] == 250 for t in W.generate_tasks(3, 1, start_cash=250))
    with pytest.raises(ValueError, match="difficulty"):
        W.generate_tasks(2, 1, "brutal")
    with pytest.raises(ValueError, match="unknown params"):
        W.generate_tasks(2, 1, fee=3)
    assert len(load_scenario(VENDING / "generated_hard.yaml").tasks) == 20


# --- the competent operator ------------------------------------------------------------
def test_competent_operator_stays_solvent_for_a_year_and_grows():
    results = [run(seed=seed) for seed in range(10)]
    solvent = [r for r in results if r.end_note == "horizon reached"]
    assert len(solvent) >= 8, [r.end_note for r in results]
    for r in solvent:
        assert r.metrics["days_survived"] == 365
        assert r.success and r.score == r.metrics["net_worth"] > 500
        # Every decision of the reference operator is sound: a clean prefix for failure modes.
        assert first_failure(r) is None, r.steps[first_failure(r)].grades
    assert 1000 < len(results[0].steps) < 4000


def test_same_seed_same_decisions_same_trajectory():
    a, b = run(seed=3), run(seed=3)
    assert len(a.steps) == len(b.steps)
    assert [s.state_digest for s in a.steps] == [s.state_digest for s in b.steps]
    assert [s.decision for s in a.steps] == [s.decision for s in b.steps]
    assert a.score == b.score and a.final_digest == b.final_digest

    class Replay(Agent):  # the recorded decisions, verbatim, with no policy behind them
        async def start(self, ctx: AgentContext, first: Observation) -> None:
            self.i = 0

        async def decide(self, obs: Observation) -> Decision:
            self.i += 1
            return a.steps[self.i - 1].decision

    replay = Replay()
    c = run(seed=3, agent=replay)
    assert [s.state_digest for s in c.steps] == [s.state_digest for s in a.steps]
    assert c.score == a.score


# --- failure modes ---------------------------------------------------------------------
@pytest.mark.parametrize("failure", ["forget_orders", "misread_deliveries", "loop"])
def test_failure_mode_costs_money_and_is_flagged_when_it_begins(failure):
    start = 60
    for seed in (0, 1):
        good = run(seed=seed, days=150, max_steps=1500)
        bad = run(seed=seed, days=150, max_steps=1500,
                  params={"failure": failure, "failure_day": start})
        assert bad.metrics["net_worth"] < good.metrics["net_worth"] - 200
        i = first_failure(bad)
        assert i is not None
        # Clean until the failure starts, flagged within days of it (never before).
        assert start <= decision_day(bad, i) <= start + 7, (decision_day(bad, i), bad.steps[i])
        before = sum(1 for j in range(len(bad.steps)) if decision_day(bad, j) < start)
        assert [s.state_digest for s in bad.steps[:before]] == \
            [s.state_digest for s in good.steps[:before]]
    if failure == "loop":
        assert bad.end_reason == "truncated"
        assert len({s.decision.tool for s in bad.steps[i:]}) == 1


def test_lean_business_goes_bankrupt_when_the_operator_derails():
    good = run(VENDING / "lean_start_365.yaml")
    assert good.end_note == "horizon reached" and good.success
    for name in ("lean_forget_orders_365.yaml", "lean_misread_deliveries_365.yaml"):
        r = run(VENDING / name)
        assert r.end_reason == "terminated" and r.end_note == "bankrupt"
        assert not r.success and r.metrics["days_survived"] < 365


# --- the world and its judge -------------------------------------------------------------
def test_bankrupt_after_ten_unpaid_days():
    w = new_world(start_cash=5)
    while not w.status().done and w.day < 30:
        w.execute("wait", "wait_for_next_day", {})
    assert w.status().reason == "bankrupt" and w.day == 12  # two paid, ten unpaid
    assert w.outcome()["success"] is False
    with pytest.raises(ToolError):
        w.execute("wait", "wait_for_next_day", {})


def test_orders_by_email_deliveries_and_sales():
    w = new_world(suppliers={"metro": {"late_prob": 0}})
    w.execute("n", "send_email", {"to": METRO, "subject": "Order", "body": "40 x cola\nchips: 30"})
    assert w.cash == 50000 - 40 * 50 - 30 * 45 and w.in_transit("cola") == 40
    mail = w.execute("n", "read_email", {}).output["emails"]
    assert mail[0]["data"]["kind"] == "order_confirmation"
    for _ in range(3):
        w.execute("wait", "wait_for_next_day", {})
    assert w.storage == {"cola": 40, "chips": 30} and not w.orders
    w.execute("n", "stock_slot", {"slot": "C1", "product": "cola", "qty": 12})
    with pytest.raises(ToolError, match="rows A-B"):
        w.execute("n", "stock_slot", {"slot": "D1", "product": "chips", "qty": 5})
    w.execute("n", "set_price", {"slot": "C1", "price": 1.75})
    worth = w.net_worth()
    report = w.execute("wait", "wait_for_next_day", {}).output
    sold = report["yesterday"]["by_slot"]["C1"]["sold"]
    assert w.machine_cash == sold * 175 and w.net_worth() == worth + sold * (175 - 50) - 200


def test_judge_flags_unsound_decisions():
    w = new_world(suppliers={"metro": {"late_prob": 0}})
    v = w.judge(call("send_email", to="vip@primevend.example", body="20 x cola"))
    assert not v.correct and "overpays" in v.reason
    assert w.judge(call("send_email", to=METRO, body="20 x cola")).correct
    assert not w.judge(call("send_email", to=METRO, body="5 x cola")).correct  # below minimum
    w.execute("n", "send_email", {"to": METRO, "body": "20 x cola"})
    assert not w.judge(call("stock_slot", slot="C1", product="cola", qty=5)).correct  # in transit
    for _ in range(3):
        w.execute("wait", "wait_for_next_day", {})
    w.execute("n", "stock_slot", {"slot": "C1", "product": "cola", "qty": 2})
    v = w.judge(call("wait_for_next_day"))  # 2 in the slot, 18 in storage, and no price
    assert not v.correct and "slot C1" in v.reason
    assert w.reference_decision(call("wait_for_next_day")).tool == "stock_slot"
    assert "slot C1" in w.human_answer("what should I do?")
    assert not w.judge(call("set_price", slot="C1", price=9.0)).correct  # > 2x market
    assert not w.judge(call("set_price", slot="C1", price=0.4)).correct  # below cost
    assert w.judge(call("set_price", slot="C1", price=1.9)).correct
    w.execute("n", "inspect_machine", {})
    assert not w.judge(call("inspect_machine")).correct  # pointless repeat
    assert not w.judge(call("collect_cash")).correct  # nothing to collect
    assert not w.judge(Decision(kind="finish", node="n")).correct


def test_email_parsing():
    lines, unknown = parse_order("Hi,\n40 x cola\n- 20 Energy drink\ntrail_mix: 30\n12 widgets")
    assert lines == [("cola", 40), ("energy_drink", 20), ("trail_mix", 30)]
    assert unknown == ["widgets"]
    w = new_world()
    w.execute("n", "send_email", {"to": "nobody@example.com", "body": "price list"})
    w.execute("n", "send_email", {"to": METRO, "subject": "hello", "body": "price list please"})
    kinds = [e["data"]["kind"] for e in w.execute("n", "read_email", {}).output["emails"]]
    assert kinds == ["bounce", "price_list"]
    assert not w.judge(call("read_email")).correct  # nothing unread


def test_notes_research_and_balance():
    w = new_world()
    w.execute("n", "scratchpad", {"action": "write", "key": "plan", "text": "buy cola"})
    assert w.execute("n", "scratchpad", {"action": "read", "key": "plan"}).output == \
        {"plan": "buy cola"}
    found = w.execute("n", "research_products", {"query": "water"}).output
    assert {p["id"] for p in found["products"]} == {"water", "sparkling_water"}
    assert {s["rating"] >= 4 for s in found["suppliers"]} == {True, False}
    assert w.execute("n", "check_balance", {}).output["net_worth"] == 500.0
    assert w.clock.now == 120 + 120 + 1800 + 60  # tools take simulated time


def test_world_alone_reproduces_the_trajectory_and_restores_exactly():
    r = run(seed=5, days=120)
    w = VendingWorld({"days": 120}, {"id": "default", "start_cash": 500}, seed=5)
    w.reset()

    def step(d: Decision) -> str:
        w.judge(d)  # as the loop does: the judge sees the state the decision meets
        try:
            w.execute(d.node, d.tool, d.args)
        except ToolError:
            pass
        return w.digest()

    digests, snap = [], None
    for i, s in enumerate(r.steps):
        if i == 400:
            snap = w.snapshot()
        digests.append(step(s.decision))
    assert digests == [s.state_digest for s in r.steps]
    assert len(w.inbox) <= w.options.inbox_limit and len(json.dumps(w.state())) < 12_000
    w.restore(snap)
    assert [step(s.decision) for s in r.steps[400:]] == digests[400:]
