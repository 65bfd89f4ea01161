"""The charts study: EPR, country arithmetic, the generator's format, and the stage end to end on
generated charts read through the table source."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from conftest import CONF_DIR
from mpdrec.charts import arithmetic
from mpdrec.charts.epr import expected_percentile_rank
from mpdrec.charts.imf import Factors
from mpdrec.config import load_config
from mpdrec.errors import InputError


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
    cfg = load_config(CONF_DIR, "local", [CONF_DIR / "charts.yaml"], [
        f"paths.run_dir={root / 'run'}", f"synth_charts.out_dir={root / 'data'}", f"table.path={root / 'data'}",
        "synth_charts.countries=6", "synth_charts.songs=500", "synth_charts.artists=80", "synth_charts.days=12",
        "synth_charts.bad_rows=3", "table.max_quarantine_share=0.001", "charts.grid_rank=[8]",
        "charts.grid_alpha=[1, 10]", "charts.grid_reg_param=[0.1]", "charts.networks=[dot, bias, text]",
        "charts.epochs=3", "charts.min_songs=20", 'charts.arithmetic=["gb * ie - us"]', "charts.arithmetic_top=4"])
    generate_charts(cfg.synth_charts)
    table = run_table(spark, cfg)
    run_table_index(spark, cfg)
    return cfg, root, table, run_charts(spark, cfg)


def test_generated_charts_format(charts_run):
    _, root, table, _ = charts_run
    with open(root / "data" / "gb.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Position", "Track Name", "Artist", "Streams", "URL", "Date", "Region"]
    good = [r for r in rows[1:] if len(r) == 7 and r[3].isdigit()]
    assert [int(r[0]) for r in good[:200]] == list(range(1, 201)) and {r[6] for r in good} == {"gb"}
    assert any("," in r[1] for r in good) or any('"' in r[1] for r in good) or any(ord(ch) > 127 for r in good for ch in r[1])
    assert (root / "data" / "global.csv").exists()
    assert table["quarantine"]["records"] == 3


def test_charts_study_end_to_end(charts_run):
    _, root, _, m = charts_run
    assert m["countries"] == 6  # global is not a country
    assert m["entries"]["validation"] > 0
    models = {r["model"].split(" ")[0]: r for r in m["models"]}
    assert set(models) == {"popularity", "imf", "dot", "bias", "text"}
    assert len(m["grid"]) == 2 and models["imf"]["epr_validation"] == min(g["epr_validation"] for g in m["grid"])
    assert models["imf"]["epr_validation"] < 0.35  # far from random (0.5) on charts with regional taste
    assert all(0 <= r["epr_train"] <= 1 and 0 <= r["epr_validation"] <= 1 for r in m["models"])
    assert len(m["arithmetic"][0]["songs"]) == 4
    report = (root / "run" / "charts" / "report.md").read_text()
    assert "## gb * ie - us" in report and (root / "run" / "charts" / "report_charts_epr.png").stat().st_size > 1000
