"""GMF, MLP, NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017) and the two-stream NNCF,
each a small function that builds the Keras network from its sizes (as in the paper's own code).

Every model maps (playlist_idx, track_idx) to one logit; the loss applies the sigmoid. Embedding
lookups give row-sparse gradients (tf.IndexedSlices), which `sparse_optimizer` applies row by row:
with 2.26M tracks a dense optimizer step over whole tables is the slowest possible way to train.
The dense layers have their own optimizer (`SplitOptimizer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

MODELS = ("gmf", "mlp", "neumf", "nncf")
INIT_STDDEV = 0.1  # embeddings; with 0.01 (the paper's) and large batches GMF needed many more epochs to move


Embed = Callable[[int, int, str, Any], tf.Tensor]  # (rows, dim, table name, ids) -> the looked-up rows


def _inputs() -> tuple[tf.keras.Input, tf.keras.Input]:
    return (
        tf.keras.Input(shape=(), dtype=tf.int32, name="playlist"),
        tf.keras.Input(shape=(), dtype=tf.int32, name="track"),
    )


def _lookup(l2: float) -> Embed:
    """Embedding lookups. L2 applies to the rows a batch looks up (an activity penalty), not to the
    whole table: a table-wide penalty would make every gradient dense again."""
    reg = tf.keras.regularizers.l2(l2) if l2 else None

    def embed(n: int, dim: int, name: str, x: tf.Tensor) -> tf.Tensor:
        return tf.keras.layers.Embedding(
            n,
            dim,
            name=name,
            embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=INIT_STDDEV),
            activity_regularizer=reg,
        )(x)

    return embed


def _gmf_vector(embed: Embed, p: Any, t: Any, num_playlists: int, num_tracks: int, factors: int) -> tf.Tensor:
    return tf.keras.layers.Multiply(name="gmf_product")(
        [embed(num_playlists, factors, "gmf_playlist", p), embed(num_tracks, factors, "gmf_track", t)]
    )


def _mlp_vector(
    embed: Embed,
    p: Any,
    t: Any,
    num_playlists: int,
    num_tracks: int,
    layers: list[int],
    batch_norm: bool = False,
    dropout: float = 0.0,
    prefix: str = "mlp",
) -> tf.Tensor:
    """The paper's tower: embeddings of layers[0] / 2 each, concatenated, then Dense(layers[1:])."""
    half = layers[0] // 2
    x = tf.keras.layers.Concatenate(name=f"{prefix}_concat")(
        [embed(num_playlists, half, f"{prefix}_playlist", p), embed(num_tracks, half, f"{prefix}_track", t)]
    )
    for i, units in enumerate(layers[1:]):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"{prefix}_dense_{i}")(x)
        if batch_norm:
            x = tf.keras.layers.BatchNormalization(name=f"{prefix}_bn_{i}")(x)
        if dropout:
            x = tf.keras.layers.Dropout(dropout, name=f"{prefix}_dropout_{i}")(x)
    return x


def _score(
    model: str,
    embed: Embed,
    p: Any,
    t: Any,
    num_playlists: int,
    num_tracks: int,
    factors: int,
    layers: list[int],
    dropout: float,
) -> tf.Tensor:
    """The network named `model` over the embeddings `embed` gives, down to its score."""
    if model == "gmf":
        x = _gmf_vector(embed, p, t, num_playlists, num_tracks, factors)
    elif model == "mlp":
        x = _mlp_vector(embed, p, t, num_playlists, num_tracks, layers)
    elif model == "neumf":
        x = tf.keras.layers.Concatenate(name="neumf_concat")(
            [
                _gmf_vector(embed, p, t, num_playlists, num_tracks, factors),
                _mlp_vector(embed, p, t, num_playlists, num_tracks, layers),
            ]
        )
    elif model == "nncf":
        dot = tf.keras.layers.Dot(axes=1, name="mf_dot")(
            [embed(num_playlists, factors, "mf_playlist", p), embed(num_tracks, factors, "mf_track", t)]
        )
        mlp = _mlp_vector(embed, p, t, num_playlists, num_tracks, layers, batch_norm=True, dropout=dropout)
        x = tf.keras.layers.Dense(layers[-1], activation="relu", name="combine")(
            tf.keras.layers.Concatenate(name="streams")([dot, mlp])
        )
    else:
        raise ValueError(f"unknown model {model!r} (one of {', '.join(MODELS)})")
    return tf.keras.layers.Reshape((), name="score")(tf.keras.layers.Dense(1, name="logit")(x))


def build_model(
    model: str,
    num_playlists: int,
    num_tracks: int,
    factors: int,
    layers: list[int],
    l2: float = 0.0,
    dropout: float = 0.2,
) -> tf.keras.Model:
    """The network named `model`. `factors`: GMF / NNCF dot-stream size; `layers`: MLP tower sizes
    (layers[0] = both embeddings together). NNCF: a dot product of `factors`-sized embeddings and an
    MLP stream with batch normalisation and dropout, combined by dense layers."""
    p, t = _inputs()
    score = _score(model, _lookup(l2), p, t, num_playlists, num_tracks, factors, layers, dropout)
    return tf.keras.Model([p, t], score, name=model)


