"""Horovod training of GMF, MLP, NeuMF and NNCF: one function, `train_on_rank`, that every rank runs,
whether `horovodrun` started the processes or `horovod.spark.run` started them in Spark tasks.

Horovod, done the standard way: one GPU per local rank (CPU threads split between local ranks when
there is none), the learning rate times the number of ranks (each rank adds a batch to the global
one), initial variables and optimizer slots broadcast from rank 0, gradients averaged by
`DistributedGradientTape`, metrics summed across ranks before dividing, and only rank 0 writing.

Sparse embedding gradients: each batch touches a few thousand of millions of rows, so Horovod's
default for IndexedSlices, an allgather of the touched rows (ranks x batch x width values), is what
scales; `sparse_as_dense` would allreduce whole tables every step. The row-sparse optimizer then
updates only those rows. `scripts/bench_ncf.py` measures both.

Output (atomic, like every stage): `<run_dir>/ncf/<model>/` with model.keras, head.keras (the network
after its embedding lookups, which the ranking scores with), embeddings/*.parquet, history.json,
history.png and _manifest.json. Checkpoints live in the stage's staging directory
while it trains, so a killed run, started again with the same config, resumes after its last
finished epoch; they are dropped once the output is published. The negatives of epoch e are drawn
from (seed, e), so a resumed run trains on the same examples as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mpdrec.config import NEGATIVE_DRAW_KEYS, Config, stable_digest
from mpdrec.errors import InputError
from mpdrec.io.fs import FileInfo, FileStore, store_for
from mpdrec.io.paths import MANIFEST, join, to_uri
from mpdrec.io.stage import begin_stage, fingerprint, publish_stage, read_manifest, staging_uri, up_to_date
from mpdrec.metrics.leave_one_out import METRICS, balanced, metric_sums, summarize
from mpdrec.models.horovod_rank import agreed_digest, duration, record_epoch, setup_devices, training_state
from mpdrec.models.leave_one_out import LeaveOneOut, leave_one_out_files, leave_one_out_uri, read_leave_one_out
from mpdrec.models.ncf.artifacts import (
    HEAD,
    download_dir,
    latest_checkpoint,
    plot_confusion,
    plot_history,
    restore_checkpoint,
    save_checkpoint,
    save_keras,
    upload_dir,
    write_embeddings,
)
from mpdrec.models.ncf.data import (
    Batch,
    NegativeDraws,
    TrainingData,
    describe_training_data,
    labelled_batches,
    labelled_track_counts,
    read_positive_keys,
    sampled_batches,
    training_dataset,
)
from mpdrec.negative_sampling import pair_keys, sampling_cdf

PROGRESS_EVERY_S = 30.0  # in-epoch progress lines (rank 0)
EVAL_BATCH = 1 << 16  # (playlist, track) pairs scored per call during evaluation
UNTRAINED_KEYS = ("launcher", "num_proc")  # how ranks are started does not change what they train
EpochBatches = Callable[[int, int], Callable[[], Iterator[Batch]]]  # (epoch, steps) -> that epoch's batches


def config_digest(cfg: Config, ranks: int) -> str:
    """What the trained model depends on besides its input files: the seed, the ncf settings, how
    negatives are drawn and the number of ranks (global batch and learning rate grow with it), not
    the launcher."""
    ncf = {k: v for k, v in dataclasses.asdict(cfg.ncf).items() if k not in UNTRAINED_KEYS}
    draws = {k: getattr(cfg.negatives, k) for k in NEGATIVE_DRAW_KEYS}
    return stable_digest({"seed": cfg.seed, "ncf": ncf, "negatives": draws, "ranks": ranks})


def _sources(cfg: Config, run_dir: str) -> tuple[str, str, list[FileInfo]]:
    """(training data URI, leave-one-out URI, the leave-one-out files)."""
    train = to_uri(cfg.ncf.train_path) if cfg.ncf.train_path else join(run_dir, "negatives", "data")
    evaluation = leave_one_out_uri(cfg)
    files = leave_one_out_files(evaluation)
    if not files:
        hint = (
            "set ncf.eval_path to a Parquet table (playlist_idx, track_idx, negatives)"
            if cfg.ncf.eval_path
            else "run jobs/sample_negatives.py with negatives.eval_playlists > 0, or set ncf.eval_path"
        )
        raise InputError(f"no leave-one-out set at {evaluation}: {hint}")
    return train, evaluation, files


def _pretrained_inputs(cfg: Config, store: FileStore, parent: str, data: TrainingData) -> list[FileInfo]:
    """The manifests of this run's trained gmf and mlp, checked to fit NeuMF's sizes (every rank
    checks, so a mistake stops all ranks before any collective call)."""
    n = cfg.ncf
    infos = []
    for name, key, want in (("gmf", "factors", n.factors), ("mlp", "layers", n.layers)):
        m = read_manifest(store, join(parent, name))
        if m is None:
            raise InputError(
                f"ncf.pretrained: {join(parent, name)} has no trained model; run jobs/train_ncf.py "
                f"with --set ncf.model={name} first"
            )
        if m[key] != want or (m["num_playlists"], m["num_tracks"]) != (data.num_playlists, data.num_tracks):
            raise InputError(
                f"ncf.pretrained: {name} was trained with {key}={m[key]} on {m['num_playlists']} x "
                f"{m['num_tracks']} tables; NeuMF needs {key}={want} on {data.num_playlists} x "
                f"{data.num_tracks}"
            )
        infos += store.glob(join(parent, name, MANIFEST))
    return infos


def train_on_rank(cfg: Config, force: bool = False) -> dict[str, Any]:
    """Train `cfg.ncf.model` as one Horovod rank; rank 0 publishes `<run_dir>/ncf/<model>/`.

    Returns this rank's summary: rank, size, weights digest, and (rank 0) the stage's manifest.

    TensorFlow's oneDNN CPU allocator is off (unless TF_ENABLE_ONEDNN_OPTS says otherwise, or
    TensorFlow is already loaded): it keeps every freed buffer for reuse, so the temporaries of
    building, broadcasting and restoring the tables stayed in a rank's memory (at full MPD tables,
    far more held after building them than without it; docs/scale.md).
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from mpdrec.models.ncf.model import SplitOptimizer, build_model, init_neumf_from, start_at_label_prior

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    device = setup_devices(hvd)
    n = cfg.ncf
    run_dir = to_uri(cfg.paths.run_dir)
    store, parent = store_for(run_dir), join(run_dir, "ncf")
    train_uri, eval_uri, eval_files = _sources(cfg, run_dir)
    loo = read_leave_one_out(eval_uri)
    data = describe_training_data(store_for(train_uri), train_uri, size, loo.max_ids())
    pretrained = _pretrained_inputs(cfg, store, parent, data) if n.pretrained else []
    fp = fingerprint(data.inputs + eval_files + pretrained, config_digest(cfg, size))
    done = hvd.broadcast_object(up_to_date(store, parent, n.model, fp, force) if rank == 0 else None, root_rank=0)
    if done is not None:
        return {"rank": rank, "size": size, "manifest": done if rank == 0 else None}
    started = time.time()
    staging = staging_uri(parent, n.model, fp)
    if rank == 0:
        begin_stage(store, parent, n.model, fp, resume=not force)
    checkpoints = join(staging, "checkpoints")

    def allsum(values: np.ndarray) -> np.ndarray:
        return hvd.allreduce(tf.constant(values, tf.float64), op=hvd.Sum).numpy()

    per_positive = cfg.negatives.k
    epoch_batches, popularity, positive_share = _rank_examples(cfg, data, loo, rank, size, allsum)
    tf.keras.utils.set_random_seed(cfg.seed)
    model = build_model(n.model, data.num_playlists, data.num_tracks, n.factors, n.layers, n.l2, n.dropout)
    start_at_label_prior(model, positive_share)
    lr, dense_lr = (x * (size if n.scale_lr else 1) for x in (n.lr, n.dense_lr))
    optimizer = SplitOptimizer(model, lr, dense_lr, fine_tune=n.pretrained)
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer.sparse_optimizer, dense_optimizer=optimizer.dense_optimizer
    )
    say = print if rank == 0 else (lambda *a, **k: None)

    state = training_state()
    if rank == 0:
        found = latest_checkpoint(store, checkpoints)
        if found is not None:
            restore_checkpoint(checkpoint, found[0])
            state = found[1]
            say(f"ncf {n.model}: resuming after epoch {state['epoch']} from {found[0]}", flush=True)
        elif n.pretrained:
            _init_from_pretrained(model, parent, init_neumf_from)
            say(f"ncf {n.model}: initialised from this run's trained gmf and mlp", flush=True)
    state = hvd.broadcast_object(state, root_rank=0)
    hvd.broadcast_variables(model.variables + optimizer.variables(), root_rank=0)

    mine = slice(rank, None, size)  # this rank's share of the evaluated playlists
    baseline = summarize(allsum(metric_sums(popularity[loo.candidates[mine]])))
    score = tf.function(
        lambda p, t: model([p, t], training=False), input_signature=[tf.TensorSpec([None], tf.int32)] * 2
    )

    def evaluate() -> dict[str, Any]:
        scores = _loo_scores(score, loo, mine)
        pairs = np.concatenate(hvd.allgather_object(scores[:, :2]))  # the balanced test's (positive, negative)
        return {**summarize(allsum(metric_sums(scores))), "balanced": balanced(pairs[:, 0], pairs[:, 1])}

    if n.pretrained and state["best"] is None:
        _evaluate_start(state, evaluate(), n.monitor)
        if rank == 0:
            save_checkpoint(store, checkpoints, checkpoint, 0, state, keep=set())
        say(
            f"ncf {n.model}: pretrained start: " + "  ".join(f"{k} {state['start'][k]:.4f}" for k in METRICS),
            flush=True,
        )
    step = _train_step(model, optimizer, hvd, n.sparse_as_dense)
    say(
        f"ncf {n.model}: {size} rank(s), {device}; tables {data.num_playlists:,} playlists x {data.num_tracks:,} "
        f"tracks, {model.count_params():,} parameters; lr {lr:g} (dense layers {dense_lr:g}); "
        f"{len(loo.playlists):,} leave-one-out playlists; "
        f"popularity on the same candidates: " + "  ".join(f"{k} {baseline[k]:.4f}" for k in METRICS),
        flush=True,
    )
    epoch_walls: list[float] = []
    for epoch in range(state["epoch"], state["epoch"] if state["stopped"] else n.epochs):
        wall = time.perf_counter()
        steps = data.steps_per_epoch(size, n.batch_size, per_positive)
        loss_sum, last_note = tf.constant(0.0), time.perf_counter()
        for i, (p, t, y) in enumerate(training_dataset(epoch_batches(epoch, steps), n.batch_size)):
            loss_sum += step(p, t, y)
            now = time.perf_counter()
            if rank == 0 and now - last_note >= PROGRESS_EVERY_S:
                last_note = now
                left = (now - wall) / (i + 1) * (steps - i - 1)
                say(
                    f"  epoch {epoch + 1}: step {i + 1:,}/{steps:,}  loss {float(loss_sum) / (i + 1):.4f}  "
                    f"epoch eta {duration(left)}",
                    flush=True,
                )
        train_s = time.perf_counter() - wall
        loss = float(hvd.allreduce(loss_sum / steps, op=hvd.Average).numpy())
        if not np.isfinite(loss):  # the same value on every rank: all stop together
            raise FloatingPointError(f"ncf {n.model}: loss is {loss} in epoch {epoch + 1}; lower ncf.lr")
        for v in model.non_trainable_variables:  # batch-norm statistics: each rank saw its own batches
            v.assign(hvd.allreduce(v, op=hvd.Average))
        metrics = evaluate()
        entry = {
            "epoch": epoch + 1,
            "loss": loss,
            **metrics,
            "samples_per_s": steps * n.batch_size * size / train_s,
            "train_seconds": train_s,
            "seconds": time.perf_counter() - wall,
        }
        record_epoch(state, entry, n.monitor, n.patience)
        if rank == 0:
            save_checkpoint(store, checkpoints, checkpoint, epoch + 1, state, keep={state["best_epoch"]})
        epoch_walls.append(time.perf_counter() - wall)
        remaining = 0 if state["stopped"] else n.epochs - epoch - 1
        say(
            f"ncf {n.model} epoch {epoch + 1}/{n.epochs}: loss {loss:.4f}  "
            + "  ".join(f"{k} {metrics[k]:.4f}" for k in METRICS)
            + f"  {entry['samples_per_s']:,.0f} samples/s  {epoch_walls[-1]:.1f}s  "
            f"eta {duration(float(np.mean(epoch_walls)) * remaining)}",
            flush=True,
        )
        if state["stopped"]:
            say(
                f"ncf {n.model}: early stop, {n.monitor} not better than epoch {state['best_epoch']} for "
                f"{n.patience} epochs",
                flush=True,
            )
            break

    del (
        epoch_batches,
        step,
        checkpoint,
        optimizer,
    )  # this rank's positives and the optimizer's slots go before the export
    digest = agreed_digest(hvd, model.weights, f"ncf {n.model}")
    if rank != 0:
        return {"rank": rank, "size": size, "weights_digest": digest, "manifest": None}
    if state["best_epoch"] != state["epoch"]:
        restore_checkpoint(
            tf.train.Checkpoint(model=model), join(checkpoints, f"epoch-{state['best_epoch']:04d}"), partial=True
        )
    body = _export(model, state, baseline, staging, cfg, data, loo, (lr, dense_lr), size, device)
    manifest = publish_stage(store, parent, n.model, fp, staging, body, started)
    store.delete(join(parent, n.model, "checkpoints"))  # only now: a failed publish can still resume
    return {"rank": rank, "size": size, "weights_digest": digest, "manifest": manifest}


