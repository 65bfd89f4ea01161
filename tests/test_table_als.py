"""ALS on an interaction table (jobs/ingest_table.py): the held-out users' split, their scores against a
brute-force ranking of the same factors, and the whole table path from a CSV to the report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import CONF_DIR, ROOT, python_env
from mpdrec.config import load_config
from mpdrec.errors import InputError
from mpdrec.etl.stages import run_negatives
from mpdrec.etl.table_index import is_table_run, run_table_index
from mpdrec.etl.table_source import run_table
from mpdrec.evaluation_table import evaluate_table
from mpdrec.io.fs import LocalFS
from mpdrec.metrics.recsys2018 import per_playlist_scores
from mpdrec.models import als
from mpdrec.models.als_grid import run_als
from mpdrec.models.als_leave_one_out import run_als_leave_one_out
from mpdrec.models.leave_one_out import read_leave_one_out
from mpdrec.models.table_holdout import HoldoutScorer, split

USERS, ITEMS, N = 80, 60, 10


@pytest.fixture(scope="module")
def interactions(spark):
    """Users of two tastes (even items, odd items) with a few popular items everyone has, in time order."""
    rng = np.random.default_rng(5)
    rows = []
    for u in range(USERS):
        taste = np.arange(u % 2, ITEMS, 2)
        items = np.unique(
            np.concatenate(
                [
                    rng.choice(taste, rng.integers(3, 15), replace=False),
                    rng.choice(4, rng.integers(0, 3), replace=False),
                ]
            )
        )
        rows += [(u, int(t), pos, 1.0) for pos, t in enumerate(rng.permutation(items))]
    rows.append((USERS, 0, 0, 1.0))  # a user with one item: never held out
    return spark.createDataFrame(rows, "playlist_idx int, track_idx int, pos int, weight float")


def test_split_hides_the_latest_share_of_drawn_users(interactions):
    h = split(interactions, users=30, share=0.3, seed=7)
    rows = interactions.toPandas()
    hidden = h.hidden.toPandas()
    assert hidden["pid"].nunique() == 30 and USERS not in set(hidden["pid"])
    for pid, got in hidden.groupby("pid"):
        mine = rows[rows.playlist_idx == pid].sort_values("pos")
        hide = min(len(mine) - 1, max(1, int(len(mine) * 0.3 + 0.5)))  # half up, as Spark rounds
        assert set(got.track_idx) == set(mine.track_idx.iloc[-hide:]), pid  # the latest by pos
    train = h.train.toPandas()
    assert len(train) + len(hidden) == len(rows)
    assert not set(zip(train.playlist_idx, train.track_idx)) & set(zip(hidden.pid, hidden.track_idx))
    queries = h.queries.toPandas()
    assert sorted(queries.pid) == sorted(hidden.pid.unique())
    for pid, seen in zip(queries.pid, queries.exclude):
        assert sorted(seen) == sorted(train[train.playlist_idx == pid].track_idx)
    again = split(interactions, users=30, share=0.3, seed=7).hidden.toPandas()
    key = ["pid", "track_idx"]
    assert again.sort_values(key).values.tolist() == hidden.sort_values(key).values.tolist()
    other = split(interactions, users=30, share=0.3, seed=8).hidden.toPandas()
    assert set(other.pid) != set(hidden.pid)  # the draw follows the seed


def test_scores_equal_a_brute_force_ranking_of_the_same_factors(spark, interactions):
    h = split(interactions, users=30, share=0.3, seed=7)
    ratings = als.ratings(h.train, "binary", 1.0)
    cfg = load_config(CONF_DIR, "local", [], ["als.max_iter=4"]).als
    factors = als.Factors.of(als.estimator(cfg, 4, 10.0, 0.05, seed=3).fit(ratings))
    scorer = HoldoutScorer(h, N, block_rows=16)
    got = scorer.score(factors)

    users = factors.playlists.toPandas().set_index("playlist_idx")["features"]
    tracks = factors.tracks.toPandas().sort_values("track_idx")
    ids, mat = tracks.track_idx.to_numpy(), np.stack(tracks.features.to_numpy())
    train = h.train.toPandas()
    truth = h.truth
    recs, percentiles = [], []
    for pid in sorted(truth.pid.unique()):
        s = mat @ np.asarray(users[pid], dtype=np.float32)
        seen = np.isin(ids, train[train.playlist_idx == pid].track_idx)
        order = [i for i in np.lexsort((ids, -s)) if not seen[i]][:N]
        recs += [(pid, r, ids[i], ids[i]) for r, i in enumerate(order)]
        for t in truth[truth.pid == pid].track:
            if t in set(ids):
                st = s[ids == t][0]
                percentiles.append(np.sum((s > st) & ~seen) / (np.sum(~seen) - 1))
    expected = per_playlist_scores(pd.DataFrame(recs, columns=["pid", "rank", "track", "artist"]), truth)
    for metric in ("r_precision", "ndcg", "clicks"):
        assert got[metric] == pytest.approx(expected[metric].mean(), abs=1e-6), metric
    assert got["mpr_pairs"] == len(percentiles) and got["mpr"] == pytest.approx(np.mean(percentiles), abs=1e-5)
    # R-precision by hand: the hidden items among the first |G| (a table has no artists to credit)
    hand = [
        len(set(r[2] for r in recs if r[0] == pid and r[1] < len(g)) & set(g.track)) / len(g)
        for pid, g in truth.groupby("pid")
    ]
    assert got["r_precision"] == pytest.approx(np.mean(hand), abs=1e-9)

    counts = train.groupby("track_idx").size()
    popular = sorted(counts.index, key=lambda t: (-counts[t], t))
    pop_recs = []
    for pid in sorted(truth.pid.unique()):
        seen = set(train[train.playlist_idx == pid].track_idx)
        pop_recs += [(pid, r, t, t) for r, t in enumerate([t for t in popular if t not in seen][:N])]
    pop = per_playlist_scores(pd.DataFrame(pop_recs, columns=["pid", "rank", "track", "artist"]), truth)
    assert scorer.popularity()["ndcg"].tolist() == pytest.approx(pop["ndcg"].tolist())
    compared = scorer.against_popularity(factors, seed=1)
    assert compared["users"] == 30 and compared["hidden"] == len(truth)
    assert compared["als_minus_popularity"]["ndcg"]["difference"] == pytest.approx(
        expected["ndcg"].mean() - pop["ndcg"].mean(), abs=1e-6
    )
    h.release()


def test_no_user_with_two_items_is_a_clear_error(spark):
    single = spark.createDataFrame(
        [(u, u, 0, 1.0) for u in range(5)], "playlist_idx int, track_idx int, pos int, weight float"
    )
    with pytest.raises(InputError, match="no user with two or more items"):
        split(single, users=3, share=0.2, seed=1)


def test_without_a_time_a_users_order_is_a_seeded_draw(spark, tmp_path):
    """Ordered by item id, every hold-out would take the user's least popular item."""
    rows = "".join(f"u{u},i{i}\n" for u in range(20) for i in range(u % 5, 40, 3))
    (tmp_path / "t.csv").write_text("user,item\n" + rows)

    def last_items(seed: int, run: str) -> list[int]:
        cfg = load_config(
            CONF_DIR,
            "local",
            [],
            [f"paths.run_dir={tmp_path / run}", f"table.path={tmp_path / 't.csv'}", f"seed={seed}"],
        )
        run_table(spark, cfg)
        run_table_index(spark, cfg)
        data = spark.read.parquet(str(tmp_path / run / "interactions" / "data")).toPandas()
        assert all(sorted(g.pos) == list(range(len(g))) for _, g in data.groupby("playlist_idx"))
        return data.sort_values("pos").groupby("playlist_idx").track_idx.last().tolist()

    first = last_items(1, "a")
    highest = (
        spark.read.parquet(str(tmp_path / "a" / "interactions" / "data"))
        .groupBy("playlist_idx")
        .max("track_idx")
        .toPandas()
        .sort_values("playlist_idx")["max(track_idx)"]
        .tolist()
    )
    assert sum(a != b for a, b in zip(first, highest)) >= 15  # not the least popular item
    assert last_items(1, "b") == first and last_items(2, "c") != first