def head_of(trained: tf.keras.Model, model: str, factors: int, layers: list[int]) -> tf.keras.Model:
    """`trained`'s network after its embedding lookups, with its weights: one input per embedding
    table, named as the table (its rows for a batch of pairs). What the ranking runs in the
    executors, which then hold the dense layers only, while Spark joins the tables' rows to the
    pairs: the tables (2 GB for NeuMF at full MPD) would be in every Python worker otherwise."""
    inputs: dict[str, tf.Tensor] = {}

    def embed(n: int, dim: int, name: str, x: Any) -> tf.Tensor:
        inputs[name] = tf.keras.Input(shape=(dim,), name=name)
        return inputs[name]

    head = tf.keras.Model(inputs, _score(model, embed, None, None, 0, 0, factors, layers, 0.0), name=f"{model}_head")
    for layer in head.layers:
        if layer.weights:
            layer.set_weights(trained.get_layer(layer.name).get_weights())
    return head


def init_neumf_from(neumf: tf.keras.Model, gmf: tf.keras.Model, mlp: tf.keras.Model, alpha: float = 0.5) -> None:
    """He et al. 3.4.1: NeuMF starts from trained GMF and MLP; its output layer is their output layers
    side by side, weighted alpha and 1 - alpha. Layer names match by construction (build_model)."""
    for source, prefix in ((gmf, "gmf_"), (mlp, "mlp_")):
        for layer in source.layers:
            if layer.name.startswith(prefix) and layer.weights:
                neumf.get_layer(layer.name).set_weights(layer.get_weights())
    (kg, bg), (km, bm) = gmf.get_layer("logit").get_weights(), mlp.get_layer("logit").get_weights()
    neumf.get_layer("logit").set_weights(
        [np.concatenate([alpha * kg, (1 - alpha) * km]), alpha * bg + (1 - alpha) * bm]
    )


def start_at_label_prior(model: tf.keras.Model, positive_share: float) -> None:
    """Output bias = the logit of the training labels' positive share (log(1/k) for k negatives per
    positive), so that the first steps learn preferences instead of the label ratio: with Adam at
    1e-3 on the dense weights the bias alone would need about a thousand steps to get there, and
    until then the embeddings would absorb it."""
    share = min(max(positive_share, 1e-6), 1 - 1e-6)
    model.get_layer("logit").bias.assign([float(np.log(share / (1 - share)))])


def embedding_tables(model: tf.keras.Model, side: str) -> dict[str, np.ndarray]:
    """The model's `side` ("playlist" or "track") embedding tables by layer name."""
    return {
        layer.name: layer.get_weights()[0]
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.Embedding) and layer.name.endswith(f"_{side}")
    }


def sparse_optimizer(lr: float, fine_tune: bool = False) -> tf.keras.optimizers.legacy.Optimizer:
    """Adagrad from Keras' legacy optimizers: it applies IndexedSlices gradients to the touched rows
    only (its accumulator is per row). Measured in scripts/bench_ncf.py against a dense step.

    From scratch the accumulator starts near zero, not at Keras' 0.1: embedding gradients start tiny
    (small initial embeddings times small weights), and 0.1 in the denominator kept GMF at the label
    prior for epochs on the synthetic data, while a near-zero start made the first steps lr-sized.
    Fine-tuning trained embeddings (NeuMF from GMF and MLP) wants the opposite: lr-sized first steps
    would scramble them, so the accumulator starts at Keras' 0.1 and steps grow with the gradient."""
    return tf.keras.optimizers.legacy.Adagrad(learning_rate=lr, initial_accumulator_value=0.1 if fine_tune else 1e-6)


class SplitOptimizer:
    """Row-sparse Adagrad (`lr`) for the embedding tables, Adam (`dense_lr`) for every other weight.

    One Adagrad for everything made the MLP tower useless: its first steps are lr-sized whatever the
    gradient (the accumulator starts near zero), and at the lr the embeddings need (0.5) they threw
    the dense layers' weights so far that most ReLUs died (docs/ncf.md), leaving a model that ranked
    by popularity only. Adam at the paper's 1e-3 keeps them alive.
    Adam's slots are dense, which is fine for the dense layers: they are small.
    """

    def __init__(self, model: tf.keras.Model, lr: float, dense_lr: float, fine_tune: bool = False) -> None:
        tables = {
            id(w)
            for layer in model.layers
            if isinstance(layer, tf.keras.layers.Embedding)
            for w in layer.trainable_weights
        }
        self.embeddings = [v for v in model.trainable_variables if id(v) in tables]
        self.dense = [v for v in model.trainable_variables if id(v) not in tables]
        self.sparse_optimizer = sparse_optimizer(lr, fine_tune)
        self.dense_optimizer = tf.keras.optimizers.legacy.Adam(dense_lr)
        # slots exist now, so that a checkpoint restore and Horovod's broadcast find them
        self.sparse_optimizer._create_all_weights(self.embeddings)
        self.dense_optimizer._create_all_weights(self.dense)

    @property
    def trainable(self) -> list[tf.Variable]:
        """The variables in the order `apply` expects their gradients."""
        return self.embeddings + self.dense

    def apply(self, gradients: list[tf.Tensor]) -> None:
        cut = len(self.embeddings)
        self.sparse_optimizer.apply_gradients(zip(gradients[:cut], self.embeddings))
        if self.dense:
            self.dense_optimizer.apply_gradients(zip(gradients[cut:], self.dense))

    def variables(self) -> list[tf.Variable]:
        return self.sparse_optimizer.variables() + self.dense_optimizer.variables()


def dense_layer_flops(model: tf.keras.Model) -> int:
    """Multiply-adds x 2 of one sample's forward pass through the dense layers (embeddings are lookups)."""
    return sum(
        2 * int(w.shape[0]) * int(w.shape[1])
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.Dense)
        for w in layer.weights[:1]
    )
