"""The bad-input corpus: broken MPD slices and challenge sets built by code from valid ones, each
with the outcome it must have. A record is kept, or quarantined with its reason (per file, records =
kept + quarantined); a file that gives no record counts as every playlist its name implies; or the
job stops with one line naming the file and the problem, and publishes nothing."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import ROOT, make_config, python_env
from mpdrec.errors import InputError
from mpdrec.etl.ingest import check_local_inputs, run_ingest
from mpdrec.etl.slice_tables import process_file

PER_FILE = 6  # playlists in each case's slice file
VICTIM = 2  # the one a record-level case breaks
KEPT = "kept"


@dataclass(frozen=True)
class Case:
    """One slice file: `build(playlists) -> bytes`; `outcome`: KEPT (all six kept), a quarantine
    reason (the victim quarantined), or ("file", reason, words of the detail) for a file that gives
    no record."""

    name: str
    build: Callable[[list[dict]], bytes]
    outcome: Any


def _breaking(change: Callable[[dict], Any]) -> Callable[[list[dict]], bytes]:
    def build(pls: list[dict]) -> bytes:
        change(pls[VICTIM])
        return _whole(pls)

    return build


def _token(field: str, token: str) -> Callable[[list[dict]], bytes]:
    """The victim's `field` written as `token`, which no JSON writer writes (NaN, a lone surrogate)."""

    def build(pls: list[dict]) -> bytes:
        pls[VICTIM][field] = "SENTINEL"
        return json.dumps({"info": {}, "playlists": pls}).replace('"SENTINEL"', token).encode()

    return build


