"""One input file -> its Parquet files, written by the Python task that parsed it.

Each slice file becomes one Parquet file in each table (`playlists`, `playlist_tracks`,
`track_stats_partial`, and `quarantine` when it has bad records), named after the slice, so a retried
task overwrites its own files and nothing else, and every output file maps back to one input.
`track_stats_partial` holds each track's names and the number of this file's playlists containing it;
Spark merges those into the `tracks` table without re-reading every entry.

A file that cannot be read or gives no record (`mpd_parse.FileProblem`) becomes one quarantine row
and counts as every playlist it should hold (`implied_playlists`): an unreadable slice is a
thousand lost playlists, not one bad record, against `ingest.max_quarantine_share`.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mpdrec import schemas
from mpdrec.etl.mpd_parse import FileProblem, parse_challenge, parse_mpd_slice
from mpdrec.io.arrow_fs import read_bytes, resolve_for_write
from mpdrec.io.paths import basename, join

TRACK_STATS = "track_stats_partial"  # intermediate; Spark ignores paths starting with "_"
TRACK_STATS_SCHEMA = pa.schema(
    [f for f in schemas.TRACKS if f.name != "playlist_count"] + [pa.field("playlist_count", pa.int64(), nullable=False)]
)
TRACK_META = [f.name for f in schemas.TRACKS if f.name not in ("track_uri", "playlist_count")]
SLICE_SIZE = 1000  # playlists per MPD slice file
_SLICE_RANGE = re.compile(r"mpd\.slice\.(\d+)-(\d+)\.json$")


@dataclass
class FileSummary:
    """What one input file gave: counts for the manifest and the quarantine threshold."""

    source: str
    kind: str
    bytes: int
    records: int = 0  # the playlists it holds; when unreadable, those it should hold
    good: int = 0
    entries: int = 0
    quarantined: int = 0  # records - good
    quarantine_rows: int = 0  # rows it added to the quarantine table (one for an unreadable file)
    problem: str | None = None  # why the file gave no record at all
    pid_min: int | None = None  # range of the good playlists' pids: disjoint ranges cannot repeat a pid
    pid_max: int | None = None
    by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_name(source: str) -> str:
    """Parquet file name for an input: its name (in characters no URI encodes, so Spark's
    input_file_name() gives it back unchanged) plus a digest of its full URI (names can repeat)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", basename(source).removesuffix(".json"))
    return f"{stem}-{digest}.parquet"


# Dictionary-encode only the columns that repeat within a file: encoding unique URIs costs a large
# share of the write's time and saves nothing.
_DICTIONARY_COLUMNS = {
    "playlists": ["name", "name_norm", "description", "source"],
    "playlist_tracks": ["artist_uri", "album_uri"],
    TRACK_STATS: ["artist_uri", "artist_name", "album_uri", "album_name"],
    "challenge_playlists": ["name", "name_norm", "source"],
    "challenge_tracks": ["artist_uri", "album_uri", "artist_name", "album_name"],
    "quarantine": ["source", "reason"],
}


def _write(table: pa.Table, out_dir: str, table_name: str, file_name: str) -> None:
    fs, path = resolve_for_write(join(out_dir, table_name, file_name))
    pq.write_table(table, path, filesystem=fs, compression="snappy", use_dictionary=_DICTIONARY_COLUMNS[table_name])


def _entries(good: pa.Table) -> pa.Table:
    """One row per track entry, with the playlist's pid."""
    tracks = good.column("tracks").combine_chunks()
    flat = tracks.flatten()
    pids = np.repeat(good.column("pid").to_numpy(), tracks.value_lengths().to_numpy())
    return pa.table({"pid": pa.array(pids, pa.int64()), **{f.name: flat.field(f.name) for f in schemas.TRACK_ENTRY}})


def _track_stats(entries: pa.Table) -> pa.Table:
    """Per track of this file: its metadata (first occurrence) and how many playlists hold it."""
    encoded = pc.dictionary_encode(entries.column("track_uri")).combine_chunks()
    idx = encoded.indices.to_numpy().astype(np.int64)
    n = len(encoded.dictionary)
    pairs = np.unique(entries.column("pid").to_numpy().astype(np.int64) * n + idx)  # distinct (pid, track)
    counts = np.bincount(pairs % n, minlength=n)
    _, first = np.unique(idx, return_index=True)  # dictionary order: entry k first occurs at first[k]
    meta = entries.select(TRACK_META).take(pa.array(first))
    return pa.table(
        {
            "track_uri": encoded.dictionary,
            **{c: meta.column(c) for c in TRACK_META},
            "playlist_count": pa.array(counts, pa.int64()),
        },
        schema=TRACK_STATS_SCHEMA,
    )


