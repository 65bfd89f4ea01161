"""The slice parser: every kind of bad record is quarantined with its reason; nothing is lost."""

from __future__ import annotations

import copy
import typing

import msgspec
import orjson
import pyarrow as pa
import pytest

from mpdrec import schemas
from mpdrec.etl.mpd_parse import FileProblem, parse_challenge, parse_mpd_slice
from mpdrec.etl.mpd_records import Playlist, Track


@pytest.fixture(scope="module")
def slice_doc(synth_dir):
    return orjson.loads((synth_dir / "mpd.slice.0-999.json").read_bytes())


def _parse(doc) -> pa.Table:
    return parse_mpd_slice("file:/x/mpd.slice.0-999.json", orjson.dumps(doc))


def _bad(table: pa.Table) -> list[dict]:
    return (
        table.filter(table.column("reason").is_valid()).select(["index", "pid", "reason", "detail", "raw"]).to_pylist()
    )


def test_clean_slice_parses_every_field(slice_doc):
    t = _parse(slice_doc)
    assert t.schema == schemas.PARSED_MPD
    assert t.num_rows == 1000 and t.column("reason").null_count == 1000
    row = t.slice(17, 1).to_pylist()[0]
    p = slice_doc["playlists"][17]
    for key in (
        "pid",
        "name",
        "modified_at",
        "num_tracks",
        "num_albums",
        "num_followers",
        "num_edits",
        "duration_ms",
        "num_artists",
    ):
        assert row[key] == p[key], key
    assert row["collaborative"] == (p["collaborative"] == "true")
    assert row["description"] == p.get("description")
    assert [{k: tr[k] for k in tr} for tr in row["tracks"]] == [
        {k: t_[k] for k in row["tracks"][0]} for t_ in p["tracks"]
    ]


def test_fast_and_slow_paths_agree(slice_doc):
    content = orjson.dumps(slice_doc)
    assert parse_mpd_slice("s", content).equals(parse_mpd_slice("s", content, fast=False))


BREAKAGES = [
    ("missing_field", lambda p: p.pop("num_followers"), "Object missing required field `num_followers`"),
    ("missing_field", lambda p: p.pop("tracks"), "Object missing required field `tracks`"),
    ("wrong_type", lambda p: p.update(num_tracks="12"), "Expected `int`, got `str` - at `$.num_tracks`"),
    ("wrong_type", lambda p: p.update(pid=True), "Expected `int`, got `bool` - at `$.pid`"),
    ("wrong_type", lambda p: p.update(modified_at=1.5), "Expected `int`, got `float` - at `$.modified_at`"),
    ("wrong_type", lambda p: p.update(num_followers=3.0), "Expected `int`, got `float` - at `$.num_followers`"),
    ("wrong_type", lambda p: p.update(name=None), "Expected `str`, got `null` - at `$.name`"),
    ("wrong_type", lambda p: p.update(collaborative=True), "Expected `str`, got `bool` - at `$.collaborative`"),
    ("wrong_type", lambda p: p.update(collaborative="yes"), "Invalid enum value 'yes' - at `$.collaborative`"),
    ("out_of_range", lambda p: p.update(num_edits=2**40), "Expected `int` <= 2147483647 - at `$.num_edits`"),
    ("wrong_type", lambda p: p.update(description=3), "got `int` - at `$.description`"),
    ("wrong_type", lambda p: p.update(tracks={"0": 1}), "Expected `array`, got `object` - at `$.tracks`"),
    ("bad_track", lambda p: p["tracks"][2].pop("track_uri"), "missing required field `track_uri` - at `$.tracks[2]`"),
    ("bad_track", lambda p: p["tracks"].__setitem__(1, "spotify:track:x"), "got `str` - at `$.tracks[1]`"),
    ("bad_track", lambda p: p["tracks"][0].update(duration_ms="long"), "at `$.tracks[0].duration_ms`"),
    ("bad_position", lambda p: p["tracks"][3].update(pos=7), "track 3 has pos 7, expected 3"),
    ("bad_uri", lambda p: p["tracks"][4].update(track_uri="spotify:album:abc"), "is not a spotify:track: URI"),
    ("count_mismatch", lambda p: p.update(num_tracks=p["num_tracks"] + 1), "but"),
]


@pytest.mark.parametrize("reason, breakage, detail", BREAKAGES, ids=[b[2][:40] for b in BREAKAGES])
def test_each_bad_record_is_quarantined_with_its_reason(slice_doc, reason, breakage, detail):
    doc = copy.deepcopy(slice_doc)
    victim = doc["playlists"][5]
    breakage(victim)
    t = _parse(doc)
    bad = _bad(t)
    assert len(bad) == 1
    assert bad[0]["index"] == 5 and bad[0]["reason"] == reason and detail in bad[0]["detail"]
    assert orjson.loads(bad[0]["raw"]) == victim  # the record itself is kept
    good = t.filter(t.column("reason").is_null())
    assert good.num_rows == 999 and 5 not in good.column("index").to_pylist()


