"""Blocked top-N scoring against brute force in numpy (many small blocks, seeds excluded)."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import SparkSession

from mpdrec.blocked_topn import _bounds, _Pair, _query_blocks, _Tracks, percentile_ranks, top_n


def _problem(
    spark: SparkSession,
    seed: int = 3,
    queries: int = 23,
    tracks: int = 157,
    dim: int = 6,
    ties: bool = False,
    short: bool = False,
):
    """Random factors; with `ties`, small integers, so that many scores are equal (ties are broken
    by track_idx, also where they straddle a task's running bound); with `short`, all but the first
    quarter of the tracks (the most popular) a hundred times shorter, as rare tracks' factors are."""
    rng = np.random.default_rng(seed)

    def draw(size: tuple[int, int]) -> np.ndarray:
        return (rng.integers(-1, 2, size=size) if ties else rng.normal(size=size)).astype(np.float32)

    q, t = draw((queries, dim)), draw((tracks, dim))
    if short:
        t[tracks // 4 :] *= 0.01
    pids = np.arange(queries) * 10 + 1_000_000
    seeds = [sorted(rng.choice(tracks, size=int(rng.integers(0, 12)), replace=False).tolist()) for _ in range(queries)]
    track_ids = rng.permutation(tracks)  # rows not in id order
    items = spark.createDataFrame(
        [(int(i), t[i].tolist()) for i in track_ids], "track_idx int, features array<float>"
    ).repartition(3)
    qdf = spark.createDataFrame(
        [(int(p), q[i].tolist(), seeds[i]) for i, p in enumerate(pids)],
        "pid long, features array<float>, exclude array<int>",
    ).repartition(2)
    return q, t, pids, seeds, items, qdf


def _assert_brute_force(got, q: np.ndarray, t: np.ndarray, pids: np.ndarray, seeds: list[list[int]], n: int) -> None:
    """`got` (top_n's rows) holds each query's n best non-seed tracks, ranked by score then track_idx."""
    scores = q @ t.T
    for i, pid in enumerate(pids):
        s = scores[i].copy()
        s[seeds[i]] = -np.inf
        allowed = len(t) - len(seeds[i])
        want = np.lexsort((np.arange(len(t)), -s))[: min(n, allowed)]
        rows = got[got.pid == pid]
        assert rows.track_idx.tolist() == want.tolist(), pid  # in rank order
        assert rows["rank"].tolist() == list(range(len(want))), pid
        np.testing.assert_allclose(rows.score.to_numpy(), s[want], rtol=1e-5, atol=1e-5)
        assert not set(rows.track_idx) & set(seeds[i])


@pytest.mark.parametrize("n,block_rows,ties", [(10, 7, False), (40, 50, False), (200, 1000, False), (10, 60, True)])
def test_top_n_matches_brute_force(spark: SparkSession, n: int, block_rows: int, ties: bool) -> None:
    q, t, pids, seeds, items, qdf = _problem(spark, ties=ties, dim=3 if ties else 6)
    _assert_brute_force(top_n(qdf, items, n, block_rows).toPandas().sort_values(["pid", "rank"]), q, t, pids, seeds, n)


@pytest.mark.parametrize("block_rows", [1000, 30])
def test_top_n_scores_only_the_tracks_that_can_reach_a_bound(spark: SparkSession, block_rows: int) -> None:
    """Short (rare) tracks cannot reach the bound of the popular ones' 5th best score: the blocks
    leave them out of the matrix product, and the lists are still exact."""
    q, t, pids, seeds, items, qdf = _problem(spark, seed=11, tracks=400, short=True)
    n = 5
    _assert_brute_force(top_n(qdf, items, n, block_rows).toPandas().sort_values(["pid", "rank"]), q, t, pids, seeds, n)
    blocks = _bounds(_query_blocks(qdf, block_rows), items, n)
    tracks = _Tracks(np.arange(len(t), dtype=np.int32), t)
    widths = [
        len(t) if cols is None else len(cols)
        for block in blocks
        for _, _, cols in _Pair(block, tracks).scores(np.frombuffer(block["reach"], np.float32))
    ]
    assert 0 < max(widths) <= len(t) // 4


def test_top_n_without_exclusions_and_empty_queries(spark: SparkSession) -> None:
    q, t, pids, _, items, qdf = _problem(spark, seed=5)
    got = top_n(qdf.drop("exclude"), items, 5, 20).toPandas()
    want = np.argsort(-(q @ t.T), axis=1)[:, :5]
    assert len(got) == 5 * len(pids)
    for i, pid in enumerate(pids):
        assert set(got[got.pid == pid].track_idx) == set(want[i].tolist())
    assert top_n(qdf.limit(0), items, 5, 20).count() == 0
    sparse = top_n(qdf.drop("exclude").repartition(len(pids) + 17), items, 5, 20)  # some partitions empty
    key = ["pid", "rank", "track_idx"]
    assert sparse.toPandas()[key].sort_values(key).values.tolist() == got[key].sort_values(key).values.tolist()


def test_percentile_ranks_match_brute_force(spark: SparkSession) -> None:
    q, t, pids, seeds, items, qdf = _problem(spark, seed=7)
    rng = np.random.default_rng(1)
    targets = [
        (int(p), int(x))
        for i, p in enumerate(pids[:-3])
        for x in rng.choice(np.setdiff1d(np.arange(len(t)), seeds[i]), size=4, replace=False)
    ]
    tdf = spark.createDataFrame(targets + [(int(pids[0]), 10_000)], "pid long, track_idx int")  # 10000: no factors
    got = {(r.pid, r.track_idx): r.percentile for r in percentile_ranks(qdf, items, tdf, 11).collect()}
    assert len(got) == len(targets)
    scores = q @ t.T
    index = {int(p): i for i, p in enumerate(pids)}
    for (pid, track), value in got.items():
        i = index[pid]
        s = np.delete(scores[i], seeds[i] + [track])  # the others: every non-seed track but the target
        assert value == pytest.approx(np.count_nonzero(s > scores[i, track]) / len(s)), (pid, track)
    assert min(got.values()) >= 0 and max(got.values()) <= 1
