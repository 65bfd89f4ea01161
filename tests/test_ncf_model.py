"""NCF networks: shapes and parameter counts follow their configured sizes; embedding gradients are
row-sparse and the optimizer updates only the rows a batch touched."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from mpdrec.models.ncf.model import (  # noqa: E402
    SplitOptimizer,
    build_model,
    dense_layer_flops,
    embedding_tables,
    head_of,
    init_neumf_from,
    start_at_label_prior,
)

P, T = 50, 80


def _dense(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


@pytest.mark.parametrize(
    "name, factors, layers, expected",
    [
        ("gmf", 8, [16], (P + T) * 8 + 8 + 1),
        ("mlp", 8, [64, 32, 16], (P + T) * 32 + _dense([64, 32, 16]) + 16 + 1),
        # the seed configuration: NeuMF latent 32, MLP [256, 128, 128, 64]
        ("neumf", 32, [256, 128, 128, 64], (P + T) * 32 + (P + T) * 128 + _dense([256, 128, 128, 64]) + (32 + 64) + 1),
        # NNCF: MF latent 50, MLP latents 10 (layers[0] = 2 x 10), batch norm (4 weights per unit)
        (
            "nncf",
            50,
            [20, 16, 8],
            (P + T) * 50 + (P + T) * 10 + _dense([20, 16, 8]) + 4 * (16 + 8) + (1 + 8) * 8 + 8 + 8 + 1,
        ),
    ],
)
def test_parameter_counts_follow_the_config(name, factors, layers, expected):
    model = build_model(name, P, T, factors, layers)
    assert model.count_params() == expected
    out = model([tf.constant([0, 3, 49]), tf.constant([1, 79, 5])], training=False)
    assert out.shape == (3,)


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf", "nncf"])
def test_the_head_scores_the_looked_up_rows_like_the_model(name):
    model = build_model(name, P, T, 6, [16, 8, 4])
    for layer in model.layers:  # weights away from their initial values, batch-norm statistics too
        layer.set_weights(
            [
                w + np.random.default_rng(len(layer.name)).normal(0, 0.3, w.shape).astype(w.dtype)
                for w in layer.get_weights()
            ]
        )
    head = head_of(model, name, 6, [16, 8, 4])
    assert not any(isinstance(layer, tf.keras.layers.Embedding) for layer in head.layers)
    p, t = np.array([0, 3, 49, 7]), np.array([1, 79, 5, 5])
    rows = {
        **{k: v[p] for k, v in embedding_tables(model, "playlist").items()},
        **{k: v[t] for k, v in embedding_tables(model, "track").items()},
    }
    assert set(rows) == {i.name for i in head.inputs}
    expected = model([tf.constant(p), tf.constant(t)], training=False).numpy()
    np.testing.assert_allclose(head(rows, training=False).numpy(), expected, rtol=1e-5, atol=1e-6)


def _batch_gradients(model: Any, opt: SplitOptimizer) -> list:
    """Gradients of one batch, playlists 1 and 2 with tracks 7 and 9, in `opt.trainable` order."""
    with tf.GradientTape() as tape:
        logits = model([tf.constant([1, 2]), tf.constant([7, 9])], training=True)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.constant([1.0, 0.0]), logits))
    return tape.gradient(loss, opt.trainable)


def test_embedding_updates_touch_only_the_batch_rows():
    model = build_model("neumf", P, T, 4, [8, 4])
    opt = SplitOptimizer(model, 0.1, 0.01)
    assert len(opt.embeddings) == 4 and len(opt.trainable) == len(model.trainable_variables)
    table, dense = model.get_layer("gmf_track").embeddings, model.get_layer("mlp_dense_0").kernel
    before, dense_before = table.numpy().copy(), dense.numpy().copy()
    grads = _batch_gradients(model, opt)
    position = next(i for i, v in enumerate(opt.trainable) if v is table)
    assert isinstance(grads[position], tf.IndexedSlices)
    opt.apply(grads)
    changed = np.flatnonzero(np.any(table.numpy() != before, axis=1))
    assert changed.tolist() == [7, 9]
    # Adam's first step moves each dense weight by about its learning rate, not by Adagrad's 0.1
    step = np.abs(dense.numpy() - dense_before)
    assert 0 < step.max() <= 0.011


def test_flops_count_the_dense_layers():
    model = build_model("mlp", P, T, 8, [64, 32, 16])
    assert dense_layer_flops(model) == 2 * (64 * 32 + 32 * 16 + 16 * 1)


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf", "nncf"])
def test_untrained_models_predict_the_label_prior(name):
    model = build_model(name, P, T, 4, [8, 4])
    start_at_label_prior(model, 0.2)  # 4 negatives per positive
    logits = model([tf.constant([0, 1, 2]), tf.constant([3, 4, 5])], training=False).numpy()
    assert model.get_layer("logit").bias.numpy()[0] == pytest.approx(np.log(0.25))
    assert np.abs(tf.sigmoid(logits).numpy() - 0.2).max() < 0.15  # small initial weights: near the prior


@pytest.mark.parametrize("fine_tune,smallest,largest", [(False, 0.4, 0.5), (True, 0.0, 0.2)])
def test_fine_tuning_starts_with_small_embedding_steps(fine_tune, smallest, largest):
    """From scratch Adagrad's first step is lr-sized (0.5 here); fine-tuning trained embeddings
    (NeuMF from GMF and MLP) starts with steps the size of the gradient instead."""
    model = build_model("neumf", P, T, 4, [8, 4])
    opt = SplitOptimizer(model, 0.5, 1e-3, fine_tune=fine_tune)
    table = model.get_layer("gmf_track").embeddings
    before = table.numpy().copy()
    opt.apply(_batch_gradients(model, opt))
    step = np.abs(table.numpy() - before)[[7, 9]]
    assert smallest < step.max() <= largest


@pytest.mark.parametrize("alpha", [0.5, 0.8])
def test_pretrained_neumf_starts_as_the_alpha_blend_of_gmf_and_mlp(alpha):
    """He et al. 3.4.1: NeuMF's first logit is alpha * GMF's + (1 - alpha) * MLP's."""
    tf.keras.utils.set_random_seed(3)
    gmf, mlp, neumf = (build_model(name, P, T, 4, [8, 4]) for name in ("gmf", "mlp", "neumf"))
    for source in (gmf, mlp):  # trained-looking weights: nothing at its initial value
        source.set_weights(
            [np.random.default_rng(1).normal(size=w.shape).astype(np.float32) for w in source.get_weights()]
        )
    init_neumf_from(neumf, gmf, mlp, alpha)
    p, t = tf.constant([0, 3, 7], tf.int32), tf.constant([1, 1, 9], tf.int32)
    expected = alpha * gmf([p, t]).numpy() + (1 - alpha) * mlp([p, t]).numpy()
    np.testing.assert_allclose(neumf([p, t]).numpy(), expected, rtol=1e-5, atol=1e-5)
