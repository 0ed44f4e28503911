"""The checks made by running the world: run A, its replays B, C and D under other
wall clocks and global RNG seeds, and run E's snapshot/restore round trip (see the
package docstring), turned into Checks.
"""

from __future__ import annotations

from trialrun.check_world.compare import _difference
from trialrun.check_world.environment import _numpy
from trialrun.check_world.record import _Run
from trialrun.check_world.report import CHECKS, WorldReport, _Report
from trialrun.check_world.runs import _run
from trialrun.check_world.schemas import _check_tools
from trialrun.check_world.tasks import _Ctx

WALL = (1_000_000_000.0, 1_900_000_000.0)  # 2001-09-09 and 2030-03-17: the two wall clocks
GLOBAL_SEEDS = (12345, 54321)  # the global RNGs' seeds: usual, and "seeded otherwise"


def _dynamic_checks(ctx: _Ctx, out: _Report, report: WorldReport) -> None:
    a = _run(ctx, WALL[0], GLOBAL_SEEDS[0], None)
    report.steps = len(a.plan)
    _check_tools(a.tools if a.tools is not None else
                 [t.spec for t in ctx.cls.declared_tools.values()], ctx.cls, ctx.options, out)
    if a.fatal is not None:
        fix = "reset() must build the initial state from self.spec, self.options and " \
              "self.rng and return Observation(text=..., data=...)"
        if ctx.cls.uses_sandbox:
            fix += "; if the sandbox backend is unavailable here, try --sandbox local"
        out.add("lifecycle", "fail", a.fatal, fix, list(a.problems.get("lifecycle", {})))
        for check_id in CHECKS:
            out.skip(check_id, "not checked: the world did not start (see lifecycle)")
        return
    _contract_checks(ctx, a, out)
    b = _run(ctx, WALL[0], GLOBAL_SEEDS[0], a.plan)
    c = _run(ctx, WALL[1], GLOBAL_SEEDS[0], a.plan)
    d = _run(ctx, WALL[0], GLOBAL_SEEDS[1], a.plan)
    steps = f"{len(a.plan)} decision(s)"
    diff = _difference(a, b)
    if diff:
        out.add("same_seed", "fail", f"two runs with seed {ctx.seed} differ: {diff[0]}",
                "a world must be a function of its seed, its task and the decisions: draw "
                "every random number from self.rng, take time from self.clock, and avoid "
                "uuid4/os.urandom, unseeded random.Random(), id() and the order of sets",
                diff[1:])
        for check_id in ("wall_clock", "global_rng"):
            out.skip(check_id, "inconclusive: the world differs even with the same seed, "
                     "clock and global RNG (see same_seed)")
    else:
        out.passed("same_seed", f"two runs with seed {ctx.seed} agree on every observation, "
                   f"verdict, result, state and digest over {steps}")
        diff = _difference(a, c)
        if diff:
            out.add("wall_clock", "fail", f"the run changes when the wall clock moves: {diff[0]}",
                    "read time from self.clock (simulated seconds, advanced by @tool(seconds=...) "
                    "or self.clock.advance), never time.time(), datetime.now() or date.today()",
                    diff[1:])
        else:
            out.passed("wall_clock", "moving the wall clock by 29 years changes nothing")
        diff = _difference(a, d)
        if diff:
            out.add("global_rng", "fail", "the run changes when the global `random` module "
                    f"(or numpy's global RNG) is seeded otherwise: {diff[0]}",
                    "draw every random number from self.rng (random.Random(seed)); for numpy, "
                    "use numpy.random.default_rng(self.rng.getrandbits(64)), never "
                    "random.random()/random.choice() or numpy.random.*", diff[1:])
        else:
            out.passed("global_rng", "reseeding the global `random` module"
                       + (" and numpy's global RNG" if _numpy() else "") + " changes nothing")
    e = _run(ctx, WALL[0], GLOBAL_SEEDS[0], a.plan, snapshot_at=len(a.plan) // 2)
    if e.restore is None:
        out.add("snapshot_restore", "skip", f"not checked: {e.fatal or 'the run stopped early'}")
    else:
        status, message, details = e.restore
        fix = {"pass": "", "skip": "",
               "warn": "implement load_state(state): set the world back from what state() "
                       "returned (snapshot() stores state(), the RNG and the clock)",
               "fail": "load_state must set everything state() reports and rebuild anything "
                       "else the world keeps (caches, derived tables) from it; snapshot() must "
                       "copy, not share, the live state"}[status]
        out.add("snapshot_restore", status, message, fix, details)


def _contract_checks(ctx: _Ctx, a: _Run, out: _Report) -> None:
    """What run A saw about each hook's contract."""
    p = a.problems
    out.problems("lifecycle", p.get("lifecycle", {}),
                 "reset() and observe() return trialrun.trajectory.Observation; close() must "
                 "not raise (it also runs after errors)",
                 ok="the world builds, resets, observes and closes")
    out.problems("tool_errors", p.get("tool_errors", {}),
                 "raise ToolError (trialrun.sandbox.world.ToolError) for a call the world "
                 "refuses: the loop grades it as the agent's error; any other exception ends "
                 "the episode as an infrastructure error",
                 ok=f"{len(a.plan)} call(s) with schema-made or reference arguments: answered "
                    "or refused with ToolError")
    out.problems("state", p.get("state", {}),
                 "return plain JSON data from state(): dicts with str keys, lists, str, "
                 "numbers, bools, None (convert sets, tuples, dates, models)")
    out.problems("digest", p.get("digest", {}),
                 "let digest() hash everything state() returns (the default does), or drop "
                 "the override")
    out.problems("status", p.get("status", {}),
                 "return trialrun.sandbox.world.WorldStatus(done=..., reason=..., metrics=...)")
    out.problems("outcome", p.get("outcome", {}),
                 "return a dict of plain JSON data from outcome(): the facts outcome graders "
                 "read (at least {\"state\": self.state()})")
    judge = dict(p.get("judge", {}))
    if a.judged and not a.verdicts and not judge:
        judge[f"judge() returned None for all {a.judged} decisions the checker tried: node "
              "graders of this world have no ground truth (the `world` grader grades no "
              "step)"] = "warn"
    out.problems("judge", judge, "return Verdict(correct=..., reason=...) from judge(decision) "
                 "wherever the world knows what a sound decision is; judge only reads the state",
                 ok=f"Verdicts for {a.verdicts} of {a.judged} decision(s) judged")
    ref = dict(p.get("reference_decision", {}))
    if not a.references and not ref:
        ref["reference_decision() returned None for every decision: a human taking over "
            "(checkpoints on_deny: takeover) and counterfactual replays (correct_at) have "
            "nothing to substitute"] = "warn"
    out.problems("reference_decision", ref,
                 "return the Decision a careful agent would take instead of `decision` "
                 "(same node), where the world knows it",
                 ok=f"a reference decision for {a.references} decision(s)")
