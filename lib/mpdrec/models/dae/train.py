"""Horovod training of the playlist autoencoder: `train_on_rank`, which every rank runs (under
`horovodrun`, or alone as one rank).

Horovod as for NCF (`mpdrec.models.ncf.train`): rank 0's initial variables and optimizer slots
broadcast, gradients averaged by `DistributedGradientTape`, metrics summed over the ranks, only rank
0 writing. The encoder and decoder rows a step reads have row-sparse gradients, which Horovod
allgathers: a step exchanges the rows of the batch's tracks and of its sampled columns, not the
tables (`mpdrec.models.dae.model`), and the optimizer updates those rows only
(`mpdrec.models.dae.lazy_adam`).

Each epoch is scored on the run's leave-one-out set with the protocol of popularity, ALS and NCF
(`mpdrec.metrics.leave_one_out`): every held-out track among the same sampled candidates. Each rank
scores the held-out tracks of its own playlists (it holds their inputs). The best epoch by
`dae.monitor` is exported; `dae.patience` epochs without a better one stop training.

Output (atomic, like every stage): `<run_dir>/dae/` with `track_factors` and `playlist_factors`
(ALS's layout, `mpdrec.models.als.Factors`: the query playlists', which the rank stage ranks),
history.json, history.png and _manifest.json. Checkpoints live in the stage's staging directory
while it trains: a killed run, started again with the same config, resumes after its last finished
epoch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mpdrec.config import Config, stable_digest
from mpdrec.errors import InputError
from mpdrec.io.arrow_fs import resolve
from mpdrec.io.fs import FileInfo, store_for
from mpdrec.io.paths import join, to_uri
from mpdrec.io.stage import begin_stage, fingerprint, publish_stage, staging_uri, up_to_date
from mpdrec.metrics.leave_one_out import METRICS, metric_sums, summarize
from mpdrec.models.als import PLAYLIST_FACTORS, TRACK_FACTORS
from mpdrec.models.dae.data import (
    Corruption,
    PlaylistRows,
    TitleWords,
    Vocabulary,
    epoch_steps,
    read_pairs,
    steps_per_epoch,
)
from mpdrec.models.horovod_rank import agreed_digest, duration, record_epoch, setup_devices, training_state
from mpdrec.models.leave_one_out import LeaveOneOut, leave_one_out_files, leave_one_out_uri, read_leave_one_out
from mpdrec.models.ncf.artifacts import (
    latest_checkpoint,
    plot_history,
    restore_checkpoint,
    save_checkpoint,
    upload_dir,
)
from mpdrec.models.ncf.data import describe_training_data
from mpdrec.vectors import sorted_positions

STAGE = "dae"
PROGRESS_EVERY_S = 30.0  # in-epoch progress lines (rank 0)
ENCODE_BATCH = 512  # playlists encoded (and their leave-one-out candidates scored) at a time
FACTOR_ROWS_PER_GROUP = 100_000
UNKNOWN = np.float32(-1e30)  # the score of a candidate outside the vocabulary: below every other


def config_digest(cfg: Config, ranks: int) -> str:
    """What the trained model depends on besides its input files: the seed, the dae settings and
    the number of ranks (the global batch grows with them)."""
    return stable_digest({"seed": cfg.seed, "dae": dataclasses.asdict(cfg.dae), "ranks": ranks})


def _inputs(cfg: Config, run_dir: str) -> tuple[str, str, list[FileInfo]]:
    """(training positives URI, leave-one-out URI, the interaction files the export encodes)."""
    evaluation = leave_one_out_uri(cfg)
    if not leave_one_out_files(evaluation):
        raise InputError(
            f"no leave-one-out set at {evaluation}: run jobs/sample_negatives.py with negatives.eval_playlists > 0"
        )
    store = store_for(run_dir)
    interactions = store.glob(join(run_dir, "interactions", "data", "*.parquet")) + store.glob(
        join(run_dir, "interactions", "playlist_ids", "*.parquet")
    )
    if not interactions:
        raise InputError(f"{join(run_dir, 'interactions')}: no interactions; run jobs/build_interactions.py first")
    return join(run_dir, "negatives", "data"), evaluation, interactions


def train_on_rank(cfg: Config, force: bool = False) -> dict[str, Any]:
    """Train the autoencoder as one Horovod rank; rank 0 publishes `<run_dir>/dae/`.

    Returns this rank's summary: rank, size, weights digest, and (rank 0) the stage's manifest."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as for NCF: its allocator keeps every freed buffer
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from mpdrec.models.dae.lazy_adam import LazyAdam
    from mpdrec.models.dae.model import PlaylistAutoencoder, step_signature

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    device = setup_devices(hvd)
    d = cfg.dae
    run_dir = to_uri(cfg.paths.run_dir)
    store = store_for(run_dir)
    train_uri, eval_uri, interactions = _inputs(cfg, run_dir)
    loo = read_leave_one_out(eval_uri)
    data = describe_training_data(store_for(train_uri), train_uri, size, loo.max_ids())
    if data.labelled:
        raise InputError(f"{train_uri}: the autoencoder trains on whole playlists' positives, not labelled rows")
    fp = fingerprint(data.inputs + leave_one_out_files(eval_uri) + interactions, config_digest(cfg, size))
    done = hvd.broadcast_object(up_to_date(store, run_dir, STAGE, fp, force) if rank == 0 else None, root_rank=0)
    if done is not None:
        return {"rank": rank, "size": size, "manifest": done if rank == 0 else None}
    started = time.time()
    staging = staging_uri(run_dir, STAGE, fp)
    if rank == 0:
        begin_stage(store, run_dir, STAGE, fp, resume=not force)
    checkpoints = join(staging, "checkpoints")
    say = print if rank == 0 else (lambda *a, **k: None)

    def allsum(values: np.ndarray) -> np.ndarray:
        return hvd.allreduce(tf.constant(values, tf.float64), op=hvd.Sum).numpy()

    playlist_idx, track_idx = read_pairs(data.rank_files(rank, size))
    popularity = allsum(np.bincount(track_idx, minlength=data.num_tracks).astype(np.float64))
    vocabulary = Vocabulary.of(popularity, d.min_playlists, d.max_tracks, d.sampling_beta)
    titles = (
        TitleWords.read(join(run_dir, "interactions", "playlist_ids"), d.title_min_playlists)
        if d.title_min_playlists
        else TitleWords.none()
    )
    playlists = PlaylistRows.of(playlist_idx, track_idx, vocabulary, titles)
    del playlist_idx, track_idx
    per_rank = hvd.allgather_object(len(playlists))
    steps = steps_per_epoch(per_rank, d.batch_size)

    tf.random.set_seed(cfg.seed)
    model = PlaylistAutoencoder(len(vocabulary), titles.count, d.hidden, cfg.seed)
    optimizer = LazyAdam(model.weights(), d.lr)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    state = training_state()
    if rank == 0:
        found = latest_checkpoint(store, checkpoints)
        if found is not None:
            restore_checkpoint(checkpoint, found[0])
            state = found[1]
            say(f"dae: resuming after epoch {state['epoch']} from {found[0]}", flush=True)
    state = hvd.broadcast_object(state, root_rank=0)
    for variable in model.weights() + optimizer.variables_to_share():  # one at a time: a table's worth in flight
        hvd.broadcast_variables([variable], root_rank=0)

    mine = _evaluated_here(loo, playlists, rank, allsum)
    baseline = summarize(allsum(metric_sums(popularity[loo.candidates[mine]])))
    variables = model.weights()

    @tf.function(input_signature=[step_signature()])
    def train_step(batch: dict[str, tf.Tensor]) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = model.loss(batch, d.l2)
        optimizer.apply(hvd.DistributedGradientTape(tape).gradient(loss, variables), variables)
        return loss

    def evaluate() -> dict[str, float]:
        return summarize(allsum(metric_sums(_loo_scores(model, loo, mine, playlists, vocabulary))))

    say(
        f"dae: {size} rank(s), {device}; {len(vocabulary):,} tracks in the vocabulary (of {data.num_tracks:,}) "
        f"and {titles.count:,} title words, "
        f"{sum(per_rank):,} training playlists, {steps:,} steps an epoch; "
        f"{len(loo.playlists):,} leave-one-out playlists; popularity on the same candidates: "
        + "  ".join(f"{k} {baseline[k]:.4f}" for k in METRICS),
        flush=True,
    )
    epoch_walls: list[float] = []
    for epoch in range(state["epoch"], state["epoch"] if state["stopped"] else d.epochs):
        wall = last_note = time.perf_counter()
        loss_sum = 0.0
        seed = (cfg.seed, epoch, rank)
        corruption = Corruption(d.keep, d.title_only)
        for i, step in enumerate(epoch_steps(playlists, vocabulary, steps, d.batch_size, d.sampled, corruption, seed)):
            loss_sum += float(train_step(dataclasses.asdict(step)))
            now = time.perf_counter()
            if rank == 0 and now - last_note >= PROGRESS_EVERY_S:
                last_note = now
                say(
                    f"  epoch {epoch + 1}: step {i + 1:,}/{steps:,}  loss {loss_sum / (i + 1):.2f}  "
                    f"epoch eta {duration((now - wall) / (i + 1) * (steps - i - 1))}",
                    flush=True,
                )
        train_s = time.perf_counter() - wall
        loss = float(allsum(np.array([loss_sum / steps]))[0] / size)
        if not np.isfinite(loss):  # the same value on every rank: all stop together
            raise FloatingPointError(f"dae: loss is {loss} in epoch {epoch + 1}; lower dae.lr")
        metrics = evaluate()
        entry = {
            "epoch": epoch + 1,
            "loss": loss,
            **metrics,
            "playlists_per_s": steps * d.batch_size * size / train_s,
            "train_seconds": train_s,
            "seconds": time.perf_counter() - wall,
        }
        record_epoch(state, entry, d.monitor, d.patience)
        if rank == 0:
            save_checkpoint(store, checkpoints, checkpoint, epoch + 1, state, keep={state["best_epoch"]})
        epoch_walls.append(time.perf_counter() - wall)
        remaining = 0 if state["stopped"] else d.epochs - epoch - 1
        say(
            f"dae epoch {epoch + 1}/{d.epochs}: loss {loss:.2f}  "
            + "  ".join(f"{k} {metrics[k]:.4f}" for k in METRICS)
            + f"  {entry['playlists_per_s']:,.0f} playlists/s  {epoch_walls[-1]:.1f}s  "
            f"eta {duration(float(np.mean(epoch_walls)) * remaining)}",
            flush=True,
        )
        if state["stopped"]:
            say(f"dae: early stop, {d.monitor} not better than epoch {state['best_epoch']} for {d.patience} epochs")
            break

    digest = agreed_digest(hvd, variables, "dae")
    if rank != 0:
        return {"rank": rank, "size": size, "weights_digest": digest, "manifest": None}
    if state["best_epoch"] != state["epoch"]:
        restore_checkpoint(
            tf.train.Checkpoint(model=model), join(checkpoints, f"epoch-{state['best_epoch']:04d}"), partial=True
        )
    queries = _export(model, vocabulary, titles, run_dir, staging, state, baseline, size)
    best = state["history"][state["best_epoch"] - 1]
    body = {
        "hidden": d.hidden,
        "ranks": size,
        "device": device,
        "num_tracks": data.num_tracks,
        "vocabulary": len(vocabulary),
        "title_words": titles.count,
        "query_playlists": queries,
        "epochs_run": len(state["history"]),
        "early_stopped": state["stopped"],
        "best_epoch": state["best_epoch"],
        "monitor": d.monitor,
        "metrics": {k: best[k] for k in METRICS},
        "popularity": baseline,
        "eval_playlists": int(len(loo.playlists)),
        "playlists_per_s": float(np.mean([h["playlists_per_s"] for h in state["history"]])),
    }
    manifest = publish_stage(store, run_dir, STAGE, fp, staging, body, started)
    store.delete(join(run_dir, STAGE, "checkpoints"))  # only now: a failed publish can still resume
    return {"rank": rank, "size": size, "weights_digest": digest, "manifest": manifest}


