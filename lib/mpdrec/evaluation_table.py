"""Stage 7 on a table run (`jobs/ingest_table.py`): a table has no challenge whose submissions could be
scored, so the report holds what such a run has: the table's rows and quarantine, the ALS grid on the
held-out users beside popularity (`mpdrec.models.table_holdout`, with a paired bootstrap interval for
ALS minus popularity), the leave-one-out table (popularity, ALS and the NCF models, when the run has
the set) and the figures.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from mpdrec import report_plots
from mpdrec.errors import InputError
from mpdrec.evaluation import leave_one_out_table, ncf_figure, stage_seconds, timing_and_config_sections
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join, to_uri
from mpdrec.io.report import write_report
from mpdrec.io.stage import read_manifest

HOLDOUT = (
    "Held-out users: up to `als.holdout_users` users with two or more items, each hiding its latest "
    "`als.holdout_share` of items; the grid trains without them. Every item is ranked for each user, "
    "its training items left out, and the top `rank.als_top_n` scored as a challenge playlist is, on "
    "items alone (R-precision: hits among the first |G| over |G|; NDCG over the list; clicks: the "
    "10-item page of the first hit; MPR: the hidden items' mean percentile, 0 = first, 0.5 = random)."
)

LEAVE_ONE_OUT_TABLE = (
    "Each evaluated user's latest item is held out of the models' training data and ranked "
    "among the same sampled items the user never had, for every model (HR@10: in the top 10; "
    "NDCG@10: 1 / log2(rank + 2) there; AUC: the share of negatives ranked below it)."
)


def evaluate_table(
    spark: SparkSession, run_dir_path: str, config: dict[str, Any] | None = None, leave_one_out: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Write report.json, report.md and report_*.png for a table run; the report."""
    fs, run_dir = HadoopFS(spark), to_uri(run_dir_path)

    table, interactions, als = (read_manifest(fs, join(run_dir, s)) for s in ("table", "interactions", "als"))
    if interactions is None:
        raise InputError(f"{join(run_dir, 'interactions')} has no finished output: run jobs/ingest_table.py first")
    report: dict[str, Any] = {"source": "table", "interactions": interactions["tables"]}
    if table is not None:
        report["table"] = {"rows": table["tables"]["data"], "quarantine": table["quarantine"]}
    figures = ncf_figure(fs, run_dir)
    if als is not None:
        report["als"] = {k: als[k] for k in ("best", "select", "metrics", "grid", "holdout")}
        figures["report_als_holdout.png"] = report_plots.als_holdout(als["grid"], als["holdout"]["popularity"])
    report["leave_one_out"] = leave_one_out_table(fs, run_dir, leave_one_out)
    report["stage_seconds"] = stage_seconds(fs, run_dir)
    if config is not None:
        report["config"] = config
    report["figures"] = sorted(figures)
    write_report(fs, run_dir, report, markdown(report), figures)
    return report


def markdown(report: dict[str, Any]) -> str:
    """report.md of a table run."""
    i = report["interactions"]
    out = [
        "# mpdrec report (interaction table)",
        "",
        f"{i['data']:,} interactions of {i['user_ids']:,} users with {i['item_ids']:,} items.",
    ]
    if "table" in report:
        q = report["table"]["quarantine"]
        out[-1] += f" The table had {report['table']['rows']:,} good rows; {q['records']:,} were quarantined" + (
            f" ({', '.join(f'{k} {v:,}' for k, v in q['by_reason'].items())})." if q["records"] else "."
        )
    if "als" in report:
        a = report["als"]
        h = a["holdout"]
        out += [
            "",
            "## ALS on the held-out users",
            "",
            HOLDOUT,
            "",
            f"{h['users']:,} users, {h['hidden']:,} hidden items; best point by {a['select']}: {a['best']} "
            "(published after a refit on every interaction).",
            "",
            "| model | R-precision | NDCG | clicks | MPR |",
            "| --- | --- | --- | --- | --- |",
        ]
        p = h["popularity"]
        out += [
            f"| als (best) | {a['metrics']['r_precision']:.4f} | {a['metrics']['ndcg']:.4f} | "
            f"{a['metrics']['clicks']:.2f} | {a['metrics']['mpr']:.4f} |",
            f"| popularity | {p['r_precision']:.4f} | {p['ndcg']:.4f} | {p['clicks']:.2f} | |",
            "",
            "| ALS minus popularity | difference | 95% interval |",
            "| --- | --- | --- |",
        ]
        out += [
            f"| {m} | {d['difference']:+.4f} | [{d['low']:+.4f}, {d['high']:+.4f}] |"
            for m, d in h["als_minus_popularity"].items()
        ]
        out += [
            "",
            "| rank | alpha | regParam | R-precision | NDCG | clicks | MPR | s/iteration |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        out += [
            f"| {g['point']['rank']} | {g['point']['alpha']:g} | {g['point']['reg_param']:g} | "
            f"{g['r_precision']:.4f} | {g['ndcg']:.4f} | {g['clicks']:.2f} | {g['mpr']:.4f} | "
            f"{g['seconds_per_iteration']:.2f} |"
            for g in a["grid"]
        ]
    if report.get("leave_one_out"):
        out += [
            "",
            "## Leave-one-out (the NCF paper's protocol)",
            "",
            LEAVE_ONE_OUT_TABLE,
            "",
            "| model | HR@10 | NDCG@10 | AUC |",
            "| --- | --- | --- | --- |",
        ]
        out += [
            f"| {name} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} | {m['auc']:.4f} |"
            for name, m in report["leave_one_out"].items()
        ]
    out += ["", "## Figures", ""] + [f"![{name}]({name})" for name in report.get("figures", [])]
    return "\n".join(out + timing_and_config_sections(report)) + "\n"
