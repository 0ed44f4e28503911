"""Calling the world's hooks as the loop does, and noting in the run each way what they
return breaks the World contract.
"""

from __future__ import annotations

import json
from typing import Any

from trialrun.check_world.compare import _leaf_diff
from trialrun.check_world.record import _Run
from trialrun.check_world.util import _clip, _exc, _is_json, _json_error, _plain, _short
from trialrun.trajectory import Decision, Observation, ToolSpec


class _Raised(str):
    """What a hook raised, as the value the run records in its place."""


def _hook(run: _Run, check_id: str, fn: Any, *args: Any, why: str = "") -> Any:
    """Call a world hook; what it raises is a problem of `check_id` and a _Raised value."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the world's own code
        run.problem(check_id, f"{getattr(fn, '__name__', 'a hook')}() raised {_exc(e)}{why}")
        return _Raised(f"raised {_exc(e)}")


def _judge(world: Any, run: _Run, d: Decision) -> Any:
    from trialrun.sandbox.world import Verdict

    run.judged += 1
    v = _hook(run, "judge", world.judge, d, why=f" on {d.label()}: the loop judges every "
              "decision, also odd ones an agent makes")
    if isinstance(v, _Raised):
        return v
    if v is not None and not isinstance(v, Verdict):
        run.problem("judge", f"judge() returned {type(v).__name__}, expected a Verdict or None")
    elif v is not None:
        run.verdicts += 1
    return v


def _reference(world: Any, run: _Run, d: Decision) -> Any:
    ref = _hook(run, "reference_decision", world.reference_decision, d, why=f" on {d.label()}")
    if ref is None or isinstance(ref, _Raised):
        return None
    if not isinstance(ref, Decision):
        run.problem("reference_decision", f"reference_decision() returned "
                    f"{type(ref).__name__}, expected a Decision or None")
        return None
    run.references += 1
    why = _refused(run, ref)
    if why:
        run.problem("reference_decision", f"reference_decision() proposes "
                    f"{_clip(ref.label())}, which the loop refuses: {why}",
                    once=f"ref-refused-{ref.tool}")
    return ref


def _refused(run: _Run, d: Decision) -> str | None:
    """Why the loop refuses a tool call before judging or running it (unknown tool, arguments
    against its schema), as `Episode.validate_call` does; None for a well-formed call."""
    if d.kind != "tool_call" or run.tools is None:
        return None
    from trialrun.episode import check_arguments

    spec = next((t for t in run.tools if t.name == d.tool), None)
    return f"unknown tool {d.tool!r}" if spec is None else check_arguments(spec, d.args)


def _status(world: Any, run: _Run) -> Any:
    from trialrun.sandbox.world import WorldStatus

    status = _hook(run, "status", world.status)
    if not isinstance(status, WorldStatus | _Raised):
        run.problem("status", f"status() returned {type(status).__name__}, expected a "
                    "WorldStatus")
    return status


def _tools(world: Any, run: _Run) -> list[ToolSpec]:
    tools = _hook(run, "lifecycle", world.tools)
    if isinstance(tools, _Raised):
        return []
    if not isinstance(tools, list) or not all(isinstance(t, ToolSpec) for t in tools):
        run.problem("lifecycle", f"tools() returned {_short(tools)}, expected a list of "
                    "ToolSpec")
        return [t for t in tools if isinstance(t, ToolSpec)] if isinstance(tools, list) else []
    return tools


def _record_state(world: Any, run: _Run, where: str) -> None:
    state = _hook(run, "state", world.state)
    if not isinstance(state, _Raised):
        if not isinstance(state, dict):
            run.problem("state", f"state() returned {type(state).__name__}, expected a dict")
        elif not _is_json(state):
            run.problem("state", f"state() is not plain JSON data: {_json_error(state)}")
        elif json.loads(json.dumps(state)) != state:
            run.problem("state", "state() changes in a JSON round trip (tuples become lists, "
                        "non-str keys become str): snapshot() stores the round-tripped form, "
                        "so load_state sees other data than state() gave", "warn")
    digest = _digest(world, run)
    run.add(f"state {where}", state)
    run.add(f"digest {where}", digest)
    plain = _plain(state)
    if run.states and plain != run.states[-1][1] and digest == run.states[-1][2]:
        run.problem("digest", f"the state changed {where} but digest() did not: replays "
                    "compare digests, so they would miss this divergence "
                    f"({_leaf_diff(run.states[-1][1], plain)})", once="digest-misses")
    run.states.append((where, plain, digest))


def _digest(world: Any, run: _Run) -> Any:
    digest = _hook(run, "digest", world.digest)
    if not isinstance(digest, str):
        run.problem("digest", f"digest() returned {type(digest).__name__}, expected a str")
    return digest


def _unchanged(world: Any, run: _Run, where: str) -> None:
    """Ground-truth hooks only read: the digest is what it was after the last step."""
    if run.states and _digest(world, run) != run.digest:
        run.problem("judge", "judge() or reference_decision() changed the world's state (its "
                    f"digest) {where}, before any decision took effect: ground-truth hooks "
                    "must only read the state", once="judge-writes")


def _check_observation(hook: str, obs: Any, run: _Run) -> None:
    if not isinstance(obs, Observation):
        run.problem("lifecycle", f"{hook} returned {type(obs).__name__}, expected an "
                    "Observation (trialrun.trajectory.Observation(text=..., data=...))")
        return
    try:
        obs.model_dump_json()
    except Exception as e:  # noqa: BLE001 - pydantic's serialisation errors
        run.problem("lifecycle", f"{hook}'s observation data is not JSON ({type(e).__name__}: "
                    f"{str(e).splitlines()[0]}): LLM agents cannot be shown it", "warn")
