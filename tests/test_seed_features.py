"""Candidate-versus-seed features: co-occurrence shares by hand, and through Spark against a plain
reading of their definition on random playlists; ALS's dot product for every candidate."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from mpdrec.csr import csr_rows, distinct_rows, row_sums, transposed
from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.models import als
from mpdrec.rank.feature_rows import FeatureRows
from mpdrec.rank.seed_features import (
    ARTIST_FEATURES,
    COOC_FEATURES,
    LAST_SEEDS,
    KnownDot,
    Scratch,
    artist_postings,
    cooc_shares,
    with_factor_dot,
    with_seed_cooc,
)


def _csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.r_[0, np.cumsum([len(r) for r in rows])].astype(np.int64)
    return offsets, np.array([v for r in rows for v in r], dtype=np.int32)


def test_cooc_shares_by_hand():
    postings = _csr([[0, 1], [2]])  # seed track 0 is in playlists 0 and 1, seed track 1 in playlist 2
    tracks = _csr([[0, 5, 6], [0, 5], [1, 6, 7]])  # the playlists' tracks
    shares = cooc_shares(np.array([0, 1]), np.array([6, 5, 9]), postings, tracks)
    # seed 0: 6 in one of its two playlists, 5 in both, 9 in none; seed 1: 6 in its only playlist
    np.testing.assert_allclose(shares, [[0.5, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # a repeated seed (two seeds by one artist, in the artist features) gets its row again; a scratch
    # array shared between calls gives the same shares and is left as it was
    scratch = Scratch.over(12)
    again = cooc_shares(np.array([1, 0, 1]), np.array([6, 5, 9]), postings, tracks, scratch)
    np.testing.assert_allclose(again, shares[[1, 0, 1]])
    np.testing.assert_allclose(cooc_shares(np.array([0]), np.array([7, 0]), postings, tracks, scratch), [[0.0, 1.0]])
    assert not scratch.member.any()


def test_csr_rows_and_row_sums_by_hand():
    matrix = _csr([[4, 5], [], [6], [7, 8, 9]])
    values, lengths = csr_rows(matrix, np.array([3, 1, 0, 3]))
    assert values.tolist() == [7, 8, 9, 4, 5, 7, 8, 9] and lengths.tolist() == [3, 0, 2, 3]
    flags = np.array([True, False, True, False, True, False, False, True])
    assert row_sums(flags, lengths).tolist() == [2, 0, 1, 1]
    assert row_sums(np.zeros(0, bool), np.array([0, 0])).tolist() == [0, 0]


def test_distinct_rows_and_transpose_by_hand():
    offsets, values = distinct_rows(_csr([[0, 1, 2], [], [3, 3, 1]]), np.array([5, 5, 0, 2]))
    assert offsets.tolist() == [0, 2, 2, 4] and values.tolist() == [0, 5, 2, 5]
    rows = transposed((offsets, values), np.array([True, True, False, True]), 6)
    assert rows[0].tolist() == [0, 1, 1, 1, 1, 1, 3] and rows[1].tolist() == [0, 0, 2]


def test_artist_postings_sample_popular_artists_the_same_way_every_time():
    """An artist in more playlists than max_per_seed keeps about that many of them, a subset, the
    same ones for the same seed; the others keep all; artists not asked for keep none."""
    rng = np.random.default_rng(1)
    rows = [sorted({0, *rng.choice(np.arange(1, 20), 3, replace=False).tolist()}) for _ in range(4000)]
    playlist_artists = _csr(rows)
    postings, counts = artist_postings(playlist_artists, np.array([0, 5]), 20, 1000, seed=9)
    assert counts[0] == 4000
    kept = set(postings[1][postings[0][0] : postings[0][1]].tolist())
    assert 850 < len(kept) < 1150 and kept <= set(range(4000))
    five = {p for p, r in enumerate(rows) if 5 in r}
    assert set(postings[1][postings[0][5] : postings[0][6]].tolist()) == five  # in about 630: all kept
    assert postings[0][2] == postings[0][3]  # not asked for
    again, _ = artist_postings(playlist_artists, np.array([0, 5]), 20, 1000, seed=9)
    other, _ = artist_postings(playlist_artists, np.array([0, 5]), 20, 1000, seed=10)
    assert np.array_equal(again[1], postings[1]) and not np.array_equal(other[1], postings[1])


def test_seed_cooc_through_spark_matches_the_definition(spark, small_arrow_batches):
    """Random playlists and artists, no sampling (max_per_seed above every count): each feature
    equals a plain reading of the module's docstring; seed order is the seeds' positions; seedless
    queries get 0 but for the artist's popularity."""
    rng = np.random.default_rng(5)
    playlists = [sorted(set(rng.integers(0, 40, size=rng.integers(3, 15)).tolist())) for _ in range(60)]
    inter = [(p, t, i, 1.0) for p, ts in enumerate(playlists) for i, t in enumerate(ts)]
    data = RankingData(
        spark.createDataFrame(inter, "playlist_idx int, track_idx int, pos int, weight float"),
        spark.createDataFrame(
            [(t, f"t{t}", f"a{t % 7}", 1) for t in range(40)],
            "track_idx int, track_uri string, artist_uri string, playlist_count long",
        ),
        spark.createDataFrame([], "playlist_idx int, pid long, name_norm string, kind string, num_tracks int"),
        40,
    )
    seeds = {100 + q: rng.choice(40, size=rng.integers(1, 9), replace=False).tolist() for q in range(12)}
    seeds[200] = []  # title only
    positions = [(pid, t, 10 - i) for pid, ts in seeds.items() for i, t in enumerate(ts)]  # reversed order
    queries = Queries(
        spark.createDataFrame(
            [(pid, None, None, 1, len(ts)) for pid, ts in seeds.items()],
            "pid long, playlist_idx int, name_norm string, category int, num_samples int",
        ),
        spark.createDataFrame([(p, t) for p, t, _ in positions], "pid long, track_idx int"),
        8,
        spark.createDataFrame(positions, "pid long, track_idx int, pos int"),
    )
    rows = spark.createDataFrame(
        [(pid, int(c), 1.5) for pid in seeds for c in rng.choice(40, 10, replace=False)],
        "pid long, track_idx int, other double",
    )
    got = {
        (r.pid, r.track_idx): r.asDict()
        for r in with_seed_cooc(FeatureRows(rows), queries, data, 10_000, 3).to_frame().collect()
    }
    assert len(got) == rows.count()
    holding = {t: {p for p, ts in enumerate(playlists) if t in ts} for t in range(40)}
    by_artist = {a: {p for p, ts in enumerate(playlists) if any(t % 7 == a for t in ts)} for a in range(7)}
    for (pid, cand), r in got.items():
        assert r["other"] == 1.5  # the rows' own columns pass through
        ordered = seeds[pid][::-1]  # positions run backwards
        shares = [len(holding[s] & holding[cand]) / max(len(holding[s]), 1) for s in ordered]
        expected = (
            [0.0] * 4
            if not shares
            else [max(shares), np.mean(shares), np.mean([x > 0 for x in shares]), np.mean(shares[-LAST_SEEDS:])]
        )
        assert [r[f] for f in COOC_FEATURES] == pytest.approx(expected, abs=1e-12), (pid, cand)
        artist_shares = [len(by_artist[s % 7] & by_artist[cand % 7]) / max(len(by_artist[s % 7]), 1) for s in ordered]
        expected = [
            max(artist_shares, default=0.0),
            float(np.mean(artist_shares)) if artist_shares else 0.0,
            np.log1p(len(by_artist[cand % 7])),
        ]
        assert [r[f] for f in ARTIST_FEATURES] == pytest.approx(expected, abs=1e-12), (pid, cand)


