"""A deny's choices on a review item: what the scenario allows (retry, take over, abort), the
tools a reviewer may take over with, and the corrected action checked against the tool's JSON
schema (and the world's own strict check for `@tool` tools) before it is accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trialrun.trajectory import Decision, ToolSpec

__all__ = ["DenyOptions", "check_takeover", "deny_options"]


@dataclass
class DenyOptions:
    """What a deny may do for one item."""

    default: str  # the scenario's on_deny
    choices: list[str]  # allowed, the default first
    tools: list[ToolSpec] = field(default_factory=list)  # for a takeover
    world_cls: Any = None
    note: str = ""  # why something is missing (e.g. the scenario no longer loads)

    def schema(self, tool: ToolSpec) -> str:
        return json.dumps(tool.parameters, indent=2, ensure_ascii=False)


def _tools(plan: Any, key: Any) -> list[ToolSpec]:
    """The tools of the item's world: an in-process world is built and reset (cheap; the
    tools may depend on the task); a sandboxed one is not started for a page: its declared
    tools."""
    cls = plan.world_cls
    if cls.uses_sandbox or cls.blocking:
        return [t.spec for t in cls.declared_tools.values()]
    world = plan.new_world(key)
    try:
        world.reset()
        return list(world.tools())
    finally:
        world.close()


def deny_options(plan: Any, key: Any) -> DenyOptions:
    """The deny choices and takeover tools for an episode of `plan` (a ScenarioPlan)."""
    from trialrun.humans import deny_choices

    on_deny = plan.scenario.checkpoints.on_deny
    choices = list(deny_choices(on_deny))
    out = DenyOptions(default=on_deny, choices=choices, world_cls=plan.world_cls)
    if "takeover" in choices:
        try:
            out.tools = _tools(plan, key)
        except Exception as e:  # noqa: BLE001 - the page still offers retry and abort
            out.choices.remove("takeover")
            out.note = f"take over is not offered: the world's tools could not be listed " \
                       f"({type(e).__name__}: {e})"[:300]
    return out


def _schema_errors(spec: ToolSpec, args: dict[str, Any]) -> list[str]:
    try:
        from jsonschema import Draft202012Validator
    except ImportError:  # the light check the episode loop uses
        from trialrun.episode import check_arguments

        err = check_arguments(spec, args)
        return [err] if err else []
    validator = Draft202012Validator(spec.parameters)
    out = []
    for e in sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in e.absolute_path)
        out.append(f"{where}: {e.message}" if where else e.message)
    return out


def check_takeover(options: DenyOptions, node: str, tool: str, args_text: str
                   ) -> tuple[Decision | None, list[str]]:
    """The corrected action, or what is wrong with it (one message per problem)."""
    spec = next((t for t in options.tools if t.name == tool), None)
    if spec is None:
        names = ", ".join(t.name for t in options.tools)
        return None, [f"pick a tool to take over with ({names})" if not tool
                      else f"no tool {tool!r} in this world; tools: {names}"]
    try:
        args = json.loads(args_text.strip() or "{}")
    except ValueError as e:
        msg = getattr(e, "msg", str(e))
        line, col = getattr(e, "lineno", None), getattr(e, "colno", None)
        where = f" (line {line}, column {col})" if line else ""
        return None, [f"the arguments are not JSON: {msg}{where}"]
    if not isinstance(args, dict):
        return None, [f"the arguments must be a JSON object, got {type(args).__name__}"]
    errors = [f"{tool}: {e}" for e in _schema_errors(spec, args)]
    declared = getattr(options.world_cls, "declared_tools", {}).get(tool)
    if not errors and declared is not None:
        from trialrun.sandbox.tools import ToolError

        try:
            declared.validate(args)
        except ToolError as e:
            errors.append(str(e))
    if errors:
        return None, errors
    return Decision(kind="tool_call", node=node, tool=tool, args=args), []


def deny_choice_for(store: Any, item: Any, action: str | None, tool: str | None,
                    args: str | None) -> tuple[str, str | None]:
    """(action, corrected decision JSON) for a deny given outside the web app (`trialrun
    review deny --action takeover --tool T --args JSON`), checked as the app checks it;
    BadInput says what is wrong, one line per problem."""
    from trialrun.errors import BadInput
    from trialrun.runner import plan_of_run
    from trialrun.store import episode_by_key
    from trialrun.trajectory import EpisodeKey

    if not action and not tool:
        return "", None
    ep = episode_by_key(store, item.run_id, item.episode_key)
    if ep is None:
        raise BadInput(f"review item {item.id}: its paused episode is not stored")
    key = EpisodeKey(scenario=ep.scenario, task=ep.task, seed=ep.seed, trial=ep.trial)
    options = deny_options(plan_of_run(store, item.run_id).scenarios[ep.scenario], key)
    action = action or ("takeover" if tool else options.default)
    if action not in options.choices:
        raise BadInput(f"--action {action}: this scenario (on_deny: {options.default}) allows "
                       f"{', '.join(options.choices)}")
    if action != "takeover" or not tool:
        return ("" if action == options.default else action), None
    decision, errors = check_takeover(options, Decision.model_validate_json(item.decision).node,
                                      tool, args or "{}")
    if decision is None:
        raise BadInput("; ".join(errors))
    return action, decision.model_dump_json(exclude_defaults=True)
