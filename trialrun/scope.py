"""Where an episode runs: the store and run it belongs to, its key, and the step under way.

Set by the runner (store, run) and the episode loop (key, step) in a context variable, so
that what must outlive a process can find its place in the store without every interface
carrying it: a real reviewer's queue item, a LangGraph checkpointer's thread. Unset outside a
run (a replay, a test calling `run_episode` directly).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["EpisodeScope", "episode_scope"]


@dataclass(frozen=True)
class EpisodeScope:
    store: Any = None  # trialrun.store.Store
    run_id: str | None = None
    key: str | None = None  # str(EpisodeKey)
    step: int | None = None
    reason: str = ""  # why the checkpoint policy asked, at a review
    resuming: bool = False  # the episode goes on from a stored pause

    def with_(self, **changes: Any) -> EpisodeScope:
        # (not `dataclasses.replace`, which inspects the fields each call: once an episode)
        return EpisodeScope(**{**self.__dict__, **changes})


# The default is frozen: a scope is replaced, never changed in place.
episode_scope: ContextVar[EpisodeScope] = ContextVar(
    "episode_scope", default=EpisodeScope())  # noqa: B039
