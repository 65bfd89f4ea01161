"""The two-stage ranking's parts on hand-made tables: ranked lists, the candidate union and its
recall, the features, the fitted and the fixed blend, and the validation playlists' fit/eval split."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

import mpdrec.spark
from conftest import make_config
from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.rank.blend import RRF_K, blend_scores, feature_names, fit_blend, fit_sample, labelled, with_features
from mpdrec.rank.candidates import candidate_recall, candidate_table, ranked_list


def _queries(spark, seeds: list[tuple[int, int]], playlists: list[tuple]) -> Queries:
    return Queries(
        spark.createDataFrame(playlists, "pid long, playlist_idx int, name_norm string, category int, num_samples int"),
        spark.createDataFrame(seeds, "pid long, track_idx int"),
        3,
    )


def _source(spark, rows: list[tuple[int, int, float]]):
    return spark.createDataFrame(rows, "pid long, track_idx int, score double")


def test_ranked_list_drops_seeds_breaks_ties_by_track_and_cuts(spark):
    q = _queries(spark, [(1, 5)], [(1, 0, "a", 3, 1)])
    src = _source(spark, [(1, 5, 9.0), (1, 7, 2.0), (1, 3, 2.0), (1, 4, 1.0), (2, 1, 1.0)])
    got = [tuple(r) for r in ranked_list(src, q, 2).orderBy("pid", "rank").collect()]
    assert got == [(1, 3, 2.0, 0), (1, 7, 2.0, 1), (2, 1, 1.0, 0)]


def test_candidates_are_the_union_of_each_sources_top(spark):
    lists = {
        "a": spark.createDataFrame(
            [(1, 10, 3.0, 0), (1, 11, 2.0, 1), (1, 12, 1.0, 2)], "pid long, track_idx int, score double, rank int"
        ),
        "b": spark.createDataFrame(
            [(1, 12, 5.0, 0), (1, 13, 4.0, 1), (2, 10, 1.0, 0)], "pid long, track_idx int, score double, rank int"
        ),
    }
    rows = {(r.pid, r.track_idx): r.asDict() for r in candidate_table(lists, {"a": 2, "b": 3}).collect()}
    assert sorted(rows) == [(1, 10), (1, 11), (1, 12), (1, 13), (2, 10)]  # a's third is past its depth
    assert rows[(1, 12)]["a_rank"] is None and rows[(1, 12)]["b_rank"] == 0 and rows[(1, 12)]["b_score"] == 5.0
    assert rows[(1, 10)]["a_rank"] == 0 and rows[(1, 10)]["b_rank"] is None
    assert (rows[(1, 11)]["a_rel"], rows[(1, 13)]["b_rel"], rows[(1, 13)]["a_rel"]) == (2 / 3, 4 / 5, None)
    truth = spark.createDataFrame([(1, 10), (1, 12), (1, 99), (2, 10)], "pid long, track_idx int")
    recall = candidate_recall(candidate_table(lists, {"a": 2, "b": 3}), truth, ["a", "b"])
    assert recall == pytest.approx({"a": 1 / 4, "b": 2 / 4, "union": 3 / 4})


def _data(spark) -> RankingData:
    tracks = spark.createDataFrame(
        [(0, "t0", "art:x", 50), (1, "t1", "art:x", 20), (2, "t2", "art:y", 5), (3, "t3", "art:z", 1)],
        "track_idx int, track_uri string, artist_uri string, playlist_count long",
    )
    playlists = spark.createDataFrame(
        [
            (0, 100, "rock", "mpd", 3),
            (1, 101, "rock", "mpd", 2),
            (2, 102, "jazz", "mpd", 2),
            (3, 103, "rock", "challenge", 0),
        ],
        "playlist_idx int, pid long, name_norm string, kind string, num_tracks int",
    )
    return RankingData(
        spark.createDataFrame([], "playlist_idx int, track_idx int, pos int, weight int"), tracks, playlists, 4
    )


def test_features_fill_missing_sources_and_describe_query_and_track(spark):
    data = _data(spark)
    q = _queries(spark, [(7, 0), (7, 2)], [(7, None, "rock", 3, 2), (8, None, None, 4, 0)])
    lists = {
        "a": spark.createDataFrame(
            [(7, 1, 0.5, 0), (7, 3, 0.2, 1), (8, 1, 0.9, 0)], "pid long, track_idx int, score double, rank int"
        ),
        "b": spark.createDataFrame([(7, 3, 4.0, 0)], "pid long, track_idx int, score double, rank int"),
    }
    depth = {"a": 10, "b": 20}
    rows = {
        (r.pid, r.track_idx): r.asDict()
        for r in with_features(candidate_table(lists, depth), q, data, depth, 100, 1).to_frame().collect()
    }
    t1, t3, other = rows[(7, 1)], rows[(7, 3)], rows[(8, 1)]
    assert set(feature_names(["a", "b"])) <= set(t1)
    assert (t1["b_score"], t1["b_rel"], t1["b_rank"], t1["sources_hit"]) == (0.0, 0.0, 20, 1)  # b did not propose it
    assert (t1["a_rel"], t3["a_rel"]) == (1.0, 0.2 / 0.5)
    assert (t3["b_rank"], t3["sources_hit"]) == (0, 2)
    assert t1["artist_share"] == 0.5  # seeds 0 (art:x) and 2 (art:y); track 1 is by art:x
    assert t3["artist_share"] == 0.0
    assert (t1["num_seeds"], t1["has_title"], t1["category"]) == (2, 1, 3)
    assert t1["title_support"] == pytest.approx(math.log1p(2))  # two training playlists named "rock" (not 103)
    assert t1["popularity"] == pytest.approx(math.log1p(20))
    assert (other["num_seeds"], other["has_title"], other["title_support"], other["artist_share"]) == (0, 0, 0.0, 0.0)
    # a row's features do not depend on the other candidates: the blend-training challenge computes
    # them for its fit sample alone, labels carried along
    sample = candidate_table(lists, depth).where("track_idx = 3").withColumn("label", F.lit(1.0))
    alone = with_features(sample, q, data, depth, 100, 1).to_frame().collect()
    assert [r.asDict() for r in alone] == [{**t3, "label": 1.0}]


def test_feature_pass_over_the_cached_candidates_sorts_nothing_again(spark):
    """The pass needs whole playlists a batch. The candidate table is sorted by pid within its
    partitions and every feature is a broadcast join, so once its cache is built (the rank stage
    counts it first) Spark drops the pass's own sort: nothing above the cache sorts the wide rows."""
    data = _data(spark)
    q = _queries(spark, [(7, 0), (7, 2)], [(7, None, "rock", 3, 2), (8, None, None, 4, 0)])
    lists = {
        "a": spark.createDataFrame(
            [(7, 1, 0.5, 0), (7, 3, 0.2, 1), (8, 1, 0.9, 0)], "pid long, track_idx int, score double, rank int"
        )
    }
    candidates = candidate_table(lists, {"a": 10}).persist()
    candidates.count()
    frame = with_features(candidates, q, data, {"a": 10}, 100, 1).to_frame()
    plan = spark.sparkContext._jvm.PythonSQLUtils.explainString(frame._jdf.queryExecution(), "simple")
    above_the_cache, cached = plan.split("InMemoryTableScan", 1)
    assert "Sort [" not in above_the_cache and "Sort [pid" in cached, plan
    assert sorted((r.pid, r.track_idx) for r in frame.collect()) == [(7, 1), (7, 3), (8, 1)]
    candidates.unpersist()