def test_als_dot_scores_every_candidate(spark):
    factors = als.Factors(
        spark.createDataFrame([(0, [1.0, 2.0])], "playlist_idx int, features array<float>"),
        spark.createDataFrame([(5, [3.0, -1.0]), (6, [0.5, 0.5])], "track_idx int, features array<float>"),
    )
    queries = Queries(
        spark.createDataFrame(
            [(1, 0, None, 2, 1), (2, None, "x", 1, 0)],
            "pid long, playlist_idx int, name_norm string, category int, num_samples int",
        ),
        spark.createDataFrame([], "pid long, track_idx int"),
        0,
    )
    rows = spark.createDataFrame([(1, 5), (1, 6), (1, 7), (2, 5)], "pid long, track_idx int")
    dots = with_factor_dot(FeatureRows(rows), queries, factors, spark.sparkContext.broadcast).to_frame()
    got = {(r.pid, r.track_idx): r.als_dot for r in dots.collect()}
    # 7 has no factors, pid 2 (title only) none either: 0
    assert got == {(1, 5): pytest.approx(1.0), (1, 6): pytest.approx(1.5), (1, 7): 0.0, (2, 5): 0.0}


def test_als_dot_takes_the_known_dot_and_computes_the_rest(spark):
    factors = als.Factors(
        spark.createDataFrame([(0, [1.0, 2.0])], "playlist_idx int, features array<float>"),
        spark.createDataFrame([(5, [3.0, -1.0]), (6, [0.5, 0.5])], "track_idx int, features array<float>"),
    )
    queries = Queries(
        spark.createDataFrame(
            [(1, 0, None, 2, 1)], "pid long, playlist_idx int, name_norm string, category int, num_samples int"
        ),
        spark.createDataFrame([], "pid long, track_idx int"),
        0,
    )
    rows = spark.createDataFrame(
        [(1, 5, 7.0, 0), (1, 6, 0.0, 10), (1, 7, 0.0, 10)], "pid long, track_idx int, known double, known_rank int"
    )
    # only tracks 6's and 7's factors are looked up: 5's dot is known (a wrong value here, to tell
    # the two apart); 7's is not known, and 7 has no factors
    dots = with_factor_dot(
        FeatureRows(rows),
        queries,
        factors,
        spark.sparkContext.broadcast,
        rows.where(F.col("known_rank") >= 10),
        KnownDot("known", "known_rank", 10),
    ).to_frame()
    assert {r.track_idx: r.als_dot for r in dots.collect()} == {5: 7.0, 6: pytest.approx(1.5), 7: 0.0}
