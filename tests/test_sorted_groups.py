"""Grouping sorted keys in numpy (`mpdrec.sorted_groups`), which cooc, the submission merge and the
publisher rely on to split playlists."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mpdrec.sorted_groups import group_starts, whole_groups


def test_group_starts_bounds_every_group() -> None:
    keys = np.array([3, 3, 5, 7, 7, 7])
    bounds = group_starts(keys)
    assert bounds.tolist() == [0, 2, 3, 6]
    assert [keys[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])] == [[3, 3], [5], [7, 7, 7]]


def test_group_starts_of_no_keys_has_no_groups() -> None:
    bounds = group_starts(np.array([], np.int64))
    assert bounds.tolist() == [0]
    assert list(zip(bounds[:-1], bounds[1:])) == []


def test_whole_groups_never_splits_a_group_across_batches() -> None:
    keys = [[1, 1, 2], [2, 2], [], [2, 3, 3], [4]]
    batches = [
        pa.RecordBatch.from_pydict({"pid": pa.array(k, pa.int64()), "v": pa.array(range(len(k)), pa.int64())})
        for k in keys
    ]
    out = [cols["pid"].tolist() for cols in whole_groups(iter(batches), "pid")]
    assert out == [[1, 1], [2, 2, 2, 2], [3, 3], [4]]


def test_whole_groups_keeps_vectors_as_arrow_arrays_across_batches() -> None:
    batches = [
        pa.RecordBatch.from_pydict(
            {
                "pid": pa.array(k, pa.int64()),
                "v": pa.array([[float(p), 1.0] if p else None for p in k], pa.list_(pa.float32())),
            }
        )
        for k in ([0, 1], [1, 2])
    ]
    out = list(whole_groups(iter(batches), "pid"))
    assert [cols["pid"].tolist() for cols in out] == [[0], [1, 1], [2]]
    assert all(isinstance(cols["v"], pa.Array) for cols in out)
    assert [cols["v"].to_pylist() for cols in out] == [[None], [[1.0, 1.0], [1.0, 1.0]], [[2.0, 1.0]]]
