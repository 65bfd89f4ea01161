"""Artist source: the catalogue tracks of the query's seed artists, those of the artists with more
of its seeds first, then the more popular ones.

Why a source of its own: a playlist's hidden tracks are often by artists it already shows, and on
the real sample many of those were in no other source's top 1,000 (docs/ranking.md; ALS and
co-occurrence only reach tracks that other playlists hold with the seeds; most real tracks are in
one or two playlists). Score: the share of the query's seeds by the track's artist times
log(1 + the track's training playlists), so that within an artist the known tracks lead.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.lists.inputs import Queries, RankingData


def recommend(data: RankingData, queries: Queries, n: int) -> DataFrame:
    """pid, track_idx, score: every track of the seeds' artists (ranked_list keeps the best n)."""
    tracks = data.track_ids.select("track_idx", "artist_uri", "playlist_count")
    seeds = queries.seeds.join(F.broadcast(tracks.select("track_idx", "artist_uri")), "track_idx")
    share = (
        seeds.groupBy("pid", "artist_uri")
        .agg(F.count("*").alias("by_artist"))
        .join(seeds.groupBy("pid").agg(F.count("*").alias("seeds")), "pid")
        .select("pid", "artist_uri", (F.col("by_artist") / F.col("seeds")).alias("share"))
    )
    wanted = tracks.join(F.broadcast(share.select("artist_uri").distinct()), "artist_uri")
    return share.join(wanted, "artist_uri").select(
        "pid", "track_idx", (F.col("share") * F.log1p("playlist_count")).alias("score")
    )
