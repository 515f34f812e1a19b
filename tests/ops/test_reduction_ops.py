"""Reductions, argmax / argmin, the scans and range: forward values against NumPy, gradients
against central differences, and the TF1 argument spellings (`keep_dims`, `reduction_indices`,
`dimension`)."""

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.ops import reduction_ops
from tests.op_inputs import FLOATS, INTS, random_values, read_only, typed
from tests.op_check import check_forward, check_gradient, run_op



# -- reductions ------------------------------------------------------------------------------

AXES = [None, 0, -1, 1, [0, 2], (-1, 0), [], [0, 1, 2]]

REDUCTIONS = [
    ("reduce_sum", tf.reduce_sum, np.sum, "any", FLOATS + INTS),
    ("reduce_mean", tf.reduce_mean, np.mean, "any", FLOATS + INTS),
    ("reduce_prod", tf.reduce_prod, np.prod, "any", FLOATS + INTS),
    ("reduce_max", tf.reduce_max, np.max, "any", FLOATS + INTS),
    ("reduce_min", tf.reduce_min, np.min, "any", FLOATS + INTS),
]


def _np_axis(axis):
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("case", REDUCTIONS, ids=[c[0] for c in REDUCTIONS])
def test_reductions(case, axis, keepdims):
    _, build, reference, domain, dtypes = case
    rng = np.random.default_rng(7)
    for dtype in dtypes:
        x = read_only(random_values(rng, (2, 3, 2), dtype, domain))
        check_forward(lambda t: build(t, axis=axis, keepdims=keepdims), [x],
                      typed(lambda a: reference(a, axis=_np_axis(axis), keepdims=keepdims)))
    x = random_values(rng, (2, 3, 2), np.float64, domain)
    check_gradient(lambda t: build(t, axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, [0, 1]], ids=str)
def test_reduce_any_all(axis, keepdims):
    x = np.random.default_rng(3).integers(0, 2, size=(3, 4)).astype(bool)
    for build, reference in ((tf.reduce_any, np.any), (tf.reduce_all, np.all)):
        check_forward(lambda t: build(t, axis=axis, keepdims=keepdims), [x],
                      lambda a: reference(a, axis=_np_axis(axis), keepdims=keepdims))


def test_integer_mean_truncates_toward_zero_and_keeps_dtype():
    check_forward(tf.reduce_mean, [np.int32([1, 2])], lambda a: np.int32(1))
    check_forward(tf.reduce_mean, [np.int32([-1, -2])], lambda a: np.int32(-1))
    check_forward(tf.reduce_sum, [np.int32([[1, 2], [3, 4]])], lambda a: np.int32(10))
    check_forward(tf.reduce_mean, [np.float16([1, 2, 4])], lambda a: np.mean(a))


def test_reduction_keep_dims_alias_and_reduction_indices():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    check_forward(lambda t: tf.reduce_sum(t, 1, keep_dims=True), [x], lambda a: a.sum(1, keepdims=True))
    check_forward(lambda t: tf.reduce_mean(t, reduction_indices=[0]), [x], lambda a: a.mean(0))
    check_forward(lambda t: tf.reduce_max(t, reduction_indices=-1, keep_dims=True), [x],
                  lambda a: a.max(-1, keepdims=True))
    with tf.Graph().as_default():
        t = tf.constant(x)
        with pytest.raises(ValueError):
            tf.reduce_sum(t, axis=0, reduction_indices=0)
        with pytest.raises(ValueError):
            tf.reduce_sum(t, keepdims=True, keep_dims=True)
        assert tf.reduce_sum(t, -1, keepdims=True).shape.as_list() == [2, 1]
        assert tf.reduce_sum(t).shape.as_list() == []


