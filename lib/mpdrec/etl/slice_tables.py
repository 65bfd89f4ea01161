"""One input file -> its Parquet files, written by the Python task that parsed it.

Each slice file becomes one Parquet file in each table (`playlists`, `playlist_tracks`,
`track_stats_partial`, and `quarantine` when it has bad records), named after the slice, so a retried
task overwrites its own files and nothing else, and every output file maps back to one input.
`track_stats_partial` holds each track's names and the number of this file's playlists containing it;
Spark merges those into the `tracks` table without re-reading every entry.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mpdrec import schemas
from mpdrec.etl.mpd_parse import parse_challenge, parse_mpd_slice
from mpdrec.io.arrow_fs import read_bytes, resolve
from mpdrec.io.paths import basename, join

TRACK_STATS = "track_stats_partial"  # intermediate; Spark ignores paths starting with "_"
TRACK_STATS_SCHEMA = pa.schema(
    [f for f in schemas.TRACKS if f.name != "playlist_count"]
    + [pa.field("playlist_count", pa.int64(), nullable=False)]
)
TRACK_META = [f.name for f in schemas.TRACKS if f.name not in ("track_uri", "playlist_count")]


@dataclass
class FileSummary:
    """What one input file gave: counts for the manifest and the quarantine threshold."""

    source: str
    kind: str
    bytes: int
    records: int = 0
    good: int = 0
    entries: int = 0
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_name(source: str) -> str:
    """Parquet file name for an input: its name plus a digest of its full URI (names can repeat)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:8]
    return f"{basename(source).removesuffix('.json')}-{digest}.parquet"


def _write(table: pa.Table, out_dir: str, table_name: str, file_name: str) -> None:
    fs, path = resolve(join(out_dir, table_name, file_name))
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(table, path, filesystem=fs, compression="snappy")


def _entries(good: pa.Table) -> pa.Table:
    """One row per track entry, with the playlist's pid."""
    tracks = good.column("tracks").combine_chunks()
    flat = tracks.flatten()
    pids = np.repeat(good.column("pid").to_numpy(), tracks.value_lengths().to_numpy())
    return pa.table({"pid": pa.array(pids, pa.int64()),
                     **{f.name: flat.field(f.name) for f in schemas.TRACK_ENTRY}})


def _track_stats(entries: pa.Table) -> pa.Table:
    distinct = entries.select(["pid", "track_uri"]).group_by(["pid", "track_uri"]).aggregate([])
    counts = distinct.group_by("track_uri").aggregate([("pid", "count")])
    meta = entries.select(["track_uri", *TRACK_META]).group_by("track_uri").aggregate(
        [(c, "first") for c in TRACK_META])
    joined = counts.join(meta, "track_uri")
    return pa.table(
        {"track_uri": joined["track_uri"],
         **{c: joined[f"{c}_first"] for c in TRACK_META},
         "playlist_count": joined["pid_count"]},
        schema=TRACK_STATS_SCHEMA,
    )


def _quarantine(parsed: pa.Table) -> pa.Table:
    bad = parsed.filter(pc.is_valid(parsed.column("reason")))
    return bad.select(schemas.QUARANTINE.names).cast(schemas.QUARANTINE)


def process_file(source: str, kind: str, out_dir: str) -> FileSummary:
    """Read, parse and write one input file (`kind` "mpd" or "challenge") under `out_dir`."""
    started = time.time()
    content = read_bytes(source)
    summary = FileSummary(source=source, kind=kind, bytes=len(content))
    parse = parse_mpd_slice if kind == "mpd" else parse_challenge
    parsed = parse(source, content)
    del content
    good = parsed.filter(pc.is_null(parsed.column("reason")))
    quarantine = _quarantine(parsed)
    name = output_name(source)
    entries = _entries(good)
    if kind == "mpd":
        _write(good.select(schemas.PLAYLISTS.names).cast(schemas.PLAYLISTS), out_dir, "playlists", name)
        _write(entries.select(schemas.PLAYLIST_TRACKS.names).cast(schemas.PLAYLIST_TRACKS),
               out_dir, "playlist_tracks", name)
        _write(_track_stats(entries), out_dir, TRACK_STATS, name)
    else:
        _write(good.select(schemas.CHALLENGE_PLAYLISTS.names).cast(schemas.CHALLENGE_PLAYLISTS),
               out_dir, "challenge_playlists", name)
        _write(entries.select(schemas.CHALLENGE_TRACKS.names).cast(schemas.CHALLENGE_TRACKS),
               out_dir, "challenge_tracks", name)
    if quarantine.num_rows:
        _write(quarantine, out_dir, "quarantine", name)
    summary.records = parsed.num_rows
    summary.good = good.num_rows
    summary.entries = entries.num_rows
    summary.quarantined = quarantine.num_rows
    reasons = quarantine.column("reason").value_counts().to_pylist()
    summary.by_reason = {r["values"]: r["counts"] for r in reasons}
    summary.seconds = round(time.time() - started, 3)
    return summary


def write_empty(table: pa.Schema, out_dir: str, table_name: str) -> None:
    """An empty Parquet file, so a table with no rows still exists with its schema."""
    _write(table.empty_table(), out_dir, table_name, "empty.parquet")