def _set(**fields: Any) -> Callable[[dict], Any]:
    return lambda p: p.update(fields)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _zipped(pls: list[dict]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mpd.slice.json", orjson.dumps({"playlists": pls}))
    return buf.getvalue()


def _whole(pls: list[Any]) -> bytes:
    return json.dumps({"info": {}, "playlists": pls}, ensure_ascii=False).encode()


CASES = [
    # one record quarantined with its reason, the others kept
    Case("missing field", _breaking(lambda p: p.pop("num_followers")), "missing_field"),
    Case("missing tracks", _breaking(lambda p: p.pop("tracks")), "missing_field"),
    Case("string for an integer", _breaking(_set(num_tracks="12")), "wrong_type"),
    Case("boolean pid", _breaking(_set(pid=True)), "wrong_type"),
    Case("float modified_at", _breaking(_set(modified_at=1.5)), "wrong_type"),
    Case("null name", _breaking(_set(name=None)), "wrong_type"),
    Case("boolean collaborative", _breaking(_set(collaborative=True)), "wrong_type"),
    Case("collaborative not true/false", _breaking(_set(collaborative="yes")), "wrong_type"),
    Case("tracks an object", _breaking(_set(tracks={"0": 1})), "wrong_type"),
    Case("description deeply nested", _breaking(_set(description=_nested(200))), "wrong_type"),
    Case("pid past 2^63", _breaking(_set(pid=2**63)), "out_of_range"),
    Case("pid past 2^64", _breaking(_set(pid=2**64 + 1)), "out_of_range"),
    Case("modified_at past 2^63", _breaking(_set(modified_at=2**63 + 5)), "out_of_range"),
    Case("duration_ms past 2^63", _breaking(_set(duration_ms=2**63)), "out_of_range"),
    Case("num_edits past int32", _breaking(_set(num_edits=2**40)), "out_of_range"),
    Case("negative pid", _breaking(_set(pid=-1)), "out_of_range"),
    Case("negative followers", _breaking(_set(num_followers=-3)), "out_of_range"),
    Case("huge name", _breaking(_set(name="n" * 20_000)), "out_of_range"),
    Case("NaN count", _token("num_edits", "NaN"), "wrong_type"),
    Case("Infinity count", _token("num_albums", "-Infinity"), "wrong_type"),
    Case("number too large for a float", _token("pid", "1e400"), "wrong_type"),
    Case("lone surrogate in the name", _token("name", '"rock \\ud800"'), "bad_text"),
    Case("track without uri", _breaking(lambda p: p["tracks"][1].pop("track_uri")), "bad_track"),
    Case("track a string", _breaking(lambda p: p["tracks"].__setitem__(0, "spotify:track:x")), "bad_track"),
    Case("track duration a string", _breaking(lambda p: p["tracks"][0].update(duration_ms="long")), "bad_track"),
    Case("huge track name", _breaking(lambda p: p["tracks"][0].update(track_name="t" * 20_000)), "bad_track"),
    Case("negative track duration", _breaking(lambda p: p["tracks"][0].update(duration_ms=-1)), "bad_track"),
    Case("position out of order", _breaking(lambda p: p["tracks"][3].update(pos=7)), "bad_position"),
    Case("negative position", _breaking(lambda p: p["tracks"][0].update(pos=-1)), "bad_position"),
    Case("album uri as track uri", _breaking(lambda p: p["tracks"][1].update(track_uri="spotify:album:x")), "bad_uri"),
    Case("num_tracks off by one", _breaking(lambda p: p.update(num_tracks=p["num_tracks"] + 1)), "count_mismatch"),
    Case("no tracks", _breaking(_set(tracks=[], num_tracks=0)), "no_tracks"),
    Case("record a list", lambda pls: _whole(pls[:VICTIM] + [["a", "list"]] + pls[VICTIM + 1 :]), "not_an_object"),
    Case("record a number", lambda pls: _whole(pls[:VICTIM] + [7] + pls[VICTIM + 1 :]), "not_an_object"),
    Case(
        "pid twice in the file",
        lambda pls: _whole(pls[:VICTIM] + [dict(pls[VICTIM], pid=pls[0]["pid"])] + pls[VICTIM + 1 :]),
        "duplicate_pid",
    ),
    # kept whole
    Case("extra playlist field", _breaking(_set(mood="sunny")), KEPT),
    Case("extra track field", _breaking(lambda p: p["tracks"][0].update(bpm=120)), KEPT),
    Case("no description", _breaking(lambda p: p.pop("description", None)), KEPT),
    Case(
        "key given twice",
        lambda pls: _whole(pls).replace(b'"num_followers": ', b'"num_followers": 0, "num_followers": ', 1),
        KEPT,
    ),
    Case("UTF-8 byte order mark", lambda pls: b"\xef\xbb\xbf" + _whole(pls), KEPT),
    Case("UTF-16 text", lambda pls: json.dumps({"playlists": pls}).encode("utf-16"), KEPT),
    Case(
        "NUL, emoji and right-to-left text", _breaking(_set(name="a\u0000b \U0001f3b8 \u05e9\u05dc\u05d5\u05dd")), KEPT
    ),
    # files that give no record: each counts as the 1,000 playlists its name implies
    Case("truncated", lambda pls: _whole(pls)[:-40], ("file", "invalid_json", "not valid JSON")),
    Case("empty file", lambda pls: b"", ("file", "invalid_json", "the file is empty")),
    Case("only whitespace", lambda pls: b" \n\t ", ("file", "invalid_json", "the file is empty")),
    Case("plain text", lambda pls: b"these are not the playlists", ("file", "invalid_json", "not valid JSON")),
    Case(
        "Latin-1 text",
        lambda pls: _whole(pls).replace(b'"name": "', b'"name": "caf\xe9 ', 1),
        ("file", "invalid_json", "not UTF-8"),
    ),
    Case("gzip file", lambda pls: gzip.compress(_whole(pls)), ("file", "invalid_json", "gzip archive")),
    Case("zip file", _zipped, ("file", "invalid_json", "zip archive")),
    Case("trailing garbage", lambda pls: _whole(pls) + b"}{", ("file", "invalid_json", "not valid JSON")),
    Case(
        "nested past every parser",
        lambda pls: b'{"playlists": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        ("file", "invalid_json", "nested too deeply"),
    ),
    Case("top level a list", lambda pls: orjson.dumps(pls), ("file", "no_playlists", "'playlists' list")),
    Case("no playlists key", lambda pls: orjson.dumps({"info": {}}), ("file", "no_playlists", "'playlists' list")),
    Case(
        "playlists an object",
        lambda pls: orjson.dumps({"playlists": {"0": pls[0]}}),
        ("file", "no_playlists", "'playlists' list"),
    ),
    Case("no playlists", lambda pls: orjson.dumps({"info": {}, "playlists": []}), ("file", "no_playlists", "empty")),
]
IMPLIED = 1000


def _file(i: int) -> str:
    lo = 100_000 + 1000 * i
    return f"mpd.slice.{lo}-{lo + 999}.json"


@pytest.fixture(scope="module")
def corpus(synth_dir, tmp_path_factory) -> dict[str, Any]:
    """Every case as its own slice of six playlists (pids of its own), a slice reached through a
    symbolic link, a directory reached through one, and a challenge set with unknown seeds."""
    base = orjson.loads((synth_dir / "mpd.slice.0-999.json").read_bytes())["playlists"][:PER_FILE]
    root = tmp_path_factory.mktemp("corpus")
    d = root / "mpd"
    d.mkdir()
    files = {}
    for i, case in enumerate(CASES):
        lo = 100_000 + 1000 * i
        pls = [dict(copy.deepcopy(p), pid=lo + j) for j, p in enumerate(base)]
        (d / _file(i)).write_bytes(case.build(pls))
        files[_file(i)] = (case, pls)
    linked = [dict(copy.deepcopy(p), pid=900_000 + j) for j, p in enumerate(base)]
    (root / "elsewhere.json").write_bytes(_whole(linked))
    os.symlink(root / "elsewhere.json", d / "mpd.slice.900000-900999.json")
    other = root / "other"
    other.mkdir()
    behind = [dict(copy.deepcopy(p), pid=910_000 + j) for j, p in enumerate(base)]
    (other / "mpd.slice.910000-910999.json").write_bytes(_whole(behind))
    os.symlink(other, root / "linked_dir")
    challenge = orjson.loads((synth_dir / "challenge_set.json").read_bytes())
    for j, p in enumerate(challenge["playlists"]):
        p["pid"] = 2_000_000 + j
    (root / "challenge_set.json").write_bytes(orjson.dumps(challenge))
    kept_extra = {"mpd.slice.900000-900999.json": linked, "mpd.slice.910000-910999.json": behind}
    return {"dir": d, "root": root, "files": files, "kept_extra": kept_extra, "challenge": challenge}


def test_the_corpus_is_large_enough():
    assert len({c.name for c in CASES}) == len(CASES) >= 50


def test_every_case_is_documented():
    page = (ROOT / "docs" / "bad_input.md").read_text()
    assert [c.name for c in CASES if f"| {c.name} |" not in page] == []


@pytest.fixture(scope="module")
def ingested(spark, corpus, tmp_path_factory) -> tuple[dict[str, Any], Path]:
    run_dir = tmp_path_factory.mktemp("run")
    cfg = make_config(
        [
            f"paths.mpd={corpus['dir']},{corpus['root'] / 'linked_dir'}",
            f"paths.run_dir={run_dir}",
            f"paths.challenge={corpus['root'] / 'challenge_set.json'}",
            "ingest.max_quarantine_share=1",
        ]
    )
    return run_ingest(spark, cfg), run_dir / "ingest"


def _expected(corpus: dict[str, Any]) -> tuple[dict[str, dict[str, int]], set[int], list[tuple[str, int | None, str]]]:
    """Per file counts, kept pids and quarantine rows (file, index, reason) the corpus must give."""
    by_file: dict[str, dict[str, int]] = {}
    kept: set[int] = set()
    rows: list[tuple[str, int | None, str]] = []
    for name, (case, pls) in corpus["files"].items():
        pids = [p["pid"] for p in pls]
        if case.outcome == KEPT:
            kept.update(pids)
        elif isinstance(case.outcome, tuple):
            by_file[name] = {"records": IMPLIED, "kept": 0, "quarantined": IMPLIED}
            rows.append((name, None, case.outcome[1]))
        else:
            by_file[name] = {"records": PER_FILE, "kept": PER_FILE - 1, "quarantined": 1}
            kept.update(pids[:VICTIM] + pids[VICTIM + 1 :])
            rows.append((name, VICTIM, case.outcome))
    for pls in corpus["kept_extra"].values():
        kept.update(p["pid"] for p in pls)
    return by_file, kept, rows


def test_every_case_has_its_outcome_and_every_count_adds_up(spark, corpus, ingested):
    manifest, out = ingested
    by_file, kept, rows = _expected(corpus)
    q = manifest["quarantine"]
    assert {Path(k).name: v for k, v in q["by_file"].items()} == by_file
    assert all(v["records"] == v["kept"] + v["quarantined"] for v in q["by_file"].values())
    got_rows = [
        (Path(r.source).name, r["index"], r.reason) for r in spark.read.parquet(str(out / "quarantine")).collect()
    ]
    assert sorted(got_rows, key=str) == sorted(rows, key=str)
    pids = {r.pid for r in spark.read.parquet(str(out / "playlists")).select("pid").collect()}
    assert pids == kept
    assert manifest["tables"]["playlists"] == len(kept)
    challenge = manifest["tables"]["challenge_playlists"]
    total = PER_FILE * (len(CASES) + 2) + sum(v["records"] - PER_FILE for v in by_file.values()) + challenge
    assert q["of_records"] == total and q["records"] == sum(v["quarantined"] for v in by_file.values())
    assert q["records"] + manifest["tables"]["playlists"] + challenge == q["of_records"]
    assert sum(q["by_reason"].values()) == q["records"]


def test_a_file_without_records_is_named_with_its_problem(spark, corpus, ingested):
    manifest, out = ingested
    lost = {Path(k).name: v for k, v in manifest["quarantine"]["files_without_records"].items()}
    expected = {name: case.outcome for name, (case, _) in corpus["files"].items() if isinstance(case.outcome, tuple)}
    assert set(lost) == set(expected)
    for name, (_, _reason, words) in expected.items():
        assert words in lost[name], (name, lost[name])
    details = {
        Path(r.source).name: r.detail
        for r in spark.read.parquet(str(out / "quarantine")).collect()
        if r["index"] is None
    }
    assert all("counted as the 1,000 playlists its name implies" in details[n] for n in expected)


def test_a_quarantined_record_keeps_its_json(spark, corpus, ingested):
    _, out = ingested
    raw = {
        Path(r.source).name: r.raw
        for r in spark.read.parquet(str(out / "quarantine")).collect()
        if r["index"] is not None
    }
    by_name = {case.name: (name, pls) for name, (case, pls) in corpus["files"].items()}
    for name, (case, pls) in corpus["files"].items():
        if isinstance(case.outcome, str) and case.outcome not in (KEPT, "not_an_object", "bad_text"):
            assert json.loads(raw[name])["name"] == pls[VICTIM]["name"], name
    assert json.loads(raw[by_name["pid past 2^64"][0]])["pid"] == 2**64 + 1  # exactly
    assert '"num_edits": NaN' in raw[by_name["NaN count"][0]]
    assert json.loads(raw[by_name["lone surrogate in the name"][0]])["name"] == "rock \ud800"


def test_kept_playlists_are_the_records_as_written(spark, corpus, ingested):
    _, out = ingested
    rows = {r.pid: r for r in spark.read.parquet(str(out / "playlists")).collect()}
    for case, pls in corpus["files"].values():
        if case.name == "NUL, emoji and right-to-left text":
            assert rows[pls[VICTIM]["pid"]].name == pls[VICTIM]["name"]
        if case.name == "key given twice":  # JSON's last value wins, as every parser here reads it
            assert rows[pls[0]["pid"]].num_followers == pls[0]["num_followers"]
        if case.name == "UTF-16 text":
            assert [rows[p["pid"]].name for p in pls] == [p["name"] for p in pls]


def test_challenge_seeds_the_mpd_lacks_are_kept_and_counted(spark, corpus, ingested):
    manifest, _ = ingested
    _, kept, _ = _expected(corpus)
    known = {
        t["track_uri"]
        for name, (case, pls) in corpus["files"].items()
        for p in pls
        if p["pid"] in kept
        for t in p["tracks"]
    }
    known |= {t["track_uri"] for pls in corpus["kept_extra"].values() for p in pls for t in p["tracks"]}
    seeds = [t["track_uri"] for p in corpus["challenge"]["playlists"] for t in p["tracks"]]
    assert manifest["tables"]["challenge_playlists"] == len(corpus["challenge"]["playlists"])
    assert manifest["challenge_seeds_not_in_mpd"] == sum(s not in known for s in seeds) > 0


def test_the_job_stops_on_the_corpus_in_one_line_naming_every_lost_file(corpus, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "ingest_mpd.py"),
            "--set",
            f"paths.mpd={corpus['dir']}",
            "--set",
            f"paths.run_dir={tmp_path}",
            "--set",
            "paths.challenge=",
            "--set",
            "spark.master=local[2]",
        ],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ingest: ") and "above ingest.max_quarantine_share=0.0" in last
    for name, (case, _) in corpus["files"].items():
        if isinstance(case.outcome, tuple):
            assert f"{name} (1,000 playlists: " in last, name
    assert not (tmp_path / "ingest").exists() and (tmp_path / "ingest_rejected" / "quarantine").is_dir()


