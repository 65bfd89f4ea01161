"""Negatives: the job writes every training positive once, in shards of whole playlists; the NCF
input pipeline draws k per positive each epoch: exact (never a positive or a held-out track), exactly
1:k, the configured distribution, deterministic, fresh per epoch, shuffled."""

from __future__ import annotations

import glob

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import make_config
from mpdrec.etl.negatives import build_positives, playlist_subset
from mpdrec.io.fs import LocalFS
from mpdrec.models.ncf.data import NegativeDraws, describe_training_data, read_positive_keys, sampled_batches
from mpdrec.negative_sampling import draw_negatives, pair_keys, sampling_cdf

N_TRACKS = 400
K = 4


@pytest.fixture(scope="module")
def interactions(spark):
    """300 playlists; track t is in a playlist with probability falling with t (popularity skew)."""
    rng = np.random.default_rng(5)
    rows = []
    for p in range(300):
        tracks = np.unique(np.minimum((rng.pareto(1.2, 40) * 20).astype(int), N_TRACKS - 1))
        rows += [(p, int(t), i, 1.0) for i, t in enumerate(tracks)]
    return spark.createDataFrame(rows, "playlist_idx int, track_idx int, pos int, weight float")


@pytest.fixture(scope="module")
def written(spark, interactions, tmp_path_factory):
    """The job's output: 4 shards of positives, 50 leave-one-out playlists."""
    d = tmp_path_factory.mktemp("negatives")
    manifest = build_positives(
        spark,
        interactions,
        N_TRACKS,
        str(d / "data"),
        shards=4,
        seed=9,
        eval_dir=str(d / "eval"),
        eval_playlists=50,
        eval_negatives=99,
    )
    return manifest, d


def _shard_rows(root, shard: int) -> np.ndarray:
    table = pq.read_table(
        sorted(glob.glob(f"{root}/data/shard={shard}/*.parquet")), columns=["playlist_idx", "track_idx"]
    )
    return np.column_stack([table.column("playlist_idx").to_numpy(), table.column("track_idx").to_numpy()])


def _epoch(root, beta: float, epoch: int, held_out: np.ndarray, seed: int = 9) -> tuple[np.ndarray, ...]:
    """One epoch of a single rank over every shard, in batches of 1 + k rows (so exactly one pass)."""
    data = describe_training_data(LocalFS(), f"{root}/data", 1, (0, 0))
    keys = read_positive_keys(data.rank_files(0, 1), N_TRACKS)
    cdf = sampling_cdf(np.bincount(keys % N_TRACKS, minlength=N_TRACKS), beta)
    draws = NegativeDraws(K, cdf, (keys, held_out), seed)
    steps = data.steps_per_epoch(1, 1 + K, K)
    assert steps == len(keys)
    batches = list(sampled_batches(keys, draws, epoch, 0, 1 + K, steps))
    return tuple(np.concatenate(c) for c in zip(*batches))


def _held_out(root) -> np.ndarray:
    loo = pq.read_table(f"{root}/eval").to_pandas()
    return np.sort(pair_keys(loo.playlist_idx.to_numpy(), loo.track_idx.to_numpy(), N_TRACKS))


def test_draws_avoid_positives_even_when_they_dominate():
    cdf = sampling_cdf(np.ones(10, dtype=np.int64), 0.0)
    positives = np.sort(pair_keys(np.array([3] * 8 + [7]), np.array([0, 1, 2, 3, 4, 5, 6, 7, 5]), 10))
    playlists = np.array([3] * 24 + [7] * 3)  # playlist 3 holds 8 of the 10 tracks
    draws = np.r_[np.arange(24), np.arange(3)]
    tracks = draw_negatives(playlists, draws, [positives], cdf, seed=1, epoch=0)
    assert set(tracks[:24]) <= {8, 9} and 5 not in set(tracks[24:])
    assert np.array_equal(tracks, draw_negatives(playlists, draws, [positives], cdf, seed=1, epoch=0))
    with pytest.raises(ValueError, match="could not be given negatives"):
        draw_negatives(np.array([3]), np.array([0]), [np.sort(pair_keys(np.full(10, 3), np.arange(10), 10))], cdf, 1, 0)


