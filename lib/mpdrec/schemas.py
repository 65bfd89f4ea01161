"""Every table's schema, once. Arrow schemas are the source; Spark schemas are derived from them.

Tables written under `<run_dir>/ingest/`: playlists, playlist_tracks, tracks, challenge_playlists,
challenge_tracks, quarantine. PARSED_* are the intermediate rows the slice parser hands to Spark.
"""

from __future__ import annotations

import pyarrow as pa

STR, I32, I64, BOOL = pa.string(), pa.int32(), pa.int64(), pa.bool_()


def _schema(*fields: tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=nullable) for n, t, nullable in fields])


# a track as it appears in a slice or challenge file, in the MPD's field names
TRACK_ENTRY = pa.struct(
    [
        pa.field("pos", I32, False),
        pa.field("track_uri", STR, False),
        pa.field("artist_uri", STR, False),
        pa.field("album_uri", STR, False),
        pa.field("duration_ms", I64, False),
        pa.field("track_name", STR, False),
        pa.field("artist_name", STR, False),
        pa.field("album_name", STR, False),
    ]
)

_QUARANTINE_FIELDS = (
    ("reason", STR, True),  # null on good rows; a short code such as count_mismatch
    ("detail", STR, True),  # what is wrong, for people
    ("raw", STR, True),  # the offending record as JSON (null when the whole file is unreadable)
)

PLAYLISTS = _schema(
    ("pid", I64, False),
    ("name", STR, False),
    ("name_norm", STR, False),
    ("collaborative", BOOL, False),
    ("modified_at", I64, False),
    ("num_tracks", I32, False),
    ("num_albums", I32, False),
    ("num_followers", I32, False),
    ("num_edits", I32, False),
    ("duration_ms", I64, False),
    ("num_artists", I32, False),
    ("description", STR, True),
    ("source", STR, False),
)

PARSED_MPD = _schema(
    ("source", STR, False),
    ("index", I32, True),  # position of the playlist in its file
    ("pid", I64, True),
    *[(f.name, f.type, True) for f in PLAYLISTS if f.name not in ("pid", "source")],
    ("tracks", pa.list_(TRACK_ENTRY), True),
    *_QUARANTINE_FIELDS,
)

PLAYLIST_TRACKS = _schema(
    ("pid", I64, False),
    ("pos", I32, False),
    ("track_uri", STR, False),
    ("artist_uri", STR, False),
    ("album_uri", STR, False),
    ("duration_ms", I64, False),
)

TRACKS = _schema(
    ("track_uri", STR, False),
    ("track_name", STR, False),
    ("artist_uri", STR, False),
    ("artist_name", STR, False),
    ("album_uri", STR, False),
    ("album_name", STR, False),
    ("duration_ms", I64, False),
    ("playlist_count", I64, False),  # distinct MPD playlists containing the track
)

CHALLENGE_PLAYLISTS = _schema(
    ("pid", I64, False),
    ("name", STR, True),  # absent in the no-title categories
    ("name_norm", STR, True),
    ("num_holdouts", I32, False),
    ("num_samples", I32, False),
    ("num_tracks", I32, False),
    ("category", I32, False),  # 1..10, see mpdrec.categories
    ("source", STR, False),
)

PARSED_CHALLENGE = _schema(
    ("source", STR, False),
    ("index", I32, True),
    ("pid", I64, True),
    *[(f.name, f.type, True) for f in CHALLENGE_PLAYLISTS if f.name not in ("pid", "source")],
    ("tracks", pa.list_(TRACK_ENTRY), True),
    *_QUARANTINE_FIELDS,
)

CHALLENGE_TRACKS = _schema(
    ("pid", I64, False),
    *[(f.name, f.type, False) for f in TRACK_ENTRY],
)

QUARANTINE = _schema(
    ("source", STR, False),
    ("index", I32, True),
    ("pid", I64, True),
    *_QUARANTINE_FIELDS[:2],
    ("raw", STR, True),
)
