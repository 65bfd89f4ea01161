"""NCF scores of the blend's candidates: the embedding rows looked up in the executors, the dense
layers there too.

The embedding rows of a challenge's query playlists and of its candidates' tracks (bounded by the
query set, not the catalogue) are collected and broadcast as id-sorted matrices, and each batch of
(pid, track_idx) rows looks its rows up by binary search. The network after its lookups
(`head.keras`: `mpdrec.models.ncf.model.head_of`, a few MB) is loaded once per Python worker process
(Spark reuses them across tasks) and applied to those rows, a step of the pass that reads them
(`mpdrec.rank.feature_rows`): the score is a new column of the rows as they are, no per-row Python.
Joined to the rows in Spark instead, the embedding rows crossed to Python in Arrow with every
candidate, element by element (64 floats a row for GMF, over ten million rows a challenge at 100 slices); the
whole tables in every worker would be 2 GB of NeuMF at full MPD. TensorFlow gets one thread per
task, since Spark already runs one task per core. A playlist the model knows nothing about gets a
logit of 0: one outside its table, or one without seeds (`num_samples` 0: its row was never trained).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import FloatType, StructField

from mpdrec.errors import InputError
from mpdrec.io.fs import FileStore
from mpdrec.io.paths import MANIFEST, join
from mpdrec.lists.inputs import Queries
from mpdrec.models.ncf.artifacts import HEAD
from mpdrec.rank.feature_rows import BatchFunction, Columns, ColumnStep, FeatureRows, Share
from mpdrec.vectors import VectorRows

_loaded: dict[tuple[str, str], Any] = {}  # (model URI, version) -> its Keras head, per Python worker process


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
    def load(cls, store: FileStore, run_dir: str, name: str, num_tracks: int) -> NcfModel:
        """The model's manifest, checked against the ranking's track ids (the same interactions)."""
        uri = join(run_dir, "ncf", name)
        m = json.loads(store.read_text(join(uri, MANIFEST)))
        if m["num_tracks"] != num_tracks:
            raise InputError(
                f"rank.ncf_model: {uri} was trained on {m['num_tracks']:,} tracks, the run's "
                f"interactions have {num_tracks:,}; retrain it with jobs/train_ncf.py"
            )
        return cls(name, uri, m["finished_at"])

    def scores(
        self, rows: DataFrame, queries: Queries, tracks: DataFrame | None = None, broadcast: Share | None = None
    ) -> DataFrame:
        """`rows` (pid, track_idx, any other columns) with ncf_score: the model's logit
        (`with_scores`, computed now)."""
        return self.with_scores(FeatureRows(rows), queries, tracks, broadcast).to_frame()

    def with_scores(
        self, rows: FeatureRows, queries: Queries, tracks: DataFrame | None = None, broadcast: Share | None = None
    ) -> FeatureRows:
        """`rows` with ncf_score, computed in the pass that reads them (`FeatureRows`).

        `tracks`: a track_idx column holding every track of `rows`, cheap to compute (from a cached
        candidate table, say); without, the rows' own tracks, which computes the rows once more.
        `broadcast` shares the looked-up rows with the executors (`RankingData.broadcast`, which
        destroys them with the challenge's other lookups); without, the SparkContext's."""
        spark = rows.frame.sparkSession
        playlist_table, track_table = (
            spark.read.parquet(join(self.uri, "embeddings", f"{side}s.parquet")) for side in ("playlist", "track")
        )
        playlists = (
            queries.playlists.where(F.col("num_samples") > 0)
            .select("pid", "playlist_idx")
            .join(playlist_table, "playlist_idx")
            .drop("playlist_idx")
        )
        wanted = (rows.frame if tracks is None else tracks).select("track_idx").distinct()
        share = broadcast or spark.sparkContext.broadcast
        lookups = share(
            {
                "playlists": VectorRows.collect(playlists, "pid"),
                "tracks": VectorRows.collect(track_table.join(wanted, "track_idx"), "track_idx"),
            }
        )
        step = ColumnStep((StructField("ncf_score", FloatType(), False),), _scored(self.uri, self.version, lookups))
        return rows.then(step)


def _scored(uri: str, version: str, lookups: Broadcast) -> Callable[[], BatchFunction]:
    """A batch's ncf_score from its playlists' and tracks' embedding rows: the head's logit, 0 where
    either has none."""

    def bind() -> BatchFunction:
        head, rows = _head(uri, version), lookups.value

        def score(cols: Columns) -> dict[str, np.ndarray]:
            (p, p_known), (t, t_known) = (
                rows["playlists"].positions(cols["pid"]),
                rows["tracks"].positions(cols["track_idx"]),
            )
            known = p_known & t_known
            logits = np.zeros(len(known), np.float32)
            if known.any():
                inputs = {
                    **{n: m[p[known]] for n, m in rows["playlists"].tables.items()},
                    **{n: m[t[known]] for n, m in rows["tracks"].tables.items()},
                }
                logits[known] = head(inputs, training=False).numpy().reshape(-1)
            return {"ncf_score": logits}

        return score

    return bind
