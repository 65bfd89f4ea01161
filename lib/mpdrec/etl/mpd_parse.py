"""Parse one MPD slice file (or the challenge set) into Arrow, keeping every bad record aside.

Two paths, one rule set. The fast path decodes the whole file into typed structs (`mpd_records`)
and checks the cross-field rules vectorised; the MPD's files are clean, so this is what runs. If
anything fails there, the slow path takes the file record by record, names exactly what is wrong,
and sends only the bad playlists to quarantine (with their JSON) while the good ones are built.

Rules: every field present with its JSON type (integers are JSON integers within the column's
range, counts not negative, text within `mpd_records.MAX_TEXT`; `collaborative` is the string
"true"/"false"); at least one track, every track complete, positions 0..n-1, track URIs
`spotify:track:`; num_tracks equal to the tracks listed; a pid at most once per file; text that
is text (no lone surrogate escapes). A playlist with one bad track is quarantined whole, so no
playlist is ever partially ingested.

A file that yields no record at all (not JSON, no `playlists` list, an empty one) raises
FileProblem: the caller counts it as every playlist it should have held. The slow path reads the
file with the standard library's JSON parser, which also takes UTF-16/32, integers of any size,
NaN/Infinity and lone surrogates, so that one odd value costs its record, not its file.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpdrec import schemas
from mpdrec.categories import infer_category
from mpdrec.etl.mpd_records import SLICE_DECODER, ChallengePlaylist, Playlist, Track
from mpdrec.text import normalize_name

TRACK_URI_PREFIX = "spotify:track:"
_PLAYLIST_INTS = (
    "pid",
    "modified_at",
    "num_tracks",
    "num_albums",
    "num_followers",
    "num_edits",
    "duration_ms",
    "num_artists",
)


class _Invalid(Exception):
    """A rule spanning fields is broken somewhere in the file: check it record by record."""


class FileProblem(Exception):
    """The file gave no record: `reason` (a quarantine reason) and `detail` say why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


_MAGIC = {
    b"\x1f\x8b": "a gzip archive",
    b"PK\x03\x04": "a zip archive",
    b"BZh": "a bzip2 archive",
    b"\xfd7zXZ": "an xz archive",
    b"(\xb5/\xfd": "a zstd archive",
}


# ---------------------------------------------------------------- building Arrow columns
def _column(records: Sequence[Any], name: str, tp: pa.DataType) -> pa.Array:
    return pa.array(list(map(attrgetter(name), records)), type=tp)


