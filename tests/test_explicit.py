"""The explicit-ratings study: its targets and metrics, the Jaccard baseline against a brute-force
computation, a deterministic split, and the two stages end to end on a generated Book-Crossing file."""

from __future__ import annotations

import json
import math
from itertools import product

import numpy as np
import pytest

from conftest import CONF_DIR
from mpdrec.config import load_config
from mpdrec.explicit import jaccard
from mpdrec.explicit.split import assign
from mpdrec.explicit.targets import Target, score


def test_adjusted_sigmoid_and_the_recommend_rule():
    t = Target("adjusted", threshold=8, a=6, b=1)
    x = np.array([1.0, 6.0, 8.0, 10.0])
    assert np.allclose(t.of(x), 1 / (1 + np.exp((6 - x) * 1)) * 9 + 1)
    assert t.of(np.array([6.0]))[0] == pytest.approx(5.5)  # the inflection maps to the middle of 1..10
    assert t.cut == pytest.approx(t.of(np.array([8.0]))[0])
    assert Target("binary", 8).cut == 0.5 and list(Target("binary", 8).of(x)) == [0, 0, 1, 1]
    # truth: 8, 9 recommended; predictions recommend 9 and 5 -> tp 1, fp 1, fn 1
    s = score(np.array([8.0, 9.0, 5.0, 2.0]), np.array([7.0, 9.5, 8.0, 1.0]), Target("original", 8))
    assert s["f1"] == pytest.approx(0.5) and s["accuracy"] == pytest.approx(0.5)
    assert s["rmse"] == pytest.approx(math.sqrt((1 + 0.25 + 9 + 1) / 4)) and s["mae"] == pytest.approx(5.5 / 4)


def _brute_jaccard(rows: list[tuple[int, int, float]]) -> dict[tuple[int, int], float]:
    by_user: dict[int, dict[int, float]] = {}
    for u, i, r in rows:
        by_user.setdefault(u, {})[i] = r
    sims = {}
    for u, v in product(by_user, by_user):
        if u != v:
            equal = sum(1 for i, r in by_user[u].items() if by_user[v].get(i) == r)
            if equal:
                sims[(u, v)] = equal / len(set(by_user[u]) | set(by_user[v]))
    return sims


def test_jaccard_matches_brute_force(spark):
    rng = np.random.default_rng(3)
    rows = list(
        {
            (int(u), int(i)): float(r)
            for u, i, r in zip(rng.integers(0, 25, 300), rng.integers(0, 15, 300), rng.integers(6, 10, 300))
        }.items()
    )
    rows = [(u, i, r) for (u, i), r in rows]
    train = spark.createDataFrame(rows, "user_idx int, item_idx int, rating double")
    sims = {(r.user_idx, r.other_idx): r.sim for r in jaccard.similarities(train, 1000, seed=1).collect()}
    want = _brute_jaccard(rows)
    assert sims.keys() == want.keys() and all(sims[k] == pytest.approx(v) for k, v in want.items())
    queries = spark.createDataFrame([(0, 3), (4, 7), (9, 1)], "user_idx int, item_idx int")
    votes = jaccard.neighbour_votes(train, queries, jaccard.similarities(train, 1000, seed=1))
    got = {(r.user_idx, r.item_idx): r.prediction for r in jaccard.predict(votes, Target("original", 8)).collect()}
    for u, i in [(0, 3), (4, 7), (9, 1)]:
        voters = [(want[(u, v)], r) for v, j, r in rows if j == i and (u, v) in want]
        if voters:
            assert got[(u, i)] == pytest.approx(sum(s * r for s, r in voters) / sum(s for s, _ in voters))
        else:
            assert (u, i) not in got


