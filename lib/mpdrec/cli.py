"""What every job in jobs/ shares: arguments, config loading, logging, and clear failures.

The contract: `--config FILE` (repeatable, later wins) and `--set dotted.key=value` (repeatable) on
top of conf/base.yaml and a profile (`--profile`, default local). A config or input mistake exits
with status 2 and one line naming the key or file, before any SparkSession starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from mpdrec.config import PROFILES, Config, load_config
from mpdrec.errors import ConfigError, InputError


def default_conf_dir() -> Traversable:
    """base.yaml and the profiles: packaged as `mpdrec/conf` in the wheel and the `--py-files` zip
    (a cluster has no checkout), else the checkout's top-level conf/ (source and editable installs)."""
    packaged = resources.files("mpdrec") / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


def job_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML file layered over base + profile (repeatable; later wins)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override one key, e.g. --set paths.run_dir=runs/r1 (repeatable)",
    )
    p.add_argument(
        "--profile",
        default="local",
        choices=PROFILES,
        help="conf/<profile>.yaml layered over conf/base.yaml (default: local)",
    )
    p.add_argument(
        "--conf-dir",
        type=Path,
        default=None,
        help="directory holding base.yaml and the profiles (default: the packaged ones)",
    )
    p.add_argument("--force", action="store_true", help="rerun even if the output is up to date")
    p.add_argument("--log-level", default="INFO")
    return p


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)


def run_job(
    description: str, body: Callable[[argparse.Namespace, Config], None], argv: Sequence[str] | None = None
) -> int:
    """Parse arguments, load the config and run `body`; user mistakes become one-line errors."""
    args = job_parser(description).parse_args(argv)
    setup_logging(args.log_level)
    try:
        cfg = load_config(args.conf_dir or default_conf_dir(), args.profile, args.config, args.overrides)
        body(args, cfg)
    except (ConfigError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
