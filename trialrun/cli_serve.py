"""`trialrun serve-world`: one episode of a scenario, served over MCP to an agent started by hand.

    trialrun serve-world retail/cancel_pending --transport stdio      # the agent's MCP server
    trialrun serve-world my_scenario.yaml --task t2 --seed 3 --transport http --port 8765

The episode runs through the normal runner and store (a run of one episode: `trialrun runs`,
`trialrun show RUN`), with the scenario's world, graders, checkpoints and budgets and the
agent `mcp-served` in place of the scenario's own. Over stdio nothing but MCP goes to stdout;
the summary (run, episode, success, steps) goes to stderr, as does the URL over HTTP.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from trialrun.cli_options import DEFAULT_DB, DbOption


def serve_world(
    scenario: Annotated[str, typer.Argument(
        help="one scenario file, or a built-in one such as retail/cancel_pending")],
    task: Annotated[str | None, typer.Option(help="the task's id (default: the first)")] = None,
    seed: Annotated[int | None, typer.Option(
        help="the world's seed (default: the scenario's first)")] = None,
    transport: Annotated[str, typer.Option(
        help="stdio (the agent launches this command as its MCP server) or http "
             "(streamable HTTP on 127.0.0.1; the URL is printed on stderr)")] = "stdio",
    port: Annotated[int, typer.Option(
        min=0, max=65535, help="http: the port on 127.0.0.1 (0: a free one)")] = 0,
    db: DbOption = DEFAULT_DB,
    max_wall_time: Annotated[float | None, typer.Option(
        min=0, help="wall seconds the episode may last (default: the scenario's "
        "budgets.max_wall_time; 0: no limit)")] = None,
    name: Annotated[str, typer.Option(help="the agent's label in reports")] = "mcp-served",
) -> None:
    """Serve ONE episode of a scenario's world as an MCP server, for an agent started by hand;
    it is stored as a run of one episode."""
    import sys

    from trialrun.cli import _err, _load

    if transport not in ("stdio", "http"):
        _err(f"--transport {transport!r}: expected stdio or http")
        raise typer.Exit(2)
    loaded = _load([scenario])
    if len(loaded) != 1:
        _err(f"{scenario!r} names {len(loaded)} scenarios; serve-world serves one: name a "
             "single scenario file (e.g. retail/cancel_pending)")
        raise typer.Exit(2)
    try:
        variant = served_scenario(loaded[0], task=task, seed=seed, transport=transport,
                                  port=port, max_wall_time=max_wall_time, name=name)
    except ValueError as e:
        _err(str(e))
        raise typer.Exit(2) from None

    import anyio

    from trialrun.runner import RunOptions, run_episodes
    from trialrun.store import Store

    store = Store(db)
    started: dict[str, str] = {}

    def on_start(run_id: str, planned: int, done: int) -> None:
        started["run"] = run_id

    async def go() -> Any:
        return await run_episodes(store, [variant], targets=[scenario], on_start=on_start,
                                  keep_results=True,
                                  options=RunOptions(concurrency=1, max_attempts=1))

    try:
        summary = anyio.run(go)
    except KeyboardInterrupt:
        _err(f"interrupted; run {started.get('run', '?')} is stored as interrupted")
        raise typer.Exit(130) from None
    result = summary.results[0]
    episode = next(iter(store.episodes(summary.run_id)), None)
    success = {True: "yes", False: "no", None: "-"}[result.success]
    print(f"run {summary.run_id}: episode {episode.id if episode else '?'} "
          f"({result.key.task}, seed {result.key.seed}): success {success}, "
          f"end {result.end_reason.value}, {len(result.steps)} step(s); "
          f"`trialrun show {summary.run_id}`", file=sys.stderr, flush=True)
    if result.error:
        _err(f"the episode ended in an error: {result.error.strip().splitlines()[0]}")
        raise typer.Exit(1)


def served_scenario(ls: Any, *, task: str | None, seed: int | None, transport: str,
                    port: int = 0, max_wall_time: float | None = None,
                    name: str = "mcp-served") -> Any:
    """The scenario `ls` narrowed to one task, one seed and one trial, with the agent
    `mcp-served` (keeping the scenario agent's `node_map` and `reply_node`); raises
    ValueError with a message for the user."""
    import yaml

    import trialrun.agents.mcp_agent  # noqa: F401 - registers mcp-served
    from trialrun.registry import did_you_mean
    from trialrun.scenarios.loader import ScenarioError, load_scenario_source

    ids = [t["id"] for t in ls.tasks]
    if not ids:
        raise ValueError(f"scenario {ls.name!r} has no tasks")
    chosen = ids[0] if task is None else task
    if chosen not in ids:
        raise ValueError(f"--task {task!r}: scenario {ls.name!r} has no such task"
                         f"{did_you_mean(chosen, ids)}; tasks: {', '.join(ids[:20])}")
    data = yaml.safe_load(ls.source)
    data["tasks"] = [next(t for t in ls.tasks if t["id"] == chosen)]
    data["seeds"] = [ls.scenario.seed_list[0] if seed is None else seed]
    data["trials"] = 1
    old = data.get("agent") or {}
    params: dict[str, Any] = {k: v for k, v in (old.get("params") or {}).items()
                              if k in ("node_map", "reply_node")}
    params.update(transport=transport, port=port)
    data["agent"] = {"type": "mcp-served", "name": name, "params": params}
    if max_wall_time is not None:
        data.setdefault("budgets", {})
        data["budgets"] = {**(data["budgets"] or {}),
                           "max_wall_time": max_wall_time or None}
    try:
        return load_scenario_source(yaml.safe_dump(data, sort_keys=False), ls.path)
    except ScenarioError as e:
        raise ValueError("; ".join(str(i) for i in e.issues) or str(e)) from None