def test_split_is_seeded_per_rating_whatever_the_partitioning(spark):
    df = spark.range(20000).selectExpr(
        "cast(id % 500 as int) as user_idx", "cast(id div 500 as int) as item_idx", "1.0 as rating"
    )
    a = {(r.user_idx, r.item_idx): r.split for r in assign(df, [0.8, 0.1, 0.1], 7).collect()}
    b = {(r.user_idx, r.item_idx): r.split for r in assign(df.repartition(7), [0.8, 0.1, 0.1], 7).collect()}
    assert a == b
    shares = {s: sum(v == s for v in a.values()) / len(a) for s in ("train", "validation", "test")}
    assert abs(shares["train"] - 0.8) < 0.02 and abs(shares["test"] - 0.1) < 0.01
    other = {(r.user_idx, r.item_idx): r.split for r in assign(df, [0.8, 0.1, 0.1], 8).collect()}
    assert other != a


@pytest.fixture(scope="module")
def study_run(spark, tmp_path_factory):
    from mpdrec.etl.table_index import run_table_index
    from mpdrec.etl.table_source import run_table
    from mpdrec.explicit.study import run_explicit, run_explicit_split
    from mpdrec.synth.books import FILE_NAME, generate_books

    root = tmp_path_factory.mktemp("bx")
    sets = [
        f"paths.run_dir={root / 'run'}",
        f"synth_books.out_dir={root / 'data'}",
        "synth_books.users=400",
        "synth_books.books=250",
        "synth_books.ratings=16000",
        "synth_books.zero_share=0.3",
        "synth_books.bad_rows=4",
        f"table.path={root / 'data' / FILE_NAME}",
        "table.max_quarantine_share=0.001",
        "explicit.sigmoid_a=[6, 8]",
        "explicit.sigmoid_b=[1, 2]",
        "explicit.epochs=5",
        "explicit.losses=[mse]",
        "explicit.als_max_iter=5",
    ]
    cfg = load_config(CONF_DIR, "local", [CONF_DIR / "book_crossing.yaml"], sets)
    generate_books(cfg.synth_books)
    table = run_table(spark, cfg)
    run_table_index(spark, cfg)
    split = run_explicit_split(spark, cfg)
    return cfg, root / "run", table, split, run_explicit(spark, cfg)


def test_study_end_to_end(study_run, spark):
    cfg, run, table, split, m = study_run
    assert table["quarantine"]["records"] == 4  # the generator's malformed lines, each quarantined
    assert (
        sum(split["tables"].values())
        == spark.read.parquet(str(run / "interactions" / "data")).where("weight != 0").count()
    )
    rows = {(r["model"], r["target"]["kind"], r.get("loss")): r for r in m["results"]}
    models = {"global_mean", "user_mean", "jaccard", "als", "dot", "deep"}
    assert {k[0] for k in rows} == models and {k[1] for k in rows} == {"original", "adjusted", "binary"}
    assert rows[("deep", "binary", "cross-entropy")]["epochs"] >= 1
    assert (m["sigmoid"]["a"], m["sigmoid"]["b"]) in {(6.0, 1.0), (6.0, 2.0), (8.0, 1.0), (8.0, 2.0)}
    best = max(m["grid"], key=lambda g: g["f1"])
    assert (best["a"], best["b"]) == (m["sigmoid"]["a"], m["sigmoid"]["b"])
    for r in m["results"]:
        assert r["test"]["f1_low"] <= r["test"]["f1"] <= r["test"]["f1_high"]
    rmse = {k[0]: r["validation"]["rmse"] for k, r in rows.items() if k[1] == "original"}
    print(json.dumps({k[0] + "/" + k[1]: round(r["validation"]["rmse"], 4) for k, r in rows.items()}))
    assert rmse["user_mean"] < rmse["global_mean"]
    assert min(rmse["als"], rmse["deep"], rmse["jaccard"]) < rmse["user_mean"]
    for name in ("report.json", "report.md", "report_explicit_f1.png", "report_explicit_grid.png"):
        assert (run / "explicit" / name).stat().st_size > 100
    assert "| jaccard | original |" in (run / "explicit" / "report.md").read_text()
