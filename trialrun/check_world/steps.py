"""One decision as the episode loop takes it (reference, verdict, effect, observation,
state, status), and the loop's questions at the end of an episode.
"""

from __future__ import annotations

from typing import Any

from trialrun.check_world.hooks import (
    _check_observation,
    _hook,
    _judge,
    _Raised,
    _record_state,
    _reference,
    _refused,
    _status,
    _unchanged,
)
from trialrun.check_world.record import _Run
from trialrun.check_world.tasks import _Ctx
from trialrun.check_world.util import _clip, _exc, _is_json, _json_error, _short
from trialrun.sandbox.tools import ToolError
from trialrun.trajectory import Decision, ToolResult


def _step(ctx: _Ctx, world: Any, run: _Run, i: int, probe: Decision,
          decision: Decision | None) -> tuple[Decision, bool]:
    tag = f"step {i} ({probe.tool or probe.kind})"
    ref = _reference(world, run, probe)
    run.add(f"{tag}: reference decision", ref)
    if decision is None:
        decision = ref if ref is not None and ref.kind != "finish" else probe
    if decision != probe:
        run.add(f"{tag}: verdict on the probe",
                None if _refused(run, probe) else _judge(world, run, probe))
    refused = _refused(run, decision)
    verdict = None if refused else _judge(world, run, decision)
    run.add(f"{tag}: verdict", verdict)
    if decision is ref and getattr(verdict, "correct", True) is False:
        run.problem("reference_decision", f"judge() calls the world's own reference decision "
                    f"{_clip(ref.label())} wrong ({verdict.reason}): a counterfactual replay "
                    "(correct_at) that substitutes it still records an error there", "warn")
    _unchanged(world, run, f"at {tag}")
    result = ToolResult(ok=False, error=refused, fault="agent") if refused else \
        _apply(ctx, world, run, decision)
    run.add(f"{tag}: result", result)
    obs = _hook(run, "lifecycle", world.observe)
    if not isinstance(obs, _Raised):
        _check_observation("observe()", obs, run)
    run.add(f"{tag}: observation", obs)
    _record_state(world, run, f"after {tag}")
    run.add(f"{tag}: simulated clock", world.clock.now)
    status = _status(world, run)
    run.add(f"{tag}: status", status)
    return decision, bool(getattr(status, "done", False))


def _end(ctx: _Ctx, world: Any, run: _Run) -> None:
    """What the loop asks at the end: judge/reference the other decision kinds, outcome."""
    for kind, text in (("ask_human", "Which one do you mean?"), ("message", "Working on it."),
                       ("finish", "Done.")):
        d = Decision(kind=kind, node=kind, text=text)
        run.add(f"end: reference for {kind}", _reference(world, run, d))
        run.add(f"end: verdict on {kind}", _judge(world, run, d))
    _unchanged(world, run, "at the end")
    outcome = _hook(run, "outcome", world.outcome)
    if not isinstance(outcome, _Raised):
        if not isinstance(outcome, dict):
            run.problem("outcome", f"outcome() returned {type(outcome).__name__}, expected a dict")
        elif not _is_json(outcome):
            run.problem("outcome", "outcome() is not plain JSON data (it is graded and "
                        f"stored): {_json_error(outcome)}", "warn")
        if isinstance(outcome, dict) and "success" not in outcome:
            run.problem("outcome", "outcome() has no \"success\" key: the `world` outcome "
                        "grader (the default when a scenario lists no graders) reads "
                        "success, reason and score, so it fails every episode", "warn")
    run.add("outcome", outcome)
    run.add("status after the outcome", _status(world, run))


def _apply(ctx: _Ctx, world: Any, run: _Run, d: Decision) -> Any:
    """The decision takes effect, as the episode loop does it."""
    if d.kind == "tool_call":
        try:
            result = world.execute(d.node, d.tool, d.args)
        except ToolError as e:
            return ToolResult(ok=False, error=str(e), fault="agent")
        except Exception as e:  # noqa: BLE001
            run.problem("tool_errors", f"execute({d.tool!r}, {_short(d.args)}) raised {_exc(e)}")
            return f"raised {_exc(e)}"
        if not isinstance(result, ToolResult):
            run.problem("tool_errors", f"execute({d.tool!r}, ...) returned "
                        f"{type(result).__name__}, expected a ToolResult (the default execute "
                        "wraps what a @tool method returns)")
        return result
    if d.kind == "finish":
        return None
    world.clock.advance(ctx.cls.sim_seconds_per_step)
    if d.kind == "ask_human":
        return _hook(run, "lifecycle", world.human_answer, d.text or "")
    said = _hook(run, "lifecycle", world.on_message, d.text or "")
    if not isinstance(said, _Raised):
        _check_observation("on_message()", said, run)
    return said
