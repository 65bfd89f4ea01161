"""The autoencoder's input: each rank's training playlists, whole, as rows of the model's vocabulary,
and every step's batch of playlists and sampled softmax columns.

The training positives are `jobs/sample_negatives.py`'s `shard=<s>/` files (the leave-one-out
tracks already taken out), every playlist whole in one shard; shard s belongs to rank s % size, as
for NCF (`mpdrec.models.ncf.data`). Horovod's collectives need every rank to take the same number
of steps: the ranks agree on ceil(most playlists of a rank / batch) and a rank with fewer wraps
around. Every draw (the epoch's order, the sampled columns, the input dropout) comes from (seed,
epoch, rank), so a run resumed after epoch e trains epoch e + 1 as an uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mpdrec.models.ncf.data import IDS, open_parquet


@dataclass(frozen=True)
class Vocabulary:
    """The tracks the model knows, as rows 0..n-1: those in at least `min_playlists` training
    playlists, at most `max_tracks` of them (the most popular; the lower track_idx first among equals),
    which bounds a rank's tables (two of them, each with two optimizer moments) at any catalogue size."""

    tracks: np.ndarray  # track_idx of each row
    row_of: np.ndarray  # by track_idx: its row, -1 outside the vocabulary
    log_q: np.ndarray  # by row: log of the sampling probability (popularity ** beta)
    cdf: np.ndarray  # by row: the sampling distribution's cumulative sum

    @classmethod
    def of(cls, counts: np.ndarray, min_playlists: int, max_tracks: int, beta: float) -> Vocabulary:
        """From every track's number of training playlists (summed over the ranks)."""
        tracks = np.flatnonzero(counts >= min_playlists)
        if len(tracks) > max_tracks:
            tracks = np.sort(tracks[np.argsort(-counts[tracks], kind="stable")[:max_tracks]])
        row_of = np.full(len(counts), -1, np.int64)
        row_of[tracks] = np.arange(len(tracks))
        weights = counts[tracks] ** beta
        q = weights / weights.sum()
        return cls(tracks, row_of, np.log(q).astype(np.float32), np.cumsum(q))

    def __len__(self) -> int:
        return len(self.tracks)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.tracks) - 1)


@dataclass(frozen=True)
class PlaylistRows:
    """Playlists as CSR: playlist i's vocabulary rows are rows[starts[i]:starts[i + 1]]."""

    ids: np.ndarray  # playlist_idx of each playlist
    starts: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, playlists: np.ndarray, tracks: np.ndarray, vocabulary: Vocabulary) -> PlaylistRows:
        """From (playlist_idx, track_idx) pairs; tracks outside the vocabulary are left out, and with
        them a playlist that has no other."""
        rows = vocabulary.row_of[tracks]
        known = rows >= 0
        playlists, rows = playlists[known], rows[known]
        order = np.argsort(playlists, kind="stable")
        playlists, rows = playlists[order], rows[order].astype(np.int32)
        ids, starts = np.unique(playlists, return_index=True)
        return cls(ids, np.append(starts, len(rows)).astype(np.int64), rows)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, segment: the batch position of each row's playlist) of playlists `which`."""
        lengths = self.starts[which + 1] - self.starts[which]
        parts = [self.rows[self.starts[i] : self.starts[i + 1]] for i in which]
        rows = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        return rows, np.repeat(np.arange(len(which), dtype=np.int32), lengths)


def read_pairs(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(playlist_idx, track_idx) of every positive in `files`."""
    parts = [
        (rb.column(0).to_numpy(), rb.column(1).to_numpy())
        for uri in files
        for rb in open_parquet(uri).iter_batches(batch_size=1 << 20, columns=IDS)
    ]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (
        np.concatenate([p for p, _ in parts]).astype(np.int64),
        np.concatenate([t for _, t in parts]).astype(np.int64),
    )


@dataclass(frozen=True)
class Step:
    """One step's inputs: the batch's playlists' rows and segments, the softmax columns (the batch's
    distinct rows, then the sampled ones) with each row's column and the sampled columns' log of
    (draws x probability), and which input rows survive the dropout."""

    rows: np.ndarray
    segment: np.ndarray
    playlists: int
    columns: np.ndarray
    target: np.ndarray
    sampled: np.ndarray
    sampled_log_q: np.ndarray
    kept: np.ndarray


def steps_per_epoch(playlists_per_rank: list[int], batch_size: int) -> int:
    return math.ceil(max(playlists_per_rank) / batch_size)


def epoch_steps(
    playlists: PlaylistRows,
    vocabulary: Vocabulary,
    steps: int,
    batch_size: int,
    sampled: int,
    keep: float,
    seed: tuple[int, int, int],
) -> Iterator[Step]:
    """Exactly `steps` steps of whole playlists in an order shuffled by `seed` (seed, epoch, rank),
    starting over in that order when the rank runs out."""
    rng = np.random.default_rng(list(seed))
    order = rng.permutation(len(playlists))
    repeated = np.resize(order, steps * batch_size)
    for s in range(steps):
        rows, segment = playlists.batch(repeated[s * batch_size : (s + 1) * batch_size])
        columns, target = np.unique(rows, return_inverse=True)
        draws = vocabulary.draw(rng, sampled)
        draws = draws[~np.isin(draws, columns)]  # a sampled column that is a positive of the batch: not a negative
        yield Step(
            rows,
            segment,
            batch_size,
            columns.astype(np.int32),
            target.astype(np.int32),
            draws.astype(np.int32),
            vocabulary.log_q[draws] + np.float32(math.log(sampled)),
            (rng.random(len(rows)) < keep),
        )
