"""The ready-made LLM scenarios in examples/llm/: they validate cleanly, name no endpoint,
map every tool to the node the world's scripted reference agent uses, and run end to end
against an OpenAI-compatible server (tests/fake_openai.py) whose address, model and key come
from the environment, as a user's would."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.fake_openai import FakeOpenAI, finish, tool
from tests.helpers import run_scenarios
from trialrun.agents import openai_agent
from trialrun.agents.tape import Tape, use_tape
from trialrun.registry import resolve
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import check_targets, load_scenario
from trialrun.trajectory import EndReason
from trialrun.variants import agent_variants, parse_agent

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "llm"
WORLDS = ("retail", "calendar", "workflow", "vending", "codebase")
FILES = {w: EXAMPLES / f"{w}.yaml" for w in WORLDS}
KEY = "sk-example-3c9e1a7f5b2d4068"

# One sensible first call per world (on the file's first task), then finish.
FIRST_CALL = {
    "retail": ("find_customer", {"email": "ana.ruiz@example.com"}),
    "calendar": ("search_events", {"query": "Kofi"}),
    "workflow": ("search_customers", {"name": "Nora Silva"}),
    "vending": ("research_products", {}),
    "codebase": ("run_tests", {}),
}
# Text of the world's rules that the model must read in its first user message.
RULES_SHOWN = {
    "retail": "Retail support policy",
    "workflow": "Business rules (the first that applies decides the outcome)",
    "vending": "You pay a daily fee",
    "codebase": "Do not edit the tests",
}


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def endpoint(fake, monkeypatch):
    """The endpoint as a user sets it: three environment variables, nothing in the file."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)

    def use(model: str) -> None:
        monkeypatch.setenv("OPENAI_MODEL", model)

    return use


def run(store, path: Path, **opts: Any):
    opts = {"retry_backoff_s": 0.0, "max_attempts": 1, "sandbox": "local", **opts}
    return run_scenarios(store, [path], **opts)


def agent_params(world: str) -> dict[str, Any]:
    return yaml.safe_load(FILES[world].read_text())["agent"]["params"]


# --- the files ---------------------------------------------------------------------------
def test_one_example_per_world():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(f"{w}.yaml"
                                                                      for w in WORLDS)
    assert (EXAMPLES / "README.md").is_file()


def test_every_example_validates_with_no_error_and_no_warning():
    reports = check_targets([str(EXAMPLES)])  # what `trialrun validate` runs
    assert [r.path.name for r in reports] == sorted(f"{w}.yaml" for w in WORLDS)
    for r in reports:
        assert r.ok and r.issues == [], [str(i) for i in r.issues]