def _rank_examples(
    cfg: Config, data: TrainingData, loo: LeaveOneOut, rank: int, size: int, allsum: Callable[[np.ndarray], np.ndarray]
) -> tuple[EpochBatches, np.ndarray, float]:
    """This rank's training examples: (epoch batches, every rank's track popularity, the share of
    positive labels). Positives are held as sorted keys and their negatives drawn per epoch; labelled
    rows (a user's `ncf.train_path`) are read as given."""
    n, files, per_positive = cfg.ncf, data.rank_files(rank, size), cfg.negatives.k
    if data.labelled:
        popularity = allsum(labelled_track_counts(files, data.num_tracks))

        def labelled(epoch: int, steps: int) -> Callable[[], Iterator[Batch]]:
            return lambda: labelled_batches(files, n.batch_size, steps)

        return labelled, popularity, float(popularity.sum() / data.rows())
    keys = read_positive_keys(files, data.num_tracks)
    popularity = allsum(np.bincount(keys % data.num_tracks, minlength=data.num_tracks).astype(np.float64))
    held_out = np.sort(pair_keys(loo.playlists, loo.candidates[:, 0], data.num_tracks))
    draws = NegativeDraws(per_positive, sampling_cdf(popularity, cfg.negatives.beta), (keys, held_out), cfg.seed)

    def sampled(epoch: int, steps: int) -> Callable[[], Iterator[Batch]]:
        return lambda: sampled_batches(keys, draws, epoch, rank, n.batch_size, steps)

    return sampled, popularity, 1 / (1 + per_positive)


