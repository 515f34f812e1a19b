"""`tf.losses`: each loss against a NumPy reference under every reduction and several weight
shapes, gradients against central differences, and the LOSSES collection helpers."""

import numpy as np
import pytest

import tensorweave as tf
from tests.op_check import run_op

RNG = np.random.default_rng(99)
R = tf.losses.Reduction


def reduce_ref(losses, weights, reduction):
    """TF1's compute_weighted_loss in NumPy."""
    weights = np.broadcast_to(np.asarray(weights, np.float64), losses.shape)
    weighted = losses * weights
    if reduction == R.NONE:
        return weighted
    total = weighted.sum()
    denominator = {R.SUM: 1.0, R.MEAN: weights.sum(), R.SUM_OVER_BATCH_SIZE: losses.size,
                   R.SUM_BY_NONZERO_WEIGHTS: np.count_nonzero(weights)}[reduction]
    return total / denominator if denominator else 0.0


def log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


LABELS = RNG.uniform(0, 1, size=(4, 3))
PREDICTIONS = RNG.uniform(0.05, 0.95, size=(4, 3))

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name -> (call, per-element reference, its derivative with respect to the predictions)
ELEMENTWISE = {
    "mean_squared_error": (lambda lb, p, **kw: tf.losses.mean_squared_error(lb, p, **kw),
                           lambda lb, p: (p - lb) ** 2, lambda lb, p: 2 * (p - lb)),
    "absolute_difference": (lambda lb, p, **kw: tf.losses.absolute_difference(lb, p, **kw),
                            lambda lb, p: np.abs(p - lb), lambda lb, p: np.sign(p - lb)),
    "huber_loss": (lambda lb, p, **kw: tf.losses.huber_loss(lb, 3 * p, delta=0.7, **kw),
                   lambda lb, p: np.where(np.abs(3 * p - lb) <= 0.7, 0.5 * (3 * p - lb) ** 2,
                                          0.7 * (np.abs(3 * p - lb) - 0.35)),
                   lambda lb, p: 3 * np.clip(3 * p - lb, -0.7, 0.7)),
    "log_loss": (lambda lb, p, **kw: tf.losses.log_loss(lb, p, **kw),
                 lambda lb, p: -lb * np.log(p + 1e-7) - (1 - lb) * np.log(1 - p + 1e-7),
                 lambda lb, p: -lb / (p + 1e-7) + (1 - lb) / (1 - p + 1e-7)),
    "sigmoid_cross_entropy": (lambda lb, p, **kw: tf.losses.sigmoid_cross_entropy(lb, 4 * p - 2, **kw),
                              lambda lb, p: np.maximum(4 * p - 2, 0) - (4 * p - 2) * lb +
                              np.log1p(np.exp(-np.abs(4 * p - 2))),
                              lambda lb, p: 4 * (_sigmoid(4 * p - 2) - lb)),
}
WEIGHTS = [1.0, 2.5, np.array([[0.0], [1.0], [2.0], [0.0]]), np.array([[1.0, 0.0, 3.0]]),
           RNG.uniform(0, 2, size=(4, 3)) * (RNG.uniform(size=(4, 3)) > 0.3)]


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("reduction", [R.NONE, R.SUM, R.MEAN, R.SUM_OVER_BATCH_SIZE, R.SUM_BY_NONZERO_WEIGHTS])
def test_elementwise_losses_under_every_reduction(name, reduction):
    call, ref, _ = ELEMENTWISE[name]
    labels, predictions = LABELS.astype(np.float32), PREDICTIONS.astype(np.float32)
    for weights in WEIGHTS:
        got = run_op(lambda lb, p: call(lb, p, weights=weights, reduction=reduction), [labels, predictions])
        want = reduce_ref(ref(LABELS, PREDICTIONS), weights, reduction)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=f"weights={weights}")


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_loss_gradients(name):
    """Losses compute in float32 (as TF1's), too coarse for finite differences: the gradient is
    checked against the derivative of the reference instead."""
    call, _, derivative = ELEMENTWISE[name]
    weights = np.array([[1.0], [0.0], [2.0], [0.5]])
    for reduction, scale in ((R.SUM_BY_NONZERO_WEIGHTS, 1 / 9), (R.SUM, 1.0), (R.MEAN, 1 / 10.5)):
        got = run_op(lambda p: tf.gradients(call(LABELS, p, weights=weights, reduction=reduction), p)[0],
                     [PREDICTIONS])
        want = derivative(LABELS, PREDICTIONS) * weights * scale
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=reduction)


def test_default_reduction_is_sum_by_nonzero_weights():
    weights = np.array([[0.0], [1.0], [3.0], [0.0]])
    got = run_op(lambda lb, p: tf.losses.mean_squared_error(lb, p, weights=weights), [LABELS, PREDICTIONS])
    want = ((PREDICTIONS - LABELS) ** 2 * weights).sum() / 6
    np.testing.assert_allclose(got, want, rtol=1e-5)
    zero = run_op(lambda lb, p: tf.losses.mean_squared_error(lb, p, weights=0.0), [LABELS, PREDICTIONS])
    assert zero == 0.0  # no non-zero weight: 0, not NaN


