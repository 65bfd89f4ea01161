"""Parse one MPD slice file (or the challenge set) into Arrow, keeping every bad record aside.

Two paths, one rule set. The fast path builds typed Arrow columns for the whole file at once and
checks them vectorised; the MPD's files are clean, so this is what runs. If anything at all fails
there, the slow path checks each playlist on its own, names exactly what is wrong, and sends only
the bad playlists to quarantine (with their JSON) while the good ones go through the fast path.

Rules: every required field present with its JSON type (integers may be written 3.0, not 3.5; the
MPD's `collaborative` is the string "true"/"false"); every track complete, positions 0..n-1, track
URIs `spotify:track:`; num_tracks equal to the tracks listed; a pid at most once per file. A
playlist with one bad track is quarantined whole, so no playlist is ever partially ingested.
"""
from __future__ import annotations

from itertools import chain
from typing import Any, Callable, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from mpdrec import schemas
from mpdrec.categories import infer_category
from mpdrec.text import normalize_name

TRACK_URI_PREFIX = "spotify:track:"
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1

# JSON field -> Arrow type, for the fields every MPD playlist / track / challenge playlist has
MPD_FIELDS: dict[str, pa.DataType] = {
    "name": pa.string(), "collaborative": pa.string(), "pid": pa.int64(),
    "modified_at": pa.int64(), "num_tracks": pa.int32(), "num_albums": pa.int32(),
    "num_followers": pa.int32(), "num_edits": pa.int32(), "duration_ms": pa.int64(),
    "num_artists": pa.int32(),
}
CHALLENGE_FIELDS: dict[str, pa.DataType] = {
    "pid": pa.int64(), "num_holdouts": pa.int32(), "num_samples": pa.int32(), "num_tracks": pa.int32(),
}
TRACK_FIELDS: dict[str, pa.DataType] = {f.name: f.type for f in schemas.TRACK_ENTRY}


class _Invalid(Exception):
    """Raised by the fast path when the file needs the record-by-record check."""


_FAST_PATH_ERRORS = (KeyError, TypeError, AttributeError, ValueError, OverflowError, _Invalid)


# ---------------------------------------------------------------- the slow path: one record at a time
def _type_problem(value: Any, tp: pa.DataType) -> str | None:
    if pa.types.is_string(tp):
        return None if isinstance(value, str) else "expected a string"
    if pa.types.is_integer(tp):
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            return "expected an integer"
        limit = _INT32_MAX if tp == pa.int32() else _INT64_MAX
        return None if -limit - 1 <= value <= limit else f"out of range for {tp}"
    raise TypeError(tp)


def _field_problem(rec: Any, fields: dict[str, pa.DataType], what: str) -> tuple[str, str] | None:
    if not isinstance(rec, dict):
        return "not_an_object", f"{what} is a JSON {type(rec).__name__}, not an object"
    for name, tp in fields.items():
        if name not in rec:
            return "missing_field", f"{what}: field '{name}' is missing"
        problem = _type_problem(rec[name], tp)
        if problem:
            return "wrong_type", f"{what}: field '{name}' is {rec[name]!r}, {problem}"
    return None


def _tracks_problem(tracks: Any, expect_first_k: bool) -> tuple[str, str] | None:
    if not isinstance(tracks, list):
        return "wrong_type", f"field 'tracks' is a JSON {type(tracks).__name__}, not a list"
    last_pos = -1
    for i, t in enumerate(tracks):
        problem = _field_problem(t, TRACK_FIELDS, f"track {i}")
        if problem:
            return "bad_track", problem[1]
        pos = int(t["pos"])
        if (expect_first_k and pos != i) or pos <= last_pos:
            return "bad_position", f"track {i} has pos {pos}, expected {i if expect_first_k else 'increasing'}"
        last_pos = pos
        if not t["track_uri"].startswith(TRACK_URI_PREFIX):
            return "bad_uri", f"track {i}: track_uri {t['track_uri']!r} is not a {TRACK_URI_PREFIX} URI"
    return None


def mpd_playlist_problem(p: Any) -> tuple[str, str] | None:
    """Why an MPD playlist record cannot be ingested (reason code, detail), or None if it can."""
    problem = _field_problem(p, MPD_FIELDS, "playlist")
    if problem:
        return problem
    if "tracks" not in p:
        return "missing_field", "playlist: field 'tracks' is missing"
    if p["collaborative"] not in ("true", "false"):
        return "wrong_type", f"playlist: collaborative is {p['collaborative']!r}, expected \"true\" or \"false\""
    if p.get("description") is not None and not isinstance(p["description"], str):
        return "wrong_type", f"playlist: description is {p['description']!r}, expected a string"
    problem = _tracks_problem(p["tracks"], expect_first_k=True)
    if problem:
        return problem
    if int(p["num_tracks"]) != len(p["tracks"]):
        return "count_mismatch", f"num_tracks is {p['num_tracks']} but {len(p['tracks'])} tracks are listed"
    return None