def _training_rows(spark, n: int = 4000):
    """Feature rows where the label follows source a's rank (with noise) and nothing else matters."""
    rng = np.random.default_rng(0)
    names = feature_names(["a", "b"])
    values = rng.random((n, len(names)))
    a_rank = names.index("a_rank")
    values[:, a_rank] = rng.integers(0, 50, n)
    label = ((values[:, a_rank] < 10) ^ (rng.random(n) < 0.05)).astype(float)
    rows = [(i // 40, i, *map(float, v), float(y)) for i, (v, y) in enumerate(zip(values, label))]
    return spark.createDataFrame(rows, ["pid", "track_idx", *names, "label"])


@pytest.mark.parametrize("method", ["ranker", "gbt", "logistic"])
def test_fitted_blend_learns_the_signal_and_is_deterministic(spark, method):
    rows = _training_rows(spark, 16_000)  # fit rows > 10,000: trees sample their split candidates
    cfg = make_config([f"rank.blend.method={method}", "rank.blend.trees=10", "rank.blend.negatives_per_positive=2"])
    per_positive = cfg.rank.blend.negatives_per_positive
    blend = fit_blend(fit_sample(rows, per_positive, seed=3), ["a", "b"], cfg.rank.blend, seed=3)
    assert blend.info["method"] == method and blend.info["fit_positives"] > 500
    assert 0 < blend.info["negative_share"] < 1  # negatives were sampled down
    scored = blend.score(rows).join(rows.select("track_idx", "label", "a_rank"), "track_idx").toPandas()
    signal = scored.a_rank < 10  # what the labels follow, but for 5% flipped
    ordered = scored.score.rank()
    auc = (ordered[signal].sum() - signal.sum() * (signal.sum() + 1) / 2) / (signal.sum() * (~signal).sum())
    assert auc > 0.95
    if method in ("gbt", "ranker"):
        importances = blend.info["feature_importances"]
        assert max(importances, key=importances.get) == "a_rank"
    else:
        assert blend.info["coefficients"]["a_rank"] < 0  # a later rank, a lower score
    # the same model from the same rows however they are partitioned and ordered (a cluster's are not local mode's)
    shuffled = rows.repartition(3).orderBy(F.desc("track_idx"))
    again = fit_blend(fit_sample(shuffled, per_positive, seed=3), ["a", "b"], cfg.rank.blend, seed=3)
    again = again.score(rows).toPandas()
    assert np.array_equal(
        scored.sort_values("track_idx").score.to_numpy(), again.sort_values("track_idx").score.to_numpy()
    )


def test_ranker_fits_the_same_model_with_more_fit_partitions_than_task_slots(spark, monkeypatch):
    """A sample that `fixed_layout` would cut into more partitions than there are task slots (8
    here, on 2): xgboost.spark, given more partitions than workers, repartitioned by range of pid
    with bounds sampled by a seed from the RDD's id, so the model changed with what the session had
    run before (and the row order with the shuffle)."""
    monkeypatch.setattr(mpdrec.spark, "ROWS_PER_FIT_PARTITION", 2_000)
    rows = _training_rows(spark, 16_000)
    cfg = make_config(["rank.blend.method=ranker", "rank.blend.trees=10", "rank.blend.negatives_per_positive=2"])

    def booster(df) -> bytes:
        model = fit_blend(fit_sample(df, 2, seed=3), ["a", "b"], cfg.rank.blend, seed=3).model
        assert model is not None
        ranker: Any = model.stages[-1]
        return ranker.get_booster().save_raw("json")

    first = booster(rows)
    for _ in range(3):  # more RDDs in between: other ids for the next fit's
        spark.range(10).rdd.count()
    assert booster(rows.repartition(5).orderBy(F.desc("track_idx"))) == first


def test_fixed_blend_is_the_reciprocal_rank_sum_and_the_fallback_without_labels(spark):
    rows = _training_rows(spark, 200).withColumn("label", F.lit(0.0))
    cfg = make_config([])
    blend = fit_blend(fit_sample(rows, 5, seed=3), ["a", "b"], cfg.rank.blend, seed=3)
    assert blend.model is None and blend.info["reason"] == "no labelled fit rows"
    got = blend.score(rows).join(rows, ["pid", "track_idx"]).toPandas()
    expected = 1 / (RRF_K + got.a_rank) + 1 / (RRF_K + got.b_rank)
    np.testing.assert_allclose(got.score, expected)


def test_labels_mark_hidden_tracks_only(spark):
    rows = spark.createDataFrame([(1, 10), (1, 11), (2, 10)], "pid long, track_idx int")
    truth = spark.createDataFrame([(1, 11), (2, 99)], "pid long, track_idx int")
    got = sorted(tuple(r) for r in labelled(rows, truth).collect())
    assert got == [(1, 10, 0.0), (1, 11, 1.0), (2, 10, 0.0)]


def _best(df, column: str, n: int) -> set[tuple[int, int]]:
    """Each playlist's n best (pid, track_idx) by `column` (descending, then track_idx)."""
    return {
        (p, t)
        for p, g in df.groupby("pid")
        for t in g.sort_values([column, "track_idx"], ascending=[False, True]).track_idx[:n]
    }


def test_ranker_scores_are_xgboost_spark_transform_and_keep_cuts_to_a_superset_of_each_top(spark):
    rows = _training_rows(spark, 16_000)
    cfg = make_config(["rank.blend.method=ranker", "rank.blend.trees=10", "rank.blend.negatives_per_positive=2"])
    blend = fit_blend(fit_sample(rows, 2, seed=3), ["a", "b"], cfg.rank.blend, seed=3)
    reference = (
        blend.model.transform(rows)
        .select("pid", "track_idx", F.col("prediction").cast("double"))
        .toPandas()
        .sort_values("track_idx")
    )
    got = blend.score(rows).toPandas().sort_values("track_idx")
    np.testing.assert_array_equal(got.score.to_numpy(), reference.prediction.to_numpy())
    # each playlist's 7 best (score descending, then track_idx) survive the cut, where batches of 25
    # rows split each playlist's 40
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "25")
    try:
        cut = blend.score(rows, keep=7).toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert _best(cut, "score", 7) == _best(got, "score", 7)
    assert len(cut) < 0.6 * len(got)


def test_blends_scored_in_one_pass_score_as_each_alone_and_keep_each_top(spark):
    rows = _training_rows(spark, 16_000).withColumn("ncf_score", ((F.col("track_idx") * 7) % 13).cast("float"))
    blends = {}
    for method in ("ranker", "logistic", "fixed"):
        cfg = make_config([f"rank.blend.method={method}", "rank.blend.trees=10", "rank.blend.negatives_per_positive=2"])
        blends[method] = fit_blend(fit_sample(rows, 2, seed=3), ["a", "b"], cfg.rank.blend, seed=3)
    together = blend_scores(rows, blends, carried=("ncf_score",)).toPandas().sort_values("track_idx")
    assert list(together.columns) == ["pid", "track_idx", "ranker", "logistic", "fixed", "ncf_score"]
    base = rows.toPandas().sort_values("track_idx")
    transformed = {
        name: blends[name]
        .model.transform(rows)
        .select("track_idx", value.alias("v"))
        .toPandas()
        .sort_values("track_idx")
        .v.to_numpy()
        for name, value in [
            ("ranker", F.col("prediction").cast("double")),
            ("logistic", vector_to_array("probability")[1]),
        ]
    }
    expected = {
        **transformed,
        "fixed": 1 / (RRF_K + base.a_rank) + 1 / (RRF_K + base.b_rank),
        "ncf_score": base.ncf_score,
    }
    for name, values in expected.items():
        np.testing.assert_array_equal(together[name].to_numpy(), np.asarray(values), err_msg=name)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "25")  # batches split each playlist's 40 rows
    try:
        cut = blend_scores(rows, blends, keep=7, carried=("ncf_score",)).toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    for name in [*blends, "ncf_score"]:
        assert _best(cut, name, 7) == _best(together, name, 7), name
    assert len(cut) < 0.9 * len(together)
