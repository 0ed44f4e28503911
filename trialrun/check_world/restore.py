"""Run E's snapshot/restore round trip: snapshot half-way, run on, restore, compare, and
run the same calls again.
"""

from __future__ import annotations

from typing import Any

from trialrun.check_world.compare import _entries_difference, _leaf_diff
from trialrun.check_world.record import _Run
from trialrun.check_world.report import Status
from trialrun.check_world.steps import _step
from trialrun.check_world.tasks import _Ctx
from trialrun.check_world.util import _exc, _plain


def _snapshot(world: Any, run: _Run) -> Any:
    try:
        snap = world.snapshot()
    except Exception as e:  # noqa: BLE001
        return e
    state, digest = _plain(_safe(world.state)), _safe(world.digest)
    return snap, state, digest


def _restore(ctx: _Ctx, world: Any, run: _Run, snap: Any,
             at: int) -> tuple[Status, str, list[str]]:
    """Status, message and details of the round trip: restore, compare, run on again."""
    if isinstance(snap, Exception):
        return "fail", f"snapshot() raised {_exc(snap)}", []
    snapshot, state, digest = snap
    if not isinstance(snapshot, dict):
        return "fail", f"snapshot() returned {type(snapshot).__name__}, expected a dict", []
    # Restoring is a warning, not a failure, when unimplemented: no part of the episode loop
    # or of the replays needs it today (they re-run from the seed), while a world whose
    # restore exists but does not round-trip is wrong, and any tool that branches an episode
    # from a snapshot would silently compare different worlds.
    try:
        world.restore(snapshot)
    except NotImplementedError as e:
        return "warn", f"cannot restore ({e or 'load_state is not implemented'}): nothing can " \
                       "branch an episode of this world from a snapshot", []
    except Exception as e:  # noqa: BLE001
        return "fail", f"restore(snapshot()) raised {_exc(e)}", []
    where = f"after {at} step(s) and {len(run.plan) - at} more"
    now_state, now_digest = _plain(_safe(world.state)), _safe(world.digest)
    if now_state != state:
        return "fail", f"restore(snapshot {where}) does not give the snapshot's state back " \
                       f"(snapshot != restored): {_leaf_diff(state, now_state)}", []
    if now_digest != digest:
        return "fail", f"after restore(snapshot {where}) the state is the snapshot's but the " \
                       f"digest is not ({now_digest!r} != {digest!r}): something digest() " \
                       "covers is not restored", []
    # Run on from the restored world: the same calls must give what they gave the first time
    # (in this same world, so that a world the other checks find irreproducible is not
    # blamed here again).
    again = _Run(tools=run.tools, states=[("after restore", now_state, now_digest)])
    for i, (probe, decision) in enumerate(run.plan[at:], start=at):
        _step(ctx, world, again, i, probe, decision)
    first = run.entries[run.starts[at]:run.end_at] if at < len(run.starts) else []
    diff = _entries_difference(first, again.entries)
    if diff:
        return "fail", f"after restore(snapshot {where}), the same calls give other results " \
                       f"than the first time: {diff[0]}; the world keeps something state() " \
                       "and load_state do not cover", diff[1:]
    return "pass", f"restore(snapshot {where}) gives the snapshot's state and digest back, " \
                   "and the same calls then give the same results", []


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - reported by the runs' own checks
        return f"raised {_exc(e)}"
