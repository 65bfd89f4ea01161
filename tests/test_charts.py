"""The charts study: EPR, country arithmetic, the generator's format, and the stage end to end on
generated charts read through the table source."""

from __future__ import annotations

import csv
import json
import re
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import CONF_DIR
from mpdrec.charts import arithmetic
from mpdrec.charts.epr import expected_percentile_rank
from mpdrec.charts.imf import Factors
from mpdrec.config import load_config
from mpdrec.errors import InputError
from mpdrec.synth.charts import COUNTRIES, HEADER

DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def test_expected_percentile_rank():
    held = np.array([[0.0, 2.0, 0.0, 0.0, 0.0]])
    assert expected_percentile_rank(np.array([[0, 9, 1, 2, 3.0]]), held) == 0.0
    assert expected_percentile_rank(np.array([[9, 0, 1, 2, 3.0]]), held) == 1.0
    # excluded songs are not ranked: the held song is second of the three left
    exclude = np.array([[True, False, False, True, False]])
    assert expected_percentile_rank(np.array([[9, 1, 0, 8, 3.0]]), held, exclude) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    random_held = (rng.random((30, 400)) < 0.05) * rng.random((30, 400))
    assert abs(expected_percentile_rank(rng.random((30, 400)), random_held) - 0.5) < 0.05


def test_country_arithmetic():
    f = Factors(np.array([[1.0, 2.0], [3.0, 1.0], [0.5, 0.5]]), np.eye(2))
    assert np.allclose(arithmetic.vector("a * b - c", f, ["a", "b", "c"]), [2.5, 1.5])
    assert np.allclose(arithmetic.vector("c - a + b*b", f, ["a", "b", "c"]), [8.5, -0.5])
    with pytest.raises(InputError, match=r"\['zz'\] in 'a - zz' are not countries"):
        arithmetic.vector("a - zz", f, ["a", "b", "c"])
    with pytest.raises(InputError, match="not countries joined"):
        arithmetic.vector("a * - b", f, ["a", "b", "c"])


@pytest.fixture(scope="module")
def charts_run(spark, tmp_path_factory):
    from mpdrec.charts.study import run_charts
    from mpdrec.etl.table_index import run_table_index
    from mpdrec.etl.table_source import run_table
    from mpdrec.synth.charts import generate_charts

    root = tmp_path_factory.mktemp("charts")
    cfg = load_config(
        CONF_DIR,
        "local",
        [CONF_DIR / "charts.yaml"],
        [
            f"paths.run_dir={root / 'run'}",
            f"synth_charts.out_dir={root / 'data'}",
            f"table.path={root / 'data'}",
            "synth_charts.countries=6",
            "synth_charts.songs=500",
            "synth_charts.artists=80",
            "synth_charts.days=12",
            "synth_charts.bad_rows=3",
            "table.max_quarantine_share=0.001",
            "charts.grid_rank=[8]",
            "charts.grid_alpha=[1, 10]",
            "charts.grid_reg_param=[0.1]",
            "charts.networks=[dot, bias, text]",
            "charts.epochs=3",
            "charts.min_songs=20",
            'charts.arithmetic=["gb * ie - us"]',
            "charts.arithmetic_top=4",
        ],
    )
    generate_charts(cfg.synth_charts)
    table = run_table(spark, cfg)
    run_table_index(spark, cfg)
    return cfg, root, table, run_charts(spark, cfg)


