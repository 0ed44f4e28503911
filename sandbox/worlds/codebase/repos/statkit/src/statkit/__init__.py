"""statkit: descriptive statistics over plain lists of numbers."""

from statkit.stats import (
    clamp,
    mean,
    median,
    moving_average,
    normalize,
    percentile,
    stdev,
    variance,
)

__all__ = ["clamp", "mean", "median", "moving_average", "normalize", "percentile", "stdev",
           "variance"]
