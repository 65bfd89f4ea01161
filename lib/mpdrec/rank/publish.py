"""Write a ranking as the official submission CSV (+ a Parquet copy with scores), validated.

It is written inside the rank stage's staging directory; a submission that breaks any rule raises
InvalidSubmission, so the stage fails and the file is never published under <run_dir>/rank.

A challenge is 10,000 lists of 500 tracks: `collect` brings the rows to the driver in one Arrow
collect; `write` looks their URIs up there (`RankingData.track_uris`) and writes the CSV and the
Parquet copy from that one table, so the two agree, then validates the CSV. Done in Spark (a join
to the URIs, a Parquet write, the lists grouped and collected) it was slower at 100 slices.
`write` is Python on the driver alone (seconds a submission at that size), so the rank stage runs it
in a background thread while Spark computes the next submission (`Publisher`): on a cluster the
driver's cores are otherwise idle; in local mode on 2 cores it competes with the tasks and gains
little."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame

from mpdrec.io.arrow_fs import resolve, write_bytes
from mpdrec.io.paths import is_local, join, local_path
from mpdrec.lists.inputs import RankingData
from mpdrec.rank.submission import check_submission, write_submission
from mpdrec.sorted_groups import group_starts

PARQUET_PART = "part-00000.parquet"


def _write_parquet(table: pa.Table, uri: str) -> None:
    """`table` as the one file of directory `uri` (emptied first), which Spark reads as any other."""
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)
    fs.delete_dir_contents(path, missing_dir_ok=True)
    pq.write_table(table, f"{path}/{PARQUET_PART}", filesystem=fs)


def collect(ranked: DataFrame) -> pd.DataFrame:
    """`ranked` (assemble's output) on the driver, ordered by pid then rank."""
    rows = ranked.select("pid", "rank", "track_idx", "score", "source").toPandas()
    return rows.iloc[np.lexsort((rows["rank"].to_numpy(), rows["pid"].to_numpy()))]


def write(
    rows: pd.DataFrame,
    track_uris: np.ndarray,
    seeds: dict[int, set[str]],
    out_dir: str,
    name: str,
    team: str,
    email: str,
) -> dict[str, Any]:
    """`<out_dir>/<name>.csv` and `<out_dir>/<name>_recommendations/` from `collect`'s rows."""
    pids = rows["pid"].to_numpy()
    uris = track_uris[rows["track_idx"].to_numpy()]
    _write_parquet(
        pa.table(
            {
                "pid": pids,
                "rank": rows["rank"].to_numpy(),
                "track_uri": pa.array(uris, pa.string()),
                "score": rows["score"].to_numpy(),
                "source": rows["source"].to_numpy(),
            }
        ),
        join(out_dir, f"{name}_recommendations"),
    )
    bounds = group_starts(pids)
    lists = [(int(pids[a]), uris[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:])]
    target = join(out_dir, f"{name}.csv")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(local_path(target)) if is_local(target) else os.path.join(tmp, f"{name}.csv")
        write_submission(path, team, email, lists)
        check_submission(path, seeds)
        if not is_local(target):
            with open(path, "rb") as fh:
                write_bytes(target, fh.read())
    return {"playlists": len(seeds)}


def publish(
    ranked: DataFrame, data: RankingData, seeds: dict[int, set[str]], out_dir: str, name: str, team: str, email: str
) -> dict[str, Any]:
    """`collect` then `write`, in this thread."""
    return write(collect(ranked), data.track_uris, seeds, out_dir, name, team, email)


class Publisher:
    """`write`s submissions one at a time in a background thread; `results` waits for them all and
    raises the first failure (an invalid submission fails the stage as it would in line)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish")
        self._pending: dict[str, Future] = {}

    def submit(
        self,
        key: str,
        ranked: DataFrame,
        data: RankingData,
        seeds: dict[int, set[str]],
        out_dir: str,
        name: str,
        team: str,
        email: str,
    ) -> None:
        self._pending[key] = self._pool.submit(
            write, collect(ranked), data.track_uris, seeds, out_dir, name, team, email
        )

    def results(self) -> dict[str, dict[str, Any]]:
        return {key: future.result() for key, future in self._pending.items()}

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
