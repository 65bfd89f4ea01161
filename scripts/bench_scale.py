#!/usr/bin/env python
"""Benchmark every job of the main pipeline at growing scale; prints JSON.

For each of `--slices` (default 100, 300, 1000): a synthetic MPD of that many slices with a challenge
set of `--challenge-size` playlists, then every job as a user runs it, in its own process and
SparkSession (local mode, `--driver-memory` and `spark.local.dir` under the workdir): synth_mpd,
ingest_mpd, build_interactions, sample_negatives, train_als, train_ncf and train_dae (horovodrun, two
Gloo ranks; train_dae only when asked for with --jobs), rank_candidates (the NCF model's scores
ranked too) and evaluate. The validation and blend-training challenges have `--per-category`
playlists per category at every scale, so that the growth between
scales is the data's, not the queries'.

Per job: seconds; peak resident memory of the JVM, of the job's own Python process (the driver;
horovodrun for train_ncf and train_dae) and of the largest other Python process (a Spark Python worker, a Horovod
rank), sampled from /proc every `--sample-seconds`; shuffle bytes written and bytes spilled, from
Spark's event log; the disk the run directory grew by; the tables its stage manifests count; the
WindowExec warnings of a window over a whole table in its log. Then per
job, between consecutive scales, the growth exponents log(x2 / x1) / log(s2 / s1) of time and memory
(1 is linear).

Each job's measurement is saved to `<workdir>/scale.json` when it ends and a rerun skips what was
measured, so a long run can be done in parts (the jobs skip their up-to-date stages too):

    python scripts/bench_scale.py --workdir /data/scale                          # 100, 300, 1,000 slices
    python scripts/bench_scale.py --workdir /data/scale --slices 1000 --jobs synth_mpd,ingest_mpd
    python scripts/bench_scale.py --workdir /data/scale --slices 1000 --jobs rank_candidates --set rank.ncf_model=
    python scripts/bench_scale.py --workdir /tmp/scale --slices 2,4 --per-category 5 --challenge-size 50
    python scripts/bench_scale.py --workdir /data/scale --slices 100 --jobs train_dae
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JOBS = (
    "synth_mpd",
    "ingest_mpd",
    "build_interactions",
    "sample_negatives",
    "train_als",
    "train_ncf",
    "train_dae",
    "rank_candidates",
    "evaluate",
)
MEMORY = ("jvm_peak_bytes", "python_driver_peak_bytes", "python_worker_peak_bytes")
SCRATCH = "scratch_peak_bytes"  # spark.local.dir plus every stage's staging directory, at its peak
WINDOW_WARNING = "No Partition Defined for Window operation"  # Spark's WindowExec: every row in one task


def _rss(pid: int) -> tuple[int, str]:
    """(resident bytes, command line) of a process; (0, "") once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return rss, f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return 0, ""


def _descendants(root: int) -> list[int]:
    """root and every process below it (from each process's parent in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class PeakUsage(threading.Thread):
    """Samples a process tree's resident memory until stopped: the JVM, the root Python process and
    the largest other Python process, each at its peak; and, every `disk_every` seconds, the bytes
    under the scratch directories (Spark's shuffle and spill files, a stage's unpublished output and
    checkpoints), whose peak is what a job needs of free local disk beyond its published output."""

    def __init__(self, root: int, every: float, scratch: Callable[[], list[Path]], disk_every: float) -> None:
        super().__init__(daemon=True)
        self.root, self.every, self.scratch, self.disk_every = root, every, scratch, disk_every
        self.done = threading.Event()
        self.peaks = dict.fromkeys((*MEMORY, SCRATCH), 0)

    def run(self) -> None:
        next_disk = 0.0
        while not self.done.is_set():
            for pid in _descendants(self.root):
                rss, cmd = _rss(pid)
                kind = (
                    "jvm_peak_bytes"
                    if "java" in cmd.split(" ", 1)[0]
                    else "python_driver_peak_bytes"
                    if pid == self.root
                    else "python_worker_peak_bytes"
                    if "python" in cmd
                    else None
                )
                if kind:
                    self.peaks[kind] = max(self.peaks[kind], rss)
            if time.monotonic() >= next_disk:
                self.peaks[SCRATCH] = max(self.peaks[SCRATCH], sum(_disk_bytes(d) for d in self.scratch()))
                next_disk = time.monotonic() + self.disk_every
            self.done.wait(self.every)


def _disk_bytes(path: Path) -> int:
    """Bytes of the files under `path` (0 if it is gone; files that vanish while it is read are skipped)."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        try:
            total += _disk_bytes(Path(entry.path)) if entry.is_dir(follow_symlinks=False) else entry.stat().st_size
        except FileNotFoundError:
            continue
    return total