def _tracks_array(lists: list[list[Track]]) -> tuple[pa.ListArray, np.ndarray]:
    """list<TRACK_ENTRY> column for the playlists' track lists, and the list lengths."""
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = list(chain.from_iterable(lists))
    children = [_column(flat, f.name, f.type) for f in schemas.TRACK_ENTRY]
    offsets = np.zeros(len(lists) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    struct = pa.StructArray.from_arrays(children, fields=list(schemas.TRACK_ENTRY))
    return pa.ListArray.from_arrays(pa.array(offsets), struct), lengths


def _check_tracks(tracks: pa.ListArray, lengths: np.ndarray) -> None:
    """Vectorised cross-field rules: positions 0..n-1 and spotify:track: URIs."""
    flat = tracks.flatten()
    pos = flat.field("pos").to_numpy()
    if not np.array_equal(pos, np.arange(len(pos)) - np.repeat(np.cumsum(lengths) - lengths, lengths)):
        raise _Invalid("positions")
    if len(flat) and not pc.all(pc.starts_with(flat.field("track_uri"), TRACK_URI_PREFIX)).as_py():
        raise _Invalid("track_uri")


def _mpd_table(source: str, pls: list[Playlist], indices: list[int]) -> pa.Table:
    """Good MPD playlists to PARSED_MPD rows; raises _Invalid if a cross-field rule is broken."""
    tracks, lengths = _tracks_array([p.tracks for p in pls])
    if not lengths.all():
        raise _Invalid("no tracks")
    _check_tracks(tracks, lengths)
    ints = {n: _column(pls, n, schemas.PARSED_MPD.field(n).type) for n in _PLAYLIST_INTS}
    if not np.array_equal(ints["num_tracks"].to_numpy(), lengths):
        raise _Invalid("num_tracks")
    if len(np.unique(ints["pid"].to_numpy())) != len(pls):
        raise _Invalid("duplicate pid")
    names = [p.name for p in pls]
    n = len(pls)
    data = {
        "source": pa.array([source] * n, pa.string()),
        "index": pa.array(indices, pa.int32()),
        "pid": ints["pid"],
        "name": pa.array(names, pa.string()),
        "name_norm": pa.array(list(map(normalize_name, names)), pa.string()),
        "collaborative": pa.array([p.collaborative == "true" for p in pls], pa.bool_()),
        **{k: ints[k] for k in _PLAYLIST_INTS if k != "pid"},
        "description": _column(pls, "description", pa.string()),
        "tracks": tracks,
    }
    return _with_quarantine_nulls(data, n, schemas.PARSED_MPD)


def _challenge_table(source: str, pls: list[ChallengePlaylist], indices: list[int]) -> pa.Table:
    """Good challenge playlists (checked one by one: the file is small) to PARSED_CHALLENGE rows."""
    tracks, _ = _tracks_array([p.tracks for p in pls])
    names = [p.name for p in pls]
    data = {
        "source": pa.array([source] * len(pls), pa.string()),
        "index": pa.array(indices, pa.int32()),
        **{
            k: _column(pls, k, schemas.PARSED_CHALLENGE.field(k).type)
            for k in ("pid", "name", "num_holdouts", "num_samples", "num_tracks")
        },
        "name_norm": pa.array([normalize_name(x) if x else None for x in names], pa.string()),
        "category": pa.array([_category(p) for p in pls], pa.int32()),
        "tracks": tracks,
    }
    return _with_quarantine_nulls(data, len(pls), schemas.PARSED_CHALLENGE)


def _with_quarantine_nulls(data: dict[str, pa.Array], n: int, schema: pa.Schema) -> pa.Table:
    for name in ("reason", "detail", "raw"):
        data[name] = pa.nulls(n, pa.string())
    return pa.Table.from_pydict({f.name: data[f.name] for f in schema}, schema=schema)


# ---------------------------------------------------------------- the slow path: one record at a time
def _reason(exc: msgspec.ValidationError) -> str:
    msg = str(exc)
    if "at `$.tracks[" in msg:
        return "bad_track"
    if "missing required field" in msg:
        return "missing_field"
    if msg.startswith(("Expected `int` >", "Expected `int` <", "Expected `str` of length", "Number out of range")):
        return "out_of_range"
    if msg.startswith("Expected `object`") and "- at `$" not in msg:
        return "not_an_object"
    return "wrong_type"


def _tracks_problem(tracks: list[Track], first_k: bool) -> tuple[str, str] | None:
    last = -1
    for i, t in enumerate(tracks):
        if (first_k and t.pos != i) or t.pos <= last:
            return "bad_position", f"track {i} has pos {t.pos}, expected {i if first_k else 'increasing'}"
        last = t.pos
        if not t.track_uri.startswith(TRACK_URI_PREFIX):
            return "bad_uri", f"track {i}: track_uri {t.track_uri!r} is not a {TRACK_URI_PREFIX} URI"
    return None


def _mpd_problem(p: Playlist) -> tuple[str, str] | None:
    if not p.tracks:
        return "no_tracks", "the playlist lists no tracks"
    problem = _tracks_problem(p.tracks, first_k=True)
    if problem is None and p.num_tracks != len(p.tracks):
        problem = "count_mismatch", f"num_tracks is {p.num_tracks} but {len(p.tracks)} tracks are listed"
    return problem


def _challenge_problem(p: ChallengePlaylist) -> tuple[str, str] | None:
    problem = _tracks_problem(p.tracks, first_k=False)
    if problem:
        return problem
    if p.num_samples != len(p.tracks):
        return "count_mismatch", f"num_samples is {p.num_samples} but {len(p.tracks)} tracks are listed"
    if p.num_tracks != p.num_samples + p.num_holdouts:
        return "count_mismatch", "num_tracks is not num_samples + num_holdouts"
    if p.tracks and p.tracks[-1].pos >= p.num_tracks:
        return "bad_position", "a seed's pos is beyond num_tracks"
    if _category(p) is None:
        return "no_category", "fits none of the 10 challenge categories (title, number and choice of seeds)"
    return None


def _category(p: ChallengePlaylist) -> int | None:
    return infer_category(bool(p.name), p.num_samples, [t.pos for t in p.tracks])


def _quarantine_table(
    source: str, rows: list[tuple[int | None, Any, str, str, str | None]], schema: pa.Schema
) -> pa.Table:
    """Rows (index, pid, reason, detail, raw) in a parsed schema; every playlist column null."""
    cols: dict[str, list] = {f.name: [None] * len(rows) for f in schema}
    cols["source"] = [source] * len(rows)
    for j, (index, pid, reason, detail, raw) in enumerate(rows):
        ok_pid = isinstance(pid, int) and not isinstance(pid, bool) and -(2**63) <= pid < 2**63
        cols["index"][j], cols["pid"][j] = index, pid if ok_pid else None
        cols["reason"][j], cols["detail"][j], cols["raw"][j] = reason, detail, raw
    return pa.Table.from_pydict(cols, schema=schema)


def _unreadable(content: bytes, exc: BaseException) -> FileProblem:
    """What keeps a file from being JSON, in words a user can act on."""
    if not content.strip():
        return FileProblem("invalid_json", "the file is empty")
    kind = next((name for magic, name in _MAGIC.items() if content.startswith(magic)), None)
    if kind:
        return FileProblem("invalid_json", f"the file is {kind}, not JSON: decompress it first")
    if isinstance(exc, RecursionError):
        return FileProblem("invalid_json", "its JSON is nested too deeply to read")
    if isinstance(exc, UnicodeDecodeError):
        return FileProblem("invalid_json", f"not UTF-8 (nor UTF-16/32) text: {exc}")
    return FileProblem("invalid_json", f"not valid JSON: {exc}")


def _document(content: bytes) -> Any:
    """The file's JSON value, read by the standard library: slower than orjson, but it takes what
    the fast path refused record by record (integers of any size, NaN, lone surrogates, UTF-16)."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _unreadable(content, exc) from None


def _playlists(doc: Any) -> list[Any]:
    pls = doc.get("playlists") if isinstance(doc, dict) else None
    if not isinstance(pls, list):
        raise FileProblem("no_playlists", "the top level is not an object with a 'playlists' list")
    if not pls:
        raise FileProblem("no_playlists", "its 'playlists' list is empty")
    return pls


def _raw(record: Any) -> str | None:
    """A quarantined record as JSON text, as it was read: NaN stays NaN, and a lone surrogate is
    written as its escape (text that is not UTF-8 cannot be stored); None where it is nested too
    deeply to write."""
    try:
        text = json.dumps(record, ensure_ascii=False)
        return text if _is_text(text) else json.dumps(record)
    except RecursionError:
        return None


def _is_text(value: Any) -> bool:
    """Whether every string in `value` encodes as UTF-8 (no lone surrogate)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_is_text(k) and _is_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(_is_text, value))
    return True