def _slice(synth_dir: Path, d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "mpd.slice.0-999.json").write_bytes((synth_dir / "mpd.slice.0-999.json").read_bytes())
    return d


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: (d / "mpd.slice.1000-1999.json.gz").write_bytes(gzip.compress(b"{}")), "compressed slice files"),
        (lambda d: os.symlink(d / "gone.json", d / "mpd.slice.1000-1999.json"), "is not a file"),
        (lambda d: (d / "mpd.slice.1000-1999.json").mkdir(), "is not a file"),
    ],
)
def test_slices_that_would_be_left_out_unseen_stop_the_job_before_spark(synth_dir, tmp_path, make, words):
    d = _slice(synth_dir, tmp_path / "mpd")
    make(d)
    with pytest.raises(InputError, match=f"config key 'paths.mpd': .*{words}"):
        check_local_inputs(make_config([f"paths.mpd={d}", "paths.challenge="]))


def test_a_file_that_cannot_be_read_counts_as_its_playlists(tmp_path):
    summary = process_file(str(tmp_path / "mpd.slice.3000-3499.json"), "mpd", str(tmp_path / "out"))
    assert (summary.records, summary.good, summary.quarantined, summary.quarantine_rows) == (500, 0, 500, 1)
    assert summary.by_reason == {"unreadable": 500} and "cannot be read" in summary.problem


