"""NCF scores of the blend's candidates, computed inside the executors.

The trained model (`<run_dir>/ncf/<model>/model.keras`) is loaded once per Python worker process
(Spark reuses them across tasks) and applied to Arrow batches of (playlist_idx, track_idx) by an
iterator pandas UDF: the score is a new column of the rows as they are (only the two ids go to
Python; no join back, which cost as much as the scoring), no collect, no per-row Python. TensorFlow gets one thread per task, since Spark
already runs one task per core. A playlist the model knows nothing about gets a logit of 0: one
outside its table, or one without seeds (`num_samples` 0: its row was never trained).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.errors import InputError
from mpdrec.io.fs import FileStore
from mpdrec.io.paths import MANIFEST, join
from mpdrec.models.data import Queries

SCORE_BATCH = 1 << 16  # (playlist, track) pairs per model call
_loaded: dict[tuple[str, str], Any] = {}  # (model URI, version) -> Keras model, per Python worker process


def _model(uri: str, version: str) -> Any:
    """The Keras model at `uri` (a directory holding model.keras), loaded on first use; `version`
    (when it was published) keeps a worker that Spark reuses from scoring with a retrained model's
    predecessor."""
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
            download_dir(uri, tmp)
            _loaded[(uri, version)] = tf.keras.models.load_model(os.path.join(tmp, "model.keras"), compile=False)
    return _loaded[(uri, version)]


@dataclass(frozen=True)
class NcfModel:
    """A trained `<run_dir>/ncf/<name>/` and the size of its playlist table."""
    name: str
    uri: str
    num_playlists: int
    version: str  # the manifest's finished_at

    @classmethod
    def load(cls, store: FileStore, run_dir: str, name: str, num_tracks: int) -> "NcfModel":
        """The model's manifest, checked against the ranking's track ids (the same interactions)."""
        uri = join(run_dir, "ncf", name)
        m = json.loads(store.read_text(join(uri, MANIFEST)))
        if m["num_tracks"] != num_tracks:
            raise InputError(f"rank.ncf_model: {uri} was trained on {m['num_tracks']:,} tracks, the run's "
                             f"interactions have {num_tracks:,}; retrain it with jobs/train_ncf.py")
        return cls(name, uri, int(m["num_playlists"]), m["finished_at"])

    def scores(self, rows: DataFrame, queries: Queries) -> DataFrame:
        """`rows` (pid, track_idx, any other columns) with ncf_score: the model's logit."""
        ids = queries.playlists.select(F.col("pid").alias(_PID), F.when(F.col("num_samples") > 0, F.col("playlist_idx"))
                                       .alias(_PLAYLIST))
        score = _score_udf(self.uri, self.version, self.num_playlists)
        return (rows.join(F.broadcast(ids), rows["pid"] == F.col(_PID), "left")
                .withColumn("ncf_score", score(_PLAYLIST, "track_idx")).drop(_PID, _PLAYLIST))


_PID, _PLAYLIST = "_ncf_pid", "_ncf_playlist_idx"  # the query's playlist row, for the UDF only


def _score_udf(model_uri: str, version: str, num_playlists: int) -> Any:
    @F.pandas_udf("float")  # type: ignore[call-overload]
    def score(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        import tensorflow as tf

        model = _model(model_uri, version)
        for playlist, track in batches:
            p = playlist.fillna(-1).to_numpy(np.int64)
            known = (p >= 0) & (p < num_playlists)
            logits = np.zeros(len(p), dtype=np.float32)
            rows = np.flatnonzero(known)
            t = track.to_numpy(np.int32)
            for i in range(0, len(rows), SCORE_BATCH):
                chunk = rows[i:i + SCORE_BATCH]
                logits[chunk] = model([tf.constant(p[chunk], tf.int32), tf.constant(t[chunk], tf.int32)],
                                      training=False).numpy().reshape(-1)
            yield pd.Series(logits)
    return score
