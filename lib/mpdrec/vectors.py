"""Arrow list<float> columns of equal-length vectors as numpy matrices: how factor and embedding
rows reach numpy in the executors (one copy of the flat values, no Python object per row); and
rows of such tables looked up by id (`VectorRows`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def vector_matrix(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """A list<float> column of equal-length vectors as a float32 (rows, dim) matrix."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, 0), np.float32)
    if arr.null_count:
        raise ValueError(f"{name}: {arr.null_count} null vector(s)")
    lengths = np.diff(np.asarray(arr.offsets))
    if lengths.min() != lengths.max():
        raise ValueError(f"{name}: vectors of different lengths ({lengths.min()} and {lengths.max()})")
    values = np.asarray(arr.flatten(), dtype=np.float32)
    return values.reshape(len(arr), int(lengths[0]))


@dataclass(frozen=True)
class VectorRows:
    """Rows of factor or embedding tables by id: `ids` sorted, one float32 matrix per table, its rows
    in that order. Collected for the ids a query set needs (its playlists, its candidates' tracks)
    and broadcast, so that a feature step looks a batch's rows up in numpy: joined to the candidate
    rows in Spark instead, every vector crossed to Python in Arrow with every row."""

    ids: np.ndarray
    tables: dict[str, np.ndarray]

    @classmethod
    def collect(cls, frame: DataFrame, key: str) -> VectorRows:
        """`frame` (`key`, one array<float> column per table) on the driver."""
        rows = frame.toPandas()
        ids = rows[key].to_numpy(np.int64)
        order = np.argsort(ids, kind="stable")
        return cls(
            ids[order],
            {
                c: (
                    np.stack(list(rows[c].to_numpy()[order])).astype(np.float32)
                    if len(rows)
                    else np.zeros((0, 0), np.float32)
                )
                for c in rows.columns
                if c != key
            },
        )

    def positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the row of each id, whether it has one)."""
        return sorted_positions(self.ids, ids)


def sorted_positions(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where each of `ids` is in `sorted_ids`, whether it is there at all): a binary search, the
    position clipped into range so that it can always be read."""
    pos = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    return pos, (sorted_ids[pos] == ids if len(sorted_ids) else np.zeros(len(ids), bool))
