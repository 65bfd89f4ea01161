"""Sparse rows as numpy (offsets, values) pairs, built from two int columns of a table: how the
co-occurrence source and the seed features hold each track's playlists and each playlist's tracks
on the executors (broadcast) and look many rows up at once."""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame

Csr = tuple[np.ndarray, np.ndarray]  # (offsets: row i is values[offsets[i]:offsets[i + 1]], values)


def row_ids(lengths: np.ndarray, dtype: type = np.int64) -> np.ndarray:
    """The row of each entry of rows laid end to end with these `lengths`: what every per-entry
    computation on a CSR (a hash of (row, value), a bincount by row) pairs values with. `dtype`
    int32 where the rows are stored as values (a transpose), half the memory of int64."""
    return np.repeat(np.arange(len(lengths), dtype=dtype), lengths)


def csr(table: DataFrame, key: str, value: str, rows: int) -> Csr:
    """Two int columns of `table`, collected, as CSR: row k holds the values of key k (their order
    within a row is not defined; every use here counts them)."""
    pairs = table.select(key, value).toPandas()
    keys = pairs[key].to_numpy(np.int64)
    offsets = np.zeros(rows + 1, np.int64)
    np.cumsum(np.bincount(keys, minlength=rows), out=offsets[1:])
    return offsets, pairs[value].to_numpy(np.int32)[np.argsort(keys, kind="stable")]


def csr_rows(matrix: Csr, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values of rows `keys`, concatenated, and each row's length. The gather's positions are
    int32 where they fit: half the memory traffic of int64 in the seed features' hottest line."""
    offsets, values = matrix
    starts, lengths = offsets[keys], offsets[keys + 1] - offsets[keys]
    total = int(lengths.sum())
    dtype = np.int32 if max(len(values), total) < 2**31 else np.int64
    shift = (starts - np.cumsum(lengths) + lengths).astype(dtype)
    return values[np.repeat(shift, lengths) + np.arange(total, dtype=dtype)], lengths


def row_sums(flags: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """How many of each row's entries are set in `flags` (a boolean per entry of rows laid end to
    end with these `lengths`)."""
    out = np.zeros(len(lengths), np.int64)
    filled = lengths > 0
    if filled.any():
        starts = (np.cumsum(lengths) - lengths)[filled]
        out[filled] = np.add.reduceat(flags.view(np.uint8), starts, dtype=np.int64)
    return out


def distinct_rows(matrix: Csr, mapping: np.ndarray) -> Csr:
    """Each row's values mapped through `mapping` (e.g. track -> artist), duplicates within a row
    dropped, values sorted."""
    offsets, values = matrix
    rows = row_ids(np.diff(offsets))
    width = int(mapping.max(initial=0)) + 1
    keys = np.unique(rows * width + mapping[values])
    out = np.zeros(len(offsets), np.int64)
    np.cumsum(np.bincount(keys // width, minlength=len(offsets) - 1), out=out[1:])
    return out, (keys % width).astype(np.int32)


def transposed(matrix: Csr, keep: np.ndarray, columns: int) -> Csr:
    """The transpose (row c: the rows holding value c) of the entries where `keep` (a boolean per
    entry of `matrix`'s values) is true."""
    offsets, values = matrix
    rows = row_ids(np.diff(offsets), np.int32)[keep]
    kept = values[keep]
    out = np.zeros(columns + 1, np.int64)
    np.cumsum(np.bincount(kept, minlength=columns), out=out[1:])
    return out, rows[np.argsort(kept, kind="stable")]