PLAYLIST_FIELDS = [f for f in msgspec.structs.fields(Playlist)]
TRACK_FIELDS = [f for f in msgspec.structs.fields(Track)]


def _wrong_value(tp: object) -> object:
    """A JSON value of another type than the field's: a list where any scalar belongs, an object
    where a list belongs."""
    return {"not": "a list"} if typing.get_origin(tp) is list else ["not", "a scalar"]


@pytest.mark.parametrize("field", PLAYLIST_FIELDS, ids=[f.name for f in PLAYLIST_FIELDS])
def test_a_wrong_type_or_a_gap_in_any_playlist_field_quarantines_the_record(slice_doc, field):
    for breakage, reason in [
        (lambda p: p.update({field.name: _wrong_value(field.type)}), "wrong_type"),
        (lambda p: p.pop(field.name, None), "missing_field"),
    ]:
        doc = copy.deepcopy(slice_doc)
        breakage(doc["playlists"][5])
        bad = _bad(_parse(doc))
        if reason == "missing_field" and not field.required:  # description may be absent
            assert bad == [], field.name
            continue
        assert [(b["index"], b["reason"]) for b in bad] == [(5, reason)], (field.name, bad)
        assert f"`$.{field.name}`" in bad[0]["detail"] or f"`{field.name}`" in bad[0]["detail"]


@pytest.mark.parametrize("field", TRACK_FIELDS, ids=[f.name for f in TRACK_FIELDS])
def test_a_wrong_type_or_a_gap_in_any_track_field_quarantines_the_playlist(slice_doc, field):
    for breakage in [lambda t: t.update({field.name: _wrong_value(field.type)}), lambda t: t.pop(field.name)]:
        doc = copy.deepcopy(slice_doc)
        breakage(doc["playlists"][5]["tracks"][1])
        bad = _bad(_parse(doc))
        assert [(b["index"], b["reason"]) for b in bad] == [(5, "bad_track")], (field.name, bad)
        assert "`$.tracks[1]" in bad[0]["detail"]


def test_not_an_object_and_duplicates_within_a_file(slice_doc):
    doc = copy.deepcopy(slice_doc)
    doc["playlists"][1] = ["not", "a", "playlist"]
    doc["playlists"][9]["pid"] = doc["playlists"][8]["pid"]
    bad = {b["index"]: b for b in _bad(_parse(doc))}
    assert bad[1]["reason"] == "not_an_object" and bad[1]["pid"] is None
    assert bad[9]["reason"] == "duplicate_pid" and "index 8" in bad[9]["detail"]
    assert len(bad) == 2


@pytest.mark.parametrize(
    "content, reason, detail",
    [
        (b'{"info": {}, "playlists": [', "invalid_json", "not valid JSON"),
        (b"", "invalid_json", "the file is empty"),
        (b'{"info": {}}', "no_playlists", "not an object with a 'playlists' list"),
        (b"[1, 2]", "no_playlists", "not an object with a 'playlists' list"),
        (b'{"playlists": []}', "no_playlists", "list is empty"),
    ],
)
def test_files_without_records_raise_their_problem(content, reason, detail):
    with pytest.raises(FileProblem) as err:
        parse_mpd_slice("file:/x/mpd.slice.5-6.json", content)
    assert err.value.reason == reason and detail in err.value.detail


def test_challenge_set(synth_dir):
    content = (synth_dir / "challenge_set.json").read_bytes()
    t = parse_challenge("c", content)
    assert t.schema == schemas.PARSED_CHALLENGE
    assert t.column("reason").null_count == 30
    assert sorted(t.column("category").to_pylist()) == sorted(list(range(1, 11)) * 3)
    no_title = t.filter(pa.compute.is_in(t.column("category"), pa.array([4, 6], pa.int32())))
    assert no_title.column("name").null_count == no_title.num_rows
    doc = orjson.loads(content)
    doc["playlists"][0]["num_samples"] = 3  # title-only playlist claiming seeds
    doc["playlists"][15]["num_holdouts"] += 1
    doc["playlists"][20]["tracks"] = doc["playlists"][20]["tracks"][:-1]
    bad = {b["index"]: b["reason"] for b in _bad(parse_challenge("c", orjson.dumps(doc)))}
    assert bad == {0: "count_mismatch", 15: "count_mismatch", 20: "count_mismatch"}