def _evaluated_here(loo: LeaveOneOut, playlists: PlaylistRows, rank: int, allsum: Any) -> np.ndarray:
    """The leave-one-out rows this rank scores: those of its own playlists, and on rank 0 those of
    playlists no rank holds (every training track held out or outside the vocabulary: an empty input)."""
    here = np.isin(loo.playlists, playlists.ids)
    held = allsum(here.astype(np.float64)) > 0
    return np.flatnonzero(here | (~held if rank == 0 else np.zeros_like(here)))


def _loo_scores(
    model: Any, loo: LeaveOneOut, rows: np.ndarray, playlists: PlaylistRows, vocabulary: Vocabulary
) -> np.ndarray:
    """The decoder's scores of the leave-one-out candidates of `rows`; UNKNOWN outside the vocabulary."""
    candidates = loo.candidates[rows]
    scores = np.full(candidates.shape, UNKNOWN, np.float32)
    position, found = sorted_positions(playlists.ids, loo.playlists[rows])
    tracks = model.track_factors()
    for start in range(0, len(rows), ENCODE_BATCH):
        part = slice(start, start + ENCODE_BATCH)
        which = np.where(found[part], position[part], -1)
        codes = _codes(model, playlists, which)
        known = vocabulary.row_of[candidates[part]]
        dots = np.einsum("bh,bch->bc", codes, tracks[np.maximum(known, 0)])
        scores[part] = np.where(known >= 0, dots, UNKNOWN)
    return scores