def implied_playlists(source: str) -> int:
    """The playlists a slice file's name promises (mpd.slice.1000-1999.json: 1,000), else SLICE_SIZE."""
    m = _SLICE_RANGE.search(basename(source))
    return int(m[2]) - int(m[1]) + 1 if m and int(m[2]) >= int(m[1]) else SLICE_SIZE


def _lost_file(summary: FileSummary, problem: FileProblem, out_dir: str) -> FileSummary:
    """`summary` for a file that gave no record: one quarantine row, every implied playlist lost."""
    n = implied_playlists(summary.source) if summary.kind == "mpd" else 0
    detail = f"{problem.detail} (counted as the {n:,} playlists its name implies)" if n else problem.detail
    row: dict[str, list[Any]] = {f.name: [None] for f in schemas.QUARANTINE}
    row.update(source=[summary.source], reason=[problem.reason], detail=[detail])
    _write(pa.Table.from_pydict(row, schema=schemas.QUARANTINE), out_dir, "quarantine", output_name(summary.source))
    summary.records = summary.quarantined = n
    summary.quarantine_rows = 1
    summary.problem = problem.detail
    summary.by_reason = {problem.reason: n}
    return summary


def _quarantine(parsed: pa.Table) -> pa.Table:
    bad = parsed.filter(pc.is_valid(parsed.column("reason")))
    return bad.select(schemas.QUARANTINE.names).cast(schemas.QUARANTINE)


def process_file(source: str, kind: str, out_dir: str) -> FileSummary:
    """Read, parse and write one input file (`kind` "mpd" or "challenge") under `out_dir`."""
    started = time.time()
    summary = FileSummary(source=source, kind=kind, bytes=0)
    try:
        try:
            content = read_bytes(source)
        except OSError as exc:  # missing (a broken link), a directory, no permission
            raise FileProblem("unreadable", f"cannot be read: {exc}") from None
        summary.bytes = len(content)
        parsed = (parse_mpd_slice if kind == "mpd" else parse_challenge)(source, content)
    except FileProblem as problem:
        summary = _lost_file(summary, problem, out_dir)
        summary.seconds = round(time.time() - started, 3)
        return summary
    del content
    good = parsed.filter(pc.is_null(parsed.column("reason")))
    quarantine = _quarantine(parsed)
    name = output_name(source)
    entries = _entries(good)
    if kind == "mpd":
        _write(good.select(schemas.PLAYLISTS.names).cast(schemas.PLAYLISTS), out_dir, "playlists", name)
        _write(
            entries.select(schemas.PLAYLIST_TRACKS.names).cast(schemas.PLAYLIST_TRACKS),
            out_dir,
            "playlist_tracks",
            name,
        )
        _write(_track_stats(entries), out_dir, TRACK_STATS, name)
    else:
        _write(
            good.select(schemas.CHALLENGE_PLAYLISTS.names).cast(schemas.CHALLENGE_PLAYLISTS),
            out_dir,
            "challenge_playlists",
            name,
        )
        _write(
            entries.select(schemas.CHALLENGE_TRACKS.names).cast(schemas.CHALLENGE_TRACKS),
            out_dir,
            "challenge_tracks",
            name,
        )
    if quarantine.num_rows:
        _write(quarantine, out_dir, "quarantine", name)
    summary.records = parsed.num_rows
    summary.good = good.num_rows
    summary.entries = entries.num_rows
    summary.quarantined = summary.quarantine_rows = quarantine.num_rows
    if good.num_rows:
        summary.pid_min = pc.min(good.column("pid")).as_py()
        summary.pid_max = pc.max(good.column("pid")).as_py()
    reasons = quarantine.column("reason").value_counts().to_pylist()
    summary.by_reason = {r["values"]: r["counts"] for r in reasons}
    summary.seconds = round(time.time() - started, 3)
    return summary


def write_empty(table: pa.Schema, out_dir: str, table_name: str) -> None:
    """An empty Parquet file, so a table with no rows still exists with its schema."""
    _write(table.empty_table(), out_dir, table_name, "empty.parquet")