def _scratch_dirs(spark_local: Path, run_dir: Path) -> Callable[[], list[Path]]:
    """The directories a job's scratch lives in: spark.local.dir and the run's staging directories
    (`<run_dir>/_staging`, `<run_dir>/<stage>/_staging`), found anew at each sample."""
    return lambda: [spark_local, run_dir / "_staging", *run_dir.glob("*/_staging")]


def _shuffle(events: Path, since: float) -> dict[str, int]:
    """Shuffle bytes written and bytes spilled by the tasks of the event logs written since `since`."""
    totals = {"shuffle_write_bytes": 0, "spill_memory_bytes": 0, "spill_disk_bytes": 0}
    for log in events.glob("*") if events.exists() else []:
        if log.stat().st_mtime < since:
            continue
        with open(log) as f:
            for line in f:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                metrics = json.loads(line).get("Task Metrics") or {}
                totals["shuffle_write_bytes"] += metrics.get("Shuffle Write Metrics", {}).get(
                    "Shuffle Bytes Written", 0
                )
                totals["spill_memory_bytes"] += metrics.get("Memory Bytes Spilled", 0)
                totals["spill_disk_bytes"] += metrics.get("Disk Bytes Spilled", 0)
    return totals


def _tables(run_dir: Path, since: float) -> dict[str, Any]:
    """The row counts of the stage manifests published since `since`."""
    out = {}
    for manifest in run_dir.rglob("_manifest.json") if run_dir.exists() else []:
        if manifest.stat().st_mtime >= since and "_staging" not in manifest.parts:
            body = json.loads(manifest.read_text())
            if "tables" in body:
                out[str(manifest.parent.relative_to(run_dir))] = body["tables"]
    return out


