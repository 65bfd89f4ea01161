"""Negative sampling: exact (never a positive), exactly 1:k, the configured distribution,
deterministic, fresh per epoch, and shards of near-equal size."""
from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from conftest import make_config
from mpdrec.etl.negatives import build_negatives, playlist_subset, sample_negatives, sampling_cdf

N_TRACKS = 400


@pytest.fixture(scope="module")
def interactions(spark):
    """300 playlists; track t is in a playlist with probability falling with t (popularity skew)."""
    rng = np.random.default_rng(5)
    rows = []
    for p in range(300):
        tracks = np.unique(np.minimum((rng.pareto(1.2, 40) * 20).astype(int), N_TRACKS - 1))
        rows += [(p, int(t), i, 1.0) for i, t in enumerate(tracks)]
    return spark.createDataFrame(rows, "playlist_idx int, track_idx int, pos int, weight float")


def test_draws_avoid_positives_even_when_they_dominate():
    cdf = sampling_cdf(np.ones(10, dtype=np.int64), 0.0)
    playlists = np.array([3, 7])
    offsets = np.array([0, 8, 9])
    positives = np.array([0, 1, 2, 3, 4, 5, 6, 7, 5])  # playlist 3 holds 8 of the 10 tracks
    pl, tr, draw = sample_negatives(playlists, offsets, positives, cdf, 3 * np.diff(offsets), seed=1, epoch=0)
    assert len(pl) == 3 * 9
    assert set(tr[pl == 3]) <= {8, 9} and 5 not in set(tr[pl == 7])
    again = sample_negatives(playlists, offsets, positives, cdf, 3 * np.diff(offsets), seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip((pl, tr, draw), again))


@pytest.fixture(scope="module")
def sampled(spark, interactions, tmp_path_factory):
    out = {}
    for beta in (0.0, 1.0):
        d = tmp_path_factory.mktemp(f"neg{beta}")
        manifest = build_negatives(spark, interactions, N_TRACKS, str(d), k=4, beta=beta, epochs=2, shards=4, seed=9)
        out[beta] = (manifest, spark.read.parquet(str(d)))
    return out


def test_never_a_positive_and_exactly_one_to_k(sampled, interactions):
    _, df = sampled[0.0]
    positives = interactions.select("playlist_idx", "track_idx")
    n_pos = positives.count()
    for epoch in (0, 1):
        e = df.where(f"epoch = {epoch}")
        assert e.where("label = 1").count() == n_pos
        assert e.where("label = 0").count() == 4 * n_pos
        assert e.where("label = 0").join(positives, ["playlist_idx", "track_idx"]).count() == 0
        per_playlist = {r.playlist_idx: (r.neg, r.pos) for r in e.groupBy("playlist_idx").agg(
            F.sum(1 - e.label).alias("neg"), F.sum(e.label).alias("pos")).collect()}
        assert all(neg == 4 * pos for neg, pos in per_playlist.values())


def test_uniform_versus_popularity(sampled, interactions):
    pop = {r.track_idx: r["count"] for r in interactions.groupBy("track_idx").count().collect()}
    head = [t for t, _ in sorted(pop.items(), key=lambda x: -x[1])[:10]]
    shares = {}
    for beta, (_, df) in sampled.items():
        neg = df.where("label = 0 and epoch = 0")
        counts = {r.track_idx: r["count"] for r in neg.groupBy("track_idx").count().collect()}
        total = sum(counts.values())
        shares[beta] = sum(counts.get(t, 0) for t in head) / total
        if beta == 0.0:  # uniform over all 400 tracks: every track drawn, none far from the mean
            assert len(counts) == N_TRACKS
            assert np.std(list(counts.values())) / np.mean(list(counts.values())) < 0.25
    assert shares[0.0] < 0.05  # 10 of 400 tracks, minus their positives
    assert shares[1.0] > 5 * shares[0.0]  # popularity sampling concentrates on the head


def test_deterministic_fresh_per_epoch_and_balanced(spark, sampled, interactions, tmp_path):
    manifest, df = sampled[0.0]
    again_dir = tmp_path / "again"
    build_negatives(spark, interactions, N_TRACKS, str(again_dir), k=4, beta=0.0, epochs=2, shards=4, seed=9)
    again = spark.read.parquet(str(again_dir))
    cols = ["epoch", "shard", "playlist_idx", "track_idx", "label"]
    assert sorted(map(tuple, df.select(cols).collect())) == sorted(map(tuple, again.select(cols).collect()))
    negs = [set(map(tuple, df.where(f"label = 0 and epoch = {e}").select("playlist_idx", "track_idx").collect()))
            for e in (0, 1)]
    # epochs are independent draws: their overlap is what independence predicts, per playlist
    # m candidate tracks and d = 4 x positives draws: m * (1 - (1 - 1/m)^d)^2 tracks in both sets
    n_pos = {r.playlist_idx: r["count"] for r in interactions.groupBy("playlist_idx").count().collect()}
    expected = sum((N_TRACKS - n) * (1 - (1 - 1 / (N_TRACKS - n)) ** (4 * n)) ** 2 for n in n_pos.values())
    assert len(negs[0] & negs[1]) == pytest.approx(expected, rel=0.05)
    lo, hi = manifest["shard_rows"]["min"], manifest["shard_rows"]["max"]
    assert hi <= 1.1 * lo


def _shard_rows(root: str, epoch: int, shard: int) -> tuple[list[str], list[tuple]]:
    """A shard's files and its rows, read in file-name order as an NCF rank reads them."""
    import glob

    import pyarrow.parquet as pq

    files = sorted(glob.glob(f"{root}/epoch={epoch}/shard={shard}/*.parquet"))
    rows = [r for f in files for r in zip(*pq.read_table(f).to_pydict().values())]
    return files, rows


