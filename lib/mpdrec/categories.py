"""The ten RecSys Challenge 2018 challenge categories, defined once.

The synthetic challenge set, the ingest (which infers each challenge playlist's category) and the
validation challenge all use this table, so a category means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIN_HOLDOUTS = 5  # a playlist joins a category only if it keeps at least this many hidden tracks


@dataclass(frozen=True)
class Category:
    id: int
    num_samples: int
    has_title: bool
    random_seeds: bool
    label: str

    @property
    def min_tracks(self) -> int:
        return self.num_samples + MIN_HOLDOUTS


CATEGORIES: tuple[Category, ...] = (
    Category(1, 0, True, False, "title only"),
    Category(2, 1, True, False, "title + first 1"),
    Category(3, 5, True, False, "title + first 5"),
    Category(4, 5, False, False, "first 5, no title"),
    Category(5, 10, True, False, "title + first 10"),
    Category(6, 10, False, False, "first 10, no title"),
    Category(7, 25, True, False, "title + first 25"),
    Category(8, 25, True, True, "title + random 25"),
    Category(9, 100, True, False, "title + first 100"),
    Category(10, 100, True, True, "title + random 100"),
)


def infer_category(has_title: bool, num_samples: int, seed_positions: Sequence[int]) -> int | None:
    """Category of a challenge playlist from what it shows; None when it fits no official category.

    "first k" and "random k" differ only in the seeds' positions: first k shows exactly 0..k-1.
    """
    first_k = sorted(seed_positions) == list(range(num_samples))
    for cat in CATEGORIES:
        if (
            cat.num_samples == num_samples
            and cat.has_title == has_title
            and (cat.num_samples == 0 or cat.random_seeds != first_k)
        ):
            return cat.id
    return None
