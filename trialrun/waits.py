"""`waits`: whether an agent, grader or human may wait on something outside the process.

An episode in which nothing waits arms no wall-time timer (`Episode.run`), so saying
`waits = False` is a promise about the class's own coroutines. A subclass that writes any of
them anew has not made it: unless it says `waits` itself, it waits."""

from __future__ import annotations

from collections.abc import Iterable


def reset_unless_declared(cls: type, coroutines: Iterable[str]) -> None:
    """For `__init_subclass__`: `cls.waits = True` if the class defines one of `coroutines`
    itself without saying `waits` (a subclass of a scripted agent that awaits a sleep)."""
    own = vars(cls)
    if "waits" not in own and any(name in own for name in coroutines):
        cls.waits = True  # type: ignore[attr-defined]