def _record_by_record(
    source: str,
    content: bytes,
    record_type: type,
    schema: pa.Schema,
    build: Callable[[str, list, list[int]], pa.Table],
    problem: Callable[[Any], tuple[str, str] | None],
) -> pa.Table:
    pls = _playlists(_document(content))
    good: list[Any] = []
    good_idx: list[int] = []
    bad: list[tuple[int | None, Any, str, str, str | None]] = []
    seen: dict[int, int] = {}
    for i, raw in enumerate(pls):
        try:
            rec: Any = msgspec.convert(raw, record_type)
            issue = problem(rec)
        except msgspec.ValidationError as exc:
            rec, issue = None, (_reason(exc), str(exc))
        if issue is None and not _is_text(raw):
            issue = "bad_text", "a string holds a lone surrogate (a \\ud800-\\udfff escape alone), which is not text"
        if issue is None and rec.pid in seen:
            issue = "duplicate_pid", f"pid {rec.pid} already appears at index {seen[rec.pid]} of this file"
        if issue is None:
            seen[rec.pid] = i
            good.append(rec)
            good_idx.append(i)
        else:
            pid = raw.get("pid") if isinstance(raw, dict) else None
            bad.append((i, pid, issue[0], issue[1], _raw(raw)))
    parts = [build(source, good, good_idx)] if good else []
    if bad:
        parts.append(_quarantine_table(source, bad, schema))
    return pa.concat_tables(parts)


# ---------------------------------------------------------------- files
def parse_mpd_slice(source: str, content: bytes, fast: bool = True) -> pa.Table:
    """One slice file -> PARSED_MPD rows: good playlists, and quarantined records with reasons;
    FileProblem when it gives none."""
    content = content.removeprefix(codecs.BOM_UTF8)
    if fast:
        try:
            pls = SLICE_DECODER.decode(content).playlists
            if pls:
                return _mpd_table(source, pls, list(range(len(pls))))
        except (msgspec.DecodeError, UnicodeDecodeError, _Invalid):  # ValidationError is a DecodeError
            pass
    return _record_by_record(source, content, Playlist, schemas.PARSED_MPD, _mpd_table, _mpd_problem)


def parse_challenge(source: str, content: bytes) -> pa.Table:
    """challenge_set.json -> PARSED_CHALLENGE rows (small file: every record checked one by one);
    FileProblem when it gives none."""
    content = content.removeprefix(codecs.BOM_UTF8)
    return _record_by_record(
        source, content, ChallengePlaylist, schemas.PARSED_CHALLENGE, _challenge_table, _challenge_problem
    )
