"""Task variants for the vending world: starting cash, supplier reliability, seasonality.

`tasks: {generate: 20, seed: 7, difficulty: hard}` draws businesses from a seeded RNG of its
own (never the global one), so the same seed gives the same tasks on every machine. Harder
tasks start poorer, swing more with the seasons, see less foot traffic, and depend on a main
supplier that is late more often; the unreliable and the overpriced suppliers stay so.
"""

from __future__ import annotations

import random
from typing import Any

# (low, high) ranges per difficulty.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "easy": {"start_cash": (700, 1000), "seasonality": (0.1, 0.3), "demand_scale": (1.0, 1.3),
             "metro_late": (0.0, 0.03), "metro_lead": (2, 3), "quick_factor": (1.15, 1.3)},
    "medium": {"start_cash": (400, 700), "seasonality": (0.2, 0.5), "demand_scale": (0.8, 1.1),
               "metro_late": (0.02, 0.08), "metro_lead": (3, 4), "quick_factor": (1.2, 1.4)},
    "hard": {"start_cash": (150, 350), "seasonality": (0.4, 0.7), "demand_scale": (0.6, 0.9),
             "metro_late": (0.05, 0.2), "metro_lead": (3, 5), "quick_factor": (1.3, 1.5)},
}
FIXED = ("start_cash", "seasonality", "demand_scale")


def generate(n: int, seed: int, difficulty: str = "medium", **params: Any) -> list[dict[str, Any]]:
    """`n` task dicts; `params` may pin start_cash, seasonality or demand_scale."""
    if difficulty not in RANGES:
        raise ValueError(f"difficulty must be one of {', '.join(RANGES)}, got {difficulty!r}")
    unknown = sorted(set(params) - set(FIXED))
    if unknown:
        raise ValueError(f"unknown params {', '.join(unknown)}; allowed: {', '.join(FIXED)}")
    r = RANGES[difficulty]
    rng = random.Random(f"vending-tasks:{seed}:{difficulty}")
    tasks = []
    for i in range(n):
        def draw(key: str, digits: int = 2) -> float:
            return round(rng.uniform(*r[key]), digits)

        task: dict[str, Any] = {
            "id": f"{difficulty}-{seed}-{i:03d}",
            "start_cash": draw("start_cash", 0),
            "seasonality": draw("seasonality"),
            "demand_scale": draw("demand_scale"),
            "suppliers": {
                "metro": {"late_prob": draw("metro_late", 3),
                          "lead_days": rng.randint(*map(int, r["metro_lead"])), "max_late": 3},
                "quicksnack": {"price_factor": draw("quick_factor")},
            },
        }
        task.update({k: float(params[k]) for k in FIXED if k in params})
        tasks.append(task)
    return tasks
