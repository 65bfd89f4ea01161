"""The MPD's JSON records as typed msgspec structs: the format rules, declared once.

Decoding into these validates types in C (missing fields, nulls, booleans or floats where integers
belong, int32 ranges, `collaborative` being "true"/"false"), far faster than checking Python dicts.
Rules that span fields (positions, counts, URIs) are checked in `mpd_parse`.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

import msgspec

Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]


class Track(msgspec.Struct):
    pos: Int32
    artist_name: str
    track_uri: str
    artist_uri: str
    track_name: str
    album_uri: str
    duration_ms: int
    album_name: str


class Playlist(msgspec.Struct):
    name: str
    collaborative: Literal["true", "false"]
    pid: int
    modified_at: int
    num_tracks: Int32
    num_albums: Int32
    num_followers: Int32
    tracks: list[Track]
    num_edits: Int32
    duration_ms: int
    num_artists: Int32
    description: Optional[str] = None


class ChallengePlaylist(msgspec.Struct):
    pid: int
    num_holdouts: Int32
    num_samples: Int32
    num_tracks: Int32
    tracks: list[Track]
    name: Optional[str] = None


class SliceFile(msgspec.Struct):
    playlists: list[Playlist]


SLICE_DECODER = msgspec.json.Decoder(SliceFile)
