"""The MPD-format generator: exact layout, determinism, statistics, calibration, reruns."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import orjson
import pytest

from conftest import make_config
from mpdrec.categories import CATEGORIES, infer_category
from mpdrec.io.paths import local_path, to_uri
from mpdrec.io.stage import staging_uri
from mpdrec.synth.catalogue import build_catalogue
from mpdrec.synth.generate import generate, synth_fingerprint
from mpdrec.synth.stats import MPD_FULL, expected_stats

PLAYLIST_KEYS = [
    "name",
    "collaborative",
    "pid",
    "modified_at",
    "num_tracks",
    "num_albums",
    "num_followers",
    "tracks",
    "num_edits",
    "duration_ms",
    "num_artists",
]
TRACK_KEYS = ["pos", "artist_name", "track_uri", "artist_uri", "track_name", "album_uri", "duration_ms", "album_name"]


def _slices(d):
    return sorted(d.glob("mpd.slice.*.json"), key=lambda p: int(p.name.split(".")[2].split("-")[0]))


def test_slice_layout_is_the_mpds(synth_dir):
    files = _slices(synth_dir)
    assert [f.name for f in files] == ["mpd.slice.0-999.json", "mpd.slice.1000-1999.json", "mpd.slice.2000-2999.json"]
    for i, f in enumerate(files):
        doc = orjson.loads(f.read_bytes())
        assert list(doc) == ["info", "playlists"]
        assert doc["info"]["slice"] == f"{i * 1000}-{i * 1000 + 999}"
        assert [p["pid"] for p in doc["playlists"]] == list(range(i * 1000, i * 1000 + 1000))
        for p in doc["playlists"]:
            keys = [k for k in p if k != "description"]
            assert keys == PLAYLIST_KEYS
            assert p["collaborative"] in ("true", "false")
            assert isinstance(p["name"], str) and p["name"]
            assert 5 <= p["num_tracks"] == len(p["tracks"]) <= 250
            assert p["duration_ms"] == sum(t["duration_ms"] for t in p["tracks"])
            assert p["num_albums"] == len({t["album_uri"] for t in p["tracks"]})
            assert p["num_artists"] == len({t["artist_uri"] for t in p["tracks"]})
            assert 1_262_304_000 <= p["modified_at"] <= 1_509_494_400
            for j, t in enumerate(p["tracks"]):
                assert list(t) == TRACK_KEYS
                assert t["pos"] == j
                assert t["track_uri"].startswith("spotify:track:") and len(t["track_uri"]) == 36
                assert t["artist_uri"].startswith("spotify:artist:")
                assert t["album_uri"].startswith("spotify:album:")


def test_challenge_set_has_ten_equal_categories(synth_dir):
    doc = orjson.loads((synth_dir / "challenge_set.json").read_bytes())
    pls = doc["playlists"]
    assert [p["pid"] for p in pls] == list(range(1_000_000, 1_000_030))
    cats = Counter()
    for p in pls:
        assert set(p) <= {"name", "num_holdouts", "pid", "num_samples", "num_tracks", "tracks"}
        assert p["num_samples"] == len(p["tracks"])
        assert p["num_tracks"] == p["num_samples"] + p["num_holdouts"]
        cat = infer_category("name" in p, p["num_samples"], [t["pos"] for t in p["tracks"]])
        assert cat is not None
        assert p["num_holdouts"] >= 5
        cats[cat] += 1
    assert cats == {c.id: 3 for c in CATEGORIES}


def test_same_seed_same_bytes_other_seed_other_bytes(synth_dir, tmp_path):
    again = generate(
        make_config(
            synth_overrides={"num_slices": 2, "challenge_size": 30, "out_dir": str(tmp_path / "a"), "workers": 1}
        ).synth
    )
    assert not again.get("skipped")
    for name in ("mpd.slice.0-999.json", "mpd.slice.1000-1999.json"):
        assert (tmp_path / "a" / name).read_bytes() == (synth_dir / name).read_bytes()
    other = tmp_path / "b"
    generate(make_config(synth_overrides={"num_slices": 1, "seed": 7, "out_dir": str(other)}).synth)
    assert (other / "mpd.slice.0-999.json").read_bytes() != (synth_dir / "mpd.slice.0-999.json").read_bytes()


def test_rerun_is_skipped_and_interrupted_run_resumes(synth_dir, tmp_path):
    out = tmp_path / "mpd"
    cfg = make_config(synth_overrides={"num_slices": 2, "challenge_size": 30, "out_dir": str(out)}).synth
    # an interrupted earlier run left one finished slice and one half-written file in its staging dir
    staging = local_path(staging_uri(to_uri(str(tmp_path)), "mpd", synth_fingerprint(cfg)))
    staging.mkdir(parents=True)
    (staging / "mpd.slice.0-999.json").write_bytes((synth_dir / "mpd.slice.0-999.json").read_bytes())
    (staging / ".mpd.slice.1000-1999.json.tmp-99").write_bytes(b"{half")
    first = generate(cfg)
    assert first["files"]["reused_slices"] == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest.json",
        "challenge_set.json",
        "mpd.slice.0-999.json",
        "mpd.slice.1000-1999.json",
    ]
    assert (out / "mpd.slice.1000-1999.json").read_bytes() == (synth_dir / "mpd.slice.1000-1999.json").read_bytes()
    assert not staging.exists()
    assert generate(cfg)["skipped"] is True
    assert generate(cfg, force=True)["files"]["reused_slices"] == 0


def test_statistics_of_a_small_sample_look_like_the_mpd(synth_dir):
    manifest = json.loads((synth_dir / "_manifest.json").read_text())
    s = manifest["stats"]
    assert s["playlists"] == 3000
    assert 58 <= s["length_mean"] <= 75 and 40 <= s["length_median"] <= 60
    assert s["length_min"] >= 5 and s["length_max"] <= 250
    assert 0.02 <= s["top_track_share"] <= 0.12  # MPD: 4.7% at full scale
    expected = expected_stats(build_catalogue(2018), 3000, s["length_mean"])
    assert s["unique_tracks"] == pytest.approx(expected["unique_tracks"], rel=0.15)
    assert s["singleton_track_share"] == pytest.approx(expected["singleton_track_share"], abs=0.08)


def test_catalogue_is_calibrated_to_the_full_mpd():
    """At 1,000 slices the expected figures are within 15% of the published MPD statistics."""
    e = expected_stats(build_catalogue(2018), MPD_FULL["playlists"], MPD_FULL["mean_length"])
    for key in ("unique_tracks", "unique_artists", "unique_albums"):
        assert e[key] == pytest.approx(MPD_FULL[key], rel=0.15), key
    assert 0.4 <= e["singleton_track_share"] <= 0.6


def test_titles_predict_content(synth_dir):
    """Playlists sharing a normalised title share far more tracks than random pairs do."""
    from mpdrec.text import normalize_name

    pls = orjson.loads((synth_dir / "mpd.slice.0-999.json").read_bytes())["playlists"]
    by_title: dict[str, list[set]] = {}
    for p in pls:
        by_title.setdefault(normalize_name(p["name"]), []).append({t["artist_uri"] for t in p["tracks"]})
    rng = np.random.default_rng(0)

    def overlap(a: set, b: set) -> float:
        return len(a & b) / max(1, min(len(a), len(b)))

    same = [overlap(g[0], g[1]) for g in by_title.values() if len(g) >= 2]
    everyone = [s for g in by_title.values() for s in g]
    rand = [overlap(everyone[i], everyone[j]) for i, j in rng.integers(0, len(everyone), (300, 2)) if i != j]
    assert len(same) >= 20
    assert np.mean(same) > 2 * np.mean(rand)
