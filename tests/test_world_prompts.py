"""What an LLM agent reads first: for every built-in world, its first observation text (with
the task's instruction, as the episode hands both to the agent) states the rules the world
grades it on. An LLM sees only this text and tool results, never `Observation.data`.

Each test takes a library scenario of one world and builds the first user message the way a
run does: the episode's `AgentContext.instruction` is the task's instruction (else the
observation's text), and the `openai` agent composes the message from it and the text."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import anyio
import pytest

from trialrun.agents.base import AgentContext
from trialrun.agents.openai_agent import OpenAIAgent
from trialrun.sandbox.world import World
from trialrun.sandbox.worlds.calendar.tasks import describe_request
from trialrun.sandbox.worlds.vending import judge as vending_judge
from trialrun.scenarios.loader import LIBRARY, ScenarioError, load_scenario
from trialrun.trajectory import Decision, Observation

WORLDS = ("calendar", "vending", "retail", "workflow", "codebase")


def start(path: Path, task: int | str = 0, *, drop_instruction: bool = False,
          options: Any = None) -> tuple[World, dict[str, Any], Observation]:
    """A library scenario's world for one task, reset: (world, task, first observation)."""
    ls = load_scenario(path)
    tasks = ls.tasks
    spec = copy.deepcopy(tasks[task] if isinstance(task, int) else
                         next(t for t in tasks if t["id"] == task))
    if drop_instruction:
        spec.pop("instruction", None)
    world = ls.world_cls(options if options is not None else ls.world_options, spec, 0)
    return world, spec, world.reset()


def first_user_message(world: World, task: dict[str, Any], obs: Observation) -> str:
    """The first user message the `openai` agent sends, given what the episode gives it."""
    ctx = AgentContext(instruction=task.get("instruction") or obs.text, tools=world.tools(),
                       task={"id": task["id"], "instruction": task.get("instruction", "")})
    agent = OpenAIAgent({"model": "prompt-test", "base_url": "http://127.0.0.1:9/v1"})

    async def go() -> str:
        await agent.start(ctx, obs)
        try:
            return agent.conv.messages[1]["content"]
        finally:
            await agent.close()

    return anyio.run(go)


def lib(world: str, name: str) -> Path:
    return LIBRARY / world / name


# --- every world -----------------------------------------------------------------------------
SCENARIOS = {"calendar": "move_two_sams.yaml", "vending": "competent_30.yaml",
             "retail": "exchange_same_price.yaml", "workflow": "outage_credit.yaml",
             "codebase": "local-dev.yaml"}


@pytest.mark.parametrize("world", WORLDS)
def test_every_world_has_a_first_text_that_never_repeats_the_instruction(world):
    w, task, obs = start(lib(world, SCENARIOS[world]))
    try:
        assert len(obs.text) > 200  # rules and a situation, not a bare request
        message = first_user_message(w, task, obs)
        assert obs.text in message
        if task.get("instruction"):
            assert message.count(task["instruction"]) == 1
    finally:
        w.close()


# --- calendar --------------------------------------------------------------------------------
def test_calendar_prompt_has_guidelines_owner_week_agenda_and_request_once():
    w, task, obs = start(lib("calendar", "move_two_sams.yaml"))
    message = first_user_message(w, task, obs)
    assert w.guidelines() in message
    owner = obs.data["owner"]
    assert owner["name"] in message and owner["email"] in message
    assert obs.data["today"] in message  # "Monday 2025-06-02"
    agenda = obs.data["agenda"]
    assert len(agenda) >= 2
    for e in agenda:  # every event, with the id the tools take, its day, time and title
        line = next(ln for ln in message.splitlines() if ln.startswith(f"- {e['event_id']}:"))
        for part in (e["day"], e["time"], e["title"], f"{e['minutes']} min",
                     *(a["name"] for a in e["attendees"])):
            assert part in line, (part, line)
    # Both Sams' meetings are there: the ambiguity is visible from the prompt alone.
    assert "Budget check-in" in message and "Design review" in message
    # The request comes once, first (the agent shows the task's instruction before the text).
    assert message.startswith(task["instruction"]) and message.count(task["instruction"]) == 1


def test_calendar_without_an_instruction_states_the_request_last():
    w, task, obs = start(lib("calendar", "move_two_sams.yaml"), drop_instruction=True)
    request = describe_request(w.req, w.options.week_of)
    assert obs.text.startswith(w.guidelines())
    assert obs.text.rstrip().endswith(request)
    assert first_user_message(w, task, obs) == obs.text


def test_calendar_empty_search_lists_the_agenda_and_is_judged_sound():
    w, _, obs = start(lib("calendar", "move_two_sams.yaml"))
    everything = w.call_tool("search_events", {"query": ""}).output
    assert everything == obs.data["agenda"]
    assert w.call_tool("search_events", {"query": "Sam"}).output  # a real query still narrows
    assert len(w.call_tool("search_events", {"query": "Sam"}).output) < len(everything)
    v = w.judge(Decision(kind="tool_call", node="search", tool="search_events",
                         args={"query": ""}))
    assert v.correct
    # People and email are not listed by an empty query (the inbox can be thousands long).
    assert w.call_tool("search_people", {"query": ""}).output == []


