"""Submit the pipeline's stages to Google Cloud Dataproc or Amazon EMR, with what scripts/package.sh built.

`scripts/submit_dataproc.sh` and `scripts/submit_emr.sh` call this module (standard library only, so
it runs before any dependency is installed). It copies the artifacts (mpdrec.zip, the packed
environment, jobs/, --config files) to a staging URI, then submits one Spark job per stage:

- Dataproc: `gcloud dataproc jobs submit pyspark`, one stage after another (gcloud waits for each);
- EMR: one `aws emr add-steps` with a Spark step per stage (EMR runs steps in order and, with
  ActionOnFailure=CANCEL_AND_WAIT, cancels the rest when one fails).

Every job runs in YARN cluster mode: the driver is a YARN container too, so the driver and the
executors both run `./env/bin/python` from the unpacked `--archives` environment (`--no-env`: the
cluster's own Python, with the dependencies pre-installed). `--dry-run` prints the exact commands.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# stage name -> entry point, in pipeline order (synth_mpd is local only: the real MPD is the input)
STAGES = {
    "ingest": "ingest_mpd.py",
    "interactions": "build_interactions.py",
    "negatives": "sample_negatives.py",
    "als": "train_als.py",
    "ncf": "train_ncf.py",
    "rank": "rank_candidates.py",
    "evaluate": "evaluate.py",
}
ENV_ARCHIVE = "mpdrec-env.tar.gz"
CODE_ZIP = "mpdrec.zip"
PYTHON_IN_ENV = "./env/bin/python"
# The driver's container, set at submit time: a running driver cannot resize itself, so these cannot
# come from the profile as the executors' sizes do (conf/dataproc.yaml, conf/emr.yaml). Sized from
# the 1,000-slice runs (docs/scale.md, "Cluster sizing"): every job's driver JVM fitted the 6g heap
# it was given, and the overhead holds the Python driver and the JVM's own memory beyond its heap (the
# rank stage needs the most of both).
DRIVER = {"spark.driver.memory": "6g", "spark.driver.memoryOverhead": "5g"}
# NCF on CPU executors: one Horovod rank per executor (the profiles' 4 cores), since four ranks at full
# MPD size would overrun the executor's memoryOverhead (docs/scale.md).
NCF_TASK_CPUS = "4"


@dataclass(frozen=True)
class Plan:
    """What to submit: the same for both platforms."""

    platform: str  # dataproc | emr
    stages: list[str]
    staging: str  # gs://... or s3://... where the artifacts are copied
    job_args: list[str]  # passed to every job: --profile, --set paths..., --config, extras
    config_files: list[Path]
    with_env: bool
    gpu: bool

    def uri(self, name: str) -> str:
        return f"{self.staging.rstrip('/')}/{name}"

    def spark_properties(self, stage: str) -> dict[str, str]:
        """YARN cluster mode with the DRIVER's container; the packed environment's Python; one NCF
        task (= one Horovod rank) per executor GPU on --gpu, else per executor."""
        props = {"spark.submit.deployMode": "cluster", **DRIVER}
        if self.with_env:
            props["spark.pyspark.python"] = PYTHON_IN_ENV
            props["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] = PYTHON_IN_ENV
        if self.gpu and stage == "ncf":
            props["spark.executor.resource.gpu.amount"] = "1"
            props["spark.task.resource.gpu.amount"] = "1"
        elif stage == "ncf":
            props["spark.task.cpus"] = NCF_TASK_CPUS
        return props

    def args_for(self, stage: str) -> list[str]:
        """Every job's arguments; the NCF stage trains on the executors (horovod.spark.run)."""
        extra = ["--set", "ncf.launcher=spark"] if stage == "ncf" else []
        return [*self.job_args, *extra]

    def files(self) -> list[str]:
        return [self.uri(f.name) for f in self.config_files]

    def archives(self) -> list[str]:
        return [f"{self.uri(ENV_ARCHIVE)}#env"] if self.with_env else []


def upload_commands(plan: Plan, dist: Path) -> list[list[str]]:
    """Copy the artifacts to the staging URI (gcloud storage or aws s3)."""
    sources = [dist / CODE_ZIP, *([dist / ENV_ARCHIVE] if plan.with_env else []), *plan.config_files]
    jobs = [dist / "jobs" / STAGES[s] for s in plan.stages]
    if plan.platform == "dataproc":
        return [
            ["gcloud", "storage", "cp", *map(str, sources), plan.staging.rstrip("/") + "/"],
            ["gcloud", "storage", "cp", *map(str, jobs), plan.uri("jobs") + "/"],
        ]
    return [["aws", "s3", "cp", str(src), plan.uri(src.name)] for src in sources] + [
        ["aws", "s3", "cp", str(job), plan.uri(f"jobs/{job.name}")] for job in jobs
    ]


def dataproc_commands(plan: Plan, cluster: str, region: str) -> list[list[str]]:
    commands = []
    for stage in plan.stages:
        cmd = [
            "gcloud",
            "dataproc",
            "jobs",
            "submit",
            "pyspark",
            plan.uri(f"jobs/{STAGES[stage]}"),
            f"--cluster={cluster}",
            f"--region={region}",
            f"--py-files={plan.uri(CODE_ZIP)}",
        ]
        if plan.archives():
            cmd.append(f"--archives={','.join(plan.archives())}")
        if plan.files():
            cmd.append(f"--files={','.join(plan.files())}")
        props = plan.spark_properties(stage)
        cmd.append("--properties=" + ",".join(f"{k}={v}" for k, v in props.items()))
        cmd += [f"--labels=mpdrec-stage={stage}", "--", *plan.args_for(stage)]
        commands.append(cmd)
    return commands


