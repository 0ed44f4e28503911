"""Shared test helpers: run scenarios in-process against a temporary store."""

from __future__ import annotations

from pathlib import Path

import anyio

from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import LIBRARY, load_scenario, load_scenario_source
from trialrun.store import Store

RETAIL = LIBRARY / "retail"


def run_scenarios(store: Store, paths: list[Path], **opts):
    loaded = [load_scenario(p) for p in paths]
    return anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(**opts),
                                          keep_results=True))


def run_source(store: Store, text: str, **opts):
    loaded = [load_scenario_source(text, "inline.yaml")]
    return anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(**opts),
                                          keep_results=True))
