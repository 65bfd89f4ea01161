"""NCF input: labelled example shards streamed into tf.data (the leave-one-out set: `mpdrec.models.leave_one_out`).

Each Horovod rank reads only its own shards (shard s belongs to rank s % size), batch by batch with
pyarrow, so no process ever holds the dataset. Shards are near-equal but not equal, and Horovod's
collectives need every rank to take the same number of steps: all ranks read the Parquet footers
(cheap), agree on ceil(largest rank's rows / batch) steps, and a rank with fewer rows wraps around to
its first file for the last few batches. Every row is trained on at least once per epoch, and every
batch is full, so the step function is traced once.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mpdrec.errors import InputError
from mpdrec.io.arrow_fs import resolve
from mpdrec.io.fs import FileInfo, FileStore
from mpdrec.io.paths import join

COLUMNS = ["playlist_idx", "track_idx", "label"]
_PART = re.compile(r"/epoch=(\d+)/shard=(\d+)/")


@dataclass(frozen=True)
class Shard:
    files: list[str]
    rows: int


@dataclass(frozen=True)
class TrainingData:
    """Every epoch set's shards, and the id ranges the embedding tables must cover."""
    epoch_sets: list[list[Shard]]
    num_playlists: int
    num_tracks: int
    inputs: list[FileInfo]  # what the trained model depends on (fingerprint)

    def rank_shards(self, epoch: int, rank: int, size: int) -> list[Shard]:
        """This rank's shards of the epoch set used in training epoch `epoch` (0-based)."""
        shards = self.epoch_sets[epoch % len(self.epoch_sets)]
        return shards[rank::size]

    def steps_per_epoch(self, epoch: int, size: int, batch_size: int) -> int:
        """The same on every rank: enough batches for the rank with the most rows."""
        most = max(sum(s.rows for s in self.rank_shards(epoch, r, size)) for r in range(size))
        return math.ceil(most / batch_size)


def open_parquet(uri: str) -> pq.ParquetFile:
    fs, path = resolve(uri)
    return pq.ParquetFile(fs.open_input_file(path))


def _footer(uri: str) -> tuple[int, int, int]:
    """(rows, largest playlist_idx, largest track_idx) of a file, from its statistics when written."""
    pf = open_parquet(uri)
    missing = [c for c in COLUMNS if c not in pf.schema_arrow.names]
    if missing:
        raise InputError(f"{uri}: no column(s) {missing}; NCF training expects (playlist_idx, track_idx, label)")
    md = pf.metadata
    maxima = []
    for name in ("playlist_idx", "track_idx"):
        col = pf.schema_arrow.get_field_index(name)
        stats = [md.row_group(g).column(col).statistics for g in range(md.num_row_groups)]
        if all(s is not None and s.has_min_max for s in stats):
            maxima.append(max((int(s.max) for s in stats), default=-1))
        else:
            values = pf.read(columns=[name]).column(0).to_numpy()
            maxima.append(int(values.max()) if len(values) else -1)
    return md.num_rows, maxima[0], maxima[1]


def _group_shards(files: list[FileInfo], uri: str) -> list[list[list[str]]]:
    """Files per (epoch set, shard): `epoch=<e>/shard=<s>/` directories, else each file is a shard."""
    parts = [_PART.search(f.uri) for f in files]
    if all(parts):
        sets: dict[int, dict[int, list[str]]] = {}
        for f, m in zip(files, parts):
            sets.setdefault(int(m.group(1)), {}).setdefault(int(m.group(2)), []).append(f.uri)
        return [[sorted(shards[s]) for s in sorted(shards)] for _, shards in sorted(sets.items())]
    if any(parts):
        raise InputError(f"{uri}: mixes epoch=/shard= directories with other Parquet files")
    return [[[f.uri] for f in files]]


def describe_training_data(store: FileStore, train_uri: str, size: int, eval_max: tuple[int, int]) -> TrainingData:
    """Shards, row counts and table sizes of a labelled training set (footers only).

    `eval_max` is the largest (playlist, track) id the evaluation set refers to; the tables cover it.
    """
    files = store.glob(join(train_uri, "epoch=*/shard=*/*.parquet")) or store.glob(join(train_uri, "*.parquet"))
    if not files:
        raise InputError(f"{train_uri}: no Parquet files (expected epoch=<e>/shard=<s>/*.parquet from "
                         "jobs/sample_negatives.py, or *.parquet with playlist_idx, track_idx, label)")
    footers = {f.uri: _footer(f.uri) for f in files}
    epoch_sets = [[Shard(fs, sum(footers[f][0] for f in fs)) for fs in shards]
                  for shards in _group_shards(files, train_uri)]
    for e, shards in enumerate(epoch_sets):
        if len(shards) < size:
            raise InputError(f"{train_uri}: epoch set {e} has {len(shards)} shards, fewer than the {size} ranks; "
                             f"rerun jobs/sample_negatives.py with --set negatives.shards={size} (or a multiple)")
        empty = [r for r in range(size) if not sum(s.rows for s in shards[r::size])]
        if empty:
            raise InputError(f"{train_uri}: epoch set {e} leaves ranks {empty} without rows")
    num_playlists = 1 + max(max(v[1] for v in footers.values()), eval_max[0])
    num_tracks = 1 + max(max(v[2] for v in footers.values()), eval_max[1])
    return TrainingData(epoch_sets, num_playlists, num_tracks, files)


def rank_batches(files: list[str], batch_size: int, steps: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Exactly `steps` full (playlist, track, label) batches from `files` in order, wrapping around to
    the first file when the rank runs out before the slowest-ending rank does."""
    pending: list[pa.RecordBatch] = []
    have = made = 0
    while True:
        for uri in files:
            for rb in open_parquet(uri).iter_batches(batch_size=batch_size, columns=COLUMNS):
                pending.append(rb)
                have += rb.num_rows
                while have >= batch_size:
                    table = pa.Table.from_batches(pending)
                    head = table.slice(0, batch_size)
                    yield (head.column("playlist_idx").to_numpy().astype(np.int32, copy=False),
                           head.column("track_idx").to_numpy().astype(np.int32, copy=False),
                           head.column("label").to_numpy().astype(np.float32))
                    made += 1
                    if made == steps:
                        return
                    pending = table.slice(batch_size).to_batches()
                    have -= batch_size


def training_dataset(files: list[str], batch_size: int, steps: int) -> "tf.data.Dataset":  # noqa: F821
    """`rank_batches` as a prefetching tf.data pipeline (decoding overlaps the training step)."""
    import tensorflow as tf

    spec = tf.TensorSpec([batch_size], tf.int32)
    return tf.data.Dataset.from_generator(
        lambda: rank_batches(files, batch_size, steps),
        output_signature=(spec, spec, tf.TensorSpec([batch_size], tf.float32))).prefetch(tf.data.AUTOTUNE)


def positive_counts(files: list[str], num_tracks: int) -> np.ndarray:
    """Positives per track in `files` (popularity for the baseline), read column by column."""
    counts = np.zeros(num_tracks, dtype=np.float64)
    for uri in files:
        for rb in open_parquet(uri).iter_batches(columns=["track_idx", "label"]):
            tracks = rb.column(0).to_numpy()
            counts += np.bincount(tracks[rb.column(1).to_numpy() == 1], minlength=num_tracks)
    return counts