def test_positives_are_written_once_in_shards_of_whole_playlists(written, interactions):
    manifest, root = written
    rows = [_shard_rows(root, s) for s in range(4)]
    assert all(len(r) for r in rows) and manifest["shards"] == 4
    owners = {}
    for s, r in enumerate(rows):
        for p in np.unique(r[:, 0]):
            assert owners.setdefault(int(p), s) == s  # a playlist lives in one shard
    everything = interactions.select("playlist_idx", "track_idx").toPandas()
    written_pairs = np.concatenate(rows)
    assert len(written_pairs) == manifest["positives"] == len(everything) - 50  # the held-out tracks are out
    assert len({tuple(x) for x in written_pairs}) == len(written_pairs)


def test_an_epoch_is_every_positive_with_k_negatives_never_a_positive(written, interactions):
    _, root = written
    held_out = _held_out(root)
    p, t, y = _epoch(root, 0.0, 0, held_out)
    all_pairs = interactions.select("playlist_idx", "track_idx").toPandas()
    positives = np.sort(pair_keys(all_pairs.playlist_idx.to_numpy(), all_pairs.track_idx.to_numpy(), N_TRACKS))
    drawn = pair_keys(p[y == 0], t[y == 0], N_TRACKS)
    assert not np.isin(drawn, positives).any()  # never a positive, the held-out tracks included
    trained = np.sort(pair_keys(p[y == 1], t[y == 1], N_TRACKS))
    assert np.array_equal(trained, np.setdiff1d(positives, held_out))  # every training positive, once
    assert np.array_equal(np.bincount(p[y == 0]), K * np.bincount(p[y == 1]))  # exactly 1:k per playlist
    assert np.all(y.reshape(-1, 1 + K) == np.r_[1, np.zeros(K)])  # each positive followed by its k negatives


def test_uniform_versus_popularity(written, interactions):
    _, root = written
    pop = interactions.groupBy("track_idx").count().toPandas().sort_values("count", ascending=False)
    head = pop.track_idx.to_numpy()[:10]
    shares = {}
    for beta in (0.0, 1.0):
        _, t, y = _epoch(root, beta, 0, _held_out(root))
        counts = np.bincount(t[y == 0], minlength=N_TRACKS)
        shares[beta] = counts[head].sum() / counts.sum()
        if beta == 0.0:  # uniform over all 400 tracks: every track drawn, none far from the mean
            assert (counts > 0).all() and np.std(counts) / np.mean(counts) < 0.25
    assert shares[0.0] < 0.05  # 10 of 400 tracks, minus their positives
    assert shares[1.0] > 5 * shares[0.0]  # popularity sampling concentrates on the head


def test_epochs_are_deterministic_fresh_and_shuffled(written, interactions):
    _, root = written
    held_out = _held_out(root)
    first = _epoch(root, 0.0, 0, held_out)
    assert all(np.array_equal(a, b) for a, b in zip(first, _epoch(root, 0.0, 0, held_out)))
    assert not np.array_equal(first[1], _epoch(root, 0.0, 0, held_out, seed=10)[1])
    second = _epoch(root, 0.0, 1, held_out)
    negs = [set(pair_keys(p[y == 0], t[y == 0], N_TRACKS).tolist()) for p, t, y in (first, second)]
    # epochs are independent draws: their overlap is what independence predicts, per playlist
    # m candidate tracks and d = 4 x training positives draws: m * (1 - (1 - 1/m)^d)^2 tracks in both sets
    n_pos = np.bincount(first[0][first[2] == 1])
    n_all = np.bincount(interactions.select("playlist_idx").toPandas().playlist_idx, minlength=len(n_pos))
    expected = sum((N_TRACKS - a) * (1 - (1 - 1 / (N_TRACKS - a)) ** (K * n)) ** 2 for n, a in zip(n_pos, n_all) if n)
    assert len(negs[0] & negs[1]) == pytest.approx(expected, rel=0.05)
    order = [p[y == 1] for p, _, y in (first, second)]
    assert np.mean(order[0][1:] == order[0][:-1]) < 0.05  # not playlist by playlist (~0.97 if it were)
    assert not np.array_equal(order[0], order[1])  # and a new order every epoch