def _read_charts(data: Path) -> tuple[dict[str, list[list[str]]], list[list[str]]]:
    """Every region's rows that read as a chart row (7 fields, streams a number), and the others."""
    good: dict[str, list[list[str]]] = {}
    bad: list[list[str]] = []
    for path in sorted(data.glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == HEADER, path
        good[path.stem] = [r for r in rows[1:] if len(r) == 7 and r[3].isdigit()]
        bad += [r for r in rows[1:] if not (len(r) == 7 and r[3].isdigit())]
    return good, bad


def test_generated_charts_format(charts_run):
    """Each region's file holds every day's positions 1..200 (but where a malformed row is); titles
    with commas, with quotes and with non-ASCII letters, CSV-quoted; and `global` charts each day's
    top 200 of the countries' summed streams."""
    _, root, table, _ = charts_run
    good, bad = _read_charts(root / "data")
    countries = list(COUNTRIES[:6])
    assert sorted(good) == sorted([*countries, "global"])
    assert len(bad) == 3 == table["quarantine"]["records"]  # synth_charts.bad_rows, each one quarantined
    broken = {next(f for f in r if DATE.fullmatch(f)) for r in bad}
    days = [str(np.datetime64("2017-01-01") + np.timedelta64(d, "D")) for d in range(12)]
    for region, rows in good.items():
        assert {r[6] for r in rows} == {region} and {r[5] for r in rows} == set(days)
        for day in days:
            positions = [int(r[0]) for r in rows if r[5] == day]
            assert positions == list(range(1, 201)) or (day in broken and len(positions) == 199), (region, day)
    titles = {r[1] for rows in good.values() for r in rows}
    quirks = {
        "comma": [t for t in titles if "," in t],
        "quote": [t for t in titles if '"' in t],
        "non-ASCII": [t for t in titles if any(ord(ch) > 127 for ch in t)],
    }
    assert all(quirks.values()), {k: len(v) for k, v in quirks.items()}
    for region, rows in good.items():  # written quoted, so that they read back whole
        raw = (root / "data" / f"{region}.csv").read_text(encoding="utf-8")
        for title in {r[1] for r in rows if "," in r[1] or '"' in r[1]}:
            assert '"' + title.replace('"', '""') + '"' in raw, (region, title)
    for day in sorted(set(days) - broken):
        summed: Counter[str] = Counter()
        for region in countries:
            for r in good[region]:
                if r[5] == day:
                    summed[r[4]] += int(r[3])
        chart = [(r[4], int(r[3])) for r in good["global"] if r[5] == day]
        top = sorted(summed.items(), key=lambda kv: (-kv[1], kv[0]))[:200]
        assert sorted(chart, key=lambda kv: (-kv[1], kv[0])) == top, day
        assert [n for _, n in chart] == sorted((n for _, n in chart), reverse=True)  # positions follow streams


def _epr(scores: np.ndarray, held: np.ndarray, exclude: np.ndarray | None = None) -> float:
    """Expected percentile ranking by its definition, one held (country, song) at a time: its place
    among the country's ranked songs (stable: ties in column order), 0 first, 1 last."""
    num = den = 0.0
    for i in range(scores.shape[0]):
        ranked = [j for j in range(scores.shape[1]) if held[i, j] > 0 or exclude is None or not exclude[i, j]]
        order = sorted(ranked, key=lambda j: -scores[i, j])
        for place, j in enumerate(order):
            if held[i, j] > 0:
                num += held[i, j] * place / (len(order) - 1)
                den += held[i, j]
    return num / den


def _png_colours(path: Path) -> set[str]:
    """A PNG's size is checked against its header and it is decoded; its pixels' colours."""
    import matplotlib.image

    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width) and width >= 400 and height >= 300
    rgb = np.round(pixels[..., :3] * 255).astype(int).reshape(-1, 3)
    assert (rgb < 250).any(axis=1).mean() > 0.02  # not a blank page
    return {"#{:02x}{:02x}{:02x}".format(*tuple(c)) for c in np.unique(rgb, axis=0)}


