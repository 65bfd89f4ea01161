#!/usr/bin/env python
"""Benchmark NCF training (samples/s, and quality on synthetic data); prints JSON.

Throughput: NeuMF in the seed configuration (latent 32, MLP [256, 128, 128, 64]) at MPD-like table
sizes. One process: row-sparse embedding updates (IndexedSlices applied by legacy Adagrad, the
default) against the same step with embedding gradients made dense (every row of every table
updated each step). Two processes (`horovodrun -np 2`, Gloo): Horovod's allgather of the touched
rows (the default) against `sparse_as_dense` (an allreduce of whole tables each step). The compute
roof is the model's dense-layer FLOPs per sample (forward x 3 for training) against the
matrix-multiply FLOP/s measured here. Batches are random ids made up front, so the training step is
measured, not the input pipeline.

Quality (`--quality`): the jobs on the default synthetic MPD (20 slices) as a user runs them, then
GMF, MLP and NeuMF (initialised from both, as in the paper) trained by jobs/train_ncf.py; their
leave-one-out HR@10 / NDCG@10 / AUC against popularity ranking of the same 100 candidates.

    python scripts/bench_ncf.py                     # 200k playlists x 500k tracks, batch 8192
    python scripts/bench_ncf.py --playlists 20000 --tracks 50000
    python scripts/bench_ncf.py --playlists 1000000 --tracks 2262292 --dense-steps 0   # full MPD tables
    python scripts/bench_ncf.py --quality --workdir /tmp/bench_ncf
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]


def throughput(args: argparse.Namespace, dense: bool, steps: int, hvd: Any = None) -> float:
    """Samples/s of NeuMF training steps over all ranks (`hvd`: Horovod, or None for one process).
    `dense`: embedding gradients as dense tables (one process: a dense optimizer step; Horovod:
    sparse_as_dense, an allreduce of whole tables)."""
    import numpy as np
    import tensorflow as tf

    from mpdrec.models.ncf.model import SplitOptimizer, build_model

    rng = np.random.default_rng(hvd.rank() if hvd else 0)
    batches = [
        (
            tf.constant(rng.integers(0, args.playlists, args.batch, dtype=np.int32)),
            tf.constant(rng.integers(0, args.tracks, args.batch, dtype=np.int32)),
            tf.constant(rng.integers(0, 2, args.batch).astype(np.float32)),
        )
        for _ in range(8)
    ]
    model = build_model("neumf", args.playlists, args.tracks, 32, [256, 128, 128, 64])
    opt = SplitOptimizer(model, 0.05, 0.001)  # as train_ncf.py: Adagrad on the tables, Adam on the rest
    variables = opt.trainable

    @tf.function
    def step(p: tf.Tensor, t: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, model([p, t], training=True)))
        if hvd is not None:
            tape = hvd.DistributedGradientTape(tape, sparse_as_dense=dense)
        grads = tape.gradient(loss, variables)
        if dense and hvd is None:
            grads = [tf.convert_to_tensor(g) for g in grads]
        opt.apply(grads)
        return loss

    for b in batches[:2]:  # trace and warm up
        step(*b).numpy()
    start = time.perf_counter()
    for i in range(steps):
        loss = step(*batches[i % len(batches)])
    loss.numpy()
    return steps * args.batch * (hvd.size() if hvd else 1) / (time.perf_counter() - start)


TOUCHED_WIDTH = 2 * (32 + 128)  # floats per sample the allgather carries: a playlist and a track row, GMF + MLP


def traffic(batch: int, ranks: int) -> int:
    """Bytes one rank receives per step from Horovod's allgather of the touched embedding rows: the
    other ranks' batches, TOUCHED_WIDTH float32 values and 4 int32 row ids per sample. It grows with
    the ranks, while an allreduce of whole tables (`sparse_as_dense`) moves about twice the tables'
    bytes per rank per step whatever the ranks."""
    return (ranks - 1) * batch * (TOUCHED_WIDTH * 4 + 4 * 4)


def horovod_worker(args: argparse.Namespace) -> None:
    """One rank of `horovodrun -np N scripts/bench_ncf.py --worker`: rank 0 prints a JSON line."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(max(1, (os.cpu_count() or 1) // hvd.local_size()))
    result = {
        "allgather": throughput(args, False, args.steps, hvd),
        "sparse_as_dense": throughput(args, True, args.dense_steps, hvd) if args.dense_steps else None,
    }
    if hvd.rank() == 0:
        print("RESULT " + json.dumps(result), flush=True)


