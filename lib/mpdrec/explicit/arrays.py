"""The explicit splits as numpy arrays, read from Parquet with pyarrow (local or object store), and the
fallback every model shares: a rating a model cannot predict (its user or item has no training
rating, or no Jaccard neighbour voted) gets the user's mean training target, else the global mean.

The driver holds these arrays: the networks train in this process, and scoring needs the validation
and test rows (10% each by default; Book-Crossing's 433,671 ratings are 5 MB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from mpdrec.explicit.targets import Target
from mpdrec.io.arrow_fs import resolve
from mpdrec.io.paths import join


@dataclass(frozen=True)
class Ratings:
    users: np.ndarray  # int64
    items: np.ndarray  # int64
    ratings: np.ndarray  # float64

    @classmethod
    def read(cls, split_dir: str, name: str) -> Ratings:
        """One split, in (user, item) order, so every run scores the rows in the same order."""
        fs, path = resolve(join(split_dir, name))
        t = ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas()
        t = t.sort_values(["user_idx", "item_idx"], kind="stable")
        return cls(t["user_idx"].to_numpy(np.int64), t["item_idx"].to_numpy(np.int64), t["rating"].to_numpy(np.float64))

    def __len__(self) -> int:
        return len(self.ratings)

    def aligned(self, predicted: pd.DataFrame) -> np.ndarray:
        """The `prediction` column of (user_idx, item_idx, prediction) rows, in this split's order (NaN if absent)."""
        keys = pd.DataFrame({"user_idx": self.users, "item_idx": self.items})
        merged = keys.merge(predicted, on=["user_idx", "item_idx"], how="left")
        return merged["prediction"].to_numpy(np.float64)


@dataclass(frozen=True)
class Fallback:
    """Per-user mean target and the global mean, from the training ratings."""

    user_mean: np.ndarray  # NaN for users without training ratings
    global_mean: float
    known_items: np.ndarray  # bool per item id

    @classmethod
    def of(cls, train: Ratings, target: Target, num_users: int, num_items: int) -> Fallback:
        t = target.of(train.ratings)
        n = np.bincount(train.users, minlength=num_users)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(train.users, weights=t, minlength=num_users) / n
        return cls(np.where(n > 0, mean, np.nan), float(t.mean()), np.bincount(train.items, minlength=num_items) > 0)

    def warm(self, split: Ratings) -> np.ndarray:
        """Whether each rating's user and item both have training ratings."""
        return ~np.isnan(self.user_mean[split.users]) & self.known_items[split.items]

    def fill(self, split: Ratings, predicted: np.ndarray) -> np.ndarray:
        """`predicted` with NaN, unseen users and unseen items replaced by the user's, else the global, mean."""
        cold = np.isnan(predicted) | ~self.warm(split)
        backup = np.where(np.isnan(self.user_mean[split.users]), self.global_mean, self.user_mean[split.users])
        return np.where(cold, backup, predicted)
