"""Configuration layering, typing and errors that name the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import CONF_DIR, ROOT, make_config, python_env
from mpdrec.config import load_config
from mpdrec.errors import ConfigError


def test_layers_later_wins(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("synth:\n  num_slices: 7\n  seed: 5\nseed: 1\n")
    later = tmp_path / "later.yaml"
    later.write_text("synth:\n  seed: 6\n")
    cfg = load_config(CONF_DIR, "local", [extra, later], ["seed=9"])
    assert cfg.synth.num_slices == 7
    assert cfg.synth.seed == 6
    assert cfg.seed == 9
    assert cfg.spark.master == "local[*]"  # from the local profile
    assert cfg.spark.conf["spark.sql.shuffle.partitions"] == "16"


def test_profiles_set_the_cluster_paths():
    cfg = load_config(CONF_DIR, "dataproc")
    assert cfg.spark.master is None
    assert cfg.paths.run_dir.startswith("gs://")
    assert load_config(CONF_DIR, "emr").paths.mpd == ["s3://CHANGE-ME/mpd"]


def test_set_reads_each_value_by_its_keys_type():
    cfg = load_config(
        CONF_DIR,
        "local",
        [],
        [
            "paths.mpd=a/b, gs://bucket/c",
            "paths.challenge=",
            "ncf.epochs=3",
            "ncf.patience=0",
            "als.grid_reg_param=[0.1, 1]",
            "rank.blend.ncf_feature=true",
        ],
    )
    assert cfg.paths.mpd == ["a/b", "gs://bucket/c"] and cfg.paths.challenge is None
    assert cfg.ncf.epochs == 3 and cfg.ncf.patience == 0 and cfg.rank.blend.ncf_feature is True
    assert cfg.als.grid_reg_param == [0.1, 1.0]
    # text keys take the text as typed (YAML would make these an error, null, true and 10) or a YAML quote
    for typed, text in [(",", ","), ("#", "#"), ("\\t", "\\t"), ('","', ","), ("';'", ";")]:
        assert load_config(CONF_DIR, "local", [], [f"table.csv.sep={typed}"]).table.csv.sep == text, typed
    for typed in ("yes", "10", "null-ish"):
        assert load_config(CONF_DIR, "local", [], [f"rank.team_name={typed}"]).rank.team_name == typed
    assert load_config(CONF_DIR, "local", [], ["rank.ncf_model=null"]).rank.ncf_model is None
    # a Spark setting keeps its dots
    conf = load_config(CONF_DIR, "local", [], ["spark.conf.spark.driver.memory=7g"]).spark.conf
    assert conf["spark.driver.memory"] == "7g" and "spark" not in conf


def test_keys_that_must_agree_fail_when_the_config_loads():
    with pytest.raises(ConfigError, match="'rank.ncf_model': is neumf but ncf.model is gmf"):
        load_config(CONF_DIR, "local", [], ["rank.ncf_model=neumf"])
    assert load_config(CONF_DIR, "local", [], ["rank.ncf_model=neumf", "ncf.model=neumf"]).rank.ncf_model == "neumf"
    assert load_config(CONF_DIR, "local", [], ["rank.ncf_model=", "ncf.model=mlp"]).rank.ncf_model is None


@pytest.mark.parametrize(
    "override, key",
    [
        ("synth.num_slice=3", "synth.num_slice"),
        ("nope=1", "nope"),
        ("spark.conf.x=1", None),  # spark.conf is free-form: allowed
    ],
)
def test_unknown_keys_are_named(override, key):
    if key is None:
        assert load_config(CONF_DIR, "local", [], [override]).spark.conf["x"] == "1"
        return
    with pytest.raises(ConfigError, match=f"unknown config key '{key}' in --set"):
        load_config(CONF_DIR, "local", [], [override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("synth.num_slices=ten", "'synth.num_slices': expected an integer"),
        ("synth.num_slices=true", "'synth.num_slices': expected an integer"),
        ("synth.num_slices=0", "'synth.num_slices': must be at least 1"),
        ("synth.challenge_size=15", "'synth.challenge_size': must be a positive multiple of 10"),
        ("ingest.max_quarantine_share=2", "'ingest.max_quarantine_share': must be within"),
        ("paths.run_dir=", "'paths.run_dir': expected a string"),
        ("paths=1", "'paths' in --set: expected a section"),
    ],
)
def test_wrong_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONF_DIR, "local", [], [override])


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  max_quarantine: 0.1\n")
    with pytest.raises(ConfigError, match=f"'ingest.max_quarantine' in {bad}"):
        load_config(CONF_DIR, "local", [bad])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(CONF_DIR, "local", [tmp_path / "missing.yaml"])


def test_section_digest_ignores_other_sections():
    a = load_config(CONF_DIR, "local", [], ["synth.num_slices=3"])
    b = load_config(CONF_DIR, "local", [], ["synth.num_slices=4"])
    assert a.section_digest("ingest") == b.section_digest("ingest")
    assert a.section_digest("synth") != b.section_digest("synth")


@pytest.mark.parametrize(
    "job, args, message",
    [
        ("ingest_mpd.py", ["--set", "ingest.max_quarantine_share=x"], "'ingest.max_quarantine_share'"),
        ("ingest_mpd.py", ["--set", "paths.mpd=/no/such/dir"], "'paths.mpd': /no/such/dir does not exist"),
        ("synth_mpd.py", ["--set", "synth.out_dir=gs://bucket/x"], "'synth.out_dir': must be a local directory"),
    ],
)
def test_jobs_fail_before_spark_with_one_line(job, args, message):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / job), *args], capture_output=True, text=True, env=python_env(), timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "SparkContext" not in proc.stderr


def test_the_ncf_blend_variant_is_the_blend_final_is_not():
    """With an NCF model, the rank stage also writes the blend that differs from final by the NCF
    score (rank.blend.compare_ncf): with it when final has none, without it when final has it."""
    from mpdrec.lists.assemble import WITH_NCF, WITHOUT_NCF, blend_variants, submissions

    rank = lambda *sets: make_config(list(sets)).rank  # noqa: E731
    assert blend_variants(rank("rank.ncf_model=gmf")) == [WITH_NCF]
    assert blend_variants(rank("rank.ncf_model=gmf", "rank.blend.ncf_feature=true")) == [WITHOUT_NCF]
    assert blend_variants(rank("rank.ncf_model=gmf", "rank.blend.compare_ncf=false")) == []
    assert blend_variants(rank("rank.ncf_model=null")) == []
    assert submissions(rank("rank.ncf_model=gmf"))[-3:] == ["ncf", "final", WITH_NCF]
