"""NCF scores of the blend's candidates: the embedding rows joined in Spark, the dense layers in
the executors.

Spark joins each (pid, track_idx) row to its query playlist's rows of the exported embedding tables
(broadcast: a challenge's playlists only) and to its track's (a join with the track table). The
network after its lookups (`head.keras`: `mpdrec.models.ncf.model.head_of`, a few MB) is loaded once
per Python worker process (Spark reuses them across tasks) and applied to Arrow batches of those
rows, a step of the pass that reads them (`mpdrec.rank.feature_rows`); the score is a new column of
the rows as they are, no collect, no per-row Python. The tables themselves never reach a Python
worker (a worker holding the whole model held 2 GB of NeuMF tables at full MPD). TensorFlow gets one thread per task, since Spark already runs one task per core. A
playlist the model knows nothing about gets a logit of 0: one outside its table, or one without
seeds (`num_samples` 0: its row was never trained).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import FloatType, StructField

from mpdrec.errors import InputError
from mpdrec.io.fs import FileStore
from mpdrec.io.paths import MANIFEST, join
from mpdrec.models.data import Queries
from mpdrec.models.ncf.artifacts import HEAD
from mpdrec.rank.feature_rows import BatchFunction, Columns, ColumnStep, FeatureRows
from mpdrec.vectors import vector_matrix

_loaded: dict[tuple[str, str], Any] = {}  # (model URI, version) -> its Keras head, per Python worker process
PREFIX = "_ncf_"  # the joined embedding rows' columns, for the scoring only


def _head(uri: str, version: str) -> Any:
    """The Keras head in the model directory `uri`, loaded on first use; `version` (when it was
    published) keeps a worker that Spark reuses from scoring with a retrained model's predecessor."""
    if (uri, version) not in _loaded:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        from mpdrec.models.ncf.artifacts import download_dir

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already started in this process: keep its threads
            pass
        with tempfile.TemporaryDirectory() as tmp:
            download_dir(join(uri, HEAD), os.path.join(tmp, HEAD))
            _loaded[(uri, version)] = tf.keras.models.load_model(os.path.join(tmp, HEAD), compile=False)
    return _loaded[(uri, version)]


@dataclass(frozen=True)
class NcfModel:
    """A trained `<run_dir>/ncf/<name>/`."""
    name: str
    uri: str
    version: str  # the manifest's finished_at

    @classmethod
    def load(cls, store: FileStore, run_dir: str, name: str, num_tracks: int) -> "NcfModel":
        """The model's manifest, checked against the ranking's track ids (the same interactions)."""
        uri = join(run_dir, "ncf", name)
        m = json.loads(store.read_text(join(uri, MANIFEST)))
        if m["num_tracks"] != num_tracks:
            raise InputError(f"rank.ncf_model: {uri} was trained on {m['num_tracks']:,} tracks, the run's "
                             f"interactions have {num_tracks:,}; retrain it with jobs/train_ncf.py")
        return cls(name, uri, m["finished_at"])

    def scores(self, rows: DataFrame, queries: Queries, tracks: DataFrame | None = None) -> DataFrame:
        """`rows` (pid, track_idx, any other columns) with ncf_score: the model's logit
        (`with_scores`, computed now)."""
        return self.with_scores(FeatureRows(rows), queries, tracks).to_frame()

    def with_scores(self, rows: FeatureRows, queries: Queries, tracks: DataFrame | None = None) -> FeatureRows:
        """`rows` with ncf_score, computed in the pass that reads them (`FeatureRows`).

        With `tracks` (a track_idx column holding every track of `rows`, cheap to compute: from a
        cached candidate table, say), only those tracks' embeddings are joined, broadcast: `rows`
        keep their partitioning (by pid, from the candidate table) and are not shuffled. Without,
        the whole track table is joined by track_idx, which shuffles `rows` (a join with the rows'
        own distinct tracks would compute them twice)."""
        frame = rows.frame
        playlist_table, track_table = (frame.sparkSession.read.parquet(join(self.uri, "embeddings", f"{side}s.parquet"))
                                       for side in ("playlist", "track"))
        playlists = (queries.playlists.where(F.col("num_samples") > 0).select("pid", "playlist_idx")
                     .join(playlist_table, "playlist_idx").select("pid", *_prefixed(playlist_table, "playlist_idx")))
        track_rows = track_table.select("track_idx", *_prefixed(track_table, "track_idx"))
        names = [c[len(PREFIX):] for c in playlists.columns + track_rows.columns if c.startswith(PREFIX)]
        with_tracks = (frame.join(F.broadcast(track_rows.join(tracks.distinct(), "track_idx")), "track_idx", "left")
                       if tracks is not None else frame.join(track_rows, "track_idx", "left"))
        joined = with_tracks.join(F.broadcast(playlists), "pid", "left").select(*frame.columns,
                                                                                 *(PREFIX + n for n in names))
        step = ColumnStep((StructField("ncf_score", FloatType(), False),), _scored(self.uri, self.version, names))
        return rows.then(step, joined, tuple(PREFIX + n for n in names))


def _prefixed(table: DataFrame, key: str) -> list[Column]:
    """A table's embedding columns, renamed apart from the rows' own."""
    return [F.col(c).alias(PREFIX + c) for c in table.columns if c != key]


def _scored(uri: str, version: str, names: list[str]) -> Callable[[], BatchFunction]:
    """A batch's ncf_score from its embedding rows (null where the playlist or the track has none):
    the head's logit, 0 where a row is missing."""
    def bind() -> BatchFunction:
        head = _head(uri, version)

        def score(cols: Columns) -> dict[str, np.ndarray]:
            known = np.ones(len(cols["pid"]), bool)
            for n in names:
                known &= np.asarray(cols[PREFIX + n].is_valid())
            rows = pa.array(np.flatnonzero(known))
            logits = np.zeros(len(known), np.float32)
            if len(rows):
                inputs = {n: vector_matrix(cols[PREFIX + n].take(rows), n) for n in names}
                logits[np.asarray(rows)] = head(inputs, training=False).numpy().reshape(-1)
            return {"ncf_score": logits}
        return score
    return bind
