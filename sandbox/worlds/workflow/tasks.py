"""Generated workflow tasks, for `tasks: {generate: N, seed: S, difficulty: ...}`.

Harder tasks mention two products more often and add namesakes of the caller (so retrieval
must check the phone number), small talk and lines about products that are fine.
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trialrun.sandbox.worlds.workflow.calls import Intent, draw_call
from trialrun.sandbox.worlds.workflow.policy import PLANS


class GenerateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intents: list[Intent] = Field(default_factory=list,
                                  description="intents to draw from (default: all)")
    namesakes: int | None = Field(None, ge=0, le=5, description="default by difficulty")


def generate_tasks(n: int, seed: int, difficulty: str = "medium",
                   **params: Any) -> list[dict[str, Any]]:
    """`n` tasks from `seed`: the same arguments give the same tasks."""
    p = GenerateParams.model_validate(params)
    rng = random.Random(f"workflow-tasks:{seed}:{difficulty}")
    level = {"easy": 0, "medium": 1, "hard": 2}.get(difficulty, 1)
    tasks = []
    for i in range(n):
        call = draw_call(rng, 1 + (level > 0 and rng.random() < 0.5), p.intents)
        namesakes = p.namesakes if p.namesakes is not None else \
            [0, rng.randint(0, 1), rng.randint(1, 3)][level]
        tasks.append({
            "id": f"gen-{i:04d}-{call.intent}",
            "instruction": "Process this support call through the pipeline.",
            "call": call.model_dump(),
            "customer": {"plan": rng.choice(sorted(PLANS)),
                         "tenure_months": rng.randint(1, 60)},
            "namesakes": namesakes,
            "small_talk": [0, rng.randint(0, 2), rng.randint(2, 5)][level],
            "distractors": [0, 0, rng.randint(1, 2)][level],
        })
    return tasks