def emr_steps(plan: Plan) -> list[dict]:
    steps = []
    for stage in plan.stages:
        args = ["spark-submit", "--py-files", plan.uri(CODE_ZIP)]
        if plan.archives():
            args += ["--archives", ",".join(plan.archives())]
        if plan.files():
            args += ["--files", ",".join(plan.files())]
        for key, value in plan.spark_properties(stage).items():
            args += ["--conf", f"{key}={value}"]
        args += [plan.uri(f"jobs/{STAGES[stage]}"), *plan.args_for(stage)]
        steps.append(
            {
                "Type": "CUSTOM_JAR",
                "Name": f"mpdrec-{stage}",
                "ActionOnFailure": "CANCEL_AND_WAIT",
                "Jar": "command-runner.jar",
                "Args": args,
            }
        )
    return steps


def emr_commands(plan: Plan, cluster_id: str, region: str | None) -> list[list[str]]:
    cmd = ["aws", "emr", "add-steps", "--cluster-id", cluster_id, "--steps", json.dumps(emr_steps(plan))]
    return [cmd + (["--region", region] if region else [])]


def _parser(platform: str) -> argparse.ArgumentParser:
    tool = "gcloud" if platform == "dataproc" else "aws"
    p = argparse.ArgumentParser(
        prog=f"scripts/submit_{platform}.sh",
        description=f"Run mpdrec's stages on {'Dataproc' if platform == 'dataproc' else 'EMR'} with {tool}; "
        "build the artifacts first with scripts/package.sh. Arguments after -- go to every job.",
    )
    if platform == "dataproc":
        p.add_argument("--cluster", required=True, help="Dataproc cluster name")
        p.add_argument("--region", required=True, help="Dataproc region, e.g. europe-west1")
    else:
        p.add_argument("--cluster-id", required=True, help="EMR cluster id, e.g. j-2AXXXXXXGAPLF")
        p.add_argument("--region", help="AWS region (default: the aws CLI's)")
    scheme = "gs" if platform == "dataproc" else "s3"
    p.add_argument("--staging", required=True, help=f"where the artifacts are copied, e.g. {scheme}://BUCKET/mpdrec")
    p.add_argument("--run-dir", required=True, help=f"paths.run_dir, e.g. {scheme}://BUCKET/runs/r1")
    p.add_argument("--mpd", help=f"paths.mpd: the slice files, e.g. {scheme}://BUCKET/mpd/data")
    p.add_argument("--challenge", help="paths.challenge: a challenge_set.json")
    p.add_argument(
        "--stages", default="all", help=f"comma-separated, in pipeline order, or 'all' (default): {','.join(STAGES)}"
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a YAML config for every job (shipped with --files; repeatable)",
    )
    p.add_argument("--dist", type=Path, default=Path("dist"), help="what scripts/package.sh built (default dist/)")
    p.add_argument(
        "--no-env", action="store_true", help="the cluster has the dependencies pre-installed: ship only mpdrec.zip"
    )
    p.add_argument(
        "--gpu", action="store_true", help="NCF on GPU executors: one Horovod rank per GPU (see docs/cluster.md, 'GPU')"
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return p


def _stages(spec: str) -> list[str]:
    if spec == "all":
        return list(STAGES)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown or not wanted:
        raise SystemExit(f"error: unknown stage(s) {unknown or spec!r}; choose from {', '.join(STAGES)} or all")
    return [s for s in STAGES if s in wanted]  # pipeline order, whatever the order given


def _check_dist(plan: Plan, dist: Path) -> None:
    needed = [dist / CODE_ZIP, *(dist / "jobs" / STAGES[s] for s in plan.stages), *plan.config_files]
    if plan.with_env:
        needed.append(dist / ENV_ARCHIVE)
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise SystemExit(
            f"error: missing {', '.join(missing)}: run scripts/package.sh"
            + ("" if plan.with_env else " --no-env")
            + " (or pass --dist)"
        )


def plan_from_args(platform: str, argv: list[str]) -> tuple[Plan, argparse.Namespace]:
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = _parser(platform).parse_args(own)
    job_args = ["--profile", platform, "--set", f"paths.run_dir={args.run_dir}"]
    if args.mpd:
        job_args += ["--set", f"paths.mpd={args.mpd}"]
    if args.challenge:
        job_args += ["--set", f"paths.challenge={args.challenge}"]
    for f in args.config:
        job_args += ["--config", f.name]  # --files puts it in the driver's working directory
    plan = Plan(
        platform, _stages(args.stages), args.staging, [*job_args, *extra], list(args.config), not args.no_env, args.gpu
    )
    _check_dist(plan, args.dist)
    return plan, args


def main(argv: list[str]) -> int:
    platform, rest = argv[0], argv[1:]
    plan, args = plan_from_args(platform, rest)
    if platform == "dataproc":
        submits = dataproc_commands(plan, args.cluster, args.region)
    else:
        submits = emr_commands(plan, args.cluster_id, args.region)
    commands = [*upload_commands(plan, args.dist), *submits]
    if args.dry_run:
        for cmd in commands:
            print(shlex.join(cmd))
        return 0
    tool = commands[0][0]
    if shutil.which(tool) is None:
        print(f"error: `{tool}` is not on PATH: install and authenticate it, or use --dry-run", file=sys.stderr)
        return 2
    for cmd in commands:
        print("+ " + shlex.join(cmd), flush=True)
        done = subprocess.run(cmd)
        if done.returncode:
            print(
                f"error: exit status {done.returncode} from `{shlex.join(cmd[:3])} ...`; finished stages are "
                "skipped when you run the same command again",
                file=sys.stderr,
            )
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
