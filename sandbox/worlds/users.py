"""Simulated users: scripted, reproducible people an agent talks to.

A user follows structured instructions (tau-bench style, the scenario's `task.user` block): why
they made contact, the facts they know, what they do not know, a persona, and optionally how
they err: `misremembers: {fact: wrong value}` or `error_rate: p` (each fact is told wrongly
with probability p, drawn from the world's list of plausible alternatives).

Answers are a pure function of the instructions, the seed and what was asked, so replays are
exact and the only state to snapshot is what the user has said so far. Worlds use
`wrong_facts()` to tell a failure the user caused (`outcome()["user_fault"]`) from the agent's.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, Field

from trialrun.scenarios.schema import UserSpec


class UserProfile(UserSpec):
    """A simulated user's instructions: the scenario's `UserSpec` plus how the user errs.

    `persona` changes wording only: plain (default), terse or chatty."""

    model_config = ConfigDict(extra="forbid")

    misremembers: dict[str, Any] = Field(
        default_factory=dict, description="fact -> the wrong value the user believes and tells"
    )
    error_rate: float = Field(
        0.0, ge=0, le=1, description="chance that each fact the user tells is wrong"
    )


@dataclass
class UserReply:
    text: str
    told: dict[str, Any] = field(default_factory=dict)  # facts given in this reply
    wrong: list[str] = field(default_factory=list)  # which of them the user got wrong


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class SimulatedUser:
    """Answers questions from its profile; never reads the wall clock or a global RNG.

    `describe(fact, value)` turns a fact into words (a world knows how to say "sam-o" as
    "Sam Okafor from Design"); `alternatives[fact]` are the plausible wrong values an erring
    user picks from; `aliases[fact]` are extra words that count as asking about it;
    `volunteer` are the facts the user offers when a question matches none (a user asked
    "anything I should know?" restates what they meant).
    """

    def __init__(
        self,
        profile: UserProfile,
        seed: int | str,
        *,
        describe: Callable[[str, Any], str] | None = None,
        alternatives: dict[str, list[Any]] | None = None,
        aliases: dict[str, list[str]] | None = None,
        volunteer: list[str] | None = None,
    ) -> None:
        self.profile = profile
        self.seed = seed
        self.describe = describe or (lambda fact, value: f"{fact}: {value}.")
        self.alternatives = alternatives or {}
        self.aliases = aliases or {}
        self.volunteer = [f for f in (volunteer or []) if f in profile.knows]
        self.turns = 0
        self.told: dict[str, Any] = {}

    @classmethod
    def from_task(cls, task: dict[str, Any], seed: int | str,
                  facts: dict[str, Any] | None = None, **kw: Any) -> SimulatedUser:
        """Build from a task's `user:` block, adding the facts the world derives (these win:
        the world knows what the user means; `misremembers` is how a user gets it wrong)."""
        raw = dict(task.get("user") or {})
        raw["knows"] = {**raw.get("knows", {}), **(facts or {})}
        try:
            profile = UserProfile.model_validate(raw)
        except ValueError as e:
            raise ValueError(f"task {task.get('id')!r}: bad user block: {e}") from None
        unknown = [f for f in profile.misremembers if f not in profile.knows]
        if unknown:
            raise ValueError(f"task {task.get('id')!r}: user.misremembers names facts the user "
                             f"does not know: {', '.join(map(str, unknown))}; known facts: "
                             f"{', '.join(map(str, profile.knows)) or 'none'}")
        return cls(profile, seed, **kw)

    # --- what the user believes ---------------------------------------------------------
    def belief(self, fact: str) -> Any:
        """The value the user tells for a fact; stable across turns (they believe it)."""
        if fact in self.told:
            return self.told[fact]
        p = self.profile
        if fact in p.misremembers:
            return p.misremembers[fact]
        truth = p.knows[fact]
        alts = [a for a in self.alternatives.get(fact, []) if a != truth]
        if p.error_rate > 0 and alts:
            # One draw per (seed, fact): independent of the order in which facts are asked.
            rng = random.Random(f"user:{self.seed}:{fact}")
            if rng.random() < p.error_rate:
                return rng.choice(alts)
        return truth

    def wrong_facts(self) -> list[str]:
        """Facts the user has told wrongly so far."""
        return [f for f, v in self.told.items() if v != self.profile.knows.get(f)]

    # --- conversation ---------------------------------------------------------------------
    def asked_facts(self, question: str) -> list[str]:
        words = _words(question)
        out = []
        for fact in self.profile.knows:
            keys = [str(fact), *self.aliases.get(fact, [])]
            if any(_words(k) and _words(k) <= words for k in keys):
                out.append(fact)
        return out

    def reply(self, question: str, *, is_question: bool = True) -> UserReply:
        """Answer one message. Statements (not questions) get an acknowledgement only."""
        self.turns += 1
        p = self.profile
        if not is_question:
            return UserReply("Thanks." if p.persona != "chatty" else "Great, thanks a lot!")
        words = _words(question)
        unknown = [item for item in p.does_not_know if _words(item) and _words(item) <= words]
        facts = self.asked_facts(question) or ([] if unknown else self.volunteer)
        told = {f: self.belief(f) for f in facts}
        self.told.update(told)
        parts = [self.describe(f, v) for f, v in told.items()]
        parts += [f"I don't know {item}." for item in unknown]
        if not parts:
            parts = ["Yes, please go ahead."]
        elif p.persona == "chatty" and p.reason:
            parts.append(f"It's because {p.reason}.")
        text = " ".join(parts)
        if p.persona != "terse":
            text = ("Oh, happy to help! " if p.persona == "chatty" else "Sure. ") + text
        return UserReply(text, told, [f for f, v in told.items() if v != p.knows.get(f)])

    # --- state ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"turns": self.turns, "told": dict(self.told)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.turns = int(state["turns"])
        self.told = dict(state["told"])
