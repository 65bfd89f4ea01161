"""Item co-occurrence: score(p, j) = sum over seeds s of p of co-occurrences(s, j) / popularity(j)^beta.

Computed through playlists, never as an item-item matrix: sum_s cooc(s, j) equals the sum, over
training playlists q containing j, of |seeds(p) & q|. Only the `neighbours` playlists sharing most
seeds with p are used (ties to the lower playlist_idx), and a seed in very many playlists is sampled
down (by a seeded hash) to `max_per_seed` of them, which bounds the work at MPD scale. Dividing by
popularity^beta keeps hits from drowning specific co-occurrences.

Both lookups are numpy arrays on the executors, not shuffled rows: each seed's sampled playlists
(`sampled_postings`) and each training playlist's tracks are collected once as CSR arrays and
broadcast (tens of MB at 100 slices; for the full MPD a few hundred MB for the playlists' tracks,
plus what the challenge's seeds sample: docs/ranking.md). The query playlists' seeds come sorted by
query in Arrow batches of many queries (`mpdrec.sorted_groups`) and, per query in numpy, the
overlaps are counted (`_nearest`), then the neighbours' tracks summed and cut to the best (`_best`).
Shuffling the same arrays with every (query, seed) and (query, neighbour) row took far longer at 100
slices, and a grouped pandas UDF somewhat longer than these Arrow batches (same output; no per-query
pandas frame here: docs/ranking.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.csr import Csr, csr, csr_rows
from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.sorted_groups import group_starts, sorted_by, whole_groups


def sampled_postings(data: RankingData, tracks: DataFrame, max_per_seed: int, seed: int) -> DataFrame:
    """track_idx, q: the training playlists holding each of `tracks` (a track_idx column), those of
    a track in more than `max_per_seed` playlists kept with probability max_per_seed / playlist_count
    by a seeded hash of (playlist, track): the same seed keeps the same playlists."""
    keep_share = F.least(F.lit(1.0), F.lit(float(max_per_seed)) / F.col("playlist_count"))
    bucket = (F.abs(F.xxhash64(F.lit(seed), "playlist_idx", "track_idx")) % 1_000_000) / 1_000_000.0
    counts = F.broadcast(data.track_ids.select("track_idx", "playlist_count"))  # 2.3M rows for the full MPD
    return (
        data.interactions.select("playlist_idx", "track_idx")
        .join(F.broadcast(tracks), "track_idx")
        .join(counts, "track_idx")
        .where(bucket < keep_share)
        .select("track_idx", F.col("playlist_idx").alias("q"))
    )


def _top(ids: np.ndarray, score: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The `keep` best (ids, score), score descending then id: only what scores at least the
    keep-th best is sorted (ties at the cut included, so the order is the full sort's)."""
    if len(ids) > keep:
        cut = np.partition(score, len(score) - keep)[len(score) - keep]
        at_least = np.flatnonzero(score >= cut)
        ids, score = ids[at_least], score[at_least]
    order = np.lexsort((ids, -score))[:keep]
    return ids[order], score[order]