def challenge_playlist_problem(p: Any) -> tuple[str, str] | None:
    """Why a challenge playlist record cannot be ingested, or None if it can."""
    problem = _field_problem(p, CHALLENGE_FIELDS, "challenge playlist")
    if problem:
        return problem
    if "tracks" not in p:
        return "missing_field", "challenge playlist: field 'tracks' is missing"
    if p.get("name") is not None and not isinstance(p["name"], str):
        return "wrong_type", f"challenge playlist: name is {p['name']!r}, expected a string"
    problem = _tracks_problem(p["tracks"], expect_first_k=False)
    if problem:
        return problem
    n_seeds = len(p["tracks"])
    if int(p["num_samples"]) != n_seeds:
        return "count_mismatch", f"num_samples is {p['num_samples']} but {n_seeds} tracks are listed"
    if int(p["num_tracks"]) != int(p["num_samples"]) + int(p["num_holdouts"]):
        return "count_mismatch", "num_tracks is not num_samples + num_holdouts"
    if p["tracks"] and int(p["tracks"][-1]["pos"]) >= int(p["num_tracks"]):
        return "bad_position", "a seed's pos is beyond num_tracks"
    if _category(p) is None:
        return "no_category", "fits none of the 10 challenge categories (title, number and choice of seeds)"
    return None


def _category(p: dict) -> int | None:
    return infer_category(bool(p.get("name")), int(p["num_samples"]), [int(t["pos"]) for t in p["tracks"]])


# ---------------------------------------------------------------- building Arrow columns
def _column(values: list, tp: pa.DataType, strict: bool, required: bool = True) -> pa.Array:
    """Typed Arrow column. pyarrow silently truncates 1.5 to 1 for integer types, so integers are
    checked here: `strict` (fast path) accepts Python ints only; otherwise the values were already
    approved one by one (ints or integral floats) and are converted."""
    if pa.types.is_integer(tp) and any(type(v) is not int for v in values):
        if strict:
            raise _Invalid("a non-int value in an integer field")
        values = [None if v is None else int(v) for v in values]
    arr = pa.array(values, type=tp)
    if required and arr.null_count:
        raise _Invalid("null in a required field")
    return arr