def two_processes(args: argparse.Namespace) -> dict[str, float]:
    horovodrun = Path(sys.executable).parent / "horovodrun"
    cmd = [
        str(horovodrun),
        "-np",
        "2",
        "-H",
        "localhost:2",
        "--gloo",
        sys.executable,
        __file__,
        "--worker",
        "--playlists",
        str(args.playlists),
        "--tracks",
        str(args.tracks),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--dense-steps",
        str(args.dense_steps),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    lines = [line for line in proc.stdout.splitlines() if "RESULT " in line]
    if proc.returncode or not lines:
        raise SystemExit(f"horovodrun failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[0].split("RESULT ", 1)[1])


def quality(args: argparse.Namespace) -> dict[str, object]:
    """The pipeline on the default synthetic data, then GMF, MLP and pretrained NeuMF."""
    work = Path(args.workdir)
    sets = [
        f"paths.run_dir={work / 'run'}",
        f"synth.out_dir={work / 'mpd'}",
        f"paths.mpd={work / 'mpd'}",
        "paths.challenge=",
        f"ncf.epochs={args.epochs}",
        "ncf.patience=2",
    ]
    flags = [a for s in sets for a in ("--set", s)]
    out: dict[str, object] = {}
    for job in ("synth_mpd", "ingest_mpd", "build_interactions", "sample_negatives"):
        subprocess.run(
            [sys.executable, str(ROOT / "jobs" / f"{job}.py"), *flags],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    for model, extra in (("gmf", []), ("mlp", []), ("neumf", ["--set", "ncf.pretrained=true"])):
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "jobs" / "train_ncf.py"),
                *flags,
                "--set",
                f"ncf.model={model}",
                "--set",
                f"rank.ncf_model={model}",
                *extra,
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        m = json.loads((work / "run" / "ncf" / model / "_manifest.json").read_text())
        out[model] = {
            **{k: round(v, 4) for k, v in m["metrics"].items()},
            "best_epoch": m["best_epoch"],
            "epochs_run": m["epochs_run"],
            "samples_per_s": round(m["samples_per_s"]),
            "seconds": round(time.perf_counter() - start, 1),
        }
        out["popularity"] = {k: round(v, 4) for k, v in m["popularity"].items()}
    out["tables"] = {"playlists": m["num_playlists"], "tracks": m["num_tracks"]}
    out["eval_playlists"] = m["eval_playlists"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--playlists", type=int, default=200_000)
    ap.add_argument("--tracks", type=int, default=500_000)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument(
        "--dense-steps",
        type=int,
        default=5,
        help="0: no dense-table steps (at full MPD size they need more memory than 24 GB holds)",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--quality", action="store_true", help="train GMF, MLP, NeuMF on the default synthetic MPD")
    ap.add_argument("--workdir", default="/tmp/bench_ncf")
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    if args.worker:
        return horovod_worker(args)
    if args.quality:
        print(json.dumps({"benchmark": "ncf_quality", **quality(args)}, indent=2))
        return

    import tensorflow as tf

    from mpdrec.models.ncf.model import build_model, dense_layer_flops

    a = tf.random.normal((args.batch, 256))
    w = tf.random.normal((256, 256))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, w).numpy()
    start = time.perf_counter()
    for _ in range(20):
        out = matmul(a, w)
    out.numpy()
    flops_per_s = 20 * 2 * args.batch * 256 * 256 / (time.perf_counter() - start)

    sparse = throughput(args, False, args.steps)
    dense = throughput(args, True, args.dense_steps) if args.dense_steps else None
    two = two_processes(args)
    probe = build_model("neumf", 10, 10, 32, [256, 128, 128, 64])
    per_sample = 3 * dense_layer_flops(probe)
    roof = flops_per_s / per_sample
    print(
        json.dumps(
            {
                "benchmark": "ncf",
                "device": [d.device_type for d in tf.config.list_physical_devices()],
                "model": "neumf latent 32, mlp [256, 128, 128, 64]",
                "tables": {"playlists": args.playlists, "tracks": args.tracks},
                "batch": args.batch,
                "one_process": {
                    "sparse_updates_samples_per_s": round(sparse),
                    **(
                        {"dense_updates_samples_per_s": round(dense), "sparse_over_dense": round(sparse / dense, 1)}
                        if dense
                        else {}
                    ),
                },
                "two_processes_horovod": {
                    "allgather_samples_per_s": round(two["allgather"]),
                    **(
                        {
                            "sparse_as_dense_samples_per_s": round(two["sparse_as_dense"]),
                            "allgather_over_sparse_as_dense": round(two["allgather"] / two["sparse_as_dense"], 1),
                        }
                        if two["sparse_as_dense"]
                        else {}
                    ),
                    "over_one_process": round(two["allgather"] / sparse, 2),
                },
                "allgather_bytes_per_rank_step": {n: traffic(args.batch, n) for n in (2, 8, 16)},
                "sparse_as_dense_bytes_per_rank_step": 2 * (args.playlists + args.tracks) * (32 + 128) * 4,
                "roof": {
                    "matmul_flops_per_s": round(flops_per_s),
                    "training_flops_per_sample": per_sample,
                    "roof_samples_per_s": round(roof),
                    "sparse_share_of_roof": round(sparse / roof, 3),
                },
                "target_samples_per_s": 100_000,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