def _evaluate_start(state: dict[str, Any], metrics: dict[str, float], monitor: str) -> None:
    """A pretrained NeuMF starts as the alpha-blend of trained GMF and MLP, which can already beat both
    (on the synthetic data it did, and fine-tuning then overfitted, its HR@10 lower: docs/ncf.md). Its
    start is scored as epoch 0 and competes for the best epoch, so the exported model is never worse
    than where fine-tuning began."""
    state.update(start=metrics, best=metrics[monitor], best_epoch=0)


def _train_step(model: Any, optimizer: Any, hvd: Any, sparse_as_dense: bool) -> Any:
    import tensorflow as tf

    variables = optimizer.trainable

    @tf.function
    def step(p: tf.Tensor, t: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=model([p, t], training=True))
            )
            total = loss + tf.add_n(model.losses) if model.losses else loss
        tape = hvd.DistributedGradientTape(tape, sparse_as_dense=sparse_as_dense)
        optimizer.apply(tape.gradient(total, variables))
        return loss

    return step


def _loo_scores(score: Any, loo: LeaveOneOut, rows: slice) -> np.ndarray:
    """The model's logits of this rank's share of the leave-one-out candidates (scored in chunks)."""
    candidates = loo.candidates[rows]
    p = np.repeat(loo.playlists[rows], candidates.shape[1]).astype(np.int32)
    t = candidates.reshape(-1).astype(np.int32)
    parts = [score(p[i : i + EVAL_BATCH], t[i : i + EVAL_BATCH]).numpy() for i in range(0, len(p), EVAL_BATCH)]
    scores = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return scores.reshape(candidates.shape)


