"""Record and replay of model calls: a run re-executed deterministically, with no HTTP.

A `Tape` maps the replay key of a request (`trialrun.agents.model_client.request_key`: the
canonical JSON of model, messages, tools and sampling params; never the API key, base URL or
timeouts) to the `ModelCall` recorded for it, response included. Every LLM decision stores its
calls (`Decision.model_calls`), so `Tape.from_episodes(stored_episodes)` rebuilds the tape of a
run from the store alone.

Lookups try the same episode first (scenario/task/seed/trial, when the runner says which
episode is running), then any episode: two trials that sent the same request to a sampling
model may have been answered differently, and each replays its own answer. The recorded
`ModelCall` is served as it was (latency and attempts included), so a replayed decision
equals the recorded one field for field.

A `ModelClient` consults the tape installed for the current context (`current_tape`, set with
`use_tape(tape)` around a run; the runner's `--replay-from RUN_ID` does this), or the one it
was given. A hit makes no HTTP request. A miss raises `TapeMiss` (an `AgentError`: the episode
is recorded as an infrastructure error naming the call, never scored), unless the tape was made
with `live_on_miss=True`: then the call goes to the endpoint and is added to the tape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from trialrun.agents.base import AgentError
from trialrun.sandbox.backend import sandbox_labels
from trialrun.trajectory import EpisodeResult, ModelCall

__all__ = ["Tape", "TapeMiss", "current_episode", "current_tape", "episode_label", "use_tape"]


class TapeMiss(AgentError):
    """A request the replay tape has no response for (and the tape does not fall back to
    the live endpoint): the replay diverged from the recording."""

    retryable = False  # it would miss again: the executor records it at once


# The tape the model clients of this context use (None: live calls).
current_tape: ContextVar[Tape | None] = ContextVar("trialrun_tape", default=None)
# The episode running in this context, as str(EpisodeKey); the executor's sandbox labels
# carry it too and are used when this is unset.
episode_label: ContextVar[str | None] = ContextVar("trialrun_episode_label", default=None)


def current_episode() -> str | None:
    return episode_label.get() or sandbox_labels.get().get("episode")


class Tape:
    """Recorded model calls by replay key (and by episode): see the module docstring."""

    def __init__(self, calls: Iterable[ModelCall] = (), *, live_on_miss: bool = False) -> None:
        self.live_on_miss = live_on_miss
        self._any: dict[str, ModelCall] = {}
        self._by_episode: dict[tuple[str, str], ModelCall] = {}
        self.hits = 0
        self.misses = 0
        for call in calls:
            self.add(call)

    @classmethod
    def from_episodes(cls, episodes: Iterable[EpisodeResult], *,
                      live_on_miss: bool = False) -> Tape:
        """The tape of stored episodes: every model call of every decision of every step."""
        tape = cls(live_on_miss=live_on_miss)
        for ep in episodes:
            label = str(ep.key)
            for call in _calls(ep):
                tape.add(call, label)
        return tape

    @classmethod
    def from_run(cls, store: Any, run_id: str, *, live_on_miss: bool = False) -> Tape:
        """The tape of a stored run (`trialrun.store.Store`)."""
        return cls.from_episodes((store.load_episode(e.id) for e in store.episodes(run_id)),
                                 live_on_miss=live_on_miss)

    def add(self, call: ModelCall, episode: str | None = None) -> None:
        self._any.setdefault(call.key, call)
        if episode is not None:
            self._by_episode.setdefault((episode, call.key), call)

    def lookup(self, key: str, episode: str | None = None) -> ModelCall | None:
        call = self._by_episode.get((episode, key)) if episode is not None else None
        if call is None:
            call = self._any.get(key)
        if call is None:
            self.misses += 1
        else:
            self.hits += 1
        return call

    def __len__(self) -> int:
        return len(self._any)

    def __contains__(self, key: object) -> bool:
        return key in self._any


def _calls(ep: EpisodeResult) -> Iterator[ModelCall]:
    for st in ep.steps:
        yield from st.decision.model_calls


@contextmanager
def use_tape(tape: Tape | None) -> Iterator[Tape | None]:
    """Install `tape` for the model clients of this context (and the tasks it starts)."""
    token = current_tape.set(tape)
    try:
        yield tape
    finally:
        current_tape.reset(token)
