"""Ingest on a real local SparkSession: round trip, quarantine, duplicates, reruns, crashes."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from conftest import make_config
from mpdrec import schemas
from mpdrec.errors import InputError
from mpdrec.etl import ingest as ingest_mod
from mpdrec.etl.ingest import run_ingest


def _cfg(mpd, run_dir, challenge=None, share=0.0):
    sets = [
        f"paths.mpd={mpd}",
        f"paths.run_dir={run_dir}",
        f"ingest.max_quarantine_share={share}",
        f"paths.challenge={challenge or ''}",
    ]
    return make_config(sets)


def _json_playlists(paths) -> list[dict]:
    return [p for f in paths for p in orjson.loads(Path(f).read_bytes())["playlists"]]


@pytest.fixture(scope="module")
def clean_run(spark, synth_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = _cfg(synth_dir, run_dir, challenge=synth_dir / "challenge_set.json")
    return cfg, run_ingest(spark, cfg), run_dir / "ingest"


def test_every_playlist_and_entry_arrives(spark, synth_dir, clean_run):
    _, manifest, out = clean_run
    pls = _json_playlists(sorted(synth_dir.glob("mpd.slice.*.json")))
    assert manifest["tables"]["playlists"] == len(pls) == 3000
    assert manifest["tables"]["playlist_tracks"] == sum(len(p["tracks"]) for p in pls)
    assert manifest["quarantine"]["records"] == 0 and manifest["tables"]["quarantine"] == 0

    entries = {
        (r.pid, r.pos, r.track_uri, r.artist_uri, r.album_uri, r.duration_ms)
        for r in spark.read.parquet(str(out / "playlist_tracks")).collect()
    }
    assert entries == {
        (p["pid"], t["pos"], t["track_uri"], t["artist_uri"], t["album_uri"], t["duration_ms"])
        for p in pls
        for t in p["tracks"]
    }

    rows = {r.pid: r.asDict() for r in spark.read.parquet(str(out / "playlists")).collect()}
    for p in pls[::97]:  # field by field on a sample
        r = rows[p["pid"]]
        for key in (
            "name",
            "modified_at",
            "num_tracks",
            "num_albums",
            "num_followers",
            "num_edits",
            "duration_ms",
            "num_artists",
        ):
            assert r[key] == p[key], key
        assert r["collaborative"] == (p["collaborative"] == "true")
        assert r["description"] == p.get("description")
        assert r["source"].endswith(f"mpd.slice.{p['pid'] // 1000 * 1000}-{p['pid'] // 1000 * 1000 + 999}.json")


def test_tracks_catalogue_counts_distinct_playlists(spark, synth_dir, clean_run):
    _, _, out = clean_run
    pls = _json_playlists(sorted(synth_dir.glob("mpd.slice.*.json")))
    counts: Counter = Counter()
    names = {}
    for p in pls:
        for uri in {t["track_uri"] for t in p["tracks"]}:
            counts[uri] += 1
        for t in p["tracks"]:
            names[t["track_uri"]] = (t["track_name"], t["artist_name"], t["album_name"])
    tracks = {r.track_uri: r for r in spark.read.parquet(str(out / "tracks")).collect()}
    assert {u: r.playlist_count for u, r in tracks.items()} == dict(counts)
    assert all((r.track_name, r.artist_name, r.album_name) == names[u] for u, r in tracks.items())


def test_challenge_tables(spark, synth_dir, clean_run):
    _, manifest, out = clean_run
    doc = orjson.loads((synth_dir / "challenge_set.json").read_bytes())["playlists"]
    cp = spark.read.parquet(str(out / "challenge_playlists"))
    assert sorted(r.category for r in cp.collect()) == sorted(list(range(1, 11)) * 3)
    seeds = {(r.pid, r.pos, r.track_uri) for r in spark.read.parquet(str(out / "challenge_tracks")).collect()}
    assert seeds == {(p["pid"], t["pos"], t["track_uri"]) for p in doc for t in p["tracks"]}
    assert manifest["inputs"]["challenge"].endswith("challenge_set.json")


def test_parquet_schemas_are_the_contract(spark, clean_run):
    _, _, out = clean_run
    for name, schema in [
        ("playlists", schemas.PLAYLISTS),
        ("playlist_tracks", schemas.PLAYLIST_TRACKS),
        ("tracks", schemas.TRACKS),
        ("challenge_playlists", schemas.CHALLENGE_PLAYLISTS),
        ("challenge_tracks", schemas.CHALLENGE_TRACKS),
        ("quarantine", schemas.QUARANTINE),
    ]:
        got = pq.read_schema(next((out / name).glob("*.parquet")))
        assert [(f.name, f.type) for f in got] == [(f.name, f.type) for f in schema], name


def test_rerun_skips_and_forced_rerun_gives_the_same_tables(spark, clean_run):
    cfg, first, out = clean_run
    again = run_ingest(spark, cfg)
    assert again["skipped"] is True and again["finished_at"] == first["finished_at"]
    before = {t: sorted(map(tuple, spark.read.parquet(str(out / t)).collect())) for t in ("playlists", "tracks")}
    forced = run_ingest(spark, cfg, force=True)
    assert forced["finished_at"] != first["finished_at"]
    after = {t: sorted(map(tuple, spark.read.parquet(str(out / t)).collect())) for t in ("playlists", "tracks")}
    assert before == after


def test_a_crashed_run_needs_no_cleanup(spark, synth_dir, tmp_path, monkeypatch):
    cfg = _cfg(synth_dir, tmp_path)

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-stage")

    monkeypatch.setattr(ingest_mod, "_write_tracks", crash)
    with pytest.raises(RuntimeError):
        run_ingest(spark, cfg)
    assert not (tmp_path / "ingest").exists()  # nothing partial is visible
    assert list((tmp_path / "_staging").iterdir())
    monkeypatch.undo()
    manifest = run_ingest(spark, cfg)
    assert manifest["tables"]["playlists"] == 3000 and manifest["tables"]["tracks"] > 0
    assert not list((tmp_path / "_staging").iterdir())


@pytest.fixture(scope="module")
def bad_mpd(synth_dir, tmp_path_factory) -> Path:
    """Two real slices with broken records, a file of repeats, and a file that is not JSON."""
    d = tmp_path_factory.mktemp("bad_mpd")
    doc0 = orjson.loads((synth_dir / "mpd.slice.0-999.json").read_bytes())
    doc0["playlists"][10]["num_tracks"] += 1  # count_mismatch
    doc0["playlists"][20]["tracks"][0].pop("track_uri")  # bad_track
    doc0["playlists"][30]["name"] = 42  # wrong_type
    (d / "mpd.slice.0-999.json").write_bytes(orjson.dumps(doc0))
    shutil.copy(synth_dir / "mpd.slice.1000-1999.json", d)
    doc1 = orjson.loads((synth_dir / "mpd.slice.1000-1999.json").read_bytes())
    repeat = doc1["playlists"][3]  # pid 1003, also in mpd.slice.1000-1999.json
    repeat["tracks"][0]["track_uri"] = "spotify:track:ONLYINTHEREPEAT0000000"
    fresh = dict(doc1["playlists"][4], pid=9000)
    # a name Spark would URL-encode (space): output files must still map back to their input
    (d / "mpd.slice.9000-9999 copy.json").write_bytes(orjson.dumps({"info": {}, "playlists": [repeat, fresh]}))
    (d / "mpd.slice.8000-8999.json").write_bytes(b'{"info": {"slice": "8000-8999"}, "playlists": [{"na')
    return d


def test_bad_input_fails_the_run_by_default_and_publishes_nothing(spark, bad_mpd, tmp_path):
    with pytest.raises(InputError) as err:
        run_ingest(spark, _cfg(bad_mpd, tmp_path))
    msg = str(err.value)
    # 3 broken, an unreadable file counted as the 1,000 playlists its name implies, 1 repeated pid
    assert "1004 of 3002 records quarantined" in msg
    for expected in (
        "mpd.slice.0-999.json (3)",
        "mpd.slice.8000-8999.json (1000)",
        "mpd.slice.9000-9999 copy.json (1)",
        "Files that gave no record: mpd.slice.8000-8999.json (1,000 playlists: not valid JSON",
        "count_mismatch",
        "invalid_json",
        "ingest.max_quarantine_share=0.0",
    ):
        assert expected in msg
    assert not (tmp_path / "ingest").exists()
    rejected = spark.read.parquet(str(tmp_path / "ingest_rejected" / "quarantine"))
    assert rejected.count() == 5


def test_bad_input_within_the_allowed_share_is_kept_aside(spark, bad_mpd, tmp_path):
    manifest = run_ingest(spark, _cfg(bad_mpd, tmp_path, share=0.5))
    out = tmp_path / "ingest"
    q = {(Path(r.source).name, r.pid, r.reason): r for r in spark.read.parquet(str(out / "quarantine")).collect()}
    assert set(q) == {
        ("mpd.slice.0-999.json", 10, "count_mismatch"),
        ("mpd.slice.0-999.json", 20, "bad_track"),
        ("mpd.slice.0-999.json", 30, "wrong_type"),
        ("mpd.slice.8000-8999.json", None, "invalid_json"),
        ("mpd.slice.9000-9999 copy.json", 1003, "duplicate_pid"),
    }
    assert manifest["quarantine"]["records"] == 1004 and manifest["quarantine"]["of_records"] == 3002
    assert manifest["quarantine"]["by_reason"] == {
        "count_mismatch": 1,
        "bad_track": 1,
        "wrong_type": 1,
        "invalid_json": 1000,
        "duplicate_pid": 1,
    }
    assert {Path(k).name: v for k, v in manifest["quarantine"]["by_file"].items()} == {
        "mpd.slice.0-999.json": {"records": 1000, "kept": 997, "quarantined": 3},
        "mpd.slice.8000-8999.json": {"records": 1000, "kept": 0, "quarantined": 1000},
        "mpd.slice.9000-9999 copy.json": {"records": 2, "kept": 1, "quarantined": 1},
    }
    dup_raw = json.loads(q[("mpd.slice.9000-9999 copy.json", 1003, "duplicate_pid")].raw)
    assert dup_raw["tracks"][0]["track_uri"] == "spotify:track:ONLYINTHEREPEAT0000000"
    assert "already ingested from" in q[("mpd.slice.9000-9999 copy.json", 1003, "duplicate_pid")].detail

    pls = spark.read.parquet(str(out / "playlists"))
    assert pls.count() == 2000 - 3 + 1  # slice 0 minus 3 bad, slice 1, plus pid 9000
    assert pls.where("pid = 1003").collect()[0].source.endswith("mpd.slice.1000-1999.json")
    kept = [
        p
        for p in _json_playlists([bad_mpd / "mpd.slice.0-999.json", bad_mpd / "mpd.slice.1000-1999.json"])
        if p["pid"] not in (10, 20, 30)
    ]
    kept.append(dict(orjson.loads((bad_mpd / "mpd.slice.9000-9999 copy.json").read_bytes())["playlists"][1]))
    expected: dict[str, set] = defaultdict(set)
    for p in kept:
        for t in p["tracks"]:
            expected[t["track_uri"]].add(p["pid"])
    got = {r.track_uri: r.playlist_count for r in spark.read.parquet(str(out / "tracks")).collect()}
    assert got == {u: len(s) for u, s in expected.items()}
    assert "spotify:track:ONLYINTHEREPEAT0000000" not in got
    pt = spark.read.parquet(str(out / "playlist_tracks"))
    assert pt.count() == sum(len(p["tracks"]) for p in kept)
