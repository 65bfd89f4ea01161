"""The multinomial denoising autoencoder over playlists (Mult-DAE: Liang et al., "Variational
Autoencoders for Collaborative Filtering", WWW 2018), with a sampled softmax.

A playlist is the set of its tracks and of its title's words x (encoder rows: the vocabulary's
tracks, then the words: `data.TitleWords`). Its code is h = tanh(E' x / |x|^1/2 + c): the
L2-normalised input times the encoder table, read as a sum of the rows of its inputs (a lookup, not
a product with a catalogue-wide vector). In training each input is dropped with probability
1 - keep (the kept ones scaled by 1 / keep), and some playlists are shown by their title alone
(`data.Corruption`): the network learns to give back the whole playlist from part of it, or from
its title, which is what continuing a playlist asks. The decoder scores every track t as
h . W_t + b_t, and the loss is the multinomial log-likelihood of the playlist's tracks under the
softmax of those scores (the hello world! team's autoencoder, second in the challenge, also read
the title: through a character CNN blended into its decoder).

The softmax over the whole catalogue costs batch x catalogue x hidden per step, and its gradient,
which the ranks would allreduce, is a catalogue-wide table. Here a step's softmax covers the
batch's own tracks plus `sampled` tracks drawn by popularity ** beta, their scores corrected by
log(draws x probability) (the sampled softmax's logQ correction, Bengio and Senecal 2008), so the
step's work and the decoder rows the ranks exchange are bounded by the batch.

A trained model is two tables of ALS's shape (`mpdrec.models.als.Factors`): a track's factors are
(W_t, b_t) and a playlist's (h, 1), so their dot product is the decoder's score, and the rank
stage's blocked top-N and dot features serve it unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from mpdrec.models.dae.data import input_weights

INIT_SCALE = 0.1  # tables start at a tenth of Glorot's range: tanh starts unsaturated


class PlaylistAutoencoder(tf.Module):
    def __init__(self, tracks: int, words: int, hidden: int, seed: int) -> None:
        super().__init__(name="dae")
        glorot = tf.keras.initializers.GlorotUniform(seed=seed)
        self.encoder = tf.Variable(glorot((tracks + words, hidden)) * INIT_SCALE, name="encoder")
        self.encoder_bias = tf.Variable(tf.zeros(hidden), name="encoder_bias")
        self.decoder = tf.Variable(tf.keras.initializers.GlorotUniform(seed=seed + 1)((tracks, hidden)) * INIT_SCALE)
        self.decoder_bias = tf.Variable(tf.zeros(tracks), name="decoder_bias")

    def weights(self) -> list[tf.Variable]:
        """Every trainable variable in a fixed order (the gradients', the digest's, the broadcast's)."""
        return [self.encoder, self.encoder_bias, self.decoder, self.decoder_bias]

    def encode(self, rows: tf.Tensor, segment: tf.Tensor, playlists: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
        """The codes of `playlists` playlists from their encoder rows (`segment`: each row's
        playlist) with each row's input `weight` (`data.input_weights`, dropped out in training)."""
        summed = tf.math.unsorted_segment_sum(tf.gather(self.encoder, rows) * weight[:, None], segment, playlists)
        return tf.tanh(summed + self.encoder_bias)

    def loss(self, step: dict[str, tf.Tensor], l2: float) -> tf.Tensor:
        """Negative multinomial log-likelihood per playlist over the step's columns (the batch's own
        tracks, then the sampled ones, logQ-corrected), plus L2 on the encoder rows read."""
        codes = self.encode(step["inputs"], step["input_segment"], step["playlists"], step["weight"])
        columns = tf.concat([step["columns"], step["sampled"]], 0)
        correction = tf.concat([tf.zeros(tf.shape(step["columns"])), step["sampled_log_q"]], 0)
        logits = (
            tf.matmul(codes, tf.gather(self.decoder, columns), transpose_b=True)
            + tf.gather(self.decoder_bias, columns)
            - correction
        )
        log_p = tf.nn.log_softmax(logits)
        likelihood = tf.gather_nd(log_p, tf.stack([step["segment"], step["target"]], 1))
        playlists = tf.cast(step["playlists"], tf.float32)
        penalty = 0.5 * l2 * tf.reduce_sum(tf.square(tf.gather(self.encoder, step["inputs"])))
        return (penalty - tf.reduce_sum(likelihood)) / playlists

    def track_factors(self) -> np.ndarray:
        """(W_t, b_t) of every vocabulary row."""
        return np.column_stack([self.decoder.numpy(), self.decoder_bias.numpy()]).astype(np.float32)

    def playlist_factors(self, rows: np.ndarray, segment: np.ndarray, playlists: int) -> np.ndarray:
        """(h, 1) of playlists given as encoder rows and segments, nothing dropped."""
        codes = self.encode(
            tf.constant(rows, tf.int32),
            tf.constant(segment, tf.int32),
            tf.constant(playlists, tf.int32),
            tf.constant(input_weights(segment, playlists)),
        ).numpy()
        return np.column_stack([codes, np.ones(playlists, np.float32)]).astype(np.float32)


def step_signature() -> dict[str, Any]:
    """The traced step's inputs (`data.Step`): one trace for every batch."""
    vector = lambda dtype: tf.TensorSpec([None], dtype)  # noqa: E731
    return {
        "inputs": vector(tf.int32),
        "input_segment": vector(tf.int32),
        "weight": vector(tf.float32),
        "segment": vector(tf.int32),
        "target": vector(tf.int32),
        "playlists": tf.TensorSpec([], tf.int32),
        "columns": vector(tf.int32),
        "sampled": vector(tf.int32),
        "sampled_log_q": vector(tf.float32),
    }
