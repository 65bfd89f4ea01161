"""What NCF training writes (rank 0 only): per-epoch checkpoints that a restarted run resumes from,
and the exported model, embeddings, history and its plot.

Files are written to a local temporary directory by TensorFlow / Keras / pyarrow and then copied to
the run directory with pyarrow's filesystems, so the same code writes to a local disk, gs://, s3://
or hdfs://. A checkpoint is complete once its `state.json` exists (written last).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
import zipfile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mpdrec.io.arrow_fs import resolve
from mpdrec.io.fs import FileStore
from mpdrec.io.paths import basename, join

STATE = "state.json"
HEAD = "head.keras"  # the network after its embedding lookups (`model.head_of`): what the ranking scores with
_EPOCH_DIR = re.compile(r"epoch-(\d+)$")
EMBEDDING_ROWS_PER_GROUP = 100_000


def upload_dir(local_dir: str, uri: str) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(local_dir, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download_dir(uri: str, local_dir: str) -> None:
    """A directory, or a single file when `uri` names one (to the local path `local_dir`)."""
    fs, path = resolve(uri)
    pafs.copy_files(path, local_dir, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())


def save_checkpoint(
    store: FileStore, root: str, checkpoint: Any, epoch: int, state: dict[str, Any], keep: set[int]
) -> None:
    """`root/epoch-<epoch>/`: the tf.train.Checkpoint's files, then the training state last. Older
    checkpoints not in `keep` (the best one) are deleted."""
    target = join(root, f"epoch-{epoch:04d}")
    store.delete(target)  # a half-written try of this epoch, if any
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.write(os.path.join(tmp, "ckpt"))
        upload_dir(tmp, target)
    store.write_text(join(target, STATE), json.dumps(state, indent=1))
    for uri, e in _checkpoints(store, root):
        if e != epoch and e not in keep:
            store.delete(uri)


def _checkpoints(store: FileStore, root: str) -> list[tuple[str, int]]:
    """(directory, epoch) of every complete checkpoint under `root`, oldest first."""
    found = []
    for info in store.glob(join(root, "epoch-*", STATE)):
        directory = info.uri.rsplit("/", 1)[0]
        m = _EPOCH_DIR.search(basename(directory))
        if m:
            found.append((directory, int(m.group(1))))
    return sorted(found, key=lambda x: x[1])


def latest_checkpoint(store: FileStore, root: str) -> tuple[str, dict[str, Any]] | None:
    """(directory, state) of the newest complete checkpoint, or None."""
    found = _checkpoints(store, root)
    if not found:
        return None
    uri = found[-1][0]
    return uri, json.loads(store.read_text(join(uri, STATE)))


def restore_checkpoint(checkpoint: Any, uri: str, partial: bool = False) -> None:
    """Read a checkpoint directory into `checkpoint` (model only with `partial`)."""
    with tempfile.TemporaryDirectory() as tmp:
        download_dir(uri, tmp)
        status = checkpoint.read(os.path.join(tmp, "ckpt"))
        (status.expect_partial() if partial else status.assert_existing_objects_matched())


def save_keras(model: Any, path: str) -> None:
    """`model` as a `.keras` archive that `tf.keras.models.load_model` reads (metadata.json,
    config.json, model.weights.h5), with the weights written to a file by `save_weights` and streamed
    into the zip. Keras 2.15's `model.save` builds the weights' HDF5 in a BytesIO and then copies it,
    which at full MPD table sizes held the tables three times over at the end of training
    (docs/scale.md)."""
    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "model.weights.h5")
        model.save_weights(weights)
        config = tf.keras.saving.serialize_keras_object(model)
        metadata = {
            "keras_version": keras.__version__,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        }
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
            archive.writestr("config.json", json.dumps(config))
            archive.write(weights, "model.weights.h5")


def write_embeddings(tables: dict[str, np.ndarray], id_column: str, path: str) -> None:
    """One Parquet file: `id_column` (0..n-1) and one array<float> column per embedding table."""
    n = len(next(iter(tables.values())))
    schema = pa.schema([(id_column, pa.int32())] + [(name, pa.list_(pa.float32())) for name in tables])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, EMBEDDING_ROWS_PER_GROUP):
            stop = min(start + EMBEDDING_ROWS_PER_GROUP, n)
            columns = [pa.array(np.arange(start, stop, dtype=np.int32))]
            for table in tables.values():
                block = np.ascontiguousarray(table[start:stop], dtype=np.float32)
                offsets = np.arange(stop - start + 1, dtype=np.int32) * block.shape[1]
                columns.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(block.reshape(-1))))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def plot_history(
    history: list[dict[str, Any]],
    baseline: dict[str, float],
    title: str,
    path: str,
    start: dict[str, float] | None = None,
) -> None:
    """Training loss and the leave-one-out metrics per epoch; popularity on the same candidates dashed;
    a pretrained model's starting point (`start`) as epoch 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(epochs, [h["loss"] for h in history], marker="o")
    left.set(title="training loss (log loss)", xlabel="epoch")
    for i, name in enumerate(("hr@10", "ndcg@10", "auc")):
        color = f"C{i}"
        right.plot(
            ([0] if start else []) + epochs,
            ([start[name]] if start else []) + [h[name] for h in history],
            marker="o",
            color=color,
            label=name,
        )
        right.axhline(baseline[name], color=color, linestyle="--", linewidth=1, label=f"{name} popularity")
    right.set(title="leave-one-out evaluation", xlabel="epoch", ylim=(0, 1))
    right.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(tests: dict[str, dict[str, Any]], title: str, path: str) -> None:
    """One confusion matrix per balanced test (`mpdrec.metrics.leave_one_out.balanced`), with its
    accuracy and ROC AUC in the panel's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tests), figsize=(4.5 * len(tests), 4), squeeze=False)
    for ax, (name, t) in zip(axes[0], tests.items()):
        cells = np.array([[t["true_negative"], t["false_positive"]], [t["false_negative"], t["true_positive"]]])
        ax.imshow(cells, cmap="Blues")
        for (i, j), v in np.ndenumerate(cells):
            ax.text(j, i, f"{v:,}", ha="center", va="center", color="black")
        ax.set_xticks([0, 1], ["predicted no", "predicted yes"])
        ax.set_yticks([0, 1], ["negative", "held-out track"])
        ax.set_title(f"{name}: accuracy {t['accuracy']:.3f}, ROC AUC {t['roc_auc']:.3f}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
