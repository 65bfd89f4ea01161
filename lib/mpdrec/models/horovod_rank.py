"""What every Horovod-trained model (NCF, the playlist autoencoder) does the same way on its rank:
pick its device, keep the epochs' record for early stopping, report durations, and digest its
weights to show the ranks stayed in sync."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

DIGEST_ROWS = 1 << 16  # rows of a weight hashed at a time


def setup_devices(hvd: Any) -> str:
    """One GPU per local rank; without GPUs, the cores split between the ranks on this machine."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        gpu = gpus[hvd.local_rank() % len(gpus)]
        tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.set_visible_devices(gpu, "GPU")
        tf.config.experimental.enable_op_determinism()  # GPU scatter-adds would let ranks drift apart
        return f"GPU {gpu.name}"
    threads = max(1, (os.cpu_count() or 1) // hvd.local_size())
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    return f"CPU, {threads} threads per rank"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def weights_digest(weights: Iterable[Any]) -> str:
    """sha256 of every weight: equal on all ranks when training stayed in sync. Read in slices of
    DIGEST_ROWS rows: copying every table at once was, at full MPD size, the largest transient of
    a rank (docs/scale.md)."""
    h = hashlib.sha256()
    for w in weights:
        if w.shape.rank == 0:
            h.update(np.ascontiguousarray(w.numpy()).tobytes())
            continue
        for start in range(0, max(int(w.shape[0]), 1), DIGEST_ROWS):
            h.update(np.ascontiguousarray(w[start : start + DIGEST_ROWS].numpy()).tobytes())
    return h.hexdigest()[:16]


def training_state() -> dict[str, Any]:
    """What a checkpoint keeps besides the weights: the epochs done, their history, the best epoch
    and how many epochs since, and whether training stopped early."""
    return {"epoch": 0, "history": [], "best_epoch": 0, "best": None, "bad_epochs": 0, "stopped": False}


def record_epoch(state: dict[str, Any], entry: dict[str, Any], monitor: str, patience: int) -> None:
    """Adds an epoch's `entry` (its metrics among them) to `state`: the best epoch is the first with
    the highest `monitor`; `patience` epochs (0: never) without a better one stop training."""
    state["history"].append(entry)
    if state["best"] is None or entry[monitor] > state["best"]:
        state.update(best=entry[monitor], best_epoch=entry["epoch"], bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    state["epoch"] = entry["epoch"]
    state["stopped"] = bool(patience and state["bad_epochs"] >= patience)


def agreed_digest(hvd: Any, weights: Iterable[Any], label: str) -> str:
    """This rank's `weights_digest`, printed, after checking every rank ended with the same one."""
    digest = weights_digest(weights)
    digests = hvd.allgather_object(digest)
    print(f"{label}: rank {hvd.rank()}/{hvd.size()} weights sha256 {digest}", flush=True)
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks ended with different weights {digests}: training went out of sync")
    return digest