def test_trialrun_validate_the_folder_is_silent_but_for_ok_lines(tmp_path):
    out = subprocess.run([sys.executable, "-m", "trialrun.cli", "validate", str(EXAMPLES)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["ok"] * len(WORLDS)


def _walk(value: Any, path: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("world", WORLDS)
def test_no_endpoint_model_or_key_is_written_in_the_file(world):
    text = FILES[world].read_text()
    data = yaml.safe_load(text)
    for where, key, value in _walk(data):
        assert key not in ("base_url", "model", "api_key", "api_key_env"), where
        if isinstance(value, str):
            assert not re.search(r"https?://", value), f"{where} holds a URL"
    assert not re.search(r"\bsk-[A-Za-z0-9_-]{8,}", text)  # nothing that looks like a key
    # ... and the comment at the top says where they come from, for every kind of server.
    head = text.split("\nname:", 1)[0]
    for needle in ("OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY", "vllm serve",
                   "llama-server", "OPENAI_BASE_URL=http://127.0.0.1:11434/v1",
                   f"trialrun run examples/llm/{world}.yaml"):
        assert needle in head, needle


def test_the_readme_holds_no_key_either():
    text = (EXAMPLES / "README.md").read_text()
    assert not re.search(r"\bsk-[A-Za-z0-9_-]{8,}", text)
    for needle in ("--replay-from", "--agent", "trialrun validate examples/llm/",
                   "OPENAI_BASE_URL=http://127.0.0.1:11434/v1"):
        assert needle in text, needle


@pytest.mark.parametrize("world", WORLDS)
def test_every_tool_maps_to_a_node_of_the_scripted_reference_agent(world):
    ls = load_scenario(FILES[world])
    assert ls.agent_cls is openai_agent.OpenAIAgent
    opts = ls.agent_options
    tools = ls.world_cls.tool_names(ls.world_options)
    assert tools and set(opts.node_map) == tools | {"ask_human", "finish"}
    # The world's tools are mapped at the top level too, identically, for `run --agent`.
    assert ls.scenario.node_map == {t: opts.node_map[t] for t in tools}
    reference = resolve("agent", f"scripted:{world}").nodes
    assert {opts.node_map[t] for t in tools} <= reference
    for kind in ("ask_human", "finish"):  # the reference's node, else the decision's own
        assert opts.node_map[kind] in reference | {kind}
    # Graders and descriptions are attached only to nodes the map reaches.
    assert set(ls.scenario.nodes) <= set(opts.node_map.values())


@pytest.mark.parametrize("world", WORLDS)
def test_sampling_prices_prompt_and_budgets(world):
    ls = load_scenario(FILES[world])
    opts, sc = ls.agent_options, ls.scenario
    assert opts.temperature == 0
    assert opts.prices.input_per_1m > 0 and opts.prices.output_per_1m > 0
    prompt = opts.system_prompt or ""
    for word in ("ask_human", "finish"):
        assert word in prompt
    assert sc.budgets.max_cost is not None
    irreversible = any(t.spec.irreversible for t in ls.world_cls.declared_tools.values())
    assert (sc.checkpoints.policy == "before_irreversible") == irreversible
    planned = len(sc.tasks) * sc.trials * (sc.seeds if isinstance(sc.seeds, int)
                                           else len(sc.seeds))
    assert planned <= 8  # a run costs cents


# --- end to end against an OpenAI-compatible server ---------------------------------------
@pytest.mark.parametrize("world", WORLDS)
def test_each_example_runs_with_the_endpoint_from_the_environment(world, store, fake,
                                                                  endpoint):
    name, args = FIRST_CALL[world]
    fake.script(f"example-{world}", [tool(name, args), finish("done")])
    endpoint(f"example-{world}")
    params = agent_params(world)
    openai_agent._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run(store, FILES[world], limit=1)
    assert not [w for w in caught if w.category is openai_agent.UnmappedToolWarning]
    (ep,) = summary.results
    assert ep.end_reason == EndReason.finished and ep.error is None, ep.error
    node_map = params["node_map"]
    assert [st.node for st in ep.steps] == [node_map[name], node_map["finish"]]
    assert [st.decision.tool for st in ep.steps] == [name, None]
    assert ep.steps[0].result is not None and ep.steps[0].result.ok, ep.steps[0].result
    assert all(len(st.decision.model_calls) == 1 for st in ep.steps)
    # What the endpoint was sent: the file's prompt and sampling, the key from the env.
    first = fake.bodies[0]
    assert first["model"] == f"example-{world}" and first["temperature"] == 0
    assert first["messages"][0] == {"role": "system", "content": params["system_prompt"]}
    assert set(fake.auth) == {f"Bearer {KEY}"}
    offered = {t["function"]["name"] for t in first["tools"]}
    assert offered == set(node_map)
    if world in RULES_SHOWN:
        assert RULES_SHOWN[world] in first["messages"][1]["content"]


def test_the_calendar_model_reads_the_worlds_guidelines(store, fake, endpoint):
    fake.script("example-guidelines", [finish()])
    endpoint("example-guidelines")
    run(store, FILES["calendar"], limit=1)
    ls = load_scenario(FILES["calendar"])
    task = ls.scenario.tasks[0].model_dump()
    world = ls.world_cls(ls.world_options, task, 0)
    agenda = world.reset().data["agenda"]
    first_user = fake.bodies[0]["messages"][1]["content"]
    assert world.guidelines() in first_user
    # ... the week's agenda, with the ids the tools take, and the request said once.
    assert agenda and all(e["event_id"] in first_user and e["title"] in first_user
                          for e in agenda)
    assert first_user.count(task["instruction"]) == 1


def test_a_recorded_run_replays_with_no_request(store, fake, endpoint):
    fake.script("example-replay", [
        tool("find_customer", {"email": "ana.ruiz@example.com"}),
        tool("get_order", {"order_id": "O-1001"}),
        tool("refund", {"order_id": "O-1001", "amount": 149.0}),
        tool("reply", {"message": "We refunded 149.00 to your card."}), finish("refunded")])
    endpoint("example-replay")
    first = run(store, FILES["retail"], limit=1)
    (ep,) = first.results
    assert ep.success, [(st.node, st.grades) for st in ep.steps]
    assert [st.node for st in ep.steps] == ["verify_identity", "lookup_order", "resolve",
                                             "reply", "finish"]
    assert ep.steps[2].checkpoint is not None  # the refund was reviewed
    sent = fake.requests
    with use_tape(Tape.from_run(store, first.run_id)):  # what --replay-from does
        again = run(store, FILES["retail"], limit=1)
    assert fake.requests == sent
    (ep2,) = again.results
    assert [st.decision for st in ep2.steps] == [st.decision for st in ep.steps]
    assert ep2.success and ep2.cost == ep.cost > 0


def test_two_models_compared_as_the_readme_says(store, fake, endpoint):
    """The README's recipe: one --agent per model, naming only the model; the file's
    prompt and node map are kept."""
    script = [tool("find_customer", {"email": "ana.ruiz@example.com"}), finish()]
    fake.script("model-a", script)
    fake.script("model-b", script)
    endpoint("unused")  # each variant names its model
    base = yaml.safe_load(FILES["retail"].read_text())["agent"]
    specs = [parse_agent(f"{{type: openai, name: {m}, params: {{model: {m}}}}}")
             for m in ("model-a", "model-b")]  # as the README writes them
    loaded = agent_variants([load_scenario(FILES["retail"])], specs)
    summary = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(
        trials=1, retry_backoff_s=0.0), keep_results=True))
    assert len(summary.results) == 2 * 4
    for ep in summary.results:
        assert [st.node for st in ep.steps] == ["verify_identity", "finish"]
    prompts = {b["model"]: b["messages"][0]["content"] for b in fake.bodies}
    assert prompts == {m: base["params"]["system_prompt"] for m in ("model-a", "model-b")}
