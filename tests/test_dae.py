"""The playlist autoencoder for real: horovodrun with two Gloo ranks, a run killed after its first
epoch that resumes to the same model, the rank stage's source, feature and without-variant, and the
input pipeline and loss it relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, files_under, horovod_env, make_config, negatives_run, rank_digests
from mpdrec.models.dae.data import Corruption, PlaylistRows, TitleWords, Vocabulary, epoch_steps, steps_per_epoch

TRAIN = [sys.executable, str(ROOT / "jobs" / "train_dae.py")]
TRAIN_ON_TWO_RANKS = [  # the main job's launch: two Gloo ranks on this machine
    str(Path(sys.executable).parent / "horovodrun"),
    *("-np", "2", "-H", "localhost:2", "--gloo"),
    *TRAIN,
]
SMALL = ["dae.hidden=32", "dae.batch_size=32", "dae.sampled=256", "dae.lr=0.01", "dae.patience=0"]
OUTPUTS = {
    "_manifest.json",
    "history.json",
    "history.png",
    "track_factors/part-0.parquet",
    "playlist_factors/part-0.parquet",
}


@pytest.fixture(scope="module")
def run_dir(spark, synth_dir, tmp_path_factory) -> Path:
    return negatives_run(spark, synth_dir, tmp_path_factory.mktemp("dae_run"))


def _sets(run_dir: Path, extra: list[str]) -> list[str]:
    return [arg for s in [f"paths.run_dir={run_dir}", *SMALL, *extra] for arg in ("--set", s)]


@pytest.fixture(scope="module")
def trained(run_dir):
    cmd = [*TRAIN_ON_TWO_RANKS, *_sets(run_dir, ["dae.epochs=10"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=horovod_env(), timeout=600, cwd=run_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_two_ranks_train_in_sync_and_rank0_writes_the_best_epoch(run_dir, trained):
    digests = rank_digests(trained.stdout)
    assert sorted(digests) == [0, 1] and digests[0] == digests[1]
    epoch_lines = [line for line in trained.stdout.splitlines() if "dae epoch" in line]
    assert len(epoch_lines) == 10 and all(line.startswith("[0]") for line in epoch_lines)  # rank 0 reports
    stage = run_dir / "dae"
    assert files_under(stage) == OUTPUTS  # no checkpoints left behind
    assert not list((run_dir / "_staging").glob("dae-*"))
    manifest = json.loads((stage / "_manifest.json").read_text())
    history = json.loads((stage / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 11)) and manifest["ranks"] == 2
    assert history[-1]["loss"] < history[0]["loss"]
    monitored = [h[manifest["monitor"]] for h in history]
    assert manifest["best_epoch"] == 1 + int(np.argmax(monitored))
    assert manifest["metrics"] == {k: history[manifest["best_epoch"] - 1][k] for k in ("hr@10", "ndcg@10", "auc")}
    # ten epochs on 3,000 playlists: well above popularity on the same candidates
    assert manifest["metrics"]["hr@10"] > manifest["popularity"]["hr@10"] + 0.05


def test_exported_factors_are_the_vocabulary_and_the_query_playlists(spark, run_dir, trained):
    """track_factors: every track of the vocabulary, (W_t, b_t); playlist_factors: every query
    playlist (not the training MPD's) with seeds or title words, (h, 1) with |h| < 1 (tanh)."""
    from pyspark.sql import functions as F

    manifest = json.loads((run_dir / "dae" / "_manifest.json").read_text())
    tracks = spark.read.parquet(str(run_dir / "dae" / "track_factors")).toPandas()
    playlists = spark.read.parquet(str(run_dir / "dae" / "playlist_factors")).toPandas()
    assert len(tracks) == manifest["vocabulary"] == tracks["track_idx"].nunique()
    assert {len(f) for f in tracks["features"]} == {33}
    interactions = spark.read.parquet(str(run_dir / "interactions" / "data"))
    ids = spark.read.parquet(str(run_dir / "interactions" / "playlist_ids"))
    queries = ids.where(F.col("kind") != "mpd")
    with_seeds = {r.playlist_idx for r in queries.join(interactions, "playlist_idx", "left_semi").collect()}
    exported = set(playlists["playlist_idx"])
    assert with_seeds < exported and len(exported) == manifest["query_playlists"]  # and title-only ones
    assert manifest["title_words"] > 0
    titled = {r.playlist_idx for r in queries.where(F.length("name_norm") > 0).collect()}
    assert exported - with_seeds <= titled
    codes = np.stack(playlists["features"].to_numpy())
    assert codes.shape[1] == 33 and np.all(codes[:, -1] == 1.0) and np.abs(codes[:, :-1]).max() < 1.0


def test_killed_run_resumes_to_the_uninterrupted_model(run_dir, tmp_path):
    """One rank killed once epoch 1's checkpoint is written: nothing is published, and the rerun
    resumes after epoch 1 and ends with the weights of an uninterrupted run on a copy of the data."""
    import shutil

    copy, reference = tmp_path / "run", tmp_path / "reference"
    for stage in ("interactions", "negatives"):
        shutil.copytree(run_dir / stage, copy / stage)
        shutil.copytree(run_dir / stage, reference / stage)
    config = ["dae.epochs=3"]
    whole = subprocess.run(
        [*TRAIN, *_sets(reference, config)], capture_output=True, text=True, env=horovod_env(), timeout=600
    )
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]

    job = [*TRAIN, *_sets(copy, config)]
    proc = subprocess.Popen(
        job, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=horovod_env(), start_new_session=True
    )
    first = None
    for line in proc.stdout:
        if "epoch 1/3" in line:  # printed after the epoch's checkpoint is complete
            first = line
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert first is not None and proc.returncode == -signal.SIGKILL
    assert not (copy / "dae" / "_manifest.json").exists()

    again = subprocess.run(job, capture_output=True, text=True, env=horovod_env(), timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming after epoch 1" in again.stdout
    assert [h["epoch"] for h in json.loads((copy / "dae" / "history.json").read_text())] == [1, 2, 3]
    assert rank_digests(again.stdout) == rank_digests(whole.stdout) and len(rank_digests(whole.stdout)) == 1
    rerun = subprocess.run(job, capture_output=True, text=True, env=horovod_env(), timeout=600)
    assert rerun.returncode == 0 and "up to date" in rerun.stdout


def test_rank_stage_ranks_with_the_autoencoder_and_without_it(spark, run_dir, trained):
    """dae in rank.models: rank/dae is a validated submission, the blend has dae's score, rank and
    dot among its features, final_without_dae has none of them, and the report compares final with
    it and puts the autoencoder in its leave-one-out table."""
    from mpdrec.evaluation import evaluate, markdown
    from mpdrec.lists.assemble import FINAL, WITHOUT_DAE, blend_variants, submissions
    from mpdrec.rank.stage import run_rank

    cfg = make_config(
        [
            f"paths.run_dir={run_dir}",
            "paths.challenge=",
            "rank.models=[popularity,title,cooc,dae]",
            "rank.ncf_model=null",
            "rank.cooc_neighbours=50",
            "rank.blend.trees=10",
        ]
    )
    manifest = run_rank(spark, cfg)
    names = {"popularity", "title", "cooc", "dae", FINAL, WITHOUT_DAE}
    assert set(manifest["submission"]["models"]) == names
    with_dae = set(manifest["blend"]["feature_importances"])
    assert {"dae_score", "dae_rank", "dae_rel", "dae_dot"} <= with_dae
    assert set(manifest["blend_variants"][WITHOUT_DAE]["feature_importances"]) == with_dae - {
        "dae_score",
        "dae_rank",
        "dae_rel",
        "dae_dot",
    }
    assert manifest["submission"]["candidates"]["recall"]["dae"] > 0
    report = evaluate(
        spark,
        str(run_dir),
        submissions(cfg.rank),
        FINAL,
        cfg.seed,
        variants=tuple(blend_variants(cfg.rank)),
        leave_one_out=("als", "dae"),
    )
    assert report["models"]["dae"]["overall"]["ndcg"] > report["models"]["popularity"]["overall"]["ndcg"]
    diff = report["final_vs_variants"][WITHOUT_DAE]["ndcg"]
    got = report["models"][FINAL]["overall"]["ndcg"] - report["models"][WITHOUT_DAE]["overall"]["ndcg"]
    assert diff["difference"] == pytest.approx(got, abs=1e-9)
    dae = json.loads((run_dir / "dae" / "_manifest.json").read_text())
    assert report["leave_one_out"]["dae"] == dae["metrics"]
    assert f"## Final minus {WITHOUT_DAE}" in markdown(report)


def _vocabulary() -> Vocabulary:
    return Vocabulary.of(np.array([3.0, 1.0, 0.0, 5.0, 2.0]), min_playlists=2, max_tracks=10, beta=1.0)


def test_vocabulary_keeps_tracks_in_enough_playlists_and_samples_by_popularity():
    v = _vocabulary()
    assert v.tracks.tolist() == [0, 3, 4] and v.row_of.tolist() == [0, -1, -1, 1, 2]
    assert np.exp(v.log_q).tolist() == pytest.approx([0.3, 0.5, 0.2])
    draws = v.draw(np.random.default_rng(0), 20_000)
    assert np.bincount(draws, minlength=3) / 20_000 == pytest.approx([0.3, 0.5, 0.2], abs=0.02)
    capped = Vocabulary.of(np.array([3.0, 1.0, 0.0, 5.0, 3.0]), min_playlists=1, max_tracks=2, beta=1.0)
    assert capped.tracks.tolist() == [0, 3]  # the two most popular; track 0 before 4 at equal counts


def _titles(tmp_path: Path) -> TitleWords:
    """Titles of playlists 5, 7, 9 (training) and 11 (a query): "rock" is in two training titles."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "playlist_ids").mkdir()
    pq.write_table(
        pa.table(
            {
                "playlist_idx": [9, 5, 7, 11],
                "name_norm": ["rock", "rock party", "chill", "rock chill"],
                "kind": ["mpd", "mpd", "mpd", "validation"],
            }
        ),
        tmp_path / "playlist_ids" / "part-0.parquet",
    )
    return TitleWords.read(str(tmp_path / "playlist_ids"), min_playlists=2)


def test_title_words_in_enough_training_playlists_are_inputs(tmp_path):
    titles = _titles(tmp_path)
    assert titles.count == 1  # "rock" (5 and 9); "chill" is in one training title, "party" in one
    starts, words = titles.of(np.array([5, 7, 11, 12]))
    assert starts.tolist() == [0, 1, 1, 2, 2] and words.tolist() == [0, 0]  # 11 is a query: its words count
    assert TitleWords.read(str(tmp_path / "playlist_ids"), min_playlists=0).count == 0


def test_playlists_drop_tracks_outside_the_vocabulary_and_batch_whole(tmp_path):
    titles = _titles(tmp_path)
    rows = PlaylistRows.of(np.array([7, 5, 7, 5, 9]), np.array([3, 0, 1, 4, 1]), _vocabulary(), titles)
    assert rows.ids.tolist() == [5, 7] and len(rows) == 2  # playlist 9 has only track 1: out
    got, segment = rows.batch(np.array([1, 0]))
    assert got.tolist() == [1, 0, 2] and segment.tolist() == [0, 1, 1]  # 7: track 3; 5: tracks 0, 4
    inputs, input_segment, is_track = rows.inputs(np.array([1, 0]))
    assert inputs.tolist() == [1, 0, 2, 3] and input_segment.tolist() == [0, 1, 1, 1]  # 5's "rock": row 3 + 0
    assert is_track.tolist() == [True, True, True, False]
    queries = PlaylistRows.of(np.array([5]), np.array([0]), _vocabulary(), titles, also=np.array([11, 12]))
    assert queries.ids.tolist() == [5, 11, 12] and np.diff(queries.word_starts).tolist() == [1, 1, 0]
    assert queries.subset(np.array([0, 1])).inputs(np.array([1]))[0].tolist() == [3]  # 11: its title alone


def test_epoch_steps_see_every_playlist_draw_only_negatives_and_repeat_by_seed():
    v = Vocabulary.of(np.full(50, 3.0), 1, 50, 0.75)
    rng = np.random.default_rng(1)
    playlist_idx = np.repeat(np.arange(10), 4)
    rows = PlaylistRows.of(playlist_idx, rng.integers(0, 50, 40), v, TitleWords.none())
    steps = steps_per_epoch([len(rows), 7], 3)
    assert steps == 4
    corruption = Corruption(keep=0.5, title_only=0.0)
    first = list(epoch_steps(rows, v, steps, 3, 20, corruption, (1, 0, 0)))
    assert len(first) == 4 and all(s.playlists == 3 for s in first)
    seen = {int(r) for s in first for r in s.inputs}
    assert seen == set(rows.rows.tolist())  # 12 batch places for 10 playlists: every one at least once
    for s in first:
        assert np.array_equal(s.columns[s.target], s.inputs) and not np.isin(s.sampled, s.columns).any()
        assert s.sampled_log_q == pytest.approx(np.log(20 / 50) * np.ones(len(s.sampled)))
        lengths = np.bincount(s.input_segment)[s.input_segment]
        assert set(np.round(s.weight * np.sqrt(lengths), 6)) <= {0.0, 2.0}  # dropped, or kept / keep
    again = list(epoch_steps(rows, v, steps, 3, 20, corruption, (1, 0, 0)))
    assert all(np.array_equal(a.inputs, b.inputs) and np.array_equal(a.weight, b.weight) for a, b in zip(first, again))
    other = list(epoch_steps(rows, v, steps, 3, 20, corruption, (1, 1, 0)))
    assert any(not np.array_equal(a.inputs, b.inputs) for a, b in zip(first, other))


def test_title_only_playlists_are_encoded_from_their_words_alone(tmp_path):
    """Shown by title alone (title_only 1.0 here), a playlist's tracks weigh 0 and its words
    1 / |words|^1/2, as a title-only query is encoded; its tracks are still the targets."""
    v, titles = _vocabulary(), _titles(tmp_path)
    rows = PlaylistRows.of(np.array([5, 5, 7]), np.array([0, 4, 3]), v, titles)
    (step,) = epoch_steps(rows, v, 1, 2, 4, Corruption(keep=0.5, title_only=0.999999), (1, 0, 0))
    by_row = dict(zip(zip(step.input_segment.tolist(), step.inputs.tolist()), step.weight.tolist()))
    at = {5: int(step.input_segment[step.inputs == 0][0]), 7: int(step.input_segment[step.inputs == 1][0])}
    assert by_row[(at[5], 3)] == pytest.approx(1.0)  # 5's one word, alone
    assert by_row[(at[5], 0)] == by_row[(at[5], 2)] == 0.0  # its tracks: not shown
    assert by_row[(at[7], 1)] in (0.0, pytest.approx(2.0))  # 7 has no title word: its track, dropped out or kept
    assert sorted(step.columns[step.target].tolist()) == [0, 1, 2]  # every track is still a target


def test_loss_is_the_multinomial_likelihood_when_every_track_is_a_column():
    """No sampled columns and every track among the batch's: the loss is the full softmax's negative
    log-likelihood per playlist (here with a title word as an input, nothing dropped and no L2),
    computed again in numpy."""
    import tensorflow as tf

    from mpdrec.models.dae.data import input_weights
    from mpdrec.models.dae.model import PlaylistAutoencoder

    model = PlaylistAutoencoder(tracks=4, words=1, hidden=3, seed=2)
    rows, segment = np.array([0, 2, 1, 3], np.int32), np.array([0, 0, 1, 1], np.int32)
    inputs, input_segment = np.r_[rows, 4].astype(np.int32), np.r_[segment, 1].astype(np.int32)  # word: playlist 1
    columns, target = np.unique(rows, return_inverse=True)
    batch = {
        "inputs": tf.constant(inputs),
        "input_segment": tf.constant(input_segment),
        "weight": tf.constant(input_weights(input_segment, 2)),
        "segment": tf.constant(segment),
        "target": tf.constant(target.astype(np.int32)),
        "playlists": tf.constant(2),
        "columns": tf.constant(columns.astype(np.int32)),
        "sampled": tf.zeros([0], tf.int32),
        "sampled_log_q": tf.zeros([0], tf.float32),
    }
    loss = float(model.loss(batch, l2=0.0))
    e, c, w, b = (v.numpy() for v in model.weights())
    x = np.zeros((2, 5))
    x[input_segment, inputs] = 1.0
    h = np.tanh((x / np.sqrt(x.sum(1, keepdims=True))) @ e + c)
    logits = h @ w.T + b
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert loss == pytest.approx(-(x[:, :4] * log_p).sum() / 2, rel=1e-5)


def test_lazy_adam_is_adam_where_every_row_moves_and_leaves_other_rows_alone():
    """Three steps on a 4 x 2 table and a bias: with every row in every (row-sparse, repeated-row)
    gradient, LazyAdam's weights are Keras's legacy Adam's; a row without gradient keeps its weights
    and moments."""
    import tensorflow as tf

    from mpdrec.models.dae.lazy_adam import LazyAdam

    start = np.arange(8, dtype=np.float32).reshape(4, 2) / 10
    table, bias = tf.Variable(start), tf.Variable(np.ones(2, np.float32))
    ref_table, ref_bias = tf.Variable(start), tf.Variable(np.ones(2, np.float32))
    lazy, reference = LazyAdam([table, bias], 0.01), tf.keras.optimizers.legacy.Adam(0.01)
    rng = np.random.default_rng(0)
    for _ in range(3):
        rows = tf.constant([0, 1, 2, 3, 1])  # row 1 twice: its gradients add up
        values = tf.constant(rng.normal(size=(5, 2)).astype(np.float32))
        dense = tf.constant(rng.normal(size=2).astype(np.float32))
        lazy.apply([tf.IndexedSlices(values, rows, tf.constant([4, 2])), dense], [table, bias])
        reference.apply_gradients([(tf.IndexedSlices(values, rows, tf.constant([4, 2])), ref_table), (dense, ref_bias)])
    assert table.numpy() == pytest.approx(ref_table.numpy(), abs=1e-6)
    assert bias.numpy() == pytest.approx(ref_bias.numpy(), abs=1e-6)

    before, moments = table.numpy().copy(), lazy.m[0].numpy().copy()
    lazy.apply([tf.IndexedSlices(tf.ones((1, 2)), tf.constant([2]), tf.constant([4, 2])), tf.zeros(2)], [table, bias])
    after = table.numpy()
    assert np.array_equal(np.delete(after, 2, 0), np.delete(before, 2, 0))  # only row 2 moved
    assert np.array_equal(np.delete(lazy.m[0].numpy(), 2, 0), np.delete(moments, 2, 0))
    assert not np.array_equal(after[2], before[2])