def _tracks_array(lists: list[list[dict]], strict: bool) -> tuple[pa.ListArray, np.ndarray]:
    """list<TRACK_ENTRY> column for the playlists' track lists, and the list lengths."""
    lengths = np.fromiter((len(t) for t in lists), dtype=np.int64, count=len(lists))
    flat = list(chain.from_iterable(lists))
    children = [_column([t[name] for t in flat], tp, strict) for name, tp in TRACK_FIELDS.items()]
    if not pc.all(pc.starts_with(children[1], TRACK_URI_PREFIX)).as_py() and len(flat):
        raise _Invalid("track_uri")
    offsets = np.zeros(len(lists) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    struct = pa.StructArray.from_arrays(children, fields=list(schemas.TRACK_ENTRY))
    return pa.ListArray.from_arrays(pa.array(offsets), struct), lengths


def _positions_are_first_k(tracks: pa.ListArray, lengths: np.ndarray) -> bool:
    pos = tracks.flatten().field("pos").to_numpy()
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return bool(np.array_equal(pos, np.arange(len(pos)) - starts))


def _mpd_table(source: str, pls: list, indices: list[int], strict: bool = True) -> pa.Table:
    """MPD playlists to Arrow; raises one of _FAST_PATH_ERRORS if any rule is broken."""
    cols = {name: _column([p[name] for p in pls], tp, strict) for name, tp in MPD_FIELDS.items()}
    tracks, lengths = _tracks_array([p["tracks"] for p in pls], strict)
    collab = cols.pop("collaborative")
    if not pc.all(pc.is_in(collab, pa.array(["true", "false"]))).as_py() and len(pls):
        raise _Invalid("collaborative")
    if not np.array_equal(cols["num_tracks"].to_numpy(), lengths) or not _positions_are_first_k(tracks, lengths):
        raise _Invalid("counts or positions")
    pids = cols["pid"].to_numpy()
    if len(np.unique(pids)) != len(pids):
        raise _Invalid("duplicate pid")
    names = cols["name"].to_pylist()
    n = len(pls)
    data = {
        "source": pa.array([source] * n, pa.string()),
        "index": pa.array(indices, pa.int32()),
        **{k: cols[k] for k in ("pid", "name")},
        "name_norm": pa.array([normalize_name(x) for x in names], pa.string()),
        "collaborative": pc.equal(collab, "true"),
        **{k: cols[k] for k in ("modified_at", "num_tracks", "num_albums", "num_followers", "num_edits",
                                "duration_ms", "num_artists")},
        "description": _column([p.get("description") for p in pls], pa.string(), strict, required=False),
        "tracks": tracks,
    }
    return _with_quarantine_nulls(data, n, schemas.PARSED_MPD)


def _challenge_table(source: str, pls: list, indices: list[int], strict: bool = False) -> pa.Table:
    """Challenge playlists (already checked one by one: the file is small)."""
    cols = {name: _column([p[name] for p in pls], tp, strict) for name, tp in CHALLENGE_FIELDS.items()}
    tracks, _ = _tracks_array([p["tracks"] for p in pls], strict)
    names = [p.get("name") for p in pls]
    data = {
        "source": pa.array([source] * len(pls), pa.string()),
        "index": pa.array(indices, pa.int32()),
        "pid": cols["pid"],
        "name": pa.array(names, pa.string()),
        "name_norm": pa.array([normalize_name(x) if x else None for x in names], pa.string()),
        **{k: cols[k] for k in ("num_holdouts", "num_samples", "num_tracks")},
        "category": pa.array([_category(p) for p in pls], pa.int32()),
        "tracks": tracks,
    }
    return _with_quarantine_nulls(data, len(pls), schemas.PARSED_CHALLENGE)


def _with_quarantine_nulls(data: dict[str, pa.Array], n: int, schema: pa.Schema) -> pa.Table:
    for name in ("reason", "detail", "raw"):
        data[name] = pa.nulls(n, pa.string())
    return pa.Table.from_pydict(data, schema=schema)


def _quarantine_table(source: str, rows: list[tuple[int | None, Any, str, str, str | None]],
                      schema: pa.Schema) -> pa.Table:
    """Rows (index, pid, reason, detail, raw) in a parsed schema; every playlist column null."""
    cols: dict[str, list] = {f.name: [None] * len(rows) for f in schema}
    cols["source"] = [source] * len(rows)
    for j, (index, pid, reason, detail, raw) in enumerate(rows):
        cols["index"][j] = index
        cols["pid"][j] = pid if isinstance(pid, int) and not isinstance(pid, bool) and abs(pid) <= _INT64_MAX else None
        cols["reason"][j], cols["detail"][j], cols["raw"][j] = reason, detail, raw
    return pa.Table.from_pydict(cols, schema=schema)


# ---------------------------------------------------------------- files
def _parse_file(
    source: str,
    content: bytes,
    schema: pa.Schema,
    build: Callable[..., pa.Table],
    problem: Callable[[Any], tuple[str, str] | None],
    try_fast: bool,
) -> pa.Table:
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        return _quarantine_table(source, [(None, None, "invalid_json", f"not valid JSON: {exc}", None)], schema)
    pls = doc.get("playlists") if isinstance(doc, dict) else None
    if not isinstance(pls, list):
        detail = "the top level is not an object with a 'playlists' list"
        return _quarantine_table(source, [(None, None, "no_playlists", detail, None)], schema)
    if try_fast:
        try:
            return build(source, pls, list(range(len(pls))))
        except _FAST_PATH_ERRORS:
            pass
    good, bad, seen = [], [], {}
    for i, p in enumerate(pls):
        issue = problem(p)
        if issue is None and p["pid"] in seen:
            issue = ("duplicate_pid", f"pid {p['pid']} already appears at index {seen[p['pid']]} of this file")
        if issue is None:
            seen[p["pid"]] = i
            good.append(i)
        else:
            pid = p.get("pid") if isinstance(p, dict) else None
            bad.append((i, pid, issue[0], issue[1], orjson.dumps(p).decode()))
    parts = [build(source, [pls[i] for i in good], good, strict=False)] if good else []
    if bad:
        parts.append(_quarantine_table(source, bad, schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def parse_mpd_slice(source: str, content: bytes) -> pa.Table:
    """One slice file -> PARSED_MPD rows: good playlists, and quarantined records with reasons."""
    return _parse_file(source, content, schemas.PARSED_MPD, _mpd_table, mpd_playlist_problem, try_fast=True)


def parse_challenge(source: str, content: bytes) -> pa.Table:
    """challenge_set.json -> PARSED_CHALLENGE rows (small file: every record checked one by one)."""
    return _parse_file(source, content, schemas.PARSED_CHALLENGE, _challenge_table,
                       challenge_playlist_problem, try_fast=False)


def arrow_parser(kind: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function Spark's mapInArrow runs on batches of (path, content) rows from binaryFile."""
    parse = {"mpd": parse_mpd_slice, "challenge": parse_challenge}[kind]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            paths = batch.column("path").to_pylist()
            contents = batch.column("content")
            for i, path in enumerate(paths):
                yield from parse(path, contents[i].as_py()).to_batches()

    return run