def _command(job: str, config: Path, sets: list[str]) -> list[str]:
    flags = ["--config", str(config), *(a for s in sets for a in ("--set", s))]
    script = [sys.executable, str(ROOT / "jobs" / f"{job}.py"), *flags]
    if job in ("train_ncf", "train_dae"):
        return [str(Path(sys.executable).parent / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo", *script]
    return script


def measure(
    job: str,
    config: Path,
    sets: list[str],
    run_dir: Path,
    disk_dir: Path,
    spark_local: Path,
    events: Path,
    logs: Path,
    every: float,
) -> dict[str, Any]:
    """Runs one job and measures it; its output goes to `logs/<job>.log`; a failure stops the bench."""
    disk_before, started = _disk_bytes(disk_dir), time.time()
    with open(logs / f"{job}.log", "w") as out:
        proc = subprocess.Popen(_command(job, config, sets), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        usage = PeakUsage(proc.pid, every, _scratch_dirs(spark_local, run_dir), disk_every=max(every, 5.0))
        usage.start()
        rc = proc.wait()
        usage.done.set()
        usage.join()
    if rc:
        raise SystemExit(f"{job} failed (exit {rc}): see {logs / f'{job}.log'}")
    text = (logs / f"{job}.log").read_text(errors="replace")
    return {
        "seconds": round(time.time() - started, 1),
        **usage.peaks,
        **_shuffle(events, started),
        "disk_bytes": _disk_bytes(disk_dir) - disk_before,
        "tables": _tables(run_dir, started),
        "single_partition_window_warnings": text.count(WINDOW_WARNING),
    }


def growth(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per job and consecutive pair of scales, the exponent of each measure's growth."""
    scales = sorted(int(s) for s in results)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a, b in zip(scales, scales[1:]):
        for job in JOBS:
            x, y = results[str(a)].get(job), results[str(b)].get(job)
            if x and y:
                out.setdefault(job, {})[f"{a}->{b}"] = {
                    k: round(math.log(y[k] / x[k]) / math.log(b / a), 2)
                    for k in ("seconds", *MEMORY, SCRATCH)
                    if x.get(k, 0) > 0 and y.get(k, 0) > 0
                }
    return out


GIB, GB = 1024**3, 1e9


def markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The docs' tables: every measured job at every scale, then the growth exponents."""
    lines = [
        "| slices | job | seconds | JVM GiB | Python driver GiB | largest other Python GiB | scratch peak GB "
        "| shuffle written GB | spilled to disk GB | output GB | code |",
        "|" + "---|" * 11,
    ]
    for slices in sorted(results, key=int):
        for job in JOBS:
            m = results[slices].get(job)
            if m:
                lines.append(
                    f"| {slices} | {job} | {m['seconds']:.0f} | "
                    + " | ".join(f"{m.get(k, 0) / GIB:.2f}" for k in MEMORY)
                    + " | "
                    + " | ".join(
                        f"{m.get(k, 0) / GB:.2f}"
                        for k in (SCRATCH, "shuffle_write_bytes", "spill_disk_bytes", "disk_bytes")
                    )
                    + f" | {m.get('commit', '-')}{''.join(f' `{o}`' for o in m.get('overrides', []))} |"
                )
    lines += ["", "| job | scales | seconds | JVM | Python driver | largest other Python | scratch |", "|" + "---|" * 7]
    for job, pairs in growth(results).items():
        for pair, e in pairs.items():
            lines.append(
                f"| {job} | {pair} | " + " | ".join(str(e.get(k, "-")) for k in ("seconds", *MEMORY, SCRATCH)) + " |"
            )
    return "\n".join(lines)


def _commit() -> str:
    """The checkout's commit, marked when the code or config a job runs differs from it: the runs of a
    scale span sessions."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "lib", "jobs", "conf", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def _config(workdir: Path, driver_memory: str) -> Path:
    """The Spark settings every job of the bench runs with."""
    events = workdir / "events"
    events.mkdir(parents=True, exist_ok=True)
    (workdir / "spark-local").mkdir(exist_ok=True)
    path = workdir / "bench_scale.yaml"
    path.write_text(
        json.dumps(
            {
                "spark": {
                    "conf": {
                        "spark.driver.memory": driver_memory,
                        "spark.local.dir": str(workdir / "spark-local"),
                        "spark.eventLog.enabled": "true",
                        "spark.eventLog.dir": f"file://{events}",
                        "spark.eventLog.compress": "false",
                        "spark.ui.enabled": "false",
                    }
                }
            }
        )
    )  # JSON is YAML
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="kept between runs: finished jobs are not rerun")
    ap.add_argument("--slices", default="100,300,1000", help="comma-separated scales")
    ap.add_argument(
        "--jobs",
        default=",".join(j for j in JOBS if j != "train_dae"),
        help="comma-separated jobs to run (in pipeline order); train_dae only when named",
    )
    ap.add_argument("--per-category", type=int, default=1000, help="validation and blend-training playlists")
    ap.add_argument("--challenge-size", type=int, default=10_000)
    ap.add_argument("--ncf-epochs", type=int, default=2, help="NCF epochs (each draws its own negatives)")
    ap.add_argument(
        "--driver-memory",
        default="6g",
        help="spark.driver.memory: the issue's driver budget, so a run that completes shows it holds",
    )
    ap.add_argument("--sample-seconds", type=float, default=1.0)
    ap.add_argument("--force", action="store_true", help="measure the chosen jobs again")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="a config key for the chosen jobs, e.g. --set rank.ncf_model= (repeatable; recorded with "
        "each job's measurement)",
    )
    ap.add_argument("--markdown", action="store_true", help="print the tables of <workdir>/scale.json; run nothing")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads((args.workdir / "scale.json").read_text())))
        return

    workdir = args.workdir.resolve()
    config = _config(workdir, args.driver_memory)
    record = workdir / "scale.json"
    results: dict[str, dict[str, dict[str, Any]]] = json.loads(record.read_text()) if record.exists() else {}
    chosen = [j for j in JOBS if j in args.jobs.split(",")]
    for slices in [int(s) for s in args.slices.split(",")]:
        mpd, run_dir = workdir / f"mpd{slices}", workdir / f"run{slices}"
        sets = [
            f"synth.num_slices={slices}",
            f"synth.out_dir={mpd}",
            f"synth.challenge_size={args.challenge_size}",
            f"paths.mpd={mpd}",
            f"paths.challenge={mpd / 'challenge_set.json'}",
            f"paths.run_dir={run_dir}",
            f"validation.per_category={args.per_category}",
            f"validation.train_per_category={args.per_category}",
            f"ncf.epochs={args.ncf_epochs}",
            "ncf.patience=0",
            *args.overrides,
        ]
        logs = workdir / "logs" / str(slices)
        logs.mkdir(parents=True, exist_ok=True)
        done = results.setdefault(str(slices), {})
        for job in chosen:
            if job in done and not args.force:
                continue
            print(f"bench_scale: {slices} slices, {job}", file=sys.stderr, flush=True)
            done[job] = {
                **measure(
                    job,
                    config,
                    sets,
                    run_dir,
                    mpd if job == "synth_mpd" else run_dir,
                    workdir / "spark-local",
                    workdir / "events",
                    logs,
                    args.sample_seconds,
                ),
                "commit": _commit(),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **({"overrides": args.overrides} if args.overrides else {}),
            }
            record.write_text(json.dumps(results, indent=2))
    print(
        json.dumps(
            {
                "benchmark": "scale",
                "cores": os.cpu_count(),
                "driver_memory": args.driver_memory,
                "per_category": args.per_category,
                "challenge_size": args.challenge_size,
                "scales": results,
                "growth": growth(results),
                "total_seconds": {s: round(sum(j["seconds"] for j in r.values()), 1) for s, r in results.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
