"""The co-occurrence model against a plain-Python reading of its definition, on random data where the
sampling of popular seeds, the neighbour cut and its ties, and queries with and without a training
playlist of their own all happen."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.models import cooc

N, NEIGHBOURS, BETA, MAX_PER_SEED, SEED = 12, 7, 0.3, 25, 11


@pytest.fixture(scope="module")
def case(spark):
    rng = random.Random(5)
    num_tracks, num_playlists = 120, 300
    weights = [1.0 / (t + 1) for t in range(num_tracks)]  # Zipf: a few tracks are in most playlists
    playlists = {
        p: sorted(set(rng.choices(range(num_tracks), weights, k=rng.randint(3, 15)))) for p in range(num_playlists)
    }
    # queries 0..19 are training playlists (their own row must not count as a neighbour), 20..29 are not
    own = {q: (q * 7 if q < 20 else None) for q in range(30)}
    seeds = {
        q: (
            playlists[own[q]][: rng.randint(1, 5)]
            if own[q] is not None
            else rng.sample(range(num_tracks), rng.randint(1, 6))
        )
        for q in own
    }
    # query 30 is training playlist 0, whose one seed is a track no other playlist holds: no neighbours
    lone = num_tracks
    playlists[0].append(lone)
    own[30], seeds[30] = 0, [lone]
    num_tracks += 1
    rows = [(p, t, i, 1.0) for p, ts in playlists.items() for i, t in enumerate(ts)]
    counts = Counter(t for ts in playlists.values() for t in ts)
    tracks = [(t, f"spotify:track:{t:022d}", f"spotify:artist:{t % 9}", counts[t]) for t in range(num_tracks)]
    data = RankingData(
        spark.createDataFrame(rows, "playlist_idx int, track_idx int, pos int, weight double"),
        spark.createDataFrame(tracks, "track_idx int, track_uri string, artist_uri string, playlist_count long"),
        spark.createDataFrame(
            [(p, 1000 + p, "", "", len(ts)) for p, ts in playlists.items()],
            "playlist_idx int, pid long, name_norm string, kind string, num_tracks int",
        ),
        num_tracks,
    )
    queries = Queries(
        spark.createDataFrame(
            [(q, own[q], None, 2, len(seeds[q])) for q in own],
            "pid long, playlist_idx int, name_norm string, category int, num_samples int",
        ),
        spark.createDataFrame([(q, t) for q, ts in seeds.items() for t in ts], "pid long, track_idx int"),
        max(len(ts) for ts in seeds.values()),
    )
    return data, queries, playlists, counts, own, seeds


def _reference(case, kept: set[tuple[int, int]]) -> dict[int, list[tuple[int, float]]]:
    """The module docstring, literally, given which (track, playlist) postings the sampling kept."""
    _, queries, playlists, counts, own, seeds = case
    out = {}
    for pid, ss in seeds.items():
        overlap = Counter(q for s in ss for q, ts in playlists.items() if s in ts and (s, q) in kept and q != own[pid])
        nearest = sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0]))[:NEIGHBOURS]
        score: dict[int, float] = defaultdict(float)
        for q, o in nearest:
            for t in playlists[q]:
                score[t] += o
        ranked = sorted(((t, s / counts[t] ** BETA) for t, s in score.items()), key=lambda ts: (-ts[1], ts[0]))
        out[pid] = [ts for ts in ranked if ts[0] not in ss][:N]
    return out


@pytest.mark.usefixtures("small_arrow_batches")
def test_recommend_matches_the_definition(case):
    data, queries, playlists, counts, _, seeds = case
    kept = {
        (r.track_idx, r.q)
        for r in cooc.sampled_postings(data, queries.seeds.select("track_idx").distinct(), MAX_PER_SEED, SEED).collect()
    }
    for t in {s for ss in seeds.values() for s in ss}:
        sampled = sum(1 for tt, _ in kept if tt == t)
        assert sampled == counts[t] if counts[t] <= MAX_PER_SEED else sampled < counts[t], t
    assert any(counts[s] > MAX_PER_SEED for ss in seeds.values() for s in ss)  # the sampling was exercised

    got: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    for r in cooc.recommend(data, queries, N, NEIGHBOURS, BETA, MAX_PER_SEED, SEED).collect():
        got[r.pid].append((r.rank, r.track_idx, r.score))
    expected = _reference(case, kept)
    assert set(got) == {pid for pid, ranked in expected.items() if ranked}
    assert not expected[30]  # a query without neighbours was exercised: it gets no rows, and no error
    for pid, ranked in expected.items():
        assert [r for r, _, _ in sorted(got[pid])] == list(range(len(got[pid]))), pid
        mine = [(t, s) for _, t, s in sorted(got[pid])]
        assert [t for t, _ in mine] == [t for t, _ in ranked], pid  # N at most, seeds left out
        assert [s for _, s in mine] == pytest.approx([s for _, s in ranked], rel=1e-12), pid


def _dice_reference(case, kept: set[tuple[int, int]], k: int) -> dict[int, list[tuple[int, float]]]:
    """The Dice source by its definition: the k training playlists with the highest Dice coefficient of
    the seeds (over the kept postings) and the playlist's tracks; a track by the neighbours holding it,
    then their summed Dice, then the lower track_idx."""
    _, queries, playlists, counts, own, seeds = case
    out = {}
    for pid, ss in seeds.items():
        overlap = Counter(q for s in ss for q, ts in playlists.items() if s in ts and (s, q) in kept and q != own[pid])
        dice = {q: 2 * o / (len(ss) + len(playlists[q])) for q, o in overlap.items()}
        nearest = sorted(dice.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        holders: dict[int, int] = defaultdict(int)
        summed: dict[int, float] = defaultdict(float)
        for q, d in nearest:
            for t in playlists[q]:
                holders[t] += 1
                summed[t] += d
        ranked = sorted(holders, key=lambda t: (-holders[t], -summed[t], t))
        out[pid] = [(t, holders[t] + summed[t] / (k + 1)) for t in ranked if t not in ss][:N]
    return out


@pytest.mark.usefixtures("small_arrow_batches")
def test_dice_source_matches_its_definition(case):
    data, queries, *_ = case
    kept = {
        (r.track_idx, r.q)
        for r in cooc.sampled_postings(data, queries.seeds.select("track_idx").distinct(), MAX_PER_SEED, SEED).collect()
    }
    got: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    for r in cooc.recommend(data, queries, N, 3, 0.0, MAX_PER_SEED, SEED, dice=True).collect():
        got[r.pid].append((r.rank, r.track_idx, r.score))
    expected = _dice_reference(case, kept, 3)
    assert set(got) == {pid for pid, ranked in expected.items() if ranked}
    for pid, ranked in expected.items():
        mine = [(t, s) for _, t, s in sorted(got[pid])]
        assert [s for _, s in mine] == pytest.approx([s for _, s in ranked], rel=1e-12), pid
        # tracks of equal score (up to float rounding in the sums) may come in either order
        assert sorted(t for t, _ in mine) == sorted(t for t, _ in ranked) or len(mine) == N, pid