def _nearest(
    seeds: np.ndarray, own: int | None, neighbours: int, postings: Csr, sizes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A query's `neighbours` training playlists sharing most of its seeds (its own playlist `own`
    left out), ties to the lower playlist_idx: (playlist_idx, overlap); with the playlists' `sizes`,
    the most similar by the Dice coefficient 2 overlap / (seeds + size) instead: (playlist_idx, Dice)."""
    qs, _ = csr_rows(postings, seeds)
    if own is not None:
        qs = qs[qs != own]
    ids, overlap = np.unique(qs, return_counts=True)
    return _top(ids, overlap if sizes is None else 2.0 * overlap / (len(seeds) + sizes[ids]), neighbours)


def _best(
    q: np.ndarray, overlap: np.ndarray, keep: int, weight: np.ndarray, tracks: Csr
) -> tuple[np.ndarray, np.ndarray]:
    """A query's `keep` best tracks from its neighbours `q`: (track_idx, score = the summed overlaps
    of the neighbours holding it * weight[track] (1 / popularity^beta)), score descending then
    track_idx."""
    hits, lengths = csr_rows(tracks, q)
    # summed over the distinct hits (200 neighbours hold tens of thousands), not into an array of every track:
    # that one grows with the catalogue, and zeroing and scanning it cost more than sorting the hits
    ids, which = np.unique(hits, return_inverse=True)
    summed = np.bincount(which, weights=np.repeat(overlap.astype(np.float64), lengths), minlength=len(ids))
    held = summed > 0
    ids = ids[held].astype(np.int32)
    return _top(ids, summed[held] * weight[ids], keep)


def _scored(
    neighbours: int, n: int, lookups: Broadcast, playlist_tracks: Broadcast, dice: bool
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Queries' seeds (pid, track_idx, their own playlist_idx `self`), sorted by pid -> each query's
    n best non-seed tracks, ranked, from the broadcast (weight, postings) and playlists' tracks.
    `dice`: neighbours by the Dice coefficient, and a track scored by the neighbours holding it, then
    their summed Dice (each neighbour counts 1 + Dice / (neighbours + 1), and Dice <= 1)."""

    def scored(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        (weight, postings), tracks = lookups.value, playlist_tracks.value
        sizes = np.diff(tracks[0]) if dice else None
        for cols in whole_groups(batches, "pid"):
            pids, ranked = cols["pid"], []
            bounds = group_starts(pids)
            for start, end in zip(bounds[:-1], bounds[1:]):
                own, seeds = cols["self"][start], cols["track_idx"][start:end].astype(np.int64)
                q, similarity = _nearest(seeds, None if np.isnan(own) else int(own), neighbours, postings, sizes)
                if dice:
                    similarity = 1.0 + similarity / (neighbours + 1)
                ids, score = _best(q, similarity, n + len(seeds), weight, tracks)
                kept = ~np.isin(ids, seeds)
                ids, score = ids[kept][:n], score[kept][:n]
                ranked.append((np.full(len(ids), pids[start]), ids, score, np.arange(len(ids), dtype=np.int32)))
            yield pa.RecordBatch.from_arrays(
                [pa.array(np.concatenate(c)) for c in zip(*ranked)], names=["pid", "track_idx", "score", "rank"]
            )

    return scored


def recommend(
    data: RankingData,
    queries: Queries,
    n: int,
    neighbours: int,
    beta: float,
    max_per_seed: int,
    seed: int,
    dice: bool = False,
) -> DataFrame:
    """pid, track_idx, score, rank (0-based): each query's n best non-seed tracks, ranked by score
    then track_idx (the more popular first). `dice`: the Dice playlist-neighbour source (the MPD
    study's baseline, `mpdrec.studies.dice`): neighbours by Dice, tracks by how many hold them (then
    `beta` should be 0). Its broadcasts last until `data.release()`."""
    popularity = data.track_ids.select("track_idx", "playlist_count").toPandas()
    weight = np.zeros(data.num_tracks, np.float64)
    weight[popularity["track_idx"].to_numpy()] = popularity["playlist_count"].to_numpy(np.float64) ** -beta
    postings = sampled_postings(data, queries.seeds.select("track_idx").distinct(), max_per_seed, seed)
    lookups = data.broadcast((weight, csr(postings, "track_idx", "q", data.num_tracks)))
    query_self = queries.playlists.select("pid", F.col("playlist_idx").alias("self"))
    # `self` a double: null (a query without a training playlist) reads as NaN in numpy
    seeds = queries.seeds.join(F.broadcast(query_self), "pid").select("pid", "track_idx", F.col("self").cast("double"))
    return sorted_by(seeds, "pid").mapInArrow(
        _scored(neighbours, n, lookups, data.shared("playlist_tracks"), dice),
        "pid long, track_idx int, score double, rank int",
    )