def test_charts_study_end_to_end(spark, charts_run):
    """The study's matrices, counts, popularity and IMF EPRs and the country arithmetic against the
    same computed here from the CSV rows (and IMF's factors fitted again), and its report."""
    from mpdrec.charts import imf
    from mpdrec.charts.matrix import load

    cfg, root, _, m = charts_run
    c = cfg.charts
    good, _ = _read_charts(root / "data")  # the quarantined rows are the malformed ones
    streams: Counter[tuple[str, str]] = Counter()
    names: dict[str, set[tuple[str, str]]] = {}
    for region, rows in good.items():
        if region not in c.exclude:  # global is not a country
            for r in rows:
                streams[region, r[4]] += int(r[3])
                names.setdefault(r[4], set()).add((r[1], r[2]))
    countries = sorted({country for country, _ in streams})
    songs_per_country = Counter(country for country, _ in streams)
    assert m["countries"] == len(countries) == 6 and m["songs"] == len(names) <= c.top_songs
    assert m["entries"]["train"] + m["entries"]["validation"] == len(streams)
    assert (
        m["entries"]["validation"]
        == sum(round(c.validation_share * n) for n in songs_per_country.values() if n > c.min_songs)
        > 0
    )

    data = load(spark, str(root / "run" / "interactions"), c, cfg.seed)
    assert data.countries == countries and sorted(data.songs) == sorted(names)
    expected = np.array(
        [
            [np.log((1 + streams[country, s]) / c.eps) if (country, s) in streams else 0.0 for s in data.songs]
            for country in countries
        ]
    )
    np.testing.assert_allclose(data.train + data.validation, expected, rtol=1e-6)
    assert not ((data.train > 0) & (data.validation > 0)).any()
    assert int((data.validation > 0).sum()) == m["entries"]["validation"]
    totals = [sum(streams[country, s] for country in countries) for s in data.songs]
    assert totals == sorted(totals, reverse=True)  # most streamed first

    models = {r["model"].split(" ")[0]: r for r in m["models"]}
    assert set(models) == {"popularity", "imf", "dot", "bias", "text"}
    popular = np.broadcast_to(data.train.sum(axis=0), data.train.shape)
    assert models["popularity"]["epr_train"] == pytest.approx(_epr(popular, data.train), abs=1e-12)
    assert models["popularity"]["epr_validation"] == pytest.approx(
        _epr(popular, data.validation, data.train > 0), abs=1e-12
    )
    assert len(m["grid"]) == 2
    chosen = min(m["grid"], key=lambda g: g["epr_validation"])
    assert models["imf"] == {
        "model": f"imf (rank {chosen['rank']}, alpha {chosen['alpha']:g}, lambda {chosen['reg_param']:g})",
        "epr_train": chosen["epr_train"],
        "epr_validation": chosen["epr_validation"],
    }
    assert models["imf"]["epr_validation"] < 0.35  # far from random (0.5) on charts with regional taste
    factors = imf.fit(spark, data.train, chosen["rank"], chosen["alpha"], chosen["reg_param"], c.max_iter, cfg.seed)
    assert _epr(factors.scores(), data.validation, data.train > 0) == pytest.approx(chosen["epr_validation"], abs=1e-6)

    # gb * ie - us, by hand from the refitted factors
    row = {country: i for i, country in enumerate(countries)}
    vector = factors.countries[row["gb"]] * factors.countries[row["ie"]] - factors.countries[row["us"]]
    scores = factors.songs @ vector
    top = sorted(range(len(data.songs)), key=lambda j: -scores[j])[: c.arithmetic_top]
    listed = m["arithmetic"][0]["songs"]
    assert [s["song"] for s in listed] == [data.songs[j] for j in top] and len(listed) == 4
    assert [s["score"] for s in listed] == pytest.approx([scores[j] for j in top], abs=1e-6)
    assert all((s["title"], s["artist"]) in names[s["song"]] for s in listed)

    out = root / "run" / "charts"
    body = (
        "alpha",
        "arithmetic",
        "countries",
        "entries",
        "grid",
        "models",
        "songs",
    )  # m: the body and the stage's keys
    assert json.loads((out / "report.json").read_text()) == {k: m[k] for k in body}
    report = (out / "report.md").read_text()
    for r in m["models"]:
        assert f"| {r['model']} | {r['epr_train']:.4f} | {r['epr_validation']:.4f} |" in report
    for g in m["grid"]:
        assert (
            f"| {g['rank']} | {g['alpha']:g} | {g['reg_param']:g} | {g['epr_train']:.4f} | {g['epr_validation']:.4f} "
            f"| {g['seconds']} |" in report
        )
    assert (
        "## gb * ie - us\n\n"
        + "\n".join(f"{k + 1}. {s['title'] or s['song']} ({s['artist'] or 'unknown'})" for k, s in enumerate(listed))
        in report
    )
    assert {"#1f77b4", "#ff7f0e"} <= _png_colours(out / "report_charts_epr.png")  # the train and validation bars
