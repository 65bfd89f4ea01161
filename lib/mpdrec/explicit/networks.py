"""The study's networks over (user, item) embeddings, in TensorFlow (one process: Book-Crossing's
350k training ratings take seconds an epoch on one CPU, far from needing Horovod's ranks).

`dot`: the embeddings' dot product into a dense output unit (a learnt scale and offset; a sigmoid for
the binary target). `deep`: the concatenated embeddings through ReLU layers with dropout, a skip
connection from the first layer around the others, into the output unit. Regression targets train
with MSE or MAE, the binary target with cross-entropy. Training stops when the validation loss has not
improved for `patience` epochs and keeps the best epoch's weights; the validation loss is over the
ratings the model can predict (user and item seen in training), the rest take the shared fallback.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpdrec.config import ExplicitConfig
from mpdrec.explicit.arrays import Fallback, Ratings
from mpdrec.explicit.targets import Target

NETWORKS = ("dot", "deep")


def build(
    kind: str, num_users: int, num_items: int, cfg: ExplicitConfig, binary: bool, mean_target: float, seed: int
) -> Any:
    """An uncompiled Keras model: inputs `user` and `item` (int ids), one output."""
    import tensorflow as tf

    layers = tf.keras.layers
    user, item = layers.Input((), dtype="int32", name="user"), layers.Input((), dtype="int32", name="item")
    u = layers.Embedding(
        num_users,
        cfg.factors,
        embeddings_initializer=tf.keras.initializers.RandomNormal(0.0, 0.05, seed=seed),
        name="user_embedding",
    )(user)
    i = layers.Embedding(
        num_items,
        cfg.factors,
        embeddings_initializer=tf.keras.initializers.RandomNormal(0.0, 0.05, seed=seed + 1),
        name="item_embedding",
    )(item)
    if kind == "dot":
        h = layers.Dot(axes=1)([u, i])
    else:
        joined = layers.Concatenate()([u, i])
        first = layers.Dropout(cfg.dropout)(layers.Dense(cfg.hidden[0], activation="relu")(joined))
        h = first
        for size in cfg.hidden[1:]:
            h = layers.Dropout(cfg.dropout)(layers.Dense(size, activation="relu")(h))
        if len(cfg.hidden) > 1:
            skip = first if cfg.hidden[0] == cfg.hidden[-1] else layers.Dense(cfg.hidden[-1], use_bias=False)(first)
            h = layers.Add()([h, skip])
    # the output starts at the mean target (its logit for the binary target): early epochs learn the
    # pattern, not the offset
    bias = float(np.log(mean_target / (1 - mean_target))) if binary else mean_target
    out = layers.Dense(
        1, activation="sigmoid" if binary else None, bias_initializer=tf.keras.initializers.Constant(bias)
    )(h)
    return tf.keras.Model([user, item], layers.Reshape(())(out), name=kind)


def fit_predict(
    kind: str,
    loss: str,
    target: Target,
    train: Ratings,
    validation: Ratings,
    test: Ratings,
    fallback: Fallback,
    num_users: int,
    num_items: int,
    cfg: ExplicitConfig,
    seed: int,
) -> dict[str, Any]:
    """Train one network on `target` with `loss`; raw predictions (NaN-free) for validation and test."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    binary = target.kind == "binary"
    y = target.of(train.ratings).astype(np.float32)
    mean = float(np.clip(y.mean(), 1e-3, 1 - 1e-3)) if binary else float(y.mean())
    model = build(kind, num_users, num_items, cfg, binary, mean, seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.lr), loss="binary_crossentropy" if binary else loss)
    warm = fallback.warm(validation)

    def inputs(r: Ratings, rows: Any = slice(None)) -> dict[str, np.ndarray]:
        return {"user": r.users[rows].astype(np.int32), "item": r.items[rows].astype(np.int32)}

    stop = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    history = model.fit(
        inputs(train),
        y,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        verbose=0,
        shuffle=True,
        validation_data=(inputs(validation, warm), target.of(validation.ratings[warm]).astype(np.float32)),
        callbacks=[stop] if cfg.patience else [],
    )
    losses = [float(v) for v in history.history["val_loss"]]

    def predict(r: Ratings) -> np.ndarray:
        return model.predict(inputs(r), batch_size=8192, verbose=0).astype(np.float64)

    return {
        "validation": predict(validation),
        "test": predict(test),
        "epochs": len(losses),
        "best_epoch": int(np.argmin(losses)) + 1,
        "val_loss": losses,
        "parameters": int(model.count_params()),
    }
