"""Pairwise judging: which of two answers to the same task is better, asked in both orders.

An LLM judge that sees A then B favours one position more often than the answers deserve
(position bias; Zheng et al., arXiv 2306.05685). So each pair is judged twice, A first and
B first: a side wins only when both orders agree; when they disagree the pair counts as a tie,
and the share of pairs whose verdict flipped with the order is the judge's position-bias rate.

    type: pairwise
    name: better_reply
    model: gpt-4o-mini
    rubric: Which reply resolves the customer's request better, within the policy?
    examples:
      - {a: {...}, b: {...}, label: a, explanation: B promises a refund out of policy}

`trialrun pairwise RUN_ID --grader better_reply.yaml` pairs the episodes of two agents of a
run (or of two runs) on the same task, seed and trial, and compares their outcomes (or their
decisions at `node`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trialrun.analysis.summary import PairwiseSummary, Proportion
from trialrun.graders.judge import (
    DEFAULT_SYSTEM,
    TO_GRADE,
    EndpointOptions,
    JudgeClient,
    fingerprint,
    read_answer,
    render_context,
)

__all__ = ["PairResult", "PairwiseJudge", "PairwiseOptions", "pairwise_summary"]

Side = Literal["a", "b", "tie"]


class PairwiseExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: dict[str, Any] | str
    b: dict[str, Any] | str
    label: Side
    explanation: str = ""

    @field_validator("label", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v


class PairwiseOptions(EndpointOptions):
    examples: list[PairwiseExample] = Field(default_factory=list)
    allow_tie: bool = Field(True, description="the judge may answer TIE")


@dataclass
class PairResult:
    """One pair judged in both orders, each verdict in terms of a and b (None: unreadable)."""

    a_first: Side | None  # the verdict when A was shown first
    b_first: Side | None  # the verdict when B was shown first

    @property
    def judged(self) -> bool:
        return self.a_first is not None and self.b_first is not None

    @property
    def consistent(self) -> bool:
        return self.judged and self.a_first == self.b_first

    @property
    def winner(self) -> Side | None:
        """a or b when both orders agree; a tie otherwise (None: not judged)."""
        if not self.judged:
            return None
        return self.a_first if self.consistent else "tie"


class PairwiseJudge:
    """Judges pairs in both orders; see the module docstring."""

    Options = PairwiseOptions

    def __init__(self, options: PairwiseOptions, label: str | None = None) -> None:
        self.options = options
        self.label = label or "pairwise"
        self.client = JudgeClient(options, self.label)
        self.fingerprint = fingerprint(options)

    @property
    def requests(self) -> int:
        return self.client.requests

    def render(self, context: dict[str, Any] | str) -> str:
        o = self.options
        return render_context(context, o.show, o.task_fields, o.max_chars)

    def messages(self, first: dict[str, Any] | str, second: dict[str, Any] | str
                 ) -> list[dict[str, Any]]:
        o = self.options
        choices = "A, B or TIE" if o.allow_tie else "A or B"
        parts = ["# Rubric", o.rubric.strip(), "",
                 "Compare two responses to the same task and decide which is better by the "
                 "rubric. The order in which they are shown says nothing about their quality."]
        if o.examples:
            parts += ["", "# Examples judged by a person"]
            for i, ex in enumerate(o.examples, 1):
                parts += ["", f"## Example {i}", "### Response A", self.render(ex.a),
                          "### Response B", self.render(ex.b), ""]
                if ex.explanation.strip():
                    parts.append(f"Why: {ex.explanation.strip()}")
                parts.append(f"WINNER: {ex.label.upper()}")
        parts += ["", TO_GRADE, "## Response A", self.render(first), "", "## Response B",
                  self.render(second), "",
                  f"Explain your reasoning briefly, then end with one line: WINNER: {choices}"]
        return [{"role": "system", "content": o.system_prompt or DEFAULT_SYSTEM},
                {"role": "user", "content": "\n".join(parts)}]

    async def _order(self, first: dict[str, Any] | str, second: dict[str, Any] | str
                     ) -> Literal["first", "second", "tie"] | None:
        """The majority answer over the samples, by position (None: no readable majority)."""
        messages = self.messages(first, second)
        counts = {"a": 0, "b": 0, "tie": 0}
        for i in range(self.options.samples):
            text = await self.client.ask(messages, self.options.sampling(i))
            got = read_answer(text, "WINNER", r"a|b|tie")
            if got is not None:
                counts[got[0].lower()] += 1
        if not any(counts.values()):
            return None
        top = max(counts.values())
        best = [k for k, v in counts.items() if v == top]
        if len(best) > 1:
            return "tie"
        return {"a": "first", "b": "second", "tie": "tie"}[best[0]]

    async def compare(self, a: dict[str, Any] | str, b: dict[str, Any] | str) -> PairResult:
        """Judge a against b with a shown first, then with b shown first."""
        one = await self._order(a, b)
        two = await self._order(b, a)
        first: Side | None = None if one is None else {"first": "a", "second": "b",
                                                       "tie": "tie"}[one]
        second: Side | None = None if two is None else {"first": "b", "second": "a",
                                                        "tie": "tie"}[two]
        return PairResult(first, second)


def pairwise_summary(results: Sequence[PairResult], judge: str, a: str, b: str
                     ) -> PairwiseSummary:
    """Wins, ties, the position-bias rate and the first-position preference of a set of
    pairs (definitions in `trialrun.analysis.summary.MEANINGS`)."""
    judged = [r for r in results if r.judged]
    flipped = sum(not r.consistent for r in judged)
    decisive = [v for r in judged for v in (r.a_first, r.b_first) if v != "tie"]
    # A was shown first in the a_first verdict, B in the b_first one.
    picked_first = sum(r.a_first == "a" for r in judged) + sum(r.b_first == "b" for r in judged)
    a_wins = sum(r.winner == "a" for r in judged)
    b_wins = sum(r.winner == "b" for r in judged)
    ties = len(judged) - a_wins - b_wins
    return PairwiseSummary(
        judge=judge, a=a, b=b, pairs=len(results), judged=len(judged),
        not_judged=len(results) - len(judged), a_wins=a_wins, b_wins=b_wins, ties=ties,
        position_flips=flipped, position_bias=Proportion.of(flipped, len(judged)),
        first_position=Proportion.of(picked_first, len(decisive)),
        a_preference=(a_wins + ties / 2) / len(judged) if judged else None)


def _sides(store: Any, run_id: str, nodes: set[str] | None) -> list[tuple[str, tuple, Any]]:
    """(agent, pairing key, context) per episode of a run: its outcome, or its decisions at
    `nodes` together. The key is the episode's task, seed and trial, its scenario's name
    without a variant's `@label`."""
    from trialrun.graders.golden import run_items
    from trialrun.variants import VARIANT_SEP

    out: dict[str, tuple[str, tuple, Any]] = {}
    for x in run_items(store, run_id, nodes):
        scenario, task, seed, trial = x.group
        key = (scenario.split(VARIANT_SEP)[0], task, seed, trial)
        if nodes is None:
            out[x.episode_id] = (x.agent, key, x.context)
            continue
        ctx = out.setdefault(x.episode_id, (x.agent, key, {"task": x.context["task"],
                                                           "decisions": []}))[2]
        ctx["decisions"].append({k: v for k, v in x.context.items() if k != "task"})
    return list(out.values())


