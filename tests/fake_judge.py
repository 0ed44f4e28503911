"""A judge of known quality behind a real OpenAI-compatible server (tests/fake_openai.py).

`PlantedJudge(truth, sensitivity, specificity)` answers each judge request from the hidden
truth about what it is asked to grade (`truth(text)`: True/False, or None for "cannot tell",
which gives an answer with no verdict), then flips the verdict at the planted rates: a
truly passing item is passed with probability `sensitivity`, a truly failing one failed with
probability `specificity`. The coin is a hash of the graded text, the request's seed and a
salt, so the same request always gets the same answer and each sample (seed) its own.

For pairwise requests (two responses), the better one is the one whose text says
`quality: good`; with probability `position_bias` the judge names the response shown first
whatever they say.

    judge = PlantedJudge(lambda text: 'refund' in text, sensitivity=0.9, specificity=0.8)
    with judge_server(judge) as fake:         # fake.base_url, model "judge"
        ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from tests.fake_openai import FakeOpenAI, say
from trialrun.graders.judge import TO_GRADE

Truth = Callable[[str], bool | None]


def unit(*parts: object) -> float:
    """A number in [0, 1) that is a fixed function of `parts`."""
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64


def graded_part(body: dict[str, Any]) -> str:
    prompt = body["messages"][-1]["content"]
    return prompt.split(TO_GRADE)[-1]


class PlantedJudge:
    def __init__(self, truth: Truth, sensitivity: float = 1.0, specificity: float = 1.0,
                 salt: str = "", position_bias: float = 0.0, scale: bool = False) -> None:
        self.truth = truth
        self.sensitivity = sensitivity
        self.specificity = specificity
        self.salt = salt
        self.position_bias = position_bias
        self.scale = scale  # answer SCORE: 5 / SCORE: 2 instead of a verdict

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        text = graded_part(body)
        seed = body.get("seed")
        if "## Response A" in text:
            return self.pairwise(text, seed)
        truth = self.truth(text)
        if truth is None:
            return say("I cannot tell from what I was given.")
        coin = unit(text, seed, self.salt)
        says = truth if coin < (self.sensitivity if truth else self.specificity) else not truth
        if self.scale:
            return say(f"Weighing the rubric.\nSCORE: {5 if says else 2}")
        return say(f"Checked against the rubric: {'meets' if says else 'misses'} it.\n"
                   f"VERDICT: {'PASS' if says else 'FAIL'}")

    def pairwise(self, text: str, seed: Any) -> dict[str, Any]:
        a, _, b = text.partition("## Response B")
        good_a, good_b = "quality: good" in a, "quality: good" in b
        if unit(text, seed, self.salt, "position") < self.position_bias:
            return say("The first one reads better.\nWINNER: A")
        winner = "TIE" if good_a == good_b else ("A" if good_a else "B")
        return say(f"Comparing both.\nWINNER: {winner}")


def judge_server(judge: PlantedJudge, model: str = "judge") -> FakeOpenAI:
    """A server (not yet started: use it in a `with`) whose model `model` is the judge."""
    return FakeOpenAI().script(model, judge)