def test_reductions_with_unknown_rank_and_fed_axes():
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 3, 2))
    with tf.Graph().as_default():
        t = tf.placeholder(tf.float64)  # unknown rank: axis=None reduces over Range(rank)
        axis = tf.placeholder(tf.int32, [None])
        total = tf.reduce_sum(t)
        part = tf.reduce_max(t, axis=axis)
        grads = tf.gradients(tf.reduce_sum(part * part) + total, t)
        with tf.Session() as sess:
            got_total, got_part, got_grad = sess.run([total, part, grads[0]], {t: x, axis: [0, -1]})
    np.testing.assert_allclose(got_total, x.sum())
    np.testing.assert_allclose(got_part, x.max(axis=(0, 2)))
    is_max = x == x.max(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(got_grad, 1 + is_max * 2 * x)


def test_max_and_min_gradient_split_evenly_among_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    with tf.Graph().as_default():
        t = tf.constant(x)
        g_max = tf.gradients(tf.reduce_max(t, axis=1), t)[0]
        g_min = tf.gradients(tf.reduce_min(t), t)[0]
        with tf.Session() as sess:
            g_max, g_min = sess.run([g_max, g_min])
    np.testing.assert_allclose(g_max, [[0, 0.5, 0.5], [0.5, 0.5, 0]])
    np.testing.assert_allclose(g_min, [[0, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("axis", [None, 1, [0, 2], -1])
def test_prod_gradient_is_exact_with_zeros(axis):
    x = np.random.default_rng(5).uniform(0.5, 2, size=(2, 3, 2))
    x[0, 1, 0] = 0.0
    x[1, 2, 1] = 0.0
    x[1, 0, 1] = 0.0
    check_gradient(lambda t: tf.reduce_prod(t, axis=axis), [x])


def test_empty_max_gives_lowest_value():
    got = run_op(lambda t: tf.reduce_max(t, axis=1), [np.zeros((2, 0), np.float32)])
    np.testing.assert_array_equal(got, [-np.inf, -np.inf])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1])
def test_reduce_logsumexp(axis, keepdims):
    x = np.random.default_rng(2).uniform(-3, 3, size=(3, 4))

    def reference(a):
        m = np.max(a, axis=axis, keepdims=True)
        return (np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m).reshape(
            np.sum(a, axis=axis, keepdims=keepdims).shape).astype(a.dtype)
    for dtype in FLOATS:
        check_forward(lambda t: tf.reduce_logsumexp(t, axis=axis, keepdims=keepdims), [x.astype(dtype)],
                      reference, rtol=1e-5)
    check_gradient(lambda t: tf.reduce_logsumexp(t, axis=axis, keepdims=keepdims), [x])


def test_reduce_logsumexp_large_and_infinite_values():
    x = np.array([[1000.0, 1000.0], [-np.inf, -np.inf], [np.inf, 0.0]], np.float32)
    got = run_op(lambda t: tf.reduce_logsumexp(t, axis=1), [x])
    np.testing.assert_allclose(got, [1000.0 + np.log(2.0), -np.inf, np.inf])


def test_count_nonzero():
    x = np.array([[0, 1, 2], [0, 0, 3]], np.int32)
    check_forward(tf.count_nonzero, [x], lambda a: np.int64(3))
    check_forward(lambda t: tf.count_nonzero(t, axis=1, keepdims=True), [x],
                  lambda a: np.int64([[2], [1]]))
    check_forward(lambda t: tf.count_nonzero(t, 0, dtype=tf.int32), [x.astype(np.float32)],
                  lambda a: np.int32([0, 1, 2]))
    check_forward(lambda t: tf.count_nonzero(t), [np.array([True, False, True])], lambda a: np.int64(2))


# -- argmax, scans, range --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS + INTS)
def test_argmax_argmin(dtype):
    x = np.random.default_rng(4).permutation(24).reshape(2, 3, 4).astype(dtype)
    check_forward(tf.argmax, [x], lambda a: np.argmax(a, axis=0))  # TF1's default dimension is 0
    check_forward(lambda t: tf.argmin(t, -1), [x], lambda a: np.argmin(a, axis=-1))
    check_forward(lambda t: tf.argmax(t, dimension=1, output_type=tf.int32), [x],
                  lambda a: np.argmax(a, axis=1).astype(np.int32))
    check_forward(lambda t: tf.argmin(t, axis=2, output_type=tf.int32), [x],
                  lambda a: np.argmin(a, axis=2).astype(np.int32))
    with tf.Graph().as_default():
        t = tf.placeholder(tf.as_dtype(dtype), [None, 3, 4])
        out = tf.argmax(t, axis=-2)
        assert out.dtype == tf.int64
        assert out.shape.as_list() == [None, 4]
        assert tf.argmax(t, 1, output_type=tf.int32).dtype == tf.int32


def _np_cumsum(a, axis, exclusive, reverse, scan=np.cumsum, identity=0):
    if reverse:
        a = np.flip(a, axis)
    out = scan(a, axis=axis, dtype=a.dtype)
    if exclusive:
        pad = np.full_like(np.take(out, [0], axis=axis), identity)
        out = np.concatenate([pad, np.delete(out, -1, axis=axis)], axis=axis)
    return np.flip(out, axis) if reverse else out


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_and_cumprod(axis, exclusive, reverse):
    rng = np.random.default_rng(6)
    for dtype in FLOATS + INTS:
        x = read_only(random_values(rng, (3, 4), dtype, "any"))
        check_forward(lambda t: tf.cumsum(t, axis, exclusive=exclusive, reverse=reverse), [x],
                      lambda a: _np_cumsum(a, axis, exclusive, reverse))
        check_forward(lambda t: reduction_ops.cumprod(t, axis, exclusive=exclusive, reverse=reverse), [x],
                      lambda a: _np_cumsum(a, axis, exclusive, reverse, np.cumprod, 1))
    check_gradient(lambda t: tf.cumsum(t, axis, exclusive=exclusive, reverse=reverse),
                   [random_values(rng, (3, 4), np.float64, "any")])
    check_gradient(lambda t: reduction_ops.cumprod(t, axis, exclusive=exclusive, reverse=reverse),
                   [random_values(rng, (3, 4), np.float64, "nonzero")])


def test_cumsum_default_axis_and_int_dtype():
    check_forward(tf.cumsum, [np.int32([1, 2, 3])], lambda a: np.int32([1, 3, 6]))
    check_forward(lambda t: tf.cumsum(t, exclusive=True, reverse=True), [np.int32([1, 2, 3])],
                  lambda a: np.int32([5, 3, 0]))


def test_range():
    cases = [
        (lambda: tf.range(5), np.arange(5, dtype=np.int32)),
        (lambda: tf.range(1, 10, 3), np.int32([1, 4, 7])),
        (lambda: tf.range(10, 1, -2), np.int32([10, 8, 6, 4, 2])),
        (lambda: tf.range(0.0, 1.0, 0.25), np.float32([0, 0.25, 0.5, 0.75])),
        (lambda: tf.range(3, dtype=tf.float64), np.float64([0, 1, 2])),
        (lambda: tf.range(0, 2.5), np.float32([0, 1, 2])),  # int and float -> float32
        (lambda: tf.range(3, 3), np.zeros([0], np.int32)),
        (lambda: tf.range(tf.constant(4, tf.int64)), np.arange(4, dtype=np.int64)),
    ]
    for build, want in cases:
        with tf.Graph().as_default():
            r = build()
            assert r.shape.as_list() == list(want.shape)
            assert r.op.name == "range"
            with tf.Session() as sess:
                got = sess.run(r)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want)


def test_range_with_fed_limit_and_invalid_arguments():
    with tf.Graph().as_default():
        n = tf.placeholder(tf.int32, [])
        r = tf.range(0, n, 2)
        assert r.shape.as_list() == [None]
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(r, {n: 7}), [0, 2, 4, 6])
            with pytest.raises(tf.errors.InvalidArgumentError, match="start <= limit"):
                sess.run(r, {n: -3})
        with pytest.raises(ValueError, match="delta != 0"):
            tf.range(0, 5, 0)
        with pytest.raises(ValueError, match="start <= limit"):
            tf.range(5, 1)


def test_range_dtype_rules():
    with tf.Graph().as_default():
        assert tf.range(2, 5.0).dtype == tf.float32
        assert tf.range(tf.constant(2, tf.int64), 5).dtype == tf.int64
        assert tf.range(1, 4, dtype=tf.int64).dtype == tf.int64
        with pytest.raises(ValueError):
            tf.range(tf.constant(3, tf.int32), dtype=tf.float32)