@pytest.mark.parametrize(
    "challenge, words",
    [
        (lambda doc: b'{"playlists": [', "not valid JSON"),
        (lambda doc: orjson.dumps({"playlists": []}), "list is empty"),
        (
            lambda doc: orjson.dumps({"playlists": [dict(doc["playlists"][0], pid=5)] + doc["playlists"][1:]}),
            "1 of its pids are also MPD pids (pid 5 is in mpd.slice.0-999.json)",
        ),
    ],
)
def test_a_challenge_set_that_cannot_be_ranked_stops_the_job(spark, synth_dir, tmp_path, challenge, words):
    d = _slice(synth_dir, tmp_path / "mpd")
    path = tmp_path / "challenge_set.json"
    path.write_bytes(challenge(orjson.loads((synth_dir / "challenge_set.json").read_bytes())))
    with pytest.raises(InputError, match=f"challenge set .*challenge_set.json: .*{re.escape(words)}"):
        run_ingest(
            spark, make_config([f"paths.mpd={d}", f"paths.run_dir={tmp_path / 'run'}", f"paths.challenge={path}"])
        )
    assert not (tmp_path / "run" / "ingest").exists()


def test_no_readable_slice_stops_the_job(spark, tmp_path):
    d = tmp_path / "mpd"
    d.mkdir()
    (d / "mpd.slice.0-999.json").write_bytes(b"not json")
    with pytest.raises(InputError, match="no playlist could be read from the 1 slice files .*mpd.slice.0-999.json"):
        run_ingest(
            spark,
            make_config(
                [
                    f"paths.mpd={d}",
                    f"paths.run_dir={tmp_path / 'run'}",
                    "paths.challenge=",
                    "ingest.max_quarantine_share=1",
                ]
            ),
        )
    assert not (tmp_path / "run" / "ingest").exists()


