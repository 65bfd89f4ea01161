"""The autoencoder's input: each rank's training playlists, whole, as rows of the model's vocabulary
with their title words, and every step's batch of playlists, input weights and sampled softmax
columns.

The training positives are `jobs/sample_negatives.py`'s `shard=<s>/` files (the leave-one-out
tracks already taken out), every playlist whole in one shard; shard s belongs to rank s % size, as
for NCF (`mpdrec.models.ncf.data`). Horovod's collectives need every rank to take the same number
of steps: the ranks agree on ceil(most playlists of a rank / batch) and a rank with fewer wraps
around. Every draw (the epoch's order, the sampled columns, the input dropout) comes from (seed,
epoch, rank), so a run resumed after epoch e trains epoch e + 1 as an uninterrupted one does.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow.dataset as ds

from mpdrec.io.arrow_fs import resolve
from mpdrec.models.ncf.data import IDS, open_parquet
from mpdrec.vectors import sorted_positions


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
class TitleWords:
    """Title words as inputs of the encoder (rows after the vocabulary's tracks): the distinct words
    of the training playlists' normalised titles (kind "mpd") that at least `min_playlists` of them
    hold, and every playlist's words among them (CSR by playlist_idx). A playlist's title goes in
    beside its tracks, so a title alone (the challenge's title-only playlists) has a code too."""

    playlists: np.ndarray  # playlist_idx, sorted
    starts: np.ndarray
    words: np.ndarray  # word ids 0..count-1
    count: int

    @classmethod
    def read(cls, playlist_ids_uri: str, min_playlists: int) -> TitleWords:
        """From interactions/playlist_ids; `min_playlists` 0: no title words."""
        fs, path = resolve(playlist_ids_uri)
        table = ds.dataset(path, filesystem=fs, format="parquet").to_table(
            columns=["playlist_idx", "name_norm", "kind"]
        )
        order = np.argsort(table.column("playlist_idx").to_numpy(), kind="stable")
        ids = table.column("playlist_idx").to_numpy()[order].astype(np.int64)
        names = np.asarray(table.column("name_norm").to_pylist(), dtype=object)[order]
        training = np.asarray(table.column("kind").to_pylist(), dtype=object)[order] == "mpd"
        distinct = [sorted(set((n or "").split())) if min_playlists else [] for n in names]
        support = Counter(w for words, t in zip(distinct, training) if t for w in words)
        kept = sorted(w for w, c in support.items() if c >= min_playlists)
        code = {w: i for i, w in enumerate(kept)}
        coded = [[code[w] for w in words if w in code] for words in distinct]
        starts = np.zeros(len(ids) + 1, np.int64)
        np.cumsum([len(c) for c in coded], out=starts[1:])
        words = np.fromiter((w for c in coded for w in c), np.int32, count=int(starts[-1]))
        return cls(ids, starts, words, len(kept))

    @classmethod
    def none(cls) -> TitleWords:
        return cls(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int32), 0)

    def of(self, playlists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(starts, words) of `playlists` (sorted ids; no words for one it does not know)."""
        if not len(self.playlists):
            return np.zeros(len(playlists) + 1, np.int64), np.zeros(0, np.int32)
        at, known = sorted_positions(self.playlists, playlists)
        lengths = np.where(known, self.starts[at + 1] - self.starts[at], 0)
        starts = np.zeros(len(playlists) + 1, np.int64)
        np.cumsum(lengths, out=starts[1:])
        parts = [self.words[self.starts[a] : self.starts[a + 1]] for a, k in zip(at, known) if k]
        return starts, (np.concatenate(parts) if parts else np.zeros(0, np.int32)).astype(np.int32)


@dataclass(frozen=True)
class PlaylistRows:
    """Playlists as CSR: playlist i's vocabulary rows (its tracks: the decoder's targets) are
    rows[starts[i]:starts[i + 1]], its title words word_rows[word_starts[i]:word_starts[i + 1]]
    (encoder rows past the vocabulary's tracks)."""

    ids: np.ndarray  # playlist_idx of each playlist
    starts: np.ndarray
    rows: np.ndarray
    word_starts: np.ndarray
    word_rows: np.ndarray

    @classmethod
    def of(
        cls,
        playlists: np.ndarray,
        tracks: np.ndarray,
        vocabulary: Vocabulary,
        titles: TitleWords,
        also: np.ndarray | None = None,
    ) -> PlaylistRows:
        """From (playlist_idx, track_idx) pairs; tracks outside the vocabulary are left out, and with
        them a playlist that has no other, unless it is among `also` (playlists wanted for their
        titles alone: the title-only queries)."""
        rows = vocabulary.row_of[tracks]
        known = rows >= 0
        playlists, rows = playlists[known], rows[known]
        order = np.argsort(playlists, kind="stable")
        playlists, rows = playlists[order], rows[order].astype(np.int32)
        ids = np.union1d(playlists, also if also is not None else np.zeros(0, np.int64)).astype(np.int64)
        starts = np.searchsorted(playlists, ids, side="left")
        word_starts, words = titles.of(ids)
        return cls(ids, np.append(starts, len(rows)).astype(np.int64), rows, word_starts, words + len(vocabulary))

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, which: np.ndarray) -> PlaylistRows:
        """Playlists `which` (ascending) only."""
        rows, _ = self.batch(which)
        words, _ = _segments(self.word_starts, self.word_rows, which)
        starts = np.r_[0, np.cumsum(self.starts[which + 1] - self.starts[which])]
        word_starts = np.r_[0, np.cumsum(self.word_starts[which + 1] - self.word_starts[which])]
        return PlaylistRows(self.ids[which], starts.astype(np.int64), rows, word_starts.astype(np.int64), words)

    def batch(self, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, segment: the batch position of each row's playlist) of playlists `which`' tracks."""
        return _segments(self.starts, self.rows, which)

    def inputs(self, which: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(encoder rows, segment, is a track) of playlists `which`: their tracks, then their words."""
        rows, segment = self.batch(which)
        words, word_segment = _segments(self.word_starts, self.word_rows, which)
        is_track = np.r_[np.ones(len(rows), bool), np.zeros(len(words), bool)]
        return np.concatenate([rows, words]), np.concatenate([segment, word_segment]), is_track


def _segments(starts: np.ndarray, values: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = starts[which + 1] - starts[which]
    parts = [values[starts[i] : starts[i + 1]] for i in which]
    rows = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
    return rows, np.repeat(np.arange(len(which), dtype=np.int32), lengths)


def input_weights(segment: np.ndarray, playlists: int) -> np.ndarray:
    """1 / |x|^1/2 for each input row of its playlist x: the L2-normalised binary input."""
    lengths = np.bincount(segment, minlength=playlists)
    return (1.0 / np.sqrt(np.maximum(lengths, 1)))[segment].astype(np.float32)


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
    """One step's inputs: the encoder rows (the batch's playlists' tracks and title words), their
    playlist and weight (the normalised input, dropped out); the decoder's targets (each track
    row's playlist and column); the softmax columns (the batch's distinct tracks, then the sampled
    ones) and the sampled columns' log of (draws x probability)."""

    inputs: np.ndarray
    input_segment: np.ndarray
    weight: np.ndarray
    segment: np.ndarray
    target: np.ndarray
    playlists: int
    columns: np.ndarray
    sampled: np.ndarray
    sampled_log_q: np.ndarray


def steps_per_epoch(playlists_per_rank: list[int], batch_size: int) -> int:
    return math.ceil(max(playlists_per_rank) / batch_size)


@dataclass(frozen=True)
class Corruption:
    """How a training input is corrupted: each input row kept with probability `keep` (and scaled by
    1 / keep), and a playlist with a title shown as its title alone with probability `title_only`."""

    keep: float
    title_only: float


def epoch_steps(
    playlists: PlaylistRows,
    vocabulary: Vocabulary,
    steps: int,
    batch_size: int,
    sampled: int,
    corruption: Corruption,
    seed: tuple[int, int, int],
) -> Iterator[Step]:
    """Exactly `steps` steps of whole playlists in an order shuffled by `seed` (seed, epoch, rank),
    starting over in that order when the rank runs out."""
    rng = np.random.default_rng(list(seed))
    order = rng.permutation(len(playlists))
    repeated = np.resize(order, steps * batch_size)
    for s in range(steps):
        which = repeated[s * batch_size : (s + 1) * batch_size]
        rows, segment = playlists.batch(which)
        inputs, input_segment, is_track = playlists.inputs(which)
        weight = (
            input_weights(input_segment, batch_size) * (rng.random(len(inputs)) < corruption.keep) / corruption.keep
        )
        has_title = np.bincount(input_segment[~is_track], minlength=batch_size) > 0
        title_only = has_title & (rng.random(batch_size) < corruption.title_only)
        if title_only.any():  # as a title-only query is encoded: its words alone, normalised, none dropped
            alone = title_only[input_segment] & ~is_track
            words_only = input_weights(input_segment[alone], batch_size)
            weight = np.where(title_only[input_segment], 0.0, weight).astype(np.float32)
            weight[alone] = words_only
        columns, target = np.unique(rows, return_inverse=True)
        draws = vocabulary.draw(rng, sampled)
        draws = draws[~np.isin(draws, columns)]  # a sampled column that is a positive of the batch: not a negative
        yield Step(
            inputs,
            input_segment,
            weight.astype(np.float32),
            segment,
            target.astype(np.int32),
            batch_size,
            columns.astype(np.int32),
            draws.astype(np.int32),
            vocabulary.log_q[draws] + np.float32(math.log(sampled)),
        )
