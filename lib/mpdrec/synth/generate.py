"""Write a synthetic MPD (slices + challenge set) in parallel, atomically and resumably.

Slices are independent (each has its own seed stream), so worker processes write them in any order;
files land in a staging directory named after the config, so an interrupted run picks up the slices
it already wrote, and the finished directory appears under `synth.out_dir` in one rename.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpdrec.config import SynthConfig, stable_digest
from mpdrec.errors import ConfigError
from mpdrec.io.fs import LocalFS
from mpdrec.io.paths import basename, is_local, local_path, parent, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.synth.catalogue import build_catalogue
from mpdrec.synth.mpd_format import render_challenge, render_slice, sample_slice, slice_file_name
from mpdrec.synth.stats import measured_stats

log = logging.getLogger("mpdrec.synth")
CHALLENGE_FILE = "challenge_set.json"


@dataclass(frozen=True)
class SliceResult:
    index: int
    bytes_written: int
    reused: bool
    lengths: np.ndarray
    tracks: np.ndarray  # unique track ids of the slice
    track_playlists: np.ndarray  # playlists of the slice containing each of `tracks`
    artists: np.ndarray
    albums: np.ndarray


def _write_slice(job: tuple[str, int, int]) -> SliceResult:
    directory, index, seed = job
    cat = build_catalogue(seed)
    sample = sample_slice(cat, index)
    path = Path(directory) / slice_file_name(index)
    reused = path.exists()  # complete: files are only ever renamed into place
    if not reused:
        data = render_slice(cat, sample)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    batch = sample.batch
    pl = np.repeat(np.arange(len(batch.lengths)), batch.lengths)
    pairs = np.unique(pl * np.int64(cat.num_tracks) + batch.tracks)
    tracks, counts = np.unique(pairs % cat.num_tracks, return_counts=True)
    return SliceResult(
        index=index,
        bytes_written=path.stat().st_size,
        reused=reused,
        lengths=batch.lengths,
        tracks=tracks,
        track_playlists=counts.astype(np.int32),
        artists=np.unique(cat.track_artist(batch.tracks)),
        albums=np.unique(cat.track_album[batch.tracks]),
    )


@contextmanager
def _frozen_for_fork() -> Iterator[None]:
    """The caller's garbage collected, then every object left frozen while workers fork: a forked
    worker's collector would otherwise free the parent's objects, and TensorFlow's (in a caller
    that imported it, as the test suite does) segfaulted a worker so in a clean-clone CI run."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _generate_into(cfg: SynthConfig, staging: str) -> dict[str, Any]:
    started = time.time()
    directory = local_path(staging)
    for leftover in directory.glob(".*.tmp-*"):  # half-written files of an interrupted run
        leftover.unlink()
    cat = build_catalogue(cfg.seed)  # built once here; forked workers share it
    workers = cfg.workers or os.cpu_count() or 1
    track_counts = np.zeros(cat.num_tracks, dtype=np.int32)
    artists_seen = np.zeros(len(cat.artist_weight), dtype=bool)
    albums_seen = np.zeros(int(cat.track_album[-1]) + 1, dtype=bool)
    lengths, total_bytes, reused = [], 0, 0
    jobs = [(str(directory), i, cfg.seed) for i in range(cfg.num_slices)]
    ctx = multiprocessing.get_context("fork")
    with _frozen_for_fork(), ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for done, r in enumerate(pool.map(_write_slice, jobs), start=1):
            track_counts[r.tracks] += r.track_playlists
            artists_seen[r.artists] = True
            albums_seen[r.albums] = True
            lengths.append(r.lengths)
            total_bytes += r.bytes_written
            reused += r.reused
            if done == cfg.num_slices or done % max(1, cfg.num_slices // 20) == 0:
                spent = time.time() - started
                eta = spent / done * (cfg.num_slices - done)
                log.info(
                    "synth: %d/%d slices (%.0f MB) in %.1fs, ETA %.0fs",
                    done,
                    cfg.num_slices,
                    total_bytes / 1e6,
                    spent,
                    eta,
                )
    challenge_size = cfg.challenge_size or 10 * cfg.num_slices
    challenge = render_challenge(cat, challenge_size)
    (directory / CHALLENGE_FILE).write_bytes(challenge)
    seconds = time.time() - started
    stats = measured_stats(
        cfg.num_slices * 1_000,
        np.concatenate(lengths),
        track_counts,
        int(artists_seen.sum()),
        int(albums_seen.sum()),
    )
    return {
        "stats": stats,
        "files": {
            "slices": cfg.num_slices,
            "reused_slices": reused,
            "challenge": CHALLENGE_FILE,
            "challenge_playlists": challenge_size,
        },
        "bytes": total_bytes + len(challenge),
        "seconds": round(seconds, 3),
        "mb_per_s": round(total_bytes / 1e6 / max(seconds, 1e-9), 2),
        "workers": workers,
        "config": {"num_slices": cfg.num_slices, "seed": cfg.seed, "challenge_size": challenge_size},
    }


def synth_fingerprint(cfg: SynthConfig) -> dict[str, Any]:
    """What the bytes written depend on: not workers, not out_dir."""
    return fingerprint(
        [], stable_digest({"num_slices": cfg.num_slices, "seed": cfg.seed, "challenge_size": cfg.challenge_size})
    )


def publish_generated(
    out_dir: str,
    key: str,
    fp: dict[str, Any],
    build: Callable[[str], dict[str, Any]],
    force: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """A generator's output directory as a stage (`mpdrec.io.stage.run_stage` on the local disk): built
    in staging and published whole, skipped when `fp` and the code are unchanged. `key` names the
    config key of `out_dir` in the error for a non-local directory."""
    out = to_uri(out_dir)
    if not is_local(out):
        raise ConfigError(
            f"config key '{key}': must be a local directory, got {out_dir} "
            "(generate locally, then copy to the object store)"
        )
    return run_stage(LocalFS(), parent(out), basename(out), fp, build, force=force, resume=resume)


def generate(cfg: SynthConfig, force: bool = False) -> dict[str, Any]:
    """Generate the synthetic MPD into `cfg.out_dir`; skipped when it is already there and current."""
    return publish_generated(
        cfg.out_dir,
        "synth.out_dir",
        synth_fingerprint(cfg),
        lambda staging: _generate_into(cfg, staging),
        force=force,
        resume=True,
    )


def format_stats(stats: dict[str, Any]) -> str:
    """The generator's statistics as aligned lines, for people."""
    return "\n".join(f"  {k:<24} {v:,.4f}" if isinstance(v, float) else f"  {k:<24} {v:,}" for k, v in stats.items())