def _init_from_pretrained(model: Any, parent: str, init: Any) -> None:
    import tensorflow as tf

    sources = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("gmf", "mlp"):
            local = os.path.join(tmp, name)
            download_dir(join(parent, name), local)
            sources.append(tf.keras.models.load_model(os.path.join(local, "model.keras"), compile=False))
    init(model, *sources)


def _export(
    model: Any,
    state: dict[str, Any],
    baseline: dict[str, float],
    staging: str,
    cfg: Config,
    data: TrainingData,
    loo: LeaveOneOut,
    lrs: tuple[float, float],
    size: int,
    device: str,
) -> dict[str, Any]:
    """Write model.keras, embeddings/, history.json and history.png to staging; the manifest body."""
    from mpdrec.models.ncf.model import embedding_tables, head_of

    n = cfg.ncf
    history = state["history"]
    with tempfile.TemporaryDirectory() as tmp:
        save_keras(model, os.path.join(tmp, "model.keras"))
        head_of(model, n.model, n.factors, n.layers).save(os.path.join(tmp, HEAD))
        os.makedirs(os.path.join(tmp, "embeddings"))
        write_embeddings(
            embedding_tables(model, "playlist"), "playlist_idx", os.path.join(tmp, "embeddings", "playlists.parquet")
        )
        write_embeddings(
            embedding_tables(model, "track"), "track_idx", os.path.join(tmp, "embeddings", "tracks.parquet")
        )
        with open(os.path.join(tmp, "history.json"), "w") as f:
            json.dump(history, f, indent=1)
        title = f"{n.model}: {size} rank(s), batch {n.batch_size} per rank, lr {lrs[0]:g} (dense {lrs[1]:g})"
        plot_history(history, baseline, title, os.path.join(tmp, "history.png"), state.get("start"))
        best_or_start = history[state["best_epoch"] - 1] if state["best_epoch"] else state["start"]
        plot_confusion(
            {"best epoch": best_or_start["balanced"], "last epoch": (history or [best_or_start])[-1]["balanced"]},
            f"{n.model}: balanced test (held-out track, one sampled negative)",
            os.path.join(tmp, "confusion.png"),
        )
        upload_dir(tmp, staging)
    best = history[state["best_epoch"] - 1] if state["best_epoch"] else state["start"]
    return {
        "balanced": {"best": best["balanced"], "last": history[-1]["balanced"] if history else best["balanced"]},
        "model": n.model,
        "factors": n.factors,
        "layers": n.layers,
        "ranks": size,
        "device": device,
        "num_playlists": data.num_playlists,
        "num_tracks": data.num_tracks,
        "parameters": int(model.count_params()),
        "lr": lrs[0],
        "dense_lr": lrs[1],
        "batch_size_per_rank": n.batch_size,
        "sparse_as_dense": n.sparse_as_dense,
        "epochs_run": len(history),
        "early_stopped": state["stopped"],
        "best_epoch": state["best_epoch"],
        "monitor": n.monitor,
        "metrics": {k: best[k] for k in METRICS},
        "popularity": baseline,
        "start": state.get("start"),
        "eval_playlists": int(len(loo.playlists)),
        "samples_per_s": float(np.mean([h["samples_per_s"] for h in history])),
    }