def test_two_ranks_take_equal_full_batches_and_split_the_positives(written):
    _, root = written
    data = describe_training_data(LocalFS(), f"{root}/data", 2, (0, 0))
    steps = data.steps_per_epoch(2, 64, K)
    seen = []
    for rank in (0, 1):
        keys = read_positive_keys(data.rank_files(rank, 2), N_TRACKS)
        draws = NegativeDraws(K, sampling_cdf(np.ones(N_TRACKS), 0.0), (keys,), 9)
        batches = list(sampled_batches(keys, draws, 0, rank, 64, steps))
        assert len(batches) == steps and all(len(b[0]) == 64 for b in batches)
        p, t, y = (np.concatenate(c) for c in zip(*batches))
        seen.append(set(pair_keys(p[y == 1], t[y == 1], N_TRACKS).tolist()))
        assert seen[-1] == set(keys.tolist())  # every positive of the rank (the shorter one wraps around)
    assert not seen[0] & seen[1]


def test_job_stage_reads_the_runs_interactions(spark, synth_dir, tmp_path):
    from mpdrec.etl.ingest import run_ingest
    from mpdrec.etl.stages import run_interactions, run_negatives, run_validation

    cfg_sets = [f"paths.mpd={synth_dir}", f"paths.run_dir={tmp_path}", "paths.challenge=", "negatives.shards=3"]
    cfg = make_config(cfg_sets)
    for stage in (run_ingest, run_validation, run_interactions):
        stage(spark, cfg)
    m = run_negatives(spark, cfg)
    assert m["positives"] > 0
    assert sorted(p.name for p in (tmp_path / "negatives" / "data").iterdir() if p.is_dir()) == [
        "shard=0",
        "shard=1",
        "shard=2",
    ]
    assert run_negatives(spark, cfg)["skipped"] is True
    # k and beta are the trainer's: changing them does not rewrite the positives
    assert run_negatives(spark, make_config([*cfg_sets, "negatives.k=8"]))["skipped"] is True


def test_leave_one_out_set_holds_out_the_last_track(spark, written, interactions, tmp_path):
    """Each evaluated playlist's last track is out of training (no leak) and ranked against 99 distinct
    tracks that are none of its positives; the other playlists train on all their tracks."""
    m, root = written
    loo = spark.read.parquet(str(root / "eval")).toPandas()
    assert m["eval_playlists"] == len(loo) == loo.playlist_idx.nunique() == 50
    rows = interactions.toPandas()
    last = rows.sort_values("pos").groupby("playlist_idx").track_idx.last()
    assert (loo.set_index("playlist_idx").track_idx == last.loc[loo.playlist_idx]).all()
    tracks = rows.groupby("playlist_idx").track_idx.apply(set)
    for r in loo.itertuples():
        assert len(r.negatives) == len(set(r.negatives)) == 99
        assert not set(r.negatives) & tracks[r.playlist_idx]
    train = np.concatenate([_shard_rows(root, s) for s in range(4)])
    assert not set(zip(loo.playlist_idx, loo.track_idx)) & set(map(tuple, train.tolist()))
    again = tmp_path / "again"
    build_positives(
        spark,
        interactions,
        N_TRACKS,
        str(tmp_path / "d2"),
        shards=2,
        seed=9,
        eval_dir=str(again),
        eval_playlists=50,
        eval_negatives=99,
    )
    assert spark.read.parquet(str(again)).toPandas().equals(loo)


def test_playlist_subsets_are_seeded_and_whole(interactions):
    def playlists(df):
        return {r.playlist_idx for r in df.select("playlist_idx").distinct().collect()}

    random = playlist_subset(interactions, "random", 50, None, seed=3)
    assert len(playlists(random)) == 50 and playlists(random) == playlists(
        playlist_subset(interactions, "random", 50, None, 3)
    )
    assert playlists(random) != playlists(playlist_subset(interactions, "random", 50, None, 4))
    chosen = interactions.join(random.select("playlist_idx").distinct(), "playlist_idx")
    assert chosen.count() == random.count()  # a chosen playlist keeps all its rows
    holding = playlists(interactions.where("track_idx = 0"))
    with_top = playlists(playlist_subset(interactions, "with_track", 40, None, seed=3))
    assert len(with_top) == min(40, len(holding)) and with_top <= holding
    assert playlist_subset(interactions, "all", 1, None, 3) is interactions
