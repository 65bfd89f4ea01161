"""Implicit ALS: the confidence weightings, blocked top-N scoring of real ALS factors against
Spark's own `ALSModel.recommendForUserSubset`, and ALS on NCF's leave-one-out protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import make_config
from mpdrec.blocked_topn import top_n
from mpdrec.config import ConfigError
from mpdrec.models import als
from mpdrec.models.als_leave_one_out import score as leave_one_out_score
from mpdrec.models.als_progress import latest_iteration, logged_iterations
from mpdrec.models.leave_one_out import LeaveOneOut


@pytest.fixture(scope="module")
def interactions(spark):
    rng = np.random.default_rng(11)
    rows = [
        (p, int(t), i, float(rng.integers(1, 4)))
        for p in range(120)
        for i, t in enumerate(np.unique(rng.zipf(1.3, 25) % 400))
    ]
    return spark.createDataFrame(rows, "playlist_idx int, track_idx int, pos int, weight float")


def test_weightings(interactions):
    weights = {r.weight for r in interactions.select("weight").distinct().collect()}
    assert weights == {1.0, 2.0, 3.0}
    for weighting, f in (("binary", lambda r: 1.0), ("counts", lambda r: r), ("log", lambda r: math.log1p(r / 0.5))):
        got = dict(
            interactions.join(als.ratings(interactions, weighting, 0.5), ["playlist_idx", "track_idx"])
            .select("weight", "rating")
            .distinct()
            .collect()
        )
        assert got == {w: pytest.approx(f(w), rel=1e-6) for w in weights}, weighting


def test_blocked_top_n_equals_spark_recommend_for_user_subset(spark, interactions):
    cfg = make_config(["als.max_iter=3"]).als
    ratings = als.ratings(interactions, "log", 1.0)
    model = als.estimator(cfg, 6, 10.0, 0.05, seed=3).fit(ratings)
    factors = als.Factors.of(model)
    users = spark.createDataFrame([(u,) for u in range(0, 120, 7)], "playlist_idx int")
    want = {
        r.playlist_idx: [(x.track_idx, x.rating) for x in r.recommendations]
        for r in model.recommendForUserSubset(users, 25).collect()
    }
    queries = users.join(factors.playlists, "playlist_idx").selectExpr("cast(playlist_idx as long) as pid", "features")
    got: dict[int, list] = {}
    for r in top_n(queries, factors.tracks, 25, block_rows=37).collect():
        got.setdefault(r.pid, []).append((r.track_idx, r.score))
    assert set(got) == set(want) and len(want) == len(range(0, 120, 7))
    for pid, rows in got.items():
        rows.sort(key=lambda x: (-x[1], x[0]))
        np.testing.assert_allclose([s for _, s in rows], [s for _, s in want[pid]], rtol=1e-4, atol=1e-5)
        assert {t for t, _ in rows} == {t for t, _ in want[pid]}, pid


def test_iterations_are_logged(spark, interactions, caplog):
    """Every iteration a poll sees is logged once, in order, then the fit's total; afterwards no
    iteration's factors stay cached."""
    cfg = make_config(["als.max_iter=6"]).als
    ratings = als.ratings(interactions, "log", 1.0).cache()
    ratings.count()
    with caplog.at_level("INFO", logger="mpdrec.als"), logged_iterations(spark, 6, "als test", every=0.02):
        als.Factors.of(als.estimator(cfg, 6, 10.0, 0.05, seed=3).fit(ratings)).tracks.count()
    ratings.unpersist()
    seen = [int(m.split("iteration ")[1].split("/")[0]) for m in caplog.messages if "/6 after" in m]
    assert seen and seen == sorted(set(seen)) and 1 <= seen[0] and seen[-1] <= 6, caplog.messages
    assert caplog.messages[-1].startswith("als test: 6 iterations in")
    assert latest_iteration(spark) == 0


def test_grid_config_is_checked():
    assert [p["rank"] for p in make_config(["als.grid_rank=[8,16]", "als.grid_alpha=[1,5]"]).als.points()] == [
        8,
        8,
        16,
        16,
    ]
    assert make_config([]).als.points() == [{"rank": 64, "alpha": 20.0, "reg_param": 0.1}]
    with pytest.raises(ConfigError, match="als.weighting"):
        make_config(["als.weighting=square"])
    with pytest.raises(ConfigError, match="als.grid_rank"):
        make_config(["als.grid_rank=[0]"])


def test_leave_one_out_refits_without_the_held_out_tracks(spark):
    """Twin playlists (2i, 2i + 1) share eight tracks no other pair has; 2i's last track is held
    out. Refitted without it, ALS still ranks it first among other pairs' tracks (its twin holds
    it), while popularity, counted without it, puts it last (1 playlist against 2 for every
    negative): with the held-out rows left in, popularity would tie it with all of them. A negative
    that no playlist holds has no factors and scores 0; a trained track above every candidate id
    (the least popular tracks at scale) is counted without error."""
    pairs, per_pair, negatives = 20, 8, 21
    rows = [
        (p, pair * per_pair + t, t, 1.0)
        for pair in range(pairs)
        for p in (2 * pair, 2 * pair + 1)
        for t in range(per_pair)
    ]
    rows.append((2 * pairs, pairs * per_pair + 1, 0, 1.0))
    ratings = als.ratings(
        spark.createDataFrame(rows, "playlist_idx int, track_idx int, pos int, weight float"), "binary", 1.0
    )
    rng = np.random.default_rng(5)
    unheld = pairs * per_pair  # a track id no playlist holds
    candidates = []
    for pair in range(pairs):
        others = [t for t in range(pairs * per_pair) if t // per_pair != pair and t % per_pair != per_pair - 1]
        candidates.append([pair * per_pair + per_pair - 1, unheld, *rng.choice(others, negatives - 1, replace=False)])
    loo = LeaveOneOut(np.arange(0, 2 * pairs, 2), np.array(candidates))
    cfg = make_config(["als.max_iter=10"])
    got = leave_one_out_score(ratings, loo, cfg, {"rank": 8, "alpha": 20.0, "reg_param": 0.01})
    assert got["playlists"] == pairs and got["negatives"] == negatives
    assert got["metrics"]["hr@10"] > 0.9 and got["metrics"]["auc"] > 0.9, got["metrics"]
    # popularity: every negative but `unheld` (no playlist) outranks the held-out track (one playlist)
    assert got["popularity"]["hr@10"] == 0.0
    assert got["popularity"]["auc"] == pytest.approx(1 / negatives)