@pytest.mark.parametrize(
    "job, last_line",
    [
        ("build_interactions", "{run}/ingest has no finished output: run jobs/ingest_mpd.py first"),
        ("sample_negatives", "{run}/interactions has no finished output: run jobs/build_interactions.py first"),
        ("train_als", "{run}/interactions has no finished output: run jobs/build_interactions.py first"),
        ("train_ncf", "no leave-one-out set at {run}/negatives/eval"),
        ("rank_candidates", "{run}/ingest has no finished output: run jobs/ingest_mpd.py first"),
        ("evaluate", "{run}/interactions has no finished output: run jobs/build_interactions.py first"),
        ("playlist_neighbours", "{run}/ingest has no finished output: run jobs/ingest_mpd.py first"),
        ("predict_followers", "{run}/ingest has no finished output: run jobs/ingest_mpd.py first"),
        ("charts_study", "{run}/interactions has no finished output: run jobs/ingest_table.py first"),
        ("explicit_ratings", "{run}/interactions has no finished output: run jobs/ingest_table.py first"),
    ],
)
def test_a_job_whose_inputs_have_not_run_stops_before_spark_starts(tmp_path, job, last_line):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / f"{job}.py"), "--set", f"paths.run_dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: " + last_line.format(run=f"file://{tmp_path}"))
    assert "SparkContext" not in proc.stderr and "Traceback" not in proc.stderr
