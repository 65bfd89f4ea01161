"""The MPD studies beside continuation: the Dice neighbour baseline against a brute-force computation,
and both study stages (Dice, followers regression) end to end on an ingested synthetic MPD."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_config
from mpdrec.studies import dice


def _brute(seeds: dict[int, set], bank: dict[int, set], k: int, n: int) -> dict[int, list[str]]:
    popularity: dict[str, int] = {}
    for tracks in bank.values():
        for t in tracks:
            popularity[t] = popularity.get(t, 0) + 1
    out = {}
    for q, a in seeds.items():
        sims = sorted(
            ((2 * len(a & s) / (len(a) + len(s)), b) for b, s in bank.items() if a & s), key=lambda x: (-x[0], x[1])
        )[:k]
        score: dict[str, list] = {}
        for sim, b in sims:
            for t in bank[b] - a:
                score.setdefault(t, [0, 0.0])
                score[t][0] += 1
                score[t][1] += sim
        out[q] = sorted(score, key=lambda t: (-score[t][0], -score[t][1], -popularity[t], t))[:n]
    return out


def test_dice_neighbours_match_brute_force(spark):
    rng = np.random.default_rng(4)
    bank = {int(b): {f"t{int(t)}" for t in rng.zipf(1.6, int(rng.integers(3, 15))) % 60} for b in range(100, 160)}
    seeds = {int(q): {f"t{int(t)}" for t in rng.zipf(1.6, int(rng.integers(2, 8))) % 60} for q in range(10)}

    def df(d):
        return spark.createDataFrame([(p, t) for p, ts in d.items() for t in sorted(ts)], "pid long, track_uri string")

    cfg = make_config(["dice.neighbours=3", "dice.recommendations=7"]).dice
    got = {}
    for r in dice.recommend(df(seeds), df(bank), cfg, seed=1).collect():
        got.setdefault(r.pid, {})[r["rank"]] = r.track_uri
    want = _brute(seeds, bank, 3, 7)
    assert {q: [v[i] for i in sorted(v)] for q, v in got.items()} == {q: v for q, v in want.items() if v}


def _followers_grow_with_length(synth_dir: Path, out: Path) -> Path:
    """The synthetic slices with num_followers rewritten to follow the playlist's length: the generator
    draws followers independently of every feature (`mpdrec.synth.mpd_format.render_slice`), so there
    no model can beat the mean. Here log(followers) is about num_tracks / 50, plus noise (sd 0.5)."""
    rng = np.random.default_rng(11)
    out.mkdir()
    for src in sorted(synth_dir.glob("mpd.slice.*.json")):
        doc = json.loads(src.read_text())
        for p in doc["playlists"]:
            p["num_followers"] = 1 + int(np.expm1(max(0.0, p["num_tracks"] / 50 + rng.normal(0, 0.5))))
        (out / src.name).write_text(json.dumps(doc, indent=2))
    return out


@pytest.fixture(scope="module")
def studies(spark, synth_dir, tmp_path_factory):
    from mpdrec.etl.ingest import run_ingest
    from mpdrec.studies.dice import run_dice
    from mpdrec.studies.followers import run_followers

    run = tmp_path_factory.mktemp("studies")
    mpd = _followers_grow_with_length(synth_dir, tmp_path_factory.mktemp("followers_signal") / "mpd")
    cfg = make_config(
        [f"paths.mpd={mpd}", f"paths.run_dir={run}", "followers.gbt_trees=10", "followers.top_artists=10"]
    )
    run_ingest(spark, cfg)
    return run, run_dice(spark, cfg), run_followers(spark, cfg)


def test_dice_study(studies):
    run, d, _ = studies
    assert 250 < d["held_out"] < 350  # 10% of 3,000 playlists
    h = d["hit_rate"]
    assert h["dice"]["low"] <= h["dice"]["mean"] <= h["dice"]["high"]
    assert h["dice"]["mean"] > h["popularity"]["mean"]  # neighbours know more than the charts
    assert "| dice |" in (run / "dice" / "report.md").read_text()
    assert (run / "dice" / "report_dice.png").stat().st_size > 1000


def test_followers_study(studies):
    run, _, f = studies
    assert f["train"] + f["test"] == 3000 and 450 < f["test"] < 750
    results = f["results"]
    assert set(results) == {"mean", "linear", "lasso", "gbt"}
    mean = results["mean"]["log"]
    assert -0.05 < mean["r2"] <= 0  # one value, the training mean, for every held-out playlist
    best = min(("linear", "lasso", "gbt"), key=lambda m: results[m]["log"]["rmse"])
    assert results[best]["log"]["rmse"] < 0.6 * mean["rmse"] and results[best]["log"]["r2"] > 0.6
    assert results[best]["followers"]["rmse"] < results["mean"]["followers"]["rmse"]
    assert "num_tracks" in f["coefficients"]["linear"] and "num_tracks" in f["importances"]
    assert any(k.startswith("top_artist=") for k in f["coefficients"]["linear"])
    assert "## lasso: coefficients" in (run / "followers" / "report.md").read_text()
    assert (run / "followers" / "report_followers.png").stat().st_size > 1000


def test_studies_reach_the_report(spark, studies):
    from mpdrec.evaluation import _study_sections
    from mpdrec.evaluation import studies as study_table
    from mpdrec.io.fs import HadoopFS

    run, d, f = studies
    table = study_table(HadoopFS(spark), str(run))
    assert table["dice"]["hit_rate"] == d["hit_rate"] and table["followers"]["results"] == f["results"]
    text = "\n".join(_study_sections(table))
    assert "## Studies" in text and "| dice |" in text and "| lasso |" in text