def test_softmax_and_sparse_softmax_cross_entropy():
    logits = RNG.normal(size=(5, 4)) * 2
    labels = np.array([3, 0, 1, 1, 2])
    onehot = np.eye(4)[labels]
    per_example = -log_softmax(logits)[np.arange(5), labels]
    weights = np.array([1.0, 0.0, 2.0, 1.0, 0.5])
    for w in (1.0, weights):
        want = reduce_ref(per_example, w, R.SUM_BY_NONZERO_WEIGHTS)
        dense = run_op(lambda lg: tf.losses.softmax_cross_entropy(onehot, lg, weights=w), [logits])
        sparse = run_op(lambda lg: tf.losses.sparse_softmax_cross_entropy(labels.astype(np.int32), lg, weights=w),
                        [logits])
        np.testing.assert_allclose(dense, want, rtol=1e-6)
        np.testing.assert_allclose(sparse, want, rtol=1e-6)
    # Labels of shape [batch, 1] are squeezed, as TF1 does.
    col = run_op(lambda lg: tf.losses.sparse_softmax_cross_entropy(labels[:, None].astype(np.int64), lg), [logits])
    np.testing.assert_allclose(col, per_example.mean(), rtol=1e-6)
    want_grad = (np.exp(log_softmax(logits)) - onehot) * weights[:, None] / 4
    for loss in (lambda lg: tf.losses.softmax_cross_entropy(onehot, lg, weights=weights),
                 lambda lg: tf.losses.sparse_softmax_cross_entropy(labels, lg, weights=weights)):
        got = run_op(lambda lg: tf.gradients(loss(lg), lg)[0], [logits])
        np.testing.assert_allclose(got, want_grad, rtol=1e-5, atol=1e-7)


def test_label_smoothing():
    logits = RNG.normal(size=(3, 4))
    onehot = np.eye(4)[[0, 2, 3]]
    smoothed = onehot * 0.9 + 0.1 / 4
    got = run_op(lambda lg: tf.losses.softmax_cross_entropy(onehot, lg, label_smoothing=0.1), [logits])
    np.testing.assert_allclose(got, np.mean(-(smoothed * log_softmax(logits)).sum(axis=1)), rtol=1e-6)
    z = np.array([[0.0, 1.0], [1.0, 0.0]])
    x = RNG.normal(size=(2, 2))
    smoothed = z * 0.8 + 0.5 * 0.2
    got = run_op(lambda lg: tf.losses.sigmoid_cross_entropy(z, lg, label_smoothing=0.2), [x])
    want = np.maximum(x, 0) - x * smoothed + np.log1p(np.exp(-np.abs(x)))
    np.testing.assert_allclose(got, want.mean(), rtol=1e-6)


def test_no_gradient_flows_into_softmax_cross_entropy_labels():
    with tf.Graph().as_default():
        labels = tf.placeholder(tf.float32, [2, 3])
        logits = tf.placeholder(tf.float32, [2, 3])
        loss = tf.losses.softmax_cross_entropy(labels, logits)
        assert tf.gradients(loss, labels)[0] is None
        assert tf.gradients(loss, logits)[0] is not None


def test_losses_collection_and_totals():
    with tf.Graph().as_default():
        a = tf.losses.mean_squared_error([1.0, 2.0], [1.5, 2.0])
        b = tf.losses.absolute_difference([1.0], [3.0], loss_collection=None)
        c = tf.losses.compute_weighted_loss(tf.constant([1.0, 3.0]), scope="extra")
        assert tf.losses.get_losses() == [a, c]
        assert tf.get_collection(tf.GraphKeys.LOSSES) == [a, c]
        assert tf.losses.get_losses(scope="extra") == [c]
        assert a.shape.as_list() == [] and b.dtype == tf.float32
        reg = tf.constant(0.25)
        tf.add_to_collection(tf.GraphKeys.REGULARIZATION_LOSSES, reg)
        tf.losses.add_loss(tf.constant(10.0))
        assert tf.losses.get_regularization_losses() == [reg]
        total = tf.losses.get_total_loss()
        without = tf.losses.get_total_loss(add_regularization_losses=False)
        with tf.Session() as sess:
            assert sess.run(total) == pytest.approx(0.125 + 2.0 + 10.0 + 0.25)
            assert sess.run(without) == pytest.approx(0.125 + 2.0 + 10.0)
            assert sess.run(tf.losses.get_regularization_loss()) == pytest.approx(0.25)
    with tf.Graph().as_default():
        with tf.Session() as sess:
            assert sess.run(tf.losses.get_regularization_loss()) == 0.0
        with pytest.raises(ValueError):
            tf.losses.get_total_loss()


def test_argument_checks():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="Invalid Reduction"):
            tf.losses.mean_squared_error([1.0], [2.0], reduction="average")
        with pytest.raises(ValueError, match="must not be None"):
            tf.losses.mean_squared_error(None, [2.0])
        with pytest.raises(ValueError, match="broadcast"):
            tf.losses.mean_squared_error(tf.zeros([4, 3]), tf.zeros([4, 3]), weights=tf.zeros([2, 3]))
        with pytest.raises(ValueError):
            tf.losses.mean_squared_error(tf.zeros([4, 3]), tf.zeros([4, 2]))


def test_public_names_exist():
    from tensorweave.compat.v1_api import LOSSES
    for public in LOSSES:
        assert getattr(tf.losses, public) is not None, public
    assert R.SUM_OVER_NONZERO_WEIGHTS == R.SUM_BY_NONZERO_WEIGHTS and len(set(R.all())) == 5
