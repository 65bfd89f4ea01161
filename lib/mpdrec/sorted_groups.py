"""Grouped work in numpy over Arrow batches of many groups at once (`mapInArrow`), where a grouped
pandas UDF (`applyInPandas`) makes one Python call, one pandas frame and one Arrow stream per group:
with ten thousand playlists that machinery alone is a noticeable cost at 100 slices."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame


def sorted_by(df: DataFrame, key: str) -> DataFrame:
    """`df` with each `key`'s rows in one partition, sorted by `key`: what `whole_groups` reads."""
    return df.repartition(key).sortWithinPartitions(key)


def whole_groups(batches: Iterable[pa.RecordBatch], key: str) -> Iterator[dict[str, Any]]:
    """The columns of a partition of `sorted_by(df, key)`, batch by batch, each holding only whole
    groups: a group's rows can go on in the next batch, so a batch's last group waits for it.
    Columns of plain values come as numpy arrays, nested ones (vectors) as Arrow arrays
    (`batch_columns`)."""
    held: dict[str, Any] = {}
    for batch in batches:
        cols = batch_columns(batch)
        if held:
            cols = {c: _joined(held[c], v) for c, v in cols.items()}
        if not len(cols[key]):
            continue
        last = int(np.searchsorted(cols[key], cols[key][-1]))
        held = {c: v[last:] for c, v in cols.items()}
        if last:
            yield {c: v[:last] for c, v in cols.items()}
    if held:
        yield held


def batch_columns(batch: pa.RecordBatch) -> dict[str, Any]:
    """A batch's columns: plain values as numpy arrays, nested types (vectors) kept as Arrow arrays,
    since numpy would hold a Python object per row (`mpdrec.vectors` reads them as matrices)."""
    return {
        name: column if pa.types.is_nested(column.type) else column.to_numpy(zero_copy_only=False)
        for name, column in zip(batch.schema.names, batch.columns)
    }


def _joined(first: Any, then: Any) -> Any:
    """Two slices of one column (`batch_columns`), end to end."""
    return pa.concat_arrays([first, then]) if isinstance(first, pa.Array) else np.concatenate([first, then])


def group_starts(keys: np.ndarray) -> np.ndarray:
    """Where each group of sorted `keys` starts, and len(keys) last: [0] for no keys (no groups)."""
    if not len(keys):
        return np.zeros(1, np.int64)
    return np.r_[np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]), len(keys)]


def ranks_in_groups(keys: np.ndarray) -> np.ndarray:
    """Each row's place (0-based) within its group of sorted `keys`."""
    bounds = group_starts(keys)
    return np.arange(len(keys)) - np.repeat(bounds[:-1], np.diff(bounds))


def top_per_group(keys: np.ndarray, scores: np.ndarray, ties: np.ndarray, keep: int) -> np.ndarray:
    """Indices (ascending) of each key's `keep` best rows: score descending, then `ties` ascending
    (the keys need not be sorted)."""
    order = np.lexsort((ties, -scores, keys))
    return np.sort(order[ranks_in_groups(keys[order]) < keep])
