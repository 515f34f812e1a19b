"""Clipping and norms: forward values against NumPy, gradients against central differences."""

import numpy as np

import tensorweave as tf
from tests.op_check import check_forward, check_op


def test_clip_by_value_forward_and_gradient():
    rng = np.random.default_rng(9)
    x = rng.uniform(-2, 2, size=(4, 5))
    x[np.abs(np.abs(x) - 1) < 0.05] = 0.3  # stay away from the bounds for finite differences
    check_op(lambda t: tf.clip_by_value(t, -1.0, 1.0), [x], lambda a: np.clip(a, -1.0, 1.0))
    check_forward(lambda t: tf.clip_by_value(t, -1, 1), [x.astype(np.float32)],
                  lambda a: np.clip(a, np.float32(-1), np.float32(1)))
    lo, hi = np.float64([-0.5, -1, -1.5, -2, 0]), np.float64([0.5, 1, 1.5, 2, 0.1])
    check_op(lambda t, a, b: tf.clip_by_value(t, a, b), [x, lo, hi], np.clip)
    with tf.Graph().as_default():
        t = tf.placeholder(tf.float32, [4, 5])
        out = tf.clip_by_value(t, 0.0, 1.0)
        assert out.op.type == "Maximum" and out.op.name == "clip_by_value"
        assert out.op.inputs[0].op.type == "Minimum"


def test_clip_by_norm():
    x = np.random.default_rng(10).uniform(-2, 2, size=(3, 4))

    def reference(a, clip=1.5, axes=None):
        norm = np.sqrt(np.sum(a * a, axis=axes, keepdims=True))
        return (a * clip / np.maximum(norm, clip)).astype(a.dtype)
    check_op(lambda t: tf.clip_by_norm(t, 1.5), [x], reference)
    check_op(lambda t: tf.clip_by_norm(t, 1.5, axes=[1]), [x], lambda a: reference(a, axes=1))
    check_op(lambda t: tf.clip_by_norm(t, 100.0), [x], lambda a: reference(a, clip=100.0))
    check_forward(lambda t: tf.clip_by_norm(t, 1.5), [x.astype(np.float32)], reference)
    # An all-zero tensor stays zero and its gradient stays finite (no 0/0 in the norm).
    with tf.Graph().as_default():
        z = tf.constant(np.zeros((2, 2)))
        out = tf.clip_by_norm(z, 1.0)
        g = tf.gradients(tf.reduce_sum(out), z)[0]
        with tf.Session() as sess:
            out, g = sess.run([out, g])
    np.testing.assert_array_equal(out, 0.0)
    assert np.all(np.isfinite(g))


def test_global_norm_and_clip_by_global_norm():
    rng = np.random.default_rng(11)
    a, b = rng.uniform(-2, 2, size=(2, 3)), rng.uniform(-2, 2, size=(4,))
    norm = np.sqrt(np.sum(a * a) + np.sum(b * b))
    check_op(lambda x, y: tf.global_norm([x, y]), [a, b], lambda x, y: norm)
    for clip in (1.0, 100.0):
        scale = clip / max(norm, clip)
        for i in range(2):
            check_op(lambda x, y: tf.clip_by_global_norm([x, y], clip)[0][i], [a, b],
                     lambda x, y: [x, y][i] * scale)
    with tf.Graph().as_default():
        x, y = tf.constant(a), tf.constant(b)
        clipped, use_norm = tf.clip_by_global_norm([x, None, y], 1.0)
        assert clipped[1] is None
        with tf.Session() as sess:
            got_norm, got_a = sess.run([use_norm, clipped[0]])
    np.testing.assert_allclose(got_norm, norm)
    np.testing.assert_allclose(got_a, a / norm)