def _codes(model: Any, playlists: PlaylistRows, which: np.ndarray) -> np.ndarray:
    """(h, 1) of `playlists`' members `which` (-1: a playlist without input)."""
    present = np.flatnonzero(which >= 0)
    rows, segment, _ = playlists.inputs(which[present])
    return model.playlist_factors(rows, present.astype(np.int32)[segment], len(which))


def _query_playlists(run_dir: str, vocabulary: Vocabulary, titles: TitleWords) -> PlaylistRows:
    """The playlists the rank stage ranks (every kind but the training MPD's) that have an input:
    seeds (their interactions) or title words."""
    fs, path = resolve(join(run_dir, "interactions", "playlist_ids"))
    ids = ds.dataset(path, filesystem=fs, format="parquet").to_table(
        columns=["playlist_idx"], filter=ds.field("kind") != "mpd"
    )
    wanted = pa.array(np.unique(ids.column(0).to_numpy()))
    fs, path = resolve(join(run_dir, "interactions", "data"))
    pairs = ds.dataset(path, filesystem=fs, format="parquet").to_table(
        columns=["playlist_idx", "track_idx"], filter=ds.field("playlist_idx").isin(wanted)
    )
    queries = PlaylistRows.of(
        pairs.column(0).to_numpy().astype(np.int64),
        pairs.column(1).to_numpy().astype(np.int64),
        vocabulary,
        titles,
        also=np.asarray(wanted),
    )
    return queries.subset(np.flatnonzero((np.diff(queries.starts) > 0) | (np.diff(queries.word_starts) > 0)))


