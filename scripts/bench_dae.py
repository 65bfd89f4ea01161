#!/usr/bin/env python
"""Benchmark one step of the playlist autoencoder's training on a run's positives; prints JSON.

What a rank computes and exchanges per step, on the run's real tables: the seconds per step with the
lazy Adam the trainer uses and with Keras's (legacy) Adam, which moves both moments of every table
row at every step; and the bytes Horovod allgathers per step (the row-sparse gradients of the
encoder rows read and of the decoder columns scored, float32) against the bytes of the tables an
allreduce of dense gradients would move. One process, no Horovod: the step's own cost.

    python scripts/bench_dae.py --run-dir /tmp/bq/real/run
    python scripts/bench_dae.py --run-dir /work/scale100/run100 --steps 10
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, required=True, help="a run with negatives/ and interactions/")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per optimizer (after one to trace)")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = ap.parse_args()
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import numpy as np
    import tensorflow as tf

    from mpdrec.config import load_config
    from mpdrec.models.dae.data import Corruption, PlaylistRows, TitleWords, Vocabulary, epoch_steps, read_pairs
    from mpdrec.models.dae.lazy_adam import LazyAdam
    from mpdrec.models.dae.model import PlaylistAutoencoder, step_signature

    d = load_config(ROOT / "conf", "local", [], [f"paths.run_dir={args.run_dir}", *args.overrides]).dae
    playlist_idx, track_idx = read_pairs(
        sorted(glob.glob(str(args.run_dir / "negatives" / "data" / "*" / "*.parquet")))
    )
    counts = np.bincount(track_idx).astype(np.float64)
    vocabulary = Vocabulary.of(counts, d.min_playlists, d.max_tracks, d.sampling_beta)
    titles = TitleWords.read(str(args.run_dir / "interactions" / "playlist_ids"), d.title_min_playlists)
    playlists = PlaylistRows.of(playlist_idx, track_idx, vocabulary, titles)
    steps = list(
        epoch_steps(
            playlists, vocabulary, args.steps + 1, d.batch_size, d.sampled, Corruption(d.keep, d.title_only), (1, 0, 0)
        )
    )
    hidden, tracks = d.hidden, len(vocabulary)
    exchanged = [
        4 * (len(s.inputs) * hidden + (len(s.columns) + len(s.sampled)) * (hidden + 1) + hidden) for s in steps
    ]
    dense = 4 * ((tracks + titles.count) * hidden + hidden + tracks * (hidden + 1))
    seconds: dict[str, float] = {}
    for name in ("lazy_adam", "keras_adam"):
        model = PlaylistAutoencoder(tracks, titles.count, hidden, 1)
        variables = model.weights()
        optimizer: Any = LazyAdam(variables, d.lr) if name == "lazy_adam" else tf.keras.optimizers.legacy.Adam(d.lr)

        @tf.function(input_signature=[step_signature()])
        def step(batch: dict[str, tf.Tensor], model: Any = model, optimizer: Any = optimizer) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = model.loss(batch, d.l2)
            gradients = tape.gradient(loss, model.weights())
            if isinstance(optimizer, LazyAdam):
                optimizer.apply(gradients, model.weights())
            else:
                optimizer.apply_gradients(zip(gradients, model.weights()))
            return loss

        float(step(dataclasses.asdict(steps[0])))  # traced
        started = time.perf_counter()
        for s in steps[1:]:
            float(step(dataclasses.asdict(s)))
        seconds[name] = round((time.perf_counter() - started) / args.steps, 4)
    print(
        json.dumps(
            {
                "benchmark": "dae_step",
                "run_dir": str(args.run_dir),
                "vocabulary": tracks,
                "title_words": titles.count,
                "training_playlists": len(playlists),
                "batch_size": d.batch_size,
                "hidden": hidden,
                "sampled": d.sampled,
                "seconds_per_step": seconds,
                "keras_adam_over_lazy": round(seconds["keras_adam"] / seconds["lazy_adam"], 2),
                "exchanged_bytes_per_step": int(np.mean(exchanged)),
                "dense_gradient_bytes": dense,
                "exchanged_share_of_dense": round(float(np.mean(exchanged)) / dense, 4),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