def _root(df) -> str:
    """The directory a DataFrame of the negatives was read from."""
    return df.inputFiles()[0].replace("file://", "").split("/epoch=")[0]


def test_rows_in_a_shard_are_shuffled(sampled):
    """Written row order is random, not playlist by playlist (Spark's planned write can undo a sort)."""
    _, df = sampled[0.0]
    _, rows = _shard_rows(_root(df), 0, 0)
    pl = np.array([r[0] for r in rows])
    same_as_previous = float(np.mean(pl[1:] == pl[:-1]))
    assert len(pl) > 1000 and same_as_previous < 0.05  # grouped by playlist this would be ~0.97


def test_the_write_is_split_by_size_and_shards_keep_their_order(spark, sampled, interactions, tmp_path):
    """Tasks of 300 rows instead of one per shard: several files per shard, the same rows in the
    same shuffled order."""
    _, df = sampled[0.0]
    small = tmp_path / "small_tasks"
    build_negatives(spark, interactions, N_TRACKS, str(small), k=4, beta=0.0, epochs=2, shards=4, seed=9, task_rows=300)
    for epoch, shard in [(0, 0), (1, 3)]:
        files, rows = _shard_rows(str(small), epoch, shard)
        _, expected = _shard_rows(_root(df), epoch, shard)
        assert len(files) > 2 and rows == expected


def test_job_stage_reads_the_runs_interactions(spark, synth_dir, tmp_path):
    from mpdrec.etl.ingest import run_ingest
    from mpdrec.etl.stages import run_interactions, run_negatives, run_validation

    cfg = make_config([f"paths.mpd={synth_dir}", f"paths.run_dir={tmp_path}", "paths.challenge=",
                       "negatives.k=2", "negatives.shards=3", "negatives.epochs=1"])
    for stage in (run_ingest, run_validation, run_interactions):
        stage(spark, cfg)
    m = run_negatives(spark, cfg)
    assert m["negatives_per_epoch"] == 2 * m["positives"] > 0
    assert sorted(p.name for p in (tmp_path / "negatives" / "data" / "epoch=0").iterdir()) == [
        "shard=0", "shard=1", "shard=2"]
    assert run_negatives(spark, cfg)["skipped"] is True


def test_leave_one_out_set_holds_out_the_last_track(spark, interactions, tmp_path):
    """Each evaluated playlist's last track is out of training (no leak) and ranked against 99 distinct
    tracks that are none of its positives; the other playlists train on all their tracks."""
    data, eval_dir = tmp_path / "data", tmp_path / "eval"
    m = build_negatives(spark, interactions, N_TRACKS, str(data), k=4, beta=0.0, epochs=1, shards=2, seed=9,
                        eval_dir=str(eval_dir), eval_playlists=50, eval_negatives=99)
    loo = spark.read.parquet(str(eval_dir)).toPandas()
    assert m["eval_playlists"] == len(loo) == loo.playlist_idx.nunique() == 50
    rows = interactions.toPandas()
    last = rows.sort_values("pos").groupby("playlist_idx").track_idx.last()
    assert (loo.set_index("playlist_idx").track_idx == last.loc[loo.playlist_idx]).all()
    tracks = rows.groupby("playlist_idx").track_idx.apply(set)
    for r in loo.itertuples():
        assert len(r.negatives) == len(set(r.negatives)) == 99
        assert not set(r.negatives) & tracks[r.playlist_idx]
    train = spark.read.parquet(str(data)).where("label = 1").toPandas()
    held = set(zip(loo.playlist_idx, loo.track_idx))
    assert not held & set(zip(train.playlist_idx, train.track_idx))
    assert len(train) == len(rows) - 50
    per_playlist = spark.read.parquet(str(data)).groupBy("playlist_idx").agg(
        F.sum(1 - F.col("label")).alias("neg"), F.sum("label").alias("pos")).collect()
    assert all(r.neg == 4 * r.pos for r in per_playlist)
    negatives = spark.read.parquet(str(data)).where("label = 0").toPandas()
    assert not held & set(zip(negatives.playlist_idx, negatives.track_idx))
    again = tmp_path / "again"
    build_negatives(spark, interactions, N_TRACKS, str(tmp_path / "d2"), k=4, beta=0.0, epochs=1, shards=2, seed=9,
                    eval_dir=str(again), eval_playlists=50, eval_negatives=99)
    assert spark.read.parquet(str(again)).toPandas().equals(loo)


def test_playlist_subsets_are_seeded_and_whole(interactions):
    def playlists(df):
        return {r.playlist_idx for r in df.select("playlist_idx").distinct().collect()}

    random = playlist_subset(interactions, "random", 50, None, seed=3)
    assert len(playlists(random)) == 50 and playlists(random) == playlists(playlist_subset(interactions, "random", 50, None, 3))
    assert playlists(random) != playlists(playlist_subset(interactions, "random", 50, None, 4))
    chosen = interactions.join(random.select("playlist_idx").distinct(), "playlist_idx")
    assert chosen.count() == random.count()  # a chosen playlist keeps all its rows
    holding = playlists(interactions.where("track_idx = 0"))
    with_top = playlists(playlist_subset(interactions, "with_track", 40, None, seed=3))
    assert len(with_top) == min(40, len(holding)) and with_top <= holding
    assert playlist_subset(interactions, "all", 1, None, 3) is interactions
