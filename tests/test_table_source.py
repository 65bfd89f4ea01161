"""Any interaction table as input: CSV (charset, separator, quotes) or Parquet mapped by config, bad
rows named, counted and kept aside, a threshold that publishes nothing, and dense ids that the
negatives stage reads unchanged."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from conftest import CONF_DIR
from mpdrec.config import load_config
from mpdrec.errors import InputError
from mpdrec.etl.stages import run_negatives
from mpdrec.etl.table_index import run_table_index
from mpdrec.etl.table_source import run_table

BX = CONF_DIR / "book_crossing.yaml"
LINES = [
    '"User-ID";"ISBN";"Book-Rating"',
    '"11";"034545104X";"0"',
    '"11";"0155061224";"5"',
    '"12";"044\u00e9A";"9"',  # a Latin-1 character in an ISBN
    '"12";"a;b";"7"',  # a separator inside a quoted field is data
    '"13";"0679425608\\";"8"',  # a trailing backslash (no escape character but the quote)
    '"13";"0441"',  # a field missing
    '"14";"0441";"n/a"',  # a rating that is not a number
    '"";"0155061224";"7"',  # no user
    '"15";"0155061224";"3";"3"',  # a field too many
    '"15";"";"4"',  # no item
]


def _bx_file(tmp_path) -> str:
    path = tmp_path / "BX-Book-Ratings.csv"
    path.write_bytes(("\r\n".join(LINES) + "\r\n").encode("latin-1"))
    return str(path)


def _cfg(tmp_path, *sets: str):
    return load_config(CONF_DIR, "local", [BX], [f"paths.run_dir={tmp_path / 'run'}", *sets])


def test_csv_rows_kept_or_quarantined_with_file_and_reason(spark, tmp_path):
    source = _bx_file(tmp_path)
    m = run_table(spark, _cfg(tmp_path, f"table.path={source}", "table.max_quarantine_share=0.6"))
    kept = spark.read.parquet(str(tmp_path / "run" / "table" / "data")).toPandas()
    assert sorted(zip(kept.user, kept.item, kept.value)) == [
        ("11", "0155061224", 5.0),
        ("11", "034545104X", 0.0),
        ("12", "044\u00e9A", 9.0),
        ("12", "a;b", 7.0),
        ("13", "0679425608\\", 8.0),
    ]
    assert m["quarantine"]["by_reason"] == {"malformed_line": 2, "bad_value": 1, "missing_user": 1, "missing_item": 1}
    q = spark.read.parquet(str(tmp_path / "run" / "table" / "quarantine")).toPandas()
    assert len(q) == 5 and set(q.source) == {"file://" + source}
    assert q.set_index("reason").loc["bad_value", "detail"] == "Book-Rating 'n/a' is not a number"
    assert '"15";"0155061224";"3";"3"' in set(q.raw)
    assert m["tables"] == {"data": 5, "quarantine": 5}
    assert run_table(spark, _cfg(tmp_path, f"table.path={source}", "table.max_quarantine_share=0.6"))["skipped"]


def test_too_many_bad_rows_publish_nothing_and_name_the_file(spark, tmp_path):
    cfg = _cfg(tmp_path, f"table.path={_bx_file(tmp_path)}")
    with pytest.raises(InputError, match=r"5 of 10 rows are bad.*BX-Book-Ratings.csv \(5\).*malformed_line"):
        run_table(spark, cfg)
    assert not (tmp_path / "run" / "table" / "_manifest.json").exists()
    assert spark.read.parquet(str(tmp_path / "run" / "table_rejected" / "quarantine")).count() == 5


def test_a_column_the_file_lacks_is_named(spark, tmp_path):
    cfg = _cfg(tmp_path, f"table.path={_bx_file(tmp_path)}", "table.value=Rating")
    with pytest.raises(InputError, match=r"BX-Book-Ratings.csv has no column 'Rating' \(its columns: 'User-ID'"):
        run_table(spark, cfg)


def test_each_csv_file_is_read_by_its_own_header(spark, tmp_path):
    d = tmp_path / "ratings"
    d.mkdir()
    (d / "a.csv").write_text("user,item,rating\nu1,i1,3\nu2,i2,4\n")
    (d / "b.csv").write_text("rating,user,item\n5,u3,i3\n")  # the same columns in another order
    (d / "c.csv.gz").write_bytes(__import__("gzip").compress(b"item,rating,user\ni4,1,u4\n"))
    (d / "d.csv").write_text("user,item,stars\nu5,i5,2\n")  # no rating column
    sets = [
        f"paths.run_dir={tmp_path / 'run'}",
        "table.format=csv",
        "table.user=user",
        "table.item=item",
        "table.value=rating",
        "table.time=",
        "table.csv.sep=,",
        "table.csv.quote='\"'",
        "table.csv.header=true",
    ]
    with pytest.raises(InputError, match=r"d.csv has no column 'rating' \(its columns: 'user', 'item', 'stars'\)"):
        run_table(spark, load_config(CONF_DIR, "local", [], [*sets, f"table.path={d}"]))
    (d / "d.csv").unlink()
    run_table(spark, load_config(CONF_DIR, "local", [], [*sets, f"table.path={d}"]))
    kept = spark.read.parquet(str(tmp_path / "run" / "table" / "data")).toPandas()
    assert sorted(zip(kept.user, kept.item, kept.value)) == [
        ("u1", "i1", 3.0),
        ("u2", "i2", 4.0),
        ("u3", "i3", 5.0),
        ("u4", "i4", 1.0),
    ]


def test_a_time_that_is_neither_a_number_nor_a_timestamp_is_quarantined(spark, tmp_path):
    (tmp_path / "plays.csv").write_text(
        "user,item,when\nu1,i1,2020-01-01 10:00:00\nu1,i2,1577836800\nu2,i1,yesterday\n"
    )
    m = run_table(
        spark,
        load_config(
            CONF_DIR,
            "local",
            [],
            [
                f"paths.run_dir={tmp_path / 'run'}",
                f"table.path={tmp_path / 'plays.csv'}",
                "table.format=csv",
                "table.user=user",
                "table.item=item",
                "table.value=",
                "table.time=when",
                "table.csv.sep=,",
                "table.csv.header=true",
                "table.max_quarantine_share=0.5",
            ],
        ),
    )
    assert m["quarantine"]["by_reason"] == {"bad_time": 1} and m["tables"] == {"data": 2, "quarantine": 1}
    q = spark.read.parquet(str(tmp_path / "run" / "table" / "quarantine")).collect()
    assert q[0].detail == "when 'yesterday' is neither a number nor a timestamp"


def test_parquet_table_indexed_for_the_negatives_stage(spark, tmp_path):
    day = datetime(2020, 1, 1).timestamp()
    rows = pd.DataFrame(
        {
            "country": ["se", "se", "se", "de", "de", "fr", "fr", "fr"],
            "song": ["a", "b", "a", "a", "c", "b", "a", "c"],
            "streams": [10.0, 5.0, 2.0, 7.0, 1.0, float("nan"), 3.0, 4.0],
            "day": pd.to_datetime([day + 3, day + 1, day + 9, day, day + 5, day, day + 2, day + 1], unit="s"),
            "artist": ["x", "y", "x", "x", "z", "y", "x", "z"],
        }
    )
    (tmp_path / "plays").mkdir()
    rows.to_parquet(tmp_path / "plays" / "part-0.parquet", coerce_timestamps="us")  # Spark reads no nanoseconds
    (tmp_path / "plays" / "_SUCCESS").write_text("")
    cfg = load_config(
        CONF_DIR,
        "local",
        [],
        [
            f"paths.run_dir={tmp_path / 'run'}",
            f"table.path={tmp_path / 'plays'}",
            "table.format=parquet",
            "table.user=country",
            "table.item=song",
            "table.value=streams",
            "table.time=day",
            "table.attributes=[artist]",
            "table.max_quarantine_share=0.2",
            "negatives.eval_playlists=2",
            "negatives.eval_negatives=1",
            "negatives.shards=2",
        ],
    )
    assert run_table(spark, cfg)["quarantine"]["by_reason"] == {"bad_value": 1}  # the NaN stream count
    index = run_table_index(spark, cfg)
    assert index["tables"] == {"data": 6, "item_ids": 3, "user_ids": 3}
    items = spark.read.parquet(str(tmp_path / "run" / "interactions" / "item_ids")).toPandas().sort_values("track_idx")
    assert list(items.item) == ["a", "c", "b"] and list(items.artist) == ["x", "z", "y"]  # by users, then item
    users = (
        spark.read.parquet(str(tmp_path / "run" / "interactions" / "user_ids")).toPandas().sort_values("playlist_idx")
    )
    assert list(users.user) == ["de", "fr", "se"]
    data = spark.read.parquet(str(tmp_path / "run" / "interactions" / "data")).toPandas()
    se = data[data.playlist_idx == 2].sort_values("pos")
    assert list(se.track_idx) == [2, 0] and list(se.weight) == [5.0, 12.0] and list(se.rows) == [1, 2]  # sum, by time
    negatives = run_negatives(spark, cfg)
    assert json.loads((tmp_path / "run" / "negatives" / "_manifest.json").read_text())["stage"] == "negatives"
    assert (negatives["eval_playlists"], negatives["positives"]) == (2, 4)
