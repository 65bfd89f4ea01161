"""Assembling a playlist's final list against a plain-Python reading of the rule: sources in
priority order, seeds dropped, a track kept where it first occurs, cut to n. The first source is a
ranked list that is full for some playlists (taken as it is) and short for others (merged with the
fallbacks), the second a raw scored source with seeds, duplicates and tied scores."""
from __future__ import annotations

import random

from mpdrec.models.data import Queries
from mpdrec.rank.assemble import assemble
from mpdrec.rank.candidates import ranked_list

N = 6


def test_assemble_matches_the_rule(spark):
    rng = random.Random(3)
    pids = list(range(100, 130))
    seeds = {p: rng.sample(range(40), rng.randint(0, 4)) for p in pids}
    raw_first = [(p, t, float(rng.randint(0, 5)))
                 for p in pids for t in rng.sample(range(40), rng.choice([0, 3, 6, 12]))]
    second = [(p, t, float(rng.randint(0, 3))) for p in pids for t in rng.sample(range(40), 20)]
    fallback = [(p, t, float(-t)) for p in pids for t in range(40)]  # enough for every playlist
    queries = Queries(
        spark.createDataFrame([(p, None, None, 1, len(seeds[p])) for p in pids],
                              "pid long, playlist_idx int, name_norm string, category int, num_samples int"),
        spark.createDataFrame([(p, t) for p, ts in seeds.items() for t in ts], "pid long, track_idx int"),
        max(len(ts) for ts in seeds.values()))
    frame = lambda rows: spark.createDataFrame(rows, "pid long, track_idx int, score double")  # noqa: E731
    first = ranked_list(frame(raw_first), queries, N)
    got = assemble([("first", first), ("second", frame(second)), ("fallback", frame(fallback))], queries, N).collect()

    by_pid: dict[int, list] = {}
    for r in sorted(got, key=lambda r: (r.pid, r.rank)):
        by_pid.setdefault(r.pid, []).append((r.track_idx, r.source))
    assert sorted(by_pid) == pids
    full = 0
    for p in pids:
        expected: list[tuple[int, str]] = []
        for name, rows in (("first", raw_first), ("second", second), ("fallback", fallback)):
            ordered = sorted(((t, s) for q, t, s in rows if q == p), key=lambda ts: (-ts[1], ts[0]))
            if name == "first":
                ordered = [ts for ts in ordered if ts[0] not in seeds[p]][:N]
            expected += [(t, name) for t, _ in ordered
                         if t not in seeds[p] and t not in {e for e, _ in expected}]
        assert by_pid[p] == expected[:N], p
        full += all(source == "first" for _, source in by_pid[p])
    assert 0 < full < len(pids)  # both paths were taken
