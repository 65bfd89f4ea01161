"""NCF training for real: horovodrun with two Gloo ranks, the same training through horovod.spark.run
on local[2], a run killed after its first epoch that resumes at the second, and the input pipeline
and leave-one-out metrics it relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from conftest import ROOT, files_under, horovod_env, make_config, negatives_run, rank_digests
from mpdrec.errors import InputError
from mpdrec.metrics.leave_one_out import METRICS, balanced, metric_sums, summarize
from mpdrec.models.leave_one_out import read_leave_one_out
from mpdrec.models.ncf.data import describe_training_data, labelled_batches

# tiny data, a few dozen steps per epoch: learning rates far above the defaults
GMF = ["ncf.model=gmf", "ncf.factors=16", "ncf.batch_size=4096", "ncf.lr=0.25", "ncf.dense_lr=0.05", "ncf.patience=0"]
TRAIN_NCF_ON_TWO_RANKS = [  # the main job's launch: two Gloo ranks on this machine
    str(Path(sys.executable).parent / "horovodrun"),
    *("-np", "2", "-H", "localhost:2", "--gloo"),
    sys.executable,
    str(ROOT / "jobs" / "train_ncf.py"),
]
OUTPUTS = {
    "_manifest.json",
    "model.keras",
    "head.keras",
    "history.json",
    "history.png",
    "confusion.png",
    "embeddings/playlists.parquet",
    "embeddings/tracks.parquet",
}


@pytest.fixture(scope="module")
def run_dir(spark, synth_dir, tmp_path_factory) -> Path:
    return negatives_run(spark, synth_dir, tmp_path_factory.mktemp("ncf_run"))


def _sets(run_dir: Path, extra: list[str]) -> list[str]:
    return [arg for s in [f"paths.run_dir={run_dir}", *GMF, *extra] for arg in ("--set", s)]


@pytest.fixture(scope="module")
def horovodrun_result(run_dir):
    cmd = [*TRAIN_NCF_ON_TWO_RANKS, *_sets(run_dir, ["ncf.epochs=3"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=horovod_env(), timeout=600, cwd=run_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_horovodrun_two_ranks_train_in_sync_and_rank0_writes(run_dir, horovodrun_result):
    out = horovodrun_result.stdout
    digests = rank_digests(out)
    assert sorted(digests) == [0, 1] and digests[0] == digests[1]
    epoch_lines = [line for line in out.splitlines() if "ncf gmf epoch" in line]
    assert len(epoch_lines) == 3 and all(line.startswith("[0]") for line in epoch_lines)  # rank 0 reports
    model_dir = run_dir / "ncf" / "gmf"
    assert files_under(model_dir) == OUTPUTS  # no checkpoints or other ranks' files left behind
    assert not list((run_dir / "ncf" / "_staging").glob("*"))
    manifest = json.loads((model_dir / "_manifest.json").read_text())
    assert manifest["ranks"] == 2 and manifest["lr"] == pytest.approx(0.5)  # scaled by the ranks
    history = json.loads((model_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all({"loss", "hr@10", "ndcg@10", "auc", "samples_per_s"} <= set(h) for h in history)
    assert history[-1]["loss"] < history[0]["loss"]
    best = manifest["metrics"]
    monitored = [h[manifest["monitor"]] for h in history]
    assert manifest["best_epoch"] == 1 + int(np.argmax(monitored))  # the first epoch of the best monitored value
    assert best == {k: history[manifest["best_epoch"] - 1][k] for k in METRICS}
    assert best["hr@10"] > 0.3 and best["auc"] > 0.6  # random ranking of 100 candidates: 0.10 and 0.5
    test = manifest["balanced"]["last"]  # the NNCF study's balanced test, over both ranks' playlists
    assert test == history[-1]["balanced"] and test["pairs"] == manifest["eval_playlists"]
    assert (
        test["true_positive"] + test["false_negative"]
        == test["true_negative"] + test["false_positive"]
        == test["pairs"]
    )
    assert test["roc_auc"] > 0.6


def test_exported_model_and_embeddings_score_like_training(run_dir, horovodrun_result):
    """model.keras loads on its own and its scores are the exported embeddings' GMF products."""
    import tensorflow as tf

    model = tf.keras.models.load_model(run_dir / "ncf" / "gmf" / "model.keras", compile=False)
    playlists = pq.read_table(run_dir / "ncf" / "gmf" / "embeddings" / "playlists.parquet").to_pandas()
    tracks = pq.read_table(run_dir / "ncf" / "gmf" / "embeddings" / "tracks.parquet").to_pandas()
    manifest = json.loads((run_dir / "ncf" / "gmf" / "_manifest.json").read_text())
    assert len(playlists) == manifest["num_playlists"] and len(tracks) == manifest["num_tracks"]
    p, t = np.array([0, 5, 17]), np.array([3, 3, 40])
    kernel, bias = model.get_layer("logit").get_weights()
    pe = np.stack(playlists.gmf_playlist.to_numpy()[p])
    te = np.stack(tracks.gmf_track.to_numpy()[t])
    expected = (pe * te) @ kernel[:, 0] + bias[0]
    got = model([tf.constant(p, tf.int32), tf.constant(t, tf.int32)]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_exported_model_is_the_best_epoch_not_the_last(run_dir, tmp_path):
    """GMF with 64 factors at learning rate 1.0 (2.0 on two ranks) overfits the tiny data after its
    second epoch: NDCG@10, the monitor, peaks at epoch 2 and is well below that by epoch 4. The
    exported model.keras and embeddings must be epoch 2's: they score the leave-one-out set exactly
    as epoch 2's evaluation reported (its balanced test too), not as the last epoch's."""
    import shutil

    import tensorflow as tf

    from mpdrec.models.ncf.train import _loo_scores

    run = tmp_path / "run"  # a copy: run_dir's gmf is the other tests'
    for stage in ("interactions", "negatives"):
        shutil.copytree(run_dir / stage, run / stage)
    cmd = [
        *TRAIN_NCF_ON_TWO_RANKS,
        *_sets(run, ["ncf.epochs=4", "ncf.factors=64", "ncf.lr=1.0", "ncf.monitor=ndcg@10"]),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=horovod_env(), timeout=600, cwd=run)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = run / "ncf" / "gmf"
    manifest = json.loads((out / "_manifest.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and manifest["monitor"] == "ndcg@10"
    monitored = [h["ndcg@10"] for h in history]
    best = manifest["best_epoch"]
    assert best == 1 + int(np.argmax(monitored)) and best < 4
    assert monitored[best - 1] - monitored[-1] > 0.01  # the setup: the last epoch's model scores visibly worse
    reported = {k: history[best - 1][k] for k in METRICS}
    assert manifest["metrics"] == reported and manifest["balanced"]["best"] == history[best - 1]["balanced"]

    loo = read_leave_one_out(str(run / "negatives" / "eval"))
    model = tf.keras.models.load_model(out / "model.keras", compile=False)
    score = tf.function(
        lambda p, t: model([p, t], training=False), input_signature=[tf.TensorSpec([None], tf.int32)] * 2
    )
    scores = _loo_scores(score, loo, slice(None))
    assert summarize(metric_sums(scores)) == pytest.approx(reported, abs=1e-6)
    assert summarize(metric_sums(scores)) != pytest.approx({k: history[-1][k] for k in METRICS}, abs=1e-6)
    assert balanced(scores[:, 0], scores[:, 1]) == pytest.approx(manifest["balanced"]["best"], abs=1e-9)
    # the exported embeddings are that epoch's too: their GMF products, through the model's logit layer
    playlists = np.stack(pq.read_table(out / "embeddings" / "playlists.parquet").column("gmf_playlist").to_pylist())
    tracks = np.stack(pq.read_table(out / "embeddings" / "tracks.parquet").column("gmf_track").to_pylist())
    kernel, bias = model.get_layer("logit").get_weights()
    products = playlists[loo.playlists][:, None, :].astype(np.float64) * tracks[loo.candidates]
    np.testing.assert_allclose(products @ kernel[:, 0] + bias[0], scores, rtol=1e-4, atol=1e-4)


def test_horovod_spark_run_trains_the_same_model(spark, run_dir, horovodrun_result):
    """ncf.launcher=spark runs the same function on two Spark tasks: same ranks, same weights."""
    from mpdrec.models.ncf.launch import launch

    cfg = make_config(
        [
            f"paths.run_dir={run_dir}",
            *GMF,
            "ncf.epochs=3",
            "ncf.launcher=spark",
            "ncf.num_proc=2",
            "spark.master=local[2]",
        ]
    )
    summaries = sorted(launch(cfg, force=True), key=lambda s: s["rank"])
    assert [s["rank"] for s in summaries] == [0, 1]
    assert summaries[0]["weights_digest"] == summaries[1]["weights_digest"] == rank_digests(horovodrun_result.stdout)[0]
    assert summaries[0]["manifest"]["ranks"] == 2 and summaries[1]["manifest"] is None


def test_killed_run_resumes_after_its_last_epoch(run_dir, tmp_path):
    job = [
        sys.executable,
        str(ROOT / "jobs" / "train_ncf.py"),
        *_sets(run_dir, ["ncf.epochs=3", "ncf.model=mlp", "rank.ncf_model=mlp", "ncf.layers=[32,16]"]),
    ]
    proc = subprocess.Popen(
        job, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=horovod_env(), start_new_session=True
    )
    first = None
    for line in proc.stdout:
        if "epoch 1/3" in line:
            first = line  # printed after the epoch's checkpoint is complete
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert first is not None and proc.returncode == -signal.SIGKILL
    assert not (run_dir / "ncf" / "mlp" / "_manifest.json").exists()

    again = subprocess.run(job, capture_output=True, text=True, env=horovod_env(), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming after epoch 1" in again.stdout
    epochs = [
        line.split("epoch ")[1].split(":")[0]
        for line in again.stdout.splitlines()
        if " epoch " in line and "/3:" in line
    ]
    assert epochs == ["2/3", "3/3"]
    history = json.loads((run_dir / "ncf" / "mlp" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert f"loss {history[0]['loss']:.4f}" in first and f"hr@10 {history[0]['hr@10']:.4f}" in first
    assert files_under(run_dir / "ncf" / "mlp") == OUTPUTS
    rerun = subprocess.run(job, capture_output=True, text=True, env=horovod_env(), timeout=600)
    assert rerun.returncode == 0 and "up to date" in rerun.stdout


def _rank_pids(root: int, rank: int) -> list[int]:
    """The processes below `root` whose environment says they are Horovod rank `rank`."""
    want, found = f"HOROVOD_RANK={rank}".encode(), []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and want in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                if parent == root or _ancestor(root, parent):
                    found.append(int(entry.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return found


def _ancestor(root: int, pid: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            return False
    return False


def test_rank_killed_mid_epoch_resumes_to_the_uninterrupted_model(run_dir, tmp_path):
    """Two Horovod ranks; rank 1 is killed once epoch 1's checkpoint is written, while epoch 2 runs.
    horovodrun fails, publishes nothing, and its rerun resumes after epoch 1 and ends with the same
    weights (digest) as an uninterrupted run of the same config on another copy of the same data."""
    import shutil

    config = ["ncf.epochs=3", "ncf.factors=8"]
    copy, reference = tmp_path / "run", tmp_path / "reference"  # copies: run_dir's gmf is the other tests'
    for stage in ("interactions", "negatives"):
        shutil.copytree(run_dir / stage, copy / stage)
        shutil.copytree(run_dir / stage, reference / stage)
    whole = subprocess.run(
        [*TRAIN_NCF_ON_TWO_RANKS, *_sets(reference, config)],
        capture_output=True,
        text=True,
        env=horovod_env(),
        timeout=600,
    )
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]

    job = [*TRAIN_NCF_ON_TWO_RANKS, *_sets(copy, config)]
    proc = subprocess.Popen(
        job, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=horovod_env(), start_new_session=True
    )
    killed = []
    for line in proc.stdout:
        if "epoch 1/3" in line:  # rank 0 prints it after the epoch's checkpoint is complete
            killed = _rank_pids(proc.pid, 1)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            break
    proc.stdout.read()
    proc.wait(timeout=120)
    assert killed and proc.returncode != 0
    assert not (copy / "ncf" / "gmf" / "_manifest.json").exists()

    again = subprocess.run(job, capture_output=True, text=True, env=horovod_env(), timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming after epoch 1" in again.stdout
    assert [h["epoch"] for h in json.loads((copy / "ncf" / "gmf" / "history.json").read_text())] == [1, 2, 3]
    assert rank_digests(again.stdout) == rank_digests(whole.stdout) and len(rank_digests(whole.stdout)) == 2


def test_pretrained_neumf_keeps_its_start_when_fine_tuning_makes_it_worse(run_dir, horovodrun_result):
    """NeuMF from this run's GMF and MLP is scored before fine-tuning (epoch 0). Adam at 0.5 on the
    dense layers wrecks it in one epoch, so the exported model must be the start: the alpha-blend."""
    import tensorflow as tf

    from mpdrec.models.ncf.model import build_model, init_neumf_from
    from mpdrec.models.ncf.train import _loo_scores

    mlp = ["ncf.layers=[32,16]", "ncf.epochs=3"]  # as the resume test trains it
    for model in ("mlp", "neumf"):  # mlp: up to date when the resume test trained it already
        extra = [f"ncf.model={model}", f"rank.ncf_model={model}", *mlp] + (
            ["ncf.pretrained=true", "ncf.epochs=1", "ncf.dense_lr=0.5"] if model == "neumf" else []
        )
        proc = subprocess.run(
            [sys.executable, str(ROOT / "jobs" / "train_ncf.py"), *_sets(run_dir, extra)],
            capture_output=True,
            text=True,
            env=horovod_env(),
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ncf neumf: pretrained start: hr@10" in proc.stdout and "(the pretrained start)" in proc.stdout
    out = run_dir / "ncf" / "neumf"
    manifest = json.loads((out / "_manifest.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and files_under(out) == OUTPUTS
    start = {k: v for k, v in manifest["start"].items() if k != "balanced"}
    assert manifest["best_epoch"] == 0 and manifest["metrics"] == start
    assert manifest["balanced"]["best"] == manifest["start"]["balanced"]  # the start's balanced test is kept too
    assert history[0][manifest["monitor"]] < manifest["start"][manifest["monitor"]]

    loo = read_leave_one_out(str(run_dir / "negatives" / "eval"))

    def scores(model: tf.keras.Model) -> dict[str, float]:
        score = tf.function(
            lambda p, t: model([p, t], training=False), input_signature=[tf.TensorSpec([None], tf.int32)] * 2
        )
        return summarize(metric_sums(_loo_scores(score, loo, slice(None))))

    def load(name):
        return tf.keras.models.load_model(run_dir / "ncf" / name / "model.keras", compile=False)

    blend = build_model("neumf", manifest["num_playlists"], manifest["num_tracks"], 16, [32, 16])
    init_neumf_from(blend, load("gmf"), load("mlp"))
    for model in (load("neumf"), blend):
        assert scores(model) == pytest.approx(start, abs=1e-6)


def test_executors_score_candidates_like_the_model(spark, run_dir, horovodrun_result):
    """NcfModel.scores (the embedding rows joined in Spark, head.keras in the Python workers) gives
    the exported model's logits; a playlist outside the model's table, or without seeds, gets 0,
    and the rows keep their other columns."""
    import tensorflow as tf

    from mpdrec.io.fs import store_for
    from mpdrec.lists.inputs import Queries
    from mpdrec.rank.ncf_scores import NcfModel

    ids = spark.read.parquet(str(run_dir / "interactions" / "playlist_ids")).select("pid", "playlist_idx")
    known = ids.orderBy("playlist_idx").limit(30).withColumn("num_samples", F.lit(5))
    seedless = known.limit(1).select("playlist_idx", F.lit(-6).cast("long").alias("pid"), F.lit(0).alias("num_samples"))
    playlists = known.unionByName(seedless).unionByName(
        spark.createDataFrame([(-5, None, 5)], "pid long, playlist_idx int, num_samples int")
    )
    queries = Queries(playlists, spark.createDataFrame([], "pid long, track_idx int"), 0)
    rng = np.random.default_rng(4)
    pids = [r.pid for r in playlists.collect()]
    pairs = (
        spark.createDataFrame(
            [(int(pid), int(t)) for pid in pids for t in rng.integers(0, 200, 20)], "pid long, track_idx int"
        )
        .repartition(3)
        .withColumn("other", F.lit("kept"))
    )
    model = NcfModel.load(
        store_for(str(run_dir)),
        str(run_dir),
        "gmf",
        json.loads((run_dir / "ncf" / "gmf" / "_manifest.json").read_text())["num_tracks"],
    )
    got = model.scores(pairs, queries).join(playlists, "pid", "left").toPandas()
    assert len(got) == pairs.count() and (got.other == "kept").all()
    assert (got.loc[got.pid.isin([-5, -6]), "ncf_score"] == 0).all() and (got.pid == -6).any()
    inside = got[~got.pid.isin([-5, -6])]
    keras = tf.keras.models.load_model(run_dir / "ncf" / "gmf" / "model.keras", compile=False)
    expected = keras([tf.constant(inside.playlist_idx.astype("int32")), tf.constant(inside.track_idx.astype("int32"))])
    np.testing.assert_allclose(inside.ncf_score, expected.numpy().reshape(-1), rtol=1e-5, atol=1e-5)


def test_rank_stage_blends_with_the_ncf_score(spark, run_dir, horovodrun_result):
    """rank.ncf_model (with rank.blend.ncf_feature): the candidates get the model's score as a
    feature, rank/ncf is a validated submission of the candidates in its order, a second blend
    fitted without the score is final_without_ncf, and the report scores both beside the others,
    compares final with the best single source only (never with its own variant) and with the
    variant, and puts the NCF model and popularity in its leave-one-out table."""
    from mpdrec.evaluation import evaluate, markdown
    from mpdrec.lists.assemble import FINAL, WITHOUT_NCF, blend_variants, submissions
    from mpdrec.rank.stage import run_rank

    cfg = make_config(
        [
            f"paths.run_dir={run_dir}",
            "paths.challenge=",
            "rank.models=[popularity,title,cooc,kmeans]",
            "rank.ncf_model=gmf",
            "rank.blend.ncf_feature=true",
            "rank.cooc_neighbours=50",
            "rank.blend.trees=10",
            "rank.kmeans_clusters=5",
        ]
    )
    manifest = run_rank(spark, cfg)
    names = {"popularity", "title", "cooc", "kmeans", "ncf", "final", WITHOUT_NCF}
    assert set(manifest["submission"]["models"]) == names
    assert "ncf_score" in manifest["blend"]["feature_importances"]
    assert set(manifest["blend_variants"][WITHOUT_NCF]["feature_importances"]) == set(
        manifest["blend"]["feature_importances"]
    ) - {"ncf_score"}
    assert "candidates, features and blend scores with gmf scores" in dict(manifest["submission"]["seconds"])
    assert manifest["submission"]["candidates"]["recall"]["kmeans"] > 0
    variants = tuple(blend_variants(cfg.rank))
    report = evaluate(
        spark,
        str(run_dir),
        submissions(cfg.rank),
        FINAL,
        cfg.seed,
        variants=variants,
        leave_one_out=("als", "gmf", "mlp"),
    )
    assert set(report["models"]) == names
    assert report["models"]["ncf"]["overall"]["ndcg"] > report["models"]["popularity"]["overall"]["ndcg"]
    assert {c["best_source"] for c in report["final_vs_best"].values()} <= {
        "popularity",
        "title",
        "cooc",
        "kmeans",
        "ncf",
    }
    diff = report["final_vs_variants"][WITHOUT_NCF]["ndcg"]
    got = report["models"]["final"]["overall"]["ndcg"] - report["models"][WITHOUT_NCF]["overall"]["ndcg"]
    assert diff["difference"] == pytest.approx(got, abs=1e-9) and diff["low"] <= diff["difference"] <= diff["high"]
    gmf = json.loads((run_dir / "ncf" / "gmf" / "_manifest.json").read_text())
    assert {"popularity", "gmf"} <= set(report["leave_one_out"]) <= {"popularity", "gmf", "mlp"}  # no ALS here
    assert (
        report["leave_one_out"]["gmf"] == gmf["metrics"] and report["leave_one_out"]["popularity"] == gmf["popularity"]
    )
    text = markdown(report)
    assert f"## Final minus {WITHOUT_NCF}" in text and "## Leave-one-out (the NCF paper's protocol)" in text


def test_kmeans_source_proposes_its_clusters_commonest_tracks_by_ncf_score(spark, run_dir, horovodrun_result):
    """Two clusters: at most two candidate sets among the queries, each a cluster's commonest
    tracks (as many as asked), ordered by the model's logits."""
    import tensorflow as tf

    from mpdrec.io.fs import store_for
    from mpdrec.lists.inputs import Queries, RankingData
    from mpdrec.rank import kmeans
    from mpdrec.rank.ncf_scores import NcfModel

    data = RankingData.load(spark, str(run_dir / "interactions"))
    ids = (
        data.playlist_ids.where("kind = 'mpd'")
        .orderBy("playlist_idx")
        .limit(40)
        .select("pid", "playlist_idx", F.lit(5).alias("num_samples"))
    )
    queries = Queries(ids, spark.createDataFrame([], "pid long, track_idx int"), 0)
    model = NcfModel.load(store_for(str(run_dir)), str(run_dir), "gmf", data.num_tracks)
    clusters = kmeans.fit_clusters(spark, data, model, k=2, seed=1)
    got = kmeans.recommend(data, queries, model, clusters, tracks_per_cluster=30).toPandas()
    sets = got.groupby("pid").track_idx.apply(frozenset)
    assert len(sets) == 40 and set(sets.map(len)) == {30} and sets.nunique() <= 2
    keras = tf.keras.models.load_model(run_dir / "ncf" / "gmf" / "model.keras", compile=False)
    idx = dict(ids.select("pid", "playlist_idx").toPandas().values)
    logits = keras([tf.constant(got.pid.map(idx).astype("int32")), tf.constant(got.track_idx.astype("int32"))])
    np.testing.assert_allclose(got.score, logits.numpy().reshape(-1), rtol=1e-5, atol=1e-5)


def test_missing_inputs_are_one_line_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "train_ncf.py"), *_sets(tmp_path, [])],
        capture_output=True,
        text=True,
        env=horovod_env(),
        timeout=300,
    )
    assert proc.returncode == 2
    assert "no leave-one-out set at" in proc.stderr and "jobs/sample_negatives.py" in proc.stderr


def _write(path: Path, playlists: np.ndarray, tracks: np.ndarray, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "playlist_idx": pa.array(playlists, pa.int32()),
                "track_idx": pa.array(tracks, pa.int32()),
                "label": pa.array(labels, pa.int8()),
            }
        ),
        path,
        row_group_size=7,
    )


def test_labelled_rows_ranks_take_equal_full_batches_and_see_every_row(tmp_path):
    """A user's labelled rows, shards of 50, 37, 44 and 30 rows on 2 ranks: both take ceil(94 / 16) = 6
    batches of 16; the rank with 74 rows wraps to its first rows; ids cover the evaluation set too."""
    sizes, start = [50, 37, 44, 30], 0
    for s, n in enumerate(sizes):
        ids = np.arange(start, start + n)
        _write(tmp_path / f"shard={s}/part-0.parquet", ids % 9, ids, ids % 2)
        start += n
    from mpdrec.io.fs import LocalFS

    data = describe_training_data(LocalFS(), str(tmp_path), 2, (20, 3))
    assert (data.num_playlists, data.num_tracks, data.labelled) == (21, start, True)
    assert data.steps_per_epoch(2, 16, k=4) == 6  # labelled rows bring no negatives
    for rank in (0, 1):
        batches = list(labelled_batches(data.rank_files(rank, 2), 16, 6))
        assert len(batches) == 6 and all(len(b[0]) == 16 for b in batches)
        seen = np.concatenate([b[1] for b in batches])
        mine = [t for s in range(rank, 4, 2) for t in range(sum(sizes[:s]), sum(sizes[: s + 1]))]
        assert set(seen) == set(mine) and len(seen) == 96
    with pytest.raises(InputError, match="fewer than the 8 ranks"):
        describe_training_data(LocalFS(), str(tmp_path), 8, (0, 0))


def test_positives_must_come_in_shards_of_whole_playlists(tmp_path):
    """Without a label column the rows are positives, and a rank can only avoid a playlist's tracks
    when it holds them all: a flat table of positives is refused, with what to do."""
    from mpdrec.io.fs import LocalFS

    pq.write_table(
        pa.table({"playlist_idx": pa.array([1, 2], pa.int32()), "track_idx": pa.array([3, 4], pa.int32())}),
        tmp_path / "flat.parquet",
    )
    with pytest.raises(InputError, match="shard=<s>/ directories that hold whole playlists"):
        describe_training_data(LocalFS(), str(tmp_path), 1, (0, 0))


def test_leave_one_out_metrics():
    scores = np.array(
        [
            [5.0, 1, 2, 3],  # held-out track first: HR 1, NDCG 1, AUC 1
            [0.0, 1, 2, 3],  # last of 4: rank 3, NDCG 1/log2(5), AUC 0
            [1.0, 1, 1, 1],  # all tied: rank uniform over 0..3
        ]
    )
    hr, ndcg, auc, n = metric_sums(scores, k=2)
    assert n == 3
    assert hr == pytest.approx(1 + 0 + 2 / 4)
    assert ndcg == pytest.approx(1 + 0 + (1 + 1 / np.log2(3)) / 4)
    assert auc == pytest.approx(1 + 0 + 0.5)
    assert summarize(metric_sums(np.ones((50, 100))))["hr@10"] == pytest.approx(0.10)


def test_balanced_test_against_all_pairs():
    rng = np.random.default_rng(2)
    pos, neg = np.round(rng.normal(0.5, 1, 300), 1), np.round(rng.normal(-0.5, 1, 300), 1)  # rounded: ties
    t = balanced(pos, neg)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert t["roc_auc"] == pytest.approx(pairs)
    assert t["true_positive"] == int((pos >= 0).sum()) and t["false_positive"] == int((neg >= 0).sum())
    assert t["accuracy"] == pytest.approx(((pos >= 0).sum() + (neg < 0).sum()) / 600)


def test_user_leave_one_out_table_is_checked(tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"playlist_idx": [1, 2], "track_idx": [7, 8], "negatives": [[1, 2, 3], [4, 5, 6]]}), good)
    loo = read_leave_one_out(str(good))
    assert loo.candidates.tolist() == [[7, 1, 2, 3], [8, 4, 5, 6]] and loo.max_ids() == (2, 8)
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(pa.table({"playlist_idx": [1, 2], "track_idx": [7, 8], "negatives": [[1, 2], [4]]}), ragged)
    with pytest.raises(InputError, match="same"):
        read_leave_one_out(str(ragged))


def test_arrow_store_globs_renames_and_deletes(tmp_path):
    """ArrowFS (the JVM-free store ranks use for gs://, s3://, hdfs://), here on file:// URIs."""
    from mpdrec.io.fs import ArrowFS

    store, root = ArrowFS(), f"file://{tmp_path}"
    for shard in (0, 1):
        store.write_text(f"{root}/a/epoch=0/shard={shard}/part.parquet", "x")
    store.mkdirs(f"{root}/_staging/gmf-{'0' * 16}-x")
    assert [f.uri for f in store.glob(f"{root}/a/epoch=*/shard=*/*.parquet")] == [
        f"{root}/a/epoch=0/shard=0/part.parquet",
        f"{root}/a/epoch=0/shard=1/part.parquet",
    ]
    store.rename(f"{root}/a", f"{root}/b")
    assert store.is_dir(f"{root}/b/epoch=0") and not store.exists(f"{root}/a")
    store.delete_glob(f"{root}/_staging/gmf-{'[0-9a-f]' * 16}-*")
    assert not list((tmp_path / "_staging").iterdir())