def _write_factors(ids: np.ndarray, id_column: str, factors: Any, count: int, path: str) -> None:
    """One Parquet file of (`id_column`, features array<float>): `factors(start, stop)` gives rows."""
    schema = pa.schema([(id_column, pa.int32()), ("features", pa.list_(pa.float32()))])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, count, FACTOR_ROWS_PER_GROUP):
            stop = min(start + FACTOR_ROWS_PER_GROUP, count)
            block = np.ascontiguousarray(factors(start, stop), dtype=np.float32)
            offsets = np.arange(stop - start + 1, dtype=np.int32) * block.shape[1]
            features = pa.ListArray.from_arrays(pa.array(offsets), pa.array(block.reshape(-1)))
            writer.write_table(
                pa.Table.from_arrays([pa.array(ids[start:stop].astype(np.int32)), features], schema=schema)
            )


def _export(
    model: Any,
    vocabulary: Vocabulary,
    titles: TitleWords,
    run_dir: str,
    staging: str,
    state: dict[str, Any],
    baseline: dict[str, float],
    size: int,
) -> int:
    """Write the factors, history.json and history.png to staging; the number of query playlists encoded."""
    queries = _query_playlists(run_dir, vocabulary, titles)
    tracks = model.track_factors()
    with tempfile.TemporaryDirectory() as tmp:
        for name in (TRACK_FACTORS, PLAYLIST_FACTORS):
            os.makedirs(os.path.join(tmp, name))
        _write_factors(
            vocabulary.tracks,
            "track_idx",
            lambda a, b: tracks[a:b],
            len(vocabulary),
            os.path.join(tmp, TRACK_FACTORS, "part-0.parquet"),
        )
        _write_factors(
            queries.ids,
            "playlist_idx",
            lambda a, b: np.concatenate(
                [_codes(model, queries, np.arange(i, min(i + ENCODE_BATCH, b))) for i in range(a, b, ENCODE_BATCH)]
            ),
            len(queries),
            os.path.join(tmp, PLAYLIST_FACTORS, "part-0.parquet"),
        )
        with open(os.path.join(tmp, "history.json"), "w") as f:
            json.dump(state["history"], f, indent=1)
        plot_history(state["history"], baseline, f"dae: {size} rank(s)", os.path.join(tmp, "history.png"))
        upload_dir(tmp, staging)
    return len(queries)
