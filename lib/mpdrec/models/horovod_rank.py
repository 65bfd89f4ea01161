"""What every Horovod-trained model (NCF, the playlist autoencoder) does the same way on its rank:
pick its device, report durations, and digest its weights to show the ranks stayed in sync."""

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
