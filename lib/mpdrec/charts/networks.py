"""The study's five shallow networks, trained on IMF's weighted objective: every (country, song) pair,
preference p = 1 where the country streamed the song (training matrix), weight c = 1 + alpha x r',
squared error; scored by EPR like IMF.

`dot`: country . song embeddings. `bias`: + a bias per country and per song. `mlp`: the embeddings
through ReLU layers with batch norm (dropout after the first) + the biases. `text`: + the song title
(its first `title_tokens` normalised words, embedded, an LSTM, a ReLU layer) into the MLP. `artist`:
+ an artist embedding into the MLP. One process: a charts matrix is at most a few dozen countries by
`top_songs`, seconds an epoch on one CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpdrec.charts.epr import expected_percentile_rank
from mpdrec.charts.matrix import ChartsData
from mpdrec.config import ChartsConfig
from mpdrec.text import normalize_name


def title_tokens(titles: list[str], length: int) -> tuple[np.ndarray, int]:
    """(songs x length) word ids, 0 = padding, ids by first appearance; and the vocabulary size."""
    vocab: dict[str, int] = {}
    out = np.zeros((len(titles), length), dtype=np.int32)
    for s, title in enumerate(titles):
        for k, word in enumerate(normalize_name(title).split()[:length]):
            out[s, k] = vocab.setdefault(word, len(vocab) + 1)
    return out, len(vocab) + 1


def artist_ids(artists: list[str]) -> tuple[np.ndarray, int]:
    """An id per song's artist (0 = unknown), by first appearance; and the number of ids."""
    ids: dict[str, int] = {"": 0}
    return np.array([ids.setdefault(a, len(ids)) for a in artists], dtype=np.int32), len(ids)


def build(kind: str, countries: int, songs: int, vocab: int, artists: int, cfg: ChartsConfig, seed: int) -> Any:
    import tensorflow as tf

    layers = tf.keras.layers
    country, song = layers.Input((), dtype="int32", name="country"), layers.Input((), dtype="int32", name="song")
    title = layers.Input((cfg.title_tokens,), dtype="int32", name="title")
    artist = layers.Input((), dtype="int32", name="artist")

    def embed(n: int, size: int, x: Any, k: int) -> Any:
        init = tf.keras.initializers.RandomNormal(0.0, 0.1, seed=seed + k)
        return layers.Embedding(n, size, embeddings_initializer=init)(x)

    c, s = embed(countries, cfg.factors, country, 0), embed(songs, cfg.factors, song, 1)
    if kind == "dot":
        out = layers.Dot(axes=1)([c, s])
    else:
        biases = [layers.Reshape((1,))(embed(countries, 1, country, 2)), layers.Reshape((1,))(embed(songs, 1, song, 3))]
        if kind == "bias":
            out = layers.Add()([layers.Dot(axes=1)([c, s]), *biases])
        else:
            features = [c, s]
            if kind in ("text", "artist"):
                words = layers.Embedding(vocab, cfg.text_units, mask_zero=True)(title)
                features.append(layers.Dense(cfg.text_units, activation="relu")(layers.LSTM(cfg.text_units)(words)))
            if kind == "artist":
                features.append(embed(artists, cfg.factors, artist, 4))
            h = layers.Concatenate()(features)
            for k, units in enumerate(cfg.hidden):
                h = layers.Activation("relu")(layers.BatchNormalization()(layers.Dense(units)(h)))
                if k == 0:
                    h = layers.Dropout(cfg.dropout)(h)
            out = layers.Add()([layers.Dense(1)(h), *biases])
    return tf.keras.Model([country, song, title, artist], out, name=kind)  # (batch, 1): Keras weights per row


def fit_scores(kind: str, data: ChartsData, alpha: float, cfg: ChartsConfig, seed: int) -> dict[str, Any]:
    """Train one network; its scores' EPR on train and validation."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    n_c, n_s = data.train.shape
    tokens, vocab = title_tokens(data.titles, cfg.title_tokens)
    artist, n_artists = artist_ids(data.artists)
    rows, cols = np.divmod(np.arange(n_c * n_s), n_s)
    inputs = {
        "country": rows.astype(np.int32),
        "song": cols.astype(np.int32),
        "title": tokens[cols],
        "artist": artist[cols],
    }
    r = data.train.reshape(-1)
    model = build(kind, n_c, n_s, vocab, n_artists, cfg, seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.lr), loss="mse")
    history = model.fit(
        inputs,
        (r > 0).astype(np.float32),
        sample_weight=(1.0 + alpha * r).astype(np.float32),
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        shuffle=True,
        verbose=0,
    )
    scores = model.predict(inputs, batch_size=16384, verbose=0).reshape(n_c, n_s).astype(np.float64)
    return {
        "epr_train": expected_percentile_rank(scores, data.train),
        "epr_validation": expected_percentile_rank(scores, data.validation, data.train > 0),
        "loss": float(history.history["loss"][-1]),
        "parameters": int(model.count_params()),
    }
