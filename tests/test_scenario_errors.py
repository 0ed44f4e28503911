"""Malformed scenarios give one clear error each, naming file, line, field and what was
expected; valid built-in scenarios load."""

from __future__ import annotations

import textwrap

import pytest

from trialrun.scenarios.loader import LIBRARY, ScenarioError, load_scenario, load_targets

GOOD = textwrap.dedent("""\
    name: t/good
    world:
      type: retail
    tasks:
      - id: a
        customer: {name: A B, email: a@b.c, zip: "1"}
        orders:
          - {id: O-1, items: [{sku: P110}], status: delivered, days_since_delivery: 3}
        request: {type: refund, order_id: O-1}
    agent:
      type: scripted:retail
    graders:
      - type: assert
        expr: "success == true"
    """)


def errors_for(tmp_path, text: str) -> list[str]:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    return [str(i) for i in e.value.issues]


def test_good_scenario_loads(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(GOOD)
    ls = load_scenario(f)
    assert ls.name == "t/good" and ls.tasks[0]["id"] == "a"


@pytest.mark.parametrize(
    ("old", "new", "line", "expect"),
    [
        # wrong type
        ("  type: scripted:retail", "  type: scripted:retail\ntrials: many", 12,
         "trials: Input should be a valid integer"),
        # unknown key at the top level
        ("agent:\n", "agnet: {type: x}\nagent:\n", 10, "agnet: unknown key"),
        # unknown key inside a world-specific task block, with what is expected
        ("request: {type: refund, order_id: O-1}", "request: {type: refund, order_id: O-1}\n"
         "    colour: red", 10, "tasks[0].colour: unknown key; expected one of: customer"),
        # bad indentation
        ("  type: retail\n", "  type: retail\n    sandbox: x\n", 4,
         "check the indentation"),
        # unknown world
        ("type: retail", "type: retial", 3, "unknown world 'retial'"),
        # unknown agent
        ("type: scripted:retail", "type: scripted:nope", 11, "unknown agent 'scripted:nope'"),
        # unknown grader
        ("type: assert", "type: asert", 13, "unknown grader 'asert'"),
        # an expression that does not parse
        ('expr: "success == true"', 'expr: "success =="', 14, "expression does not parse"),
        # an expression that reaches for Python internals
        ('expr: "success == true"', 'expr: "().__class__"', 14, "not allowed"),
        # an unknown value of a literal
        ("type: refund, order_id", "type: refnd, order_id", 9,
         "Input should be 'refund', 'cancel', 'exchange' or 'status'"),
    ],
)
def test_malformed_scenario_gives_one_clear_error(tmp_path, old, new, line, expect):
    assert old in GOOD
    errs = errors_for(tmp_path, GOOD.replace(old, new, 1))
    assert len(errs) == 1, errs
    assert f"s.yaml:{line}:" in errs[0], errs
    assert expect in errs[0], errs


def test_unknown_tool_in_node_map(tmp_path):
    errs = errors_for(tmp_path, GOOD + "node_map: {refnd: resolve}\n")
    assert len(errs) == 1 and "s.yaml:15:12:" in errs[0] and "unknown tool 'refnd'" in errs[0]


def test_unknown_node_in_agent_error_rates(tmp_path):
    errs = errors_for(tmp_path, GOOD.replace(
        "  type: scripted:retail",
        "  type: scripted:retail\n  params: {error_rates: {rsolve: 0.1}}"))
    assert len(errs) == 1 and "agent.params" in errs[0] and "unknown node 'rsolve'" in errs[0]


def test_duplicate_key_and_missing_field(tmp_path):
    errs = errors_for(tmp_path, GOOD.replace("name: t/good\n", "name: a\nname: b\n"))
    assert len(errs) == 1 and "s.yaml:2:" in errs[0] and "duplicate key 'name'" in errs[0]
    errs = errors_for(tmp_path, GOOD.replace("agent:\n  type: scripted:retail\n", ""))
    assert errs == [f"{tmp_path / 's.yaml'}:1:1: agent: required field is missing"]


def test_every_problem_in_a_file_is_reported(tmp_path):
    bad = GOOD.replace("type: retail", "type: retial").replace("type: assert", "type: asert")
    errs = errors_for(tmp_path, bad)
    assert len(errs) == 2


def test_builtin_library_validates():
    loaded = load_targets([str(p) for p in sorted(LIBRARY.iterdir()) if p.is_dir()])
    suites = {ls.name.split("/")[0] for ls in loaded}
    assert "retail" in suites
    assert sum(ls.name.startswith("retail/") for ls in loaded) >= 10


def test_unknown_suite_names_the_builtin_ones():
    with pytest.raises(ScenarioError) as e:
        load_targets(["retial"])
    assert "not a built-in suite" in str(e.value) and "retail" in str(e.value)


def test_sandbox_override_switches_backend_and_drops_docker_only_keys():
    from trialrun.plan import apply_overrides

    (ls,) = load_targets([str(LIBRARY / "codebase" / "all-bugs.yaml")])
    assert ls.scenario.world.sandbox["backend"] == "docker" and "pool" in ls.scenario.world.sandbox
    apply_overrides(ls, {"sandbox": "local"})
    assert ls.scenario.world.sandbox["backend"] == "local"
    assert "pool" not in ls.scenario.world.sandbox
    (retail,) = load_targets([str(LIBRARY / "retail" / "refund_in_window.yaml")])
    apply_overrides(retail, {"sandbox": "docker"})  # in-process worlds are left alone
    assert retail.scenario.world.sandbox is None


def test_expression_scopes_match_what_graders_evaluate_with():
    """The names `validate` accepts in a node expression are exactly those a node grader's
    expression is evaluated with."""
    from trialrun.graders.base import StepContext
    from trialrun.trajectory import Decision

    ctx = StepContext(node="n", decision=Decision(kind="finish", node="n"), verdict=None,
                      result=None, task={})
    assert set(ctx.expr_context()) == StepContext.variables


def test_unknown_expression_name_is_a_load_error(tmp_path):
    errs = errors_for(tmp_path, GOOD + textwrap.dedent("""\
        nodes:
          resolve:
            graders:
              - {type: assert, expr: "arg.amount > 0"}
        """))
    assert len(errs) == 1 and "s.yaml:18:" in errs[0]
    assert "unknown name 'arg'; did you mean 'args'?" in errs[0]


def test_a_world_hook_that_raises_names_the_hook(tmp_path):
    errs = errors_for(tmp_path, GOOD.replace("order_id: O-1}", "order_id: O-2}"))
    assert errs == [f"{tmp_path / 's.yaml'}:5:5: tasks[0]: world 'retail' raised KeyError('O-2') "
                    "in reset() while checking this task"]
