"""The title source (title words weighted by idf) and the artist source (the seeds' artists'
tracks) against their definitions, on hand-made data."""

from __future__ import annotations

import math

import pytest

from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.models import artist, title


def _data(spark, playlists: dict[int, tuple[str, list[int]]], artists: dict[int, str]) -> RankingData:
    """playlist_idx -> (normalised name, tracks); track -> artist (playlist_count from the playlists)."""
    rows = [(p, t, i, 1.0) for p, (_, ts) in playlists.items() for i, t in enumerate(ts)]
    counts = {t: sum(t in ts for _, ts in playlists.values()) for t in artists}
    return RankingData(
        spark.createDataFrame(rows, "playlist_idx int, track_idx int, pos int, weight double"),
        spark.createDataFrame(
            [(t, f"t{t}", a, counts[t]) for t, a in artists.items()],
            "track_idx int, track_uri string, artist_uri string, playlist_count long",
        ),
        spark.createDataFrame(
            [(p, 1000 + p, name, "mpd", len(ts)) for p, (name, ts) in playlists.items()],
            "playlist_idx int, pid long, name_norm string, kind string, num_tracks int",
        ),
        len(artists),
    )


def _queries(spark, names: dict[int, str | None], seeds: dict[int, list[int]]) -> Queries:
    pairs = [(pid, t) for pid, ts in seeds.items() for t in ts]
    return Queries(
        spark.createDataFrame(
            [(pid, None, name, 1, 0) for pid, name in names.items()],
            "pid long, playlist_idx int, name_norm string, category int, num_samples int",
        ),
        spark.createDataFrame(pairs, "pid long, track_idx int"),
        max((len(s) for s in seeds.values()), default=0),
    )


def test_title_scores_are_the_idf_weighted_share_of_each_words_playlists(spark):
    playlists = {
        0: ("summer hits", [1, 2]),
        1: ("summer", [1, 3]),
        2: ("hits 2017", [2, 4]),
        3: ("rock", [5]),
        4: ("rock", [5, 6]),
        5: ("empty", []),
    }
    data = _data(spark, playlists, {t: "a" for t in range(7)})
    queries = _queries(spark, {1: "summer hits 2017", 2: "polka", 3: None, 4: "rock summer"}, {})
    got = {(r.pid, r.track_idx): r.score for r in title.recommend(data, queries, 10, 2).collect()}
    idf = {w: math.log1p(5 / 2) for w in ("summer", "hits", "rock")}  # 5 playlists with tracks; 2017 is in one
    share = {"summer": {1: 1.0, 2: 0.5, 3: 0.5}, "hits": {1: 0.5, 2: 1.0, 4: 0.5}, "rock": {5: 1.0, 6: 0.5}}

    def expected(words: list[str]) -> dict[int, float]:
        tracks = {t for w in words for t in share[w]}
        return {t: sum(idf[w] * share[w].get(t, 0.0) for w in words) / sum(idf[w] for w in words) for t in tracks}

    want = {
        **{(1, t): s for t, s in expected(["summer", "hits"]).items()},
        **{(4, t): s for t, s in expected(["rock", "summer"]).items()},
    }
    assert got == pytest.approx(want)  # "2017" (one playlist) does not count; "polka" and no title get nothing


def test_title_keeps_each_words_commonest_tracks(spark):
    """Each word keeps its n + max_seeds commonest tracks (ties to the lower track_idx)."""
    playlists = {p: ("mix", [0, 1 + p % 3, 7]) for p in range(6)}
    data = _data(spark, playlists, {t: "a" for t in range(8)})
    got = {r.track_idx for r in title.recommend(data, _queries(spark, {1: "mix"}, {1: [7]}), 2, 2).collect()}
    assert got == {0, 7, 1}  # 0 and 7 in all six, then 1, 2, 3 in two each: 1 wins the tie


def test_artist_source_ranks_the_seed_artists_tracks_by_seed_share_then_popularity(spark):
    playlists = {0: ("x", [0, 1, 2]), 1: ("y", [1, 2, 3]), 2: ("z", [2, 4])}
    artists = {0: "a", 1: "a", 2: "a", 3: "b", 4: "c", 5: "b"}
    data = _data(spark, playlists, artists)
    queries = _queries(spark, {1: None, 2: None, 3: "t"}, {1: [0, 1, 3], 2: [4]})
    got = {(r.pid, r.track_idx): r.score for r in artist.recommend(data, queries, 10).collect()}
    popularity = {0: 1, 1: 2, 2: 3, 3: 1, 4: 1, 5: 0}
    want = {(1, t): (2 / 3 if artists[t] == "a" else 1 / 3) * math.log1p(popularity[t]) for t in (0, 1, 2, 3, 5)}
    want.update({(2, 4): math.log1p(1)})
    assert got == pytest.approx(want)  # seeds included (ranked_list drops them); the seedless query gets nothing
