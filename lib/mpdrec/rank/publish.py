"""Write a ranking as the official submission CSV (+ a Parquet copy with scores), validated.

It is written inside the rank stage's staging directory; a submission that breaks any rule raises
InvalidSubmission, so the stage fails and the file is never published under <run_dir>/rank."""
from __future__ import annotations

import os
import tempfile
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.io.arrow_fs import write_bytes
from mpdrec.io.paths import is_local, join, local_path
from mpdrec.models.data import RankingData
from mpdrec.rank.submission import check_submission, write_submission


def publish(ranked: DataFrame, data: RankingData, seeds: dict[int, set[str]], out_dir: str, name: str,
            team: str, email: str) -> dict[str, Any]:
    """`<out_dir>/<name>.csv` and `<out_dir>/<name>_recommendations/` from `ranked` (assemble's output).

    The CSV is made from the Parquet copy just written (the join to URIs runs once, and the two
    agree), collected in one job: a challenge's 10,000 lists of 500 URIs are a few hundred MB."""
    recommendations = join(out_dir, f"{name}_recommendations")
    (ranked.join(data.track_ids.select("track_idx", "track_uri"), "track_idx")
     .select("pid", "rank", "track_uri", "score", "source").write.mode("overwrite").parquet(recommendations))
    lists = (ranked.sparkSession.read.parquet(recommendations).groupBy("pid")
             .agg(F.array_sort(F.collect_list(F.struct("rank", "track_uri"))).alias("l"))
             .select("pid", F.col("l.track_uri").alias("uris")))
    target = join(out_dir, f"{name}.csv")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(local_path(target)) if is_local(target) else os.path.join(tmp, f"{name}.csv")
        write_submission(path, team, email, sorted((r.pid, r.uris) for r in lists.collect()))
        check_submission(path, seeds)
        if not is_local(target):
            with open(path, "rb") as fh:
                write_bytes(target, fh.read())
    return {"playlists": len(seeds)}
