"""The MPD's JSON records as typed msgspec structs: the format rules, declared once.

Decoding into these validates types in C (missing fields, nulls, booleans or floats where integers
belong, the ranges the Parquet columns hold, `collaborative` being "true"/"false"), far faster than
checking Python dicts. Rules that span fields (positions, counts, URIs) are checked in `mpd_parse`.
Counts, pids and durations cannot be negative; text is bounded (MAX_TEXT characters, far above any
playlist name or description the MPD holds) so that one runaway field cannot swell a task or a row.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

MAX_TEXT = 10_000
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Long = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]


class Track(msgspec.Struct):
    pos: Int32
    artist_name: Text
    track_uri: Text
    artist_uri: Text
    track_name: Text
    album_uri: Text
    duration_ms: Long
    album_name: Text


class Playlist(msgspec.Struct):
    name: Text
    collaborative: Literal["true", "false"]
    pid: Long
    modified_at: Int64
    num_tracks: Count
    num_albums: Count
    num_followers: Count
    tracks: list[Track]
    num_edits: Count
    duration_ms: Long
    num_artists: Count
    description: Text | None = None


class ChallengePlaylist(msgspec.Struct):
    pid: Long
    num_holdouts: Count
    num_samples: Count
    num_tracks: Count
    tracks: list[Track]
    name: Text | None = None


class SliceFile(msgspec.Struct):
    playlists: list[Playlist]


SLICE_DECODER = msgspec.json.Decoder(SliceFile)
