"""What the explicit models are trained to predict, and how a prediction becomes "recommend".

Three targets of a 1..10 rating x: `original` (x), `adjusted` (the study's adjusted sigmoid
1 / (1 + exp((a - x) * b)) * 9 + 1, which stretches the ratings around the inflection a, with
steepness b, and keeps the 1..10 range), and `binary` (1 when x >= threshold). A rating is
"recommended" when x >= threshold; a prediction recommends when it is at least the threshold mapped
into its target's space (the transform is increasing, so this is the same decision rule on every
target; 0.5 for the binary target's probability). The same functions serve numpy and Spark columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F


@dataclass(frozen=True)
class Target:
    kind: str  # original | adjusted | binary
    threshold: float  # on the original ratings
    a: float = 0.0  # adjusted only: inflection
    b: float = 1.0  # adjusted only: steepness

    @property
    def name(self) -> str:
        return f"adjusted(a={self.a:g},b={self.b:g})" if self.kind == "adjusted" else self.kind

    def of(self, x: np.ndarray) -> np.ndarray:
        """The target values of ratings `x` (numpy)."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "adjusted":
            return 1.0 / (1.0 + np.exp((self.a - x) * self.b)) * 9.0 + 1.0
        if self.kind == "binary":
            return (x >= self.threshold).astype(np.float64)
        return x

    def column(self, x: Column) -> Column:
        """The same as `of`, as a Spark column."""
        if self.kind == "adjusted":
            return F.lit(1.0) / (F.lit(1.0) + F.exp((F.lit(self.a) - x) * F.lit(self.b))) * 9.0 + 1.0
        if self.kind == "binary":
            return (x >= F.lit(self.threshold)).cast("double")
        return x.cast("double")

    @property
    def cut(self) -> float:
        """A prediction at or above this recommends."""
        if self.kind == "binary":
            return 0.5
        return float(self.of(np.array([self.threshold]))[0])

    def as_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "name": self.name, "cut": self.cut}
        return out | ({"a": self.a, "b": self.b} if self.kind == "adjusted" else {})


def score(ratings: np.ndarray, predictions: np.ndarray, target: Target) -> dict[str, float]:
    """RMSE and MAE in the target's space; accuracy and F1 of "recommend" against x >= threshold."""
    ratings, predictions = np.asarray(ratings, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
    if len(ratings) == 0:
        raise ValueError("no ratings to score")
    err = predictions - target.of(ratings)
    truth, said = ratings >= target.threshold, predictions >= target.cut
    tp = int(np.sum(truth & said))
    f1_den = 2 * tp + int(np.sum(~truth & said)) + int(np.sum(truth & ~said))
    return {
        "rmse": math.sqrt(float(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "accuracy": float(np.mean(truth == said)),
        "f1": 2 * tp / f1_den if f1_den else 0.0,
        "ratings": int(len(ratings)),
    }
