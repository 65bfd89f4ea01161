"""Adam whose moments move only on the rows a step touches ("lazy" Adam), for the autoencoder's
catalogue-sized tables.

Keras's Adam, given a row-sparse gradient, still decays both moments of every row of the table at
every step: two passes over two catalogue x hidden tables for a batch that reads a few thousand
rows, which made the optimizer most of a step's time (docs/dae.md). The lazy form updates a row's
moments and weights when the row has a gradient, as TF Addons' LazyAdam did (that library is no
longer maintained, and Keras has no equivalent). Dense gradients get Adam's usual update, and a
step in which every row has a gradient is Keras's (legacy) Adam exactly: the same bias correction
and epsilon.
"""

from __future__ import annotations

import tensorflow as tf


class LazyAdam(tf.Module):
    def __init__(
        self, variables: list[tf.Variable], lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7
    ) -> None:
        super().__init__(name="lazy_adam")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]

    def variables_to_share(self) -> list[tf.Variable]:
        """Every slot and the step count (what rank 0 broadcasts and a checkpoint keeps)."""
        return [self.iterations, *self.m, *self.v]

    def apply(self, gradients: list[tf.Tensor | tf.IndexedSlices], variables: list[tf.Variable]) -> None:
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, tf.float32)
        step = self.lr * tf.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        for g, var, m, v in zip(gradients, variables, self.m, self.v):
            if isinstance(g, tf.IndexedSlices):
                rows, at = tf.unique(g.indices)
                values = tf.math.unsorted_segment_sum(g.values, at, tf.shape(rows)[0])  # repeated rows add up
                m_rows = self.beta1 * tf.gather(m, rows) + (1.0 - self.beta1) * values
                v_rows = self.beta2 * tf.gather(v, rows) + (1.0 - self.beta2) * tf.square(values)
                m.scatter_update(tf.IndexedSlices(m_rows, rows))
                v.scatter_update(tf.IndexedSlices(v_rows, rows))
                var.scatter_sub(tf.IndexedSlices(step * m_rows / (tf.sqrt(v_rows) + self.eps), rows))
            else:
                m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
                v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
                var.assign_sub(step * m / (tf.sqrt(v) + self.eps))
