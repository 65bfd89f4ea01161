"""Assembling a playlist's final list against a plain-Python reading of the rule: sources in
priority order, seeds dropped, a track kept where it first occurs, cut to n. The first source is a
ranked list that is full for some playlists (taken as it is) and short for others (merged with the
fallbacks), the second a raw scored source with seeds, duplicates and tied scores, the third a
ranked list full for some playlists (the fallback behind it is then not reached). Ranking the
candidates then the fill merged once (what the rank stage does for NCF and the blend) gives what
assemble gives."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.lists.assemble import after_candidates, assemble, fill_after
from mpdrec.lists.inputs import Queries
from mpdrec.rank.candidates import candidate_table, ranked_list

N = 6
pytestmark = pytest.mark.usefixtures("small_arrow_batches")


def _queries(spark, seeds: dict[int, list[int]]) -> Queries:
    return Queries(
        spark.createDataFrame(
            [(p, None, None, 1, len(ts)) for p, ts in seeds.items()],
            "pid long, playlist_idx int, name_norm string, category int, num_samples int",
        ),
        spark.createDataFrame([(p, t) for p, ts in seeds.items() for t in ts], "pid long, track_idx int"),
        max(len(ts) for ts in seeds.values()),
    )


def test_assemble_matches_the_rule(spark):
    rng = random.Random(3)
    pids = list(range(100, 130))
    seeds = {p: rng.sample(range(40), rng.randint(0, 4)) for p in pids}
    raw_first = [
        (p, t, float(rng.randint(0, 5))) for p in pids for t in rng.sample(range(40), rng.choice([0, 3, 6, 12]))
    ]
    second = [(p, t, float(rng.randint(0, 3))) for p in pids for t in rng.sample(range(40), rng.randint(0, 4))]
    raw_third = [(p, t, float(rng.randint(0, 5))) for p in pids for t in rng.sample(range(40), rng.choice([2, 12]))]
    fallback = [(p, t, float(-t)) for p in pids for t in range(40)]  # enough for every playlist
    queries = _queries(spark, seeds)
    frame = lambda rows: spark.createDataFrame(rows, "pid long, track_idx int, score double")  # noqa: E731
    first, third = (ranked_list(frame(rows), queries, N) for rows in (raw_first, raw_third))
    got = assemble(
        [("first", first), ("second", frame(second)), ("third", third), ("fallback", frame(fallback))], queries, N
    ).collect()

    by_pid: dict[int, list] = {}
    for r in sorted(got, key=lambda r: (r.pid, r.rank)):
        by_pid.setdefault(r.pid, []).append((r.track_idx, r.source))
    assert sorted(by_pid) == pids
    full = 0
    for p in pids:
        expected: list[tuple[int, str]] = []
        for name, rows in (("first", raw_first), ("second", second), ("third", raw_third), ("fallback", fallback)):
            ordered = sorted(((t, s) for q, t, s in rows if q == p), key=lambda ts: (-ts[1], ts[0]))
            if name in ("first", "third"):
                ordered = [ts for ts in ordered if ts[0] not in seeds[p]][:N]
            expected += [(t, name) for t, _ in ordered if t not in seeds[p] and t not in {e for e, _ in expected}]
        assert by_pid[p] == expected[:N], p
        full += all(source == "first" for _, source in by_pid[p])
    assert 0 < full < len(pids)  # both paths were taken
    assert {s for p in pids for _, s in by_pid[p]} == {"first", "second", "third", "fallback"}


def test_candidates_then_fill_equal_assemble(spark):
    rng = random.Random(5)
    pids = list(range(200, 230))
    seeds = {p: rng.sample(range(60), rng.randint(0, 4)) for p in pids}
    queries = _queries(spark, seeds)

    def ranked(tracks: Callable[[int], list[int]]) -> DataFrame:
        rows = [(p, t, float(rng.randint(0, 9))) for p in pids for t in tracks(p)]
        return ranked_list(spark.createDataFrame(rows, "pid long, track_idx int, score double"), queries, 60)

    # "a" and "b" propose candidates (their top `depth`), "c" only fills; playlist 200 has no
    # candidates, 201 more than N (its "a" and "b" lists apart)
    some = lambda: rng.sample(range(60), rng.randint(0, 30))  # noqa: E731
    lists = {
        "a": ranked(lambda p: [] if p == 200 else list(range(0, 60, 2)) if p == 201 else some()),
        "b": ranked(lambda p: [] if p == 200 else list(range(1, 60, 2)) if p == 201 else some()),
        "c": ranked(lambda p: rng.sample(range(60), 40)),
    }
    depth = {"a": 4, "b": 3}
    candidates = candidate_table({s: lists[s] for s in depth}, depth)
    fill_lists = [(s, lists[s].where(F.col("rank") >= depth.get(s, 0))) for s in ["a", "b", "c"]]
    scored = candidates.select("pid", "track_idx", (F.xxhash64("pid", "track_idx") % 4).cast("double").alias("score"))

    def lists_of(ranking: DataFrame) -> dict[int, list]:
        by_pid: dict[int, list] = {}
        for r in sorted(ranking.collect(), key=lambda r: (r.pid, r.rank)):
            by_pid.setdefault(r.pid, []).append((r.rank, r.track_idx, r.score, r.source))
        return by_pid

    got = lists_of(after_candidates("x", scored, fill_after(candidates, fill_lists, queries, N), N))
    assert got == lists_of(assemble([("x", scored), *fill_lists], queries, N))
    assert sorted(got) == pids and all(len(got[p]) == N for p in pids)
    assert [s for *_, s in got[200]] == ["c"] * N and [s for *_, s in got[201]] == ["x"] * N
    assert {s for p in got for *_, s in got[p]} == {"x", "a", "b", "c"}
