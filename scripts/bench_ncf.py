#!/usr/bin/env python
"""Benchmark NCF training throughput (samples/s); prints JSON.

NeuMF in the seed configuration (latent 32, MLP [256, 128, 128, 64]) at MPD-like table sizes, one
process: row-sparse embedding updates (IndexedSlices applied by legacy Adagrad, the default) against
the same step with embedding gradients made dense (every row of every table updated each step).
The compute roof is the model's dense-layer FLOPs per sample (forward x 3 for training) against the
matrix-multiply FLOP/s measured here. Batches are random ids made up front, so the training step is
measured, not the input pipeline. Multi-process (Horovod) throughput comes with the training loop.

    python scripts/bench_ncf.py                     # 200k playlists x 500k tracks, batch 8192
    python scripts/bench_ncf.py --playlists 20000 --tracks 50000
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--playlists", type=int, default=200_000)
    ap.add_argument("--tracks", type=int, default=500_000)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--dense-steps", type=int, default=5)
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    from mpdrec.models.ncf.model import build_model, dense_layer_flops, sparse_optimizer

    rng = np.random.default_rng(0)
    batches = [(tf.constant(rng.integers(0, args.playlists, args.batch, dtype=np.int32)),
                tf.constant(rng.integers(0, args.tracks, args.batch, dtype=np.int32)),
                tf.constant(rng.integers(0, 2, args.batch).astype(np.float32))) for _ in range(8)]

    def throughput(dense: bool, steps: int) -> float:
        model = build_model("neumf", args.playlists, args.tracks, 32, [256, 128, 128, 64])
        opt = sparse_optimizer(0.05)
        variables = model.trainable_variables

        @tf.function
        def step(p: tf.Tensor, t: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, model([p, t], training=True)))
            grads = tape.gradient(loss, variables)
            if dense:
                grads = [tf.convert_to_tensor(g) for g in grads]
            opt.apply_gradients(zip(grads, variables))
            return loss

        for b in batches[:2]:  # trace and warm up
            step(*b).numpy()
        start = time.perf_counter()
        for i in range(steps):
            loss = step(*batches[i % len(batches)])
        loss.numpy()
        return steps * args.batch / (time.perf_counter() - start)

    a = tf.random.normal((args.batch, 256))
    w = tf.random.normal((256, 256))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, w).numpy()
    start = time.perf_counter()
    for _ in range(20):
        out = matmul(a, w)
    out.numpy()
    flops_per_s = 20 * 2 * args.batch * 256 * 256 / (time.perf_counter() - start)

    sparse = throughput(False, args.steps)
    dense = throughput(True, args.dense_steps)
    probe = build_model("neumf", 10, 10, 32, [256, 128, 128, 64])
    per_sample = 3 * dense_layer_flops(probe)
    roof = flops_per_s / per_sample
    print(json.dumps({
        "benchmark": "ncf",
        "device": [d.device_type for d in tf.config.list_physical_devices()],
        "model": "neumf latent 32, mlp [256, 128, 128, 64]",
        "tables": {"playlists": args.playlists, "tracks": args.tracks}, "batch": args.batch,
        "processes": 1,
        "sparse_updates_samples_per_s": round(sparse),
        "dense_updates_samples_per_s": round(dense),
        "sparse_over_dense": round(sparse / dense, 1),
        "roof": {"matmul_flops_per_s": round(flops_per_s), "training_flops_per_sample": per_sample,
                 "roof_samples_per_s": round(roof), "sparse_share_of_roof": round(sparse / roof, 3)},
        "target_samples_per_s": 100_000,
    }, indent=2))


if __name__ == "__main__":
    main()
