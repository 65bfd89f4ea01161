"""Arrow list<float> columns of equal-length vectors as numpy matrices: how factor and embedding
rows reach numpy in the executors (one copy of the flat values, no Python object per row)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa


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
