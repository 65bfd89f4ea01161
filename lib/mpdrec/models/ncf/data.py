"""NCF input: a rank's training examples streamed into tf.data (the leave-one-out set:
`mpdrec.models.leave_one_out`).

Two kinds of input. Positives (what jobs/sample_negatives.py writes: `shard=<s>/` files of
(playlist_idx, track_idx), every playlist whole in one shard): a rank loads its shards' positives
once, as sorted int64 keys, and every epoch shuffles them and draws k fresh negatives per positive
(`mpdrec.negative_sampling`), rejecting its own playlists' positives and the held-out tracks. Labelled
rows (playlist_idx, track_idx, label; a user's own `ncf.train_path`) are streamed file by file, the
same rows every epoch.

Shard s belongs to rank s % size. Horovod's collectives need every rank to take the same number of
steps: all ranks read the Parquet footers (cheap), agree on ceil(largest rank's rows / batch) steps,
and a rank with fewer rows wraps around for the last few batches. Every example is trained on at
least once per epoch, and every batch is full, so the step function is traced once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mpdrec.errors import InputError
from mpdrec.io.arrow_fs import resolve
from mpdrec.io.fs import FileInfo, FileStore
from mpdrec.io.paths import join
from mpdrec.negative_sampling import draw_negatives, pair_keys

if TYPE_CHECKING:
    import tensorflow as tf

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # (playlist int32, track int32, label float32)
IDS = ["playlist_idx", "track_idx"]
COLUMNS = [*IDS, "label"]
_SHARD = re.compile(r"/shard=(\d+)/")
SAMPLE_CHUNK = 1 << 16  # positives whose negatives are drawn in one vectorised call


@dataclass(frozen=True)
class Shard:
    files: list[str]
    rows: int


@dataclass(frozen=True)
class TrainingData:
    """The shards, whether they hold labelled rows or positives, and the id ranges the embedding
    tables must cover."""

    shards: list[Shard]
    labelled: bool
    num_playlists: int
    num_tracks: int
    inputs: list[FileInfo]  # what the trained model depends on (fingerprint)

    def rank_files(self, rank: int, size: int) -> list[str]:
        return [f for s in self.shards[rank::size] for f in s.files]

    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    def steps_per_epoch(self, size: int, batch_size: int, k: int) -> int:
        """The same on every rank: enough batches for the rank with the most examples (positives
        bring k negatives each)."""
        per_row = 1 if self.labelled else 1 + k
        return math.ceil(max(sum(s.rows for s in self.shards[r::size]) for r in range(size)) * per_row / batch_size)


def open_parquet(uri: str) -> pq.ParquetFile:
    fs, path = resolve(uri)
    return pq.ParquetFile(fs.open_input_file(path))


def _footer(uri: str) -> tuple[int, int, int, bool]:
    """(rows, largest playlist_idx, largest track_idx, labelled) of a file, from its statistics when written."""
    pf = open_parquet(uri)
    names = pf.schema_arrow.names
    missing = [c for c in IDS if c not in names]
    if missing:
        raise InputError(
            f"{uri}: no column(s) {missing}; NCF training expects (playlist_idx, track_idx) positives "
            "or (playlist_idx, track_idx, label) rows"
        )
    md = pf.metadata
    maxima = []
    for name in IDS:
        col = pf.schema_arrow.get_field_index(name)
        stats = [md.row_group(g).column(col).statistics for g in range(md.num_row_groups)]
        if all(s is not None and s.has_min_max for s in stats):
            maxima.append(max((int(s.max) for s in stats), default=-1))
        else:
            values = pf.read(columns=[name]).column(0).to_numpy()
            maxima.append(int(values.max()) if len(values) else -1)
    return md.num_rows, maxima[0], maxima[1], "label" in names


def _group_shards(files: list[FileInfo], uri: str) -> list[list[str]]:
    """Files per shard: `shard=<s>/` directories, else each file is a shard."""
    parts = [_SHARD.search(f.uri) for f in files]
    matched = [m for m in parts if m is not None]
    if len(matched) == len(files):
        shards: dict[int, list[str]] = {}
        for f, m in zip(files, matched):
            shards.setdefault(int(m.group(1)), []).append(f.uri)
        return [sorted(shards[s]) for s in sorted(shards)]
    if any(parts):
        raise InputError(f"{uri}: mixes shard= directories with other Parquet files")
    return [[f.uri] for f in files]


def describe_training_data(store: FileStore, train_uri: str, size: int, eval_max: tuple[int, int]) -> TrainingData:
    """Shards, row counts, kind and table sizes of a training set (footers only).

    `eval_max` is the largest (playlist, track) id the evaluation set refers to; the tables cover it.
    """
    files = store.glob(join(train_uri, "shard=*/*.parquet")) or store.glob(join(train_uri, "*.parquet"))
    if not files:
        raise InputError(
            f"{train_uri}: no Parquet files (expected shard=<s>/*.parquet positives from "
            "jobs/sample_negatives.py, or *.parquet with playlist_idx, track_idx, label)"
        )
    footers = {f.uri: _footer(f.uri) for f in files}
    kinds = {v[3] for v in footers.values()}
    if len(kinds) > 1:
        raise InputError(f"{train_uri}: some files have a label column and some do not")
    labelled = kinds.pop()
    if not labelled and not any(_SHARD.search(f.uri) for f in files):
        raise InputError(
            f"{train_uri}: positives (no label column) must be in shard=<s>/ directories that hold "
            "whole playlists, so that a rank's negatives can avoid all of a playlist's tracks; "
            "rerun jobs/sample_negatives.py, or give labelled rows"
        )
    shards = [Shard(fs, sum(footers[f][0] for f in fs)) for fs in _group_shards(files, train_uri)]
    if len(shards) < size:
        raise InputError(
            f"{train_uri}: {len(shards)} shards, fewer than the {size} ranks; rerun "
            f"jobs/sample_negatives.py with --set negatives.shards={size} (or a multiple)"
        )
    empty = [r for r in range(size) if not sum(s.rows for s in shards[r::size])]
    if empty:
        raise InputError(f"{train_uri}: ranks {empty} would get no rows")
    num_playlists = 1 + max(max(v[1] for v in footers.values()), eval_max[0])
    num_tracks = 1 + max(max(v[2] for v in footers.values()), eval_max[1])
    return TrainingData(shards, labelled, num_playlists, num_tracks, files)


def labelled_batches(files: list[str], batch_size: int, steps: int) -> Iterator[Batch]:
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
                    yield (
                        head.column("playlist_idx").to_numpy().astype(np.int32, copy=False),
                        head.column("track_idx").to_numpy().astype(np.int32, copy=False),
                        head.column("label").to_numpy().astype(np.float32),
                    )
                    made += 1
                    if made == steps:
                        return
                    pending = table.slice(batch_size).to_batches()
                    have -= batch_size


def read_positive_keys(files: list[str], num_tracks: int) -> np.ndarray:
    """The sorted `pair_keys` of every (playlist, track) positive in `files`."""
    parts = [
        pair_keys(rb.column(0).to_numpy(), rb.column(1).to_numpy(), num_tracks)
        for uri in files
        for rb in open_parquet(uri).iter_batches(batch_size=1 << 20, columns=IDS)
    ]
    keys = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    keys.sort()
    return keys


@dataclass(frozen=True)
class NegativeDraws:
    """How a rank draws its negatives: k per positive from `cdf`, never a key in `taken`."""

    k: int
    cdf: np.ndarray
    taken: Sequence[np.ndarray]  # sorted pair_keys: the rank's positives, the held-out tracks
    seed: int


def sampled_batches(
    keys: np.ndarray, draws: NegativeDraws, epoch: int, rank: int, batch_size: int, steps: int
) -> Iterator[Batch]:
    """Exactly `steps` full batches of this epoch: the positives `keys` in an order shuffled by (seed,
    epoch, rank), each followed by its k negatives drawn for this epoch (labels 1, then k zeros), the
    stream cut into batches. A rank that runs out before `steps` starts over in the same order."""
    num_tracks = len(draws.cdf)
    order = np.arange(len(keys), dtype=np.int32 if len(keys) < 2**31 else np.int64)
    np.random.default_rng([draws.seed, epoch, rank]).shuffle(order)
    labels = np.tile(np.r_[1.0, np.zeros(draws.k)].astype(np.float32), SAMPLE_CHUNK)
    within = np.arange(draws.k, dtype=np.int64)
    buffer: Batch = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
    made = 0
    while True:
        for start in range(0, len(order), SAMPLE_CHUNK):
            chosen = keys[order[start : start + SAMPLE_CHUNK]]
            pl, tr = chosen // num_tracks, chosen % num_tracks
            draw_ids = ((tr * draws.k)[:, None] + within).ravel()  # distinct within a playlist
            neg = draw_negatives(np.repeat(pl, draws.k), draw_ids, draws.taken, draws.cdf, draws.seed, epoch)
            rows = np.column_stack([tr, neg.reshape(-1, draws.k)]).ravel()  # each positive, then its negatives
            chunk = (np.repeat(pl, 1 + draws.k).astype(np.int32), rows.astype(np.int32), labels[: len(rows)])
            buffer = _joined(buffer, chunk)
            at = 0
            while len(buffer[0]) - at >= batch_size:
                yield _cut(buffer, at, at + batch_size)
                at += batch_size
                made += 1
                if made == steps:
                    return
            buffer = _cut(buffer, at, len(buffer[0]))


def _joined(a: Batch, b: Batch) -> Batch:
    return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]), np.concatenate([a[2], b[2]])


def _cut(batch: Batch, start: int, stop: int) -> Batch:
    return batch[0][start:stop], batch[1][start:stop], batch[2][start:stop]


def training_dataset(batches: Callable[[], Iterator[Batch]], batch_size: int) -> tf.data.Dataset:
    """A batch generator as a prefetching tf.data pipeline (reading and drawing overlap the training step)."""
    import tensorflow as tf

    spec = tf.TensorSpec([batch_size], tf.int32)
    return tf.data.Dataset.from_generator(
        batches, output_signature=(spec, spec, tf.TensorSpec([batch_size], tf.float32))
    ).prefetch(tf.data.AUTOTUNE)


def labelled_track_counts(files: list[str], num_tracks: int) -> np.ndarray:
    """Positives per track in labelled `files` (popularity for the baseline), read column by column."""
    counts = np.zeros(num_tracks, dtype=np.float64)
    for uri in files:
        for rb in open_parquet(uri).iter_batches(columns=["track_idx", "label"]):
            tracks = rb.column(0).to_numpy()
            counts += np.bincount(tracks[rb.column(1).to_numpy() == 1], minlength=num_tracks)
    return counts
