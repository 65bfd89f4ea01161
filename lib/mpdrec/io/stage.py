"""Atomic, skippable stage outputs.

A stage writes everything into `<parent>/_staging/<name>-<fingerprint>`, then publishes it as
`<parent>/<name>`: the old output's `_manifest.json` is deleted first, then its data, the staging
directory is moved in, and the new `_manifest.json` is written last. A stage's output is valid if
and only if its `_manifest.json` exists, so no crash leaves a manifest over partial data, even on an
object store, where deleting or moving a directory is one operation per object in no set order (a
manifest moved with its directory could land before the data, or outlive it in a delete). A crash
while publishing leaves the old output, the whole new one, or none (the next run rebuilds that stage
only); a crashed run leaves nothing to clean by hand (its staging directory is reused by the
generator, emptied by Spark stages, removed once published), and a rerun whose inputs, config and
code are unchanged is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import mpdrec
from mpdrec.io.fs import FileInfo, FileStore
from mpdrec.io.paths import MANIFEST, join

log = logging.getLogger("mpdrec.stage")
FAILPOINT = "MPDREC_FAILPOINT"  # tests: "<stage>:<point>" kills the process there (`failpoint`)
PUBLISH_POINTS = ("built", "unpublished", "published")  # before, during and after a stage's publish


def failpoint(name: str, point: str) -> None:
    """Where the fault tests kill a job: with MPDREC_FAILPOINT=<name>:<point> this process gets
    SIGKILL here, as from the operating system, with nothing after it run (tests/test_faults.py)."""
    if os.environ.get(FAILPOINT) == f"{name}:{point}":
        log.warning("%s: killed at the failpoint %s", name, point)
        os.kill(os.getpid(), signal.SIGKILL)


def _python_sources(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    """(relative path, file) of every .py file below `folder`, sorted; a Traversable, so the same
    walk reads a source checkout, an installed wheel and a `--py-files` zip."""
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _python_sources(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".py"):
            yield f"{prefix}{entry.name}", entry


@lru_cache(maxsize=1)
def code_digest() -> str:
    """Digest of the mpdrec sources: changed code invalidates outputs, not only a new version. The
    same code gives the same digest however it is installed (checkout, wheel, zip)."""
    h = hashlib.sha256()
    for name, entry in _python_sources(resources.files(mpdrec)):
        h.update(name.encode())
        h.update(entry.read_bytes())
    return f"{mpdrec.__version__}+{h.hexdigest()[:12]}"


def fingerprint(inputs: list[FileInfo], config_digest: str) -> dict[str, Any]:
    """What a stage's output depends on: its input files (path, size, mtime), config and code."""
    h = hashlib.sha256()
    for f in sorted(inputs, key=lambda f: f.uri):
        h.update(f"{f.uri}\t{f.size}\t{f.mtime_ms}\n".encode())
    return {
        "inputs": h.hexdigest()[:16],
        "num_inputs": len(inputs),
        "config": config_digest,
        "code": code_digest(),
    }


def staging_uri(parent_dir: str, name: str, fp: dict[str, Any]) -> str:
    """Where a stage with this fingerprint builds its output: the same place on every retry."""
    code = fp["code"].rsplit("+", 1)[-1]
    return join(parent_dir, "_staging", f"{name}-{fp['inputs']}-{fp['config']}-{code}")


def read_manifest(fs: FileStore, stage_dir: str) -> dict[str, Any] | None:
    uri = join(stage_dir, MANIFEST)
    if not fs.exists(uri):
        return None
    try:
        return json.loads(fs.read_text(uri))
    except json.JSONDecodeError:
        return None


def versions() -> dict[str, str]:
    out = {"mpdrec": mpdrec.__version__, "python": platform.python_version()}
    for mod in ("pyspark", "pyarrow", "numpy", "orjson"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            continue
    return out


def up_to_date(
    fs: FileStore, parent_dir: str, name: str, fp: dict[str, Any], force: bool = False
) -> dict[str, Any] | None:
    """The published manifest of `<parent_dir>/<name>` when it has this fingerprint (and not `force`)."""
    final = join(parent_dir, name)
    existing = read_manifest(fs, final)
    if existing is not None and existing.get("fingerprint") == fp and not force:
        log.info("%s: up to date (%s), skipping; --force reruns it", name, final)
        return {**existing, "skipped": True}
    return None


def begin_stage(fs: FileStore, parent_dir: str, name: str, fp: dict[str, Any], resume: bool = False) -> str:
    """The staging directory to build in: emptied first unless `resume` keeps an interrupted try's files."""
    staging = staging_uri(parent_dir, name, fp)
    if not resume:
        fs.delete(staging)
    fs.mkdirs(staging)
    return staging


def publish_stage(
    fs: FileStore, parent_dir: str, name: str, fp: dict[str, Any], staging: str, body: dict[str, Any], started: float
) -> dict[str, Any]:
    """Replace `<parent_dir>/<name>` by staging, its manifest written last; drop stale tries; the manifest."""
    failpoint(name, "built")
    final = join(parent_dir, name)
    manifest = {
        "stage": name,
        "fingerprint": fp,
        **body,
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "seconds_total": round(time.time() - started, 3),
        "versions": versions(),
    }
    if fs.exists(final):
        fs.delete(join(final, MANIFEST))  # the old output is invalid before any of its data goes
        fs.delete(final)
    fs.rename(staging, final)
    failpoint(name, "unpublished")
    fs.write_text(join(final, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True))
    # stale tries of this stage with other inputs/config/code (16 hex digits: not another stage "name-x")
    fs.delete_glob(join(parent_dir, "_staging", f"{name}-{'[0-9a-f]' * 16}-*"))
    log.info("%s: published %s in %.1fs", name, final, manifest["seconds_total"])
    failpoint(name, "published")
    return manifest


def run_stage(
    fs: FileStore,
    parent_dir: str,
    name: str,
    fp: dict[str, Any],
    build: Callable[[str], dict[str, Any]],
    force: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Run `build(staging_dir)` unless `<parent_dir>/<name>` is up to date, then publish atomically.

    `build` writes the outputs under the staging directory and returns the manifest's body
    (row counts, timings...). Returns the manifest (the existing one when skipped). With `resume`,
    what an interrupted try of the same fingerprint left in staging is kept for `build` to reuse;
    otherwise staging starts empty.
    """
    existing = up_to_date(fs, parent_dir, name, fp, force)
    if existing is not None:
        return existing
    started = time.time()
    staging = begin_stage(fs, parent_dir, name, fp, resume)
    return publish_stage(fs, parent_dir, name, fp, staging, build(staging), started)
