"""Write a ranking as the official submission CSV (+ a Parquet copy with scores), validated.

It is written inside the rank stage's staging directory; a submission that breaks any rule raises
InvalidSubmission, so the stage fails and the file is never published under <run_dir>/rank."""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame

from mpdrec.io.arrow_fs import resolve, write_bytes
from mpdrec.io.paths import is_local, join, local_path
from mpdrec.models.data import RankingData
from mpdrec.rank.submission import check_submission, write_submission

PARQUET_PART = "part-00000.parquet"


def _write_parquet(table: pa.Table, uri: str) -> None:
    """`table` as the one file of directory `uri` (emptied first), which Spark reads as any other."""
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)
    fs.delete_dir_contents(path, missing_dir_ok=True)
    pq.write_table(table, f"{path}/{PARQUET_PART}", filesystem=fs)


def publish(ranked: DataFrame, data: RankingData, seeds: dict[int, set[str]], out_dir: str, name: str,
            team: str, email: str) -> dict[str, Any]:
    """`<out_dir>/<name>.csv` and `<out_dir>/<name>_recommendations/` from `ranked` (assemble's output).

    A challenge is 10,000 lists of 500 tracks: the rows come to the driver in one Arrow collect, their
    URIs are looked up there (`RankingData.track_uris`), and the CSV and the Parquet copy are written
    from that one table, so the two agree. Done in Spark (a join to the URIs, a Parquet write, then
    the lists grouped and collected) it took twice as long at 100 slices."""
    rows = ranked.select("pid", "rank", "track_idx", "score", "source").toPandas()
    order = np.lexsort((rows["rank"].to_numpy(), rows["pid"].to_numpy()))
    pids = rows["pid"].to_numpy()[order]
    uris = data.track_uris[rows["track_idx"].to_numpy()[order]]
    _write_parquet(pa.table({"pid": pids, "rank": rows["rank"].to_numpy()[order], "track_uri": pa.array(uris, pa.string()),
                             "score": rows["score"].to_numpy()[order], "source": rows["source"].to_numpy()[order]}),
                   join(out_dir, f"{name}_recommendations"))
    starts = np.flatnonzero(np.diff(pids)) + 1
    lists = [(int(p[0]), u.tolist()) for p, u in zip(np.split(pids, starts), np.split(uris, starts)) if len(p)]
    target = join(out_dir, f"{name}.csv")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(local_path(target)) if is_local(target) else os.path.join(tmp, f"{name}.csv")
        write_submission(path, team, email, lists)
        check_submission(path, seeds)
        if not is_local(target):
            with open(path, "rb") as fh:
                write_bytes(target, fh.read())
    return {"playlists": len(seeds)}
