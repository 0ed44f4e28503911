"""One episode-like run of the world: built, reset, driven by the planned decisions,
ended, and closed, inside a given wall clock and global RNG seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from trialrun.check_world.environment import _environment
from trialrun.check_world.hooks import _check_observation, _record_state, _tools
from trialrun.check_world.record import _Run
from trialrun.check_world.restore import _restore, _snapshot
from trialrun.check_world.schemas import _example_args
from trialrun.check_world.steps import _end, _step
from trialrun.check_world.tasks import _Ctx
from trialrun.check_world.util import _exc
from trialrun.trajectory import Decision

ROUNDS = 2  # passes over the tool list when planning the decisions


@contextlib.contextmanager
def _world(ctx: _Ctx, run: _Run) -> Iterator[Any]:
    try:
        world = ctx.cls(ctx.options, ctx.task, ctx.seed)
    except Exception as e:  # noqa: BLE001 - the world's own code
        run.fatal = f"{ctx.cls.__qualname__}(options, task, seed={ctx.seed}) raised {_exc(e)}"
        run.add("fatal", run.fatal)
        yield None
        return
    try:
        yield world
    finally:
        try:
            world.close()
        except Exception as e:  # noqa: BLE001
            run.problem("lifecycle", f"close() raised {_exc(e)}")


def _run(ctx: _Ctx, wall: float, global_seed: int, plan: list[tuple[Decision, Decision]] | None,
         snapshot_at: int | None = None) -> _Run:
    """One episode-like run: reset, the decisions (planned now when `plan` is None), then
    the end probes and the outcome; with `snapshot_at`, the snapshot/restore round trip."""
    run = _Run()
    with _environment(wall, global_seed, ctx.modules), _world(ctx, run) as world:
        if world is None:
            return run
        try:
            obs = world.reset()
        except Exception as e:  # noqa: BLE001
            run.fatal = f"reset() raised {_exc(e)}"
            run.add("fatal", run.fatal)
            return run
        try:
            _episode(ctx, world, run, obs, plan, snapshot_at)
        except Exception as e:  # noqa: BLE001 - a fault no hook check caught (no self.clock...)
            run.fatal = f"the world broke the checker's run: {_exc(e)}"
            run.add("fatal", run.fatal)
    return run


def _episode(ctx: _Ctx, world: Any, run: _Run, obs: Any,
             plan: list[tuple[Decision, Decision]] | None, snapshot_at: int | None) -> None:
    _check_observation("reset()", obs, run)
    run.add("first observation", obs)
    _record_state(world, run, "after reset")
    run.tools = _tools(world, run)
    run.add("tools", run.tools)
    source = plan if plan is not None else ((p, None) for p in _probes(world, run, ctx))
    snap = None
    for i, (probe, decision) in enumerate(source):
        if i == snapshot_at:
            snap = _snapshot(world, run)
        run.starts.append(len(run.entries))
        executed, done = _step(ctx, world, run, i, probe, decision)
        run.plan.append((probe, executed))
        if done:
            break
    run.end_at = len(run.entries)
    if snapshot_at is None:
        _end(ctx, world, run)
        return
    if snap is None:  # the plan is shorter than asked: snapshot now
        snapshot_at = len(run.plan)
        snap = _snapshot(world, run)
    run.restore = _restore(ctx, world, run, snap, snapshot_at)


def _probes(world: Any, run: _Run, ctx: _Ctx) -> Iterator[Decision]:
    """A call to each tool, round after round, with arguments made from its schema."""
    n = 0
    for r in range(ROUNDS):
        tools = run.tools if r == 0 else _tools(world, run)
        for spec in tools or []:
            if n >= ctx.steps:
                return
            params = spec.parameters if isinstance(spec.parameters, dict) else {}
            yield Decision(kind="tool_call", node=spec.name, tool=spec.name,
                           args=_example_args(params))
            n += 1