def pair_items(store: Any, run_id: str, other_id: str | None, agents: list[str] | None,
               nodes: set[str] | None) -> tuple[tuple[str, str], list[tuple[Any, Any]]]:
    """The (A, B) contexts of the same task, seed and trial: two agents of one run, or the
    episodes of two runs. Raises ValueError when there are not two sides to compare."""
    mine = _sides(store, run_id, nodes)
    if other_id is not None:
        names = (f"run {run_id}", f"run {other_id}")
        side_a, side_b = mine, _sides(store, other_id, nodes)
    else:
        seen = list(dict.fromkeys(agent for agent, _, _ in mine))
        pick = agents or seen[:2]
        if len(pick) != 2:
            raise ValueError(f"run {run_id} has {len(seen)} agent(s) ({', '.join(seen)}): name "
                             "two with --agents A,B, or give a second run")
        missing = [a for a in pick if a not in seen]
        if missing:
            raise ValueError(f"run {run_id} has no agent {missing[0]!r} (it has: "
                             f"{', '.join(seen)})")
        names = (pick[0], pick[1])
        side_a = [x for x in mine if x[0] == pick[0]]
        side_b = [x for x in mine if x[0] == pick[1]]
    b_by_key = {key: ctx for _, key, ctx in side_b}
    pairs = [(ctx, b_by_key[key]) for _, key, ctx in side_a if key in b_by_key]
    if not pairs:
        raise ValueError("no task, seed and trial was run by both sides: nothing to compare")
    return names, pairs