def _popularity_by_hand(spark, run: Path) -> dict[str, float]:
    """Popularity on the leave-one-out set, by hand: each candidate scored by its rows among the
    interactions that are not a held-out pair; the held-out track's place uniform over its ties."""
    loo = read_leave_one_out(str(run / "negatives" / "eval"))
    held = set(zip(loo.playlists.tolist(), loo.candidates[:, 0].tolist()))
    data = spark.read.parquet(str(run / "interactions" / "data")).select("playlist_idx", "track_idx").collect()
    counts = Counter(t for p, t in data if (p, t) not in held)
    hr = ndcg = auc = 0.0
    for held_track, *negatives in loo.candidates.tolist():
        mine, others = counts[held_track], [counts[t] for t in negatives]
        higher, ties = sum(c > mine for c in others), sum(c == mine for c in others)
        places = range(higher, higher + ties + 1)
        hr += sum(r < 10 for r in places) / len(places)
        ndcg += sum(1 / np.log2(r + 2) for r in places if r < 10) / len(places)
        auc += (sum(c < mine for c in others) + ties / 2) / len(others)
    return {"hr@10": hr / len(loo.playlists), "ndcg@10": ndcg / len(loo.playlists), "auc": auc / len(loo.playlists)}


def test_table_run_from_csv_to_report(spark, tmp_path):
    """A play-count CSV through ingest, negatives, the ALS grid on held-out users (then refitted on
    everything), ALS on the leave-one-out set and the table report."""
    rng = np.random.default_rng(3)
    lines = ["listener,track,plays,day"]
    for u in range(150):
        taste = np.arange(u % 3, 90, 3)
        for d, t in enumerate(rng.choice(taste, rng.integers(4, 20), replace=False)):
            lines.append(f"u{u},t{t},{rng.integers(1, 30)},{d}")
    (tmp_path / "plays.csv").write_text("\n".join(lines) + "\n")
    cfg = load_config(
        CONF_DIR,
        "local",
        [],
        [
            f"paths.run_dir={tmp_path / 'run'}",
            f"table.path={tmp_path / 'plays.csv'}",
            "table.user=listener",
            "table.item=track",
            "table.value=plays",
            "table.time=day",
            "als.grid_rank=[4,8]",
            "als.max_iter=4",
            "als.holdout_users=40",
            "rank.als_top_n=20",
            "negatives.eval_playlists=50",
            "negatives.eval_negatives=20",
            "negatives.shards=2",
        ],
    )
    run_table(spark, cfg)
    run_table_index(spark, cfg)
    run_negatives(spark, cfg)
    assert is_table_run(LocalFS(), str(tmp_path / "run"))
    m = run_als(spark, cfg)
    assert [g["point"]["rank"] for g in m["grid"]] == [4, 8]
    best = max(m["grid"], key=lambda g: g["ndcg"])
    assert m["best"] == best["point"] and m["metrics"]["ndcg"] == best["ndcg"]
    h = m["holdout"]
    assert h["users"] == 40 and set(h["als_minus_popularity"]) == {"r_precision", "ndcg", "clicks"}
    d = h["als_minus_popularity"]["ndcg"]
    assert d["low"] <= d["difference"] <= d["high"]
    assert d["difference"] == pytest.approx(best["ndcg"] - h["popularity"]["ndcg"], abs=1e-9)
    # the published factors were refitted on every interaction: every user and item has them
    users = spark.read.parquet(str(tmp_path / "run" / "interactions" / "user_ids")).count()
    items = spark.read.parquet(str(tmp_path / "run" / "interactions" / "item_ids")).count()
    assert spark.read.parquet(str(tmp_path / "run" / "als" / "playlist_factors")).count() == users
    assert spark.read.parquet(str(tmp_path / "run" / "als" / "track_factors")).count() == items
    assert not (tmp_path / "run" / "als" / "points").exists()
    assert run_als(spark, cfg)["skipped"]

    loo = run_als_leave_one_out(spark, cfg)
    assert loo["playlists"] == 50 and loo["negatives"] == 20
    assert loo["popularity"] == pytest.approx(_popularity_by_hand(spark, tmp_path / "run"), abs=1e-9)
    # listeners of three disjoint tastes: ALS ranks a held-out track among its taste's few candidates
    # (a third of the 21), popularity among all of them (near random: HR@10 about 10/21, AUC 0.5)
    a, pop = loo["metrics"], loo["popularity"]
    assert a["hr@10"] >= 0.9 and a["auc"] >= 0.8
    assert a["hr@10"] - pop["hr@10"] > 0.3 and a["ndcg@10"] - pop["ndcg@10"] > 0.2 and a["auc"] - pop["auc"] > 0.2
    report = evaluate_table(spark, str(tmp_path / "run"), cfg.as_dict(), ("als", "gmf"))
    assert report["figures"] == ["report_als_holdout.png"] and set(report["leave_one_out"]) == {"popularity", "als"}

    run = [f"paths.run_dir={tmp_path / 'run'}", "ncf.epochs=2", "ncf.factors=8", "ncf.batch_size=1024", "ncf.lr=0.25"]
    for job in ("train_ncf.py", "evaluate.py"):  # NCF on the table's negatives (one rank), then the report job
        proc = subprocess.run(
            [sys.executable, str(ROOT / "jobs" / job), *[a for s in run for a in ("--set", s)]],
            capture_output=True,
            text=True,
            env={**python_env(), "CUDA_VISIBLE_DEVICES": ""},
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "held-out users 40: als" in proc.stdout and "leave-one-out gmf" in proc.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["figures"] == ["report_als_holdout.png", "report_ncf.png"]
    for png in report["figures"]:
        assert (tmp_path / "run" / png).read_bytes()[:4] == b"\x89PNG"
    assert set(report["leave_one_out"]) == {"popularity", "als", "gmf"}  # scored on the same leave-one-out set
    assert report["table"]["rows"] == len(lines) - 1 and report["als"]["best"] == m["best"]
    md = (tmp_path / "run" / "report.md").read_text()
    assert "## ALS on the held-out users" in md and "| als (best) |" in md and "| gmf |" in md