def test_calendar_blank_mention_is_refused(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("""\
name: blank
world: {type: calendar}
tasks:
  - id: t
    events: [{id: e1, title: Sync, start: "mon 10:00"}]
    request: {type: cancel, mentions: "  ", target: e1}
agent: {type: "scripted:calendar"}
""")
    with pytest.raises(ScenarioError, match="blank"):
        load_scenario(p)


# --- vending ---------------------------------------------------------------------------------
def test_vending_prompt_states_what_the_judge_grades():
    w, task, obs = start(lib("vending", "competent_30.yaml"))
    message = " ".join(first_user_message(w, task, obs).split())  # words, not line breaks
    j = vending_judge
    for rule in (
        "never call finish",
        f"unpaid {j.HELP_AFTER_UNPAID} days in a row or more",
        "Do not repeat a call with the same arguments",
        "read_email", "collect_cash when the machine holds none",
        "above its unit cost", f"at most {j.MAX_MARKUP:g}x its market price",
        "PrimeVend Partners", f"{j.OVERPAY:g}x what the cheapest reliable supplier",
        "rated 4.0 or better", f"{j.OVERSTOCK_DAYS:g} days of expected sales",
        "minimum order", "wait_for_next_day only once",
        "cannot pay tonight's fee but the machine holds at least the fee",
        "a slot has no product while storage holds a product of its size",
        f"at or below {j.LOW_SLOT:.0%} of its capacity", "holds stock but has no price",
        f"delivery time plus {j.REORDER_MARGIN_DAYS:g} days",
        f"less {j.RESERVE_FEES} days of fees",
    ):
        assert rule in message, rule
    assert obs.data["instruction"] == w.instruction()  # scripted agents read the same data


def test_vending_judge_agrees_with_the_words():
    """Spot checks that what the text forbids the judge calls wrong, and the reverse."""
    w, _, _ = start(lib("vending", "competent_30.yaml"))

    def verdict(kind: str, tool: str | None = None, **args: Any) -> bool:
        return w.judge(Decision(kind=kind, node="n", tool=tool, args=args)).correct

    assert not verdict("finish")
    assert not verdict("ask_human")
    w.unpaid = vending_judge.HELP_AFTER_UNPAID
    assert verdict("ask_human")
    w.unpaid = 0
    assert not verdict("tool_call", "send_email", to="vip@primevend.example", subject="Order",
                       body="10 x cola")
    assert verdict("tool_call", "send_email", to="sales@metro-wholesale.example",
                   subject="Order", body="20 x cola")
    assert not verdict("tool_call", "collect_cash")  # the machine holds no cash yet
    assert verdict("tool_call", "wait_for_next_day")  # nothing to fix on an empty machine


# --- retail ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "sku", "product"), [
    ("exchange_same_price.yaml", "P101", "red running shoes"),
    ("exchange_price_differs.yaml", "P102", "trail shoes"),
])
def test_retail_exchange_names_the_product_wanted(name, sku, product):
    w, task, obs = start(lib("retail", name))
    message = first_user_message(w, task, obs)
    assert w.policy_text() in message
    customer = next(ln for ln in message.splitlines() if ln.startswith("Customer:"))
    assert "exchange" in customer and sku in customer and product in customer
    assert message.index(w.policy_text()) < message.index(customer)  # policy, then request


def test_retail_other_requests_read_as_before():
    _, _, obs = start(lib("retail", "refund_in_window.yaml"))
    assert obs.data["customer_message"] in obs.text
    assert " for the " not in obs.data["customer_message"]


# --- workflow --------------------------------------------------------------------------------
def test_workflow_instruction_once_then_pipeline_rules_and_transcript():
    w, task, obs = start(lib("workflow", "outage_credit.yaml"))
    message = first_user_message(w, task, obs)
    assert message.count(task["instruction"]) == 1 and message.startswith(task["instruction"])
    order = [message.index(x) for x in ("crm_update", w.policy_text(), "Transcript:\n")]
    assert order == sorted(order)
    for rule in ("cannot be undone", "no one to send a message to", "ask_human",
                 "Finish once crm_update has written the record"):
        assert rule in " ".join(message.split()), rule
    assert w.transcript in message


def test_workflow_without_an_instruction_states_its_own_once():
    w, task, obs = start(lib("workflow", "outage_credit.yaml"), drop_instruction=True)
    message = first_user_message(w, task, obs)
    assert message == obs.text
    assert message.startswith("Process this support call through the pipeline.")
    assert message.count("Process this support call") == 1


# --- codebase --------------------------------------------------------------------------------
def test_codebase_prompt_rules_then_issue_and_a_human_answer():
    w, task, obs = start(lib("codebase", "local-dev.yaml"))
    try:
        message = first_user_message(w, task, obs)
        order = [message.index(x) for x in ("Do not edit the tests", w.bug.issue.strip(),
                                            "Files:\n")]
        assert order == sorted(order)
        answer = w.human_answer("Which file is the bug in?")
        assert answer and w.bug.issue.strip() in answer
        # The answer adds nothing to the issue (the judge never says a human was needed).
        assert w.bug.seed.file not in answer.replace(w.bug.issue, "")
        planted = w.bug.seed.replace.strip()
        assert not planted or planted not in answer
    finally:
        w.close()
