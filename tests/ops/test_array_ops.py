"""Array ops: forward values against NumPy, gradients against finite differences, static shapes
(also partially unknown ones), `Tensor.__getitem__`, and gather's IndexedSlices gradient."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorweave as tf
from tensorweave.framework.indexed_slices import IndexedSlices
from tensorweave.compat import v1_api
from tensorweave.framework.op_builder import apply_op
from tensorweave.ops import (array_ops, concat_ops, constant_op, gather_ops, math_ops, padding_ops, reduction_ops,
                              slicing_ops)
from tests.op_check import _numeric, check_forward, check_gradient, check_op, run_op

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def static_shape(build, *placeholder_shapes, dtype=tf.float32):
    """The static shape of `build(*placeholders)` as a list (None for unknown rank)."""
    with tf.Graph().as_default():
        phs = [tf.placeholder(dtype, s) for s in placeholder_shapes]
        out = build(*phs)
        return None if out.shape.ndims is None else out.shape.as_list()


# -- forward and gradient, op by op ----------------------------------------------------------------

def test_expand_dims_and_squeeze():
    x = rand(2, 3)
    for axis in (0, 1, 2, -1, -3):
        check_op(lambda t, a=axis: tf.expand_dims(t, a), [x], lambda v, a=axis: np.expand_dims(v, a))
    check_op(lambda t: tf.expand_dims(t, dim=1), [x], lambda v: v[:, None])
    y = rand(1, 3, 1, 2)
    check_op(lambda t: tf.squeeze(t), [y], np.squeeze)
    check_op(lambda t: tf.squeeze(t, [2]), [y], lambda v: np.squeeze(v, 2))
    check_op(lambda t: tf.squeeze(t, squeeze_dims=[0, -2]), [y], lambda v: np.squeeze(v, (0, 2)))
    check_op(lambda t: tf.squeeze(t, axis=0), [y], lambda v: v[0])


def test_transpose():
    x = rand(2, 3, 4)
    check_op(lambda t: tf.transpose(t), [x], np.transpose)
    check_op(lambda t: tf.transpose(t, [1, 2, 0]), [x], lambda v: np.transpose(v, (1, 2, 0)))
    check_op(lambda t: tf.transpose(t, [2, 0, 1]), [x], lambda v: np.transpose(v, (2, 0, 1)))
    c = (rand(2, 3) + 1j * rand(2, 3)).astype(np.complex64)
    check_forward(lambda t: tf.transpose(t, conjugate=True), [c], lambda v: np.conj(v.T))


def test_transpose_with_dynamic_perm_and_unknown_rank():
    x, perm = rand(2, 3, 4), np.array([2, 0, 1], np.int32)
    check_op(lambda t, p: tf.transpose(t, p), [x, perm], lambda v, p: np.transpose(v, p))
    with tf.Graph().as_default():
        t = tf.placeholder(tf.float64)
        out = tf.transpose(t)
        (g,) = tf.gradients(out * tf.constant(2.0, tf.float64), [t])
        with tf.Session() as sess:
            got, grad = sess.run([out, g], {t: x})
    np.testing.assert_array_equal(got, x.T)
    np.testing.assert_array_equal(grad, np.full_like(x, 2.0))
    check_forward(lambda p: array_ops.invert_permutation(p), [np.array([2, 0, 3, 1], np.int32)],
                  lambda p: np.argsort(p).astype(np.int32))


def test_concat():
    a, b, c = rand(2, 3), rand(2, 1), rand(2, 2)
    check_op(lambda x, y, z: tf.concat([x, y, z], 1), [a, b, c], lambda x, y, z: np.concatenate([x, y, z], 1))
    check_op(lambda x, y, z: tf.concat([x, y, z], -1), [a, b, c], lambda x, y, z: np.concatenate([x, y, z], -1))
    check_op(lambda x, y: tf.concat([x, y], 0), [a, rand(1, 3)], lambda x, y: np.concatenate([x, y], 0))
    check_forward(lambda x: tf.concat([x], 0), [a], lambda x: x)
    check_forward(lambda x: tf.concat([x, [[7, 8]]], 1), [np.ones((1, 2), np.int32)],
                  lambda x: np.array([[1, 1, 7, 8]], np.int32))


def test_concat_gradient_with_unknown_sizes_and_dynamic_axis():
    a, b = rand(2, 3), rand(2, 2)
    with tf.Graph().as_default():
        x, y = tf.placeholder(tf.float64, [2, None]), tf.placeholder(tf.float64, [None, None])
        axis = tf.placeholder(tf.int32, [])
        out = tf.concat([x, y], axis)
        w = RNG.standard_normal((2, 5))
        gx, gy = tf.gradients(out * w, [x, y])
        with tf.Session() as sess:
            got = sess.run([out, gx, gy], {x: a, y: b, axis: -1})
    np.testing.assert_allclose(got[0], np.concatenate([a, b], 1))
    np.testing.assert_allclose(got[1], w[:, :3])
    np.testing.assert_allclose(got[2], w[:, 3:])


def test_stack_and_unstack():
    a, b = rand(2, 3), rand(2, 3)
    for axis in (0, 1, 2, -1):
        check_op(lambda x, y, ax=axis: tf.stack([x, y], ax), [a, b], lambda x, y, ax=axis: np.stack([x, y], ax))
    check_forward(lambda x: tf.stack([x, 3]), [np.array(2, np.int32)], lambda x: np.array([2, 3], np.int32))
    assert run_op(lambda: tf.stack([[1, 2], [3, 4]]), []).tolist() == [[1, 2], [3, 4]]
    assert tf.pack is tf.stack and tf.unpack is tf.unstack
    x = rand(2, 3, 4)
    for axis in (0, 1, -1):
        check_forward(lambda t, ax=axis: tf.unstack(t, axis=ax), [x],
                      lambda v, ax=axis: list(np.moveaxis(v, ax, 0)))
    check_gradient(lambda t: tf.unstack(t, axis=1)[0] * 2.0 + tf.unstack(t, axis=1)[2], [x])
    check_gradient(lambda t: tf.unstack(t, axis=2)[1], [x])  # unused outputs get zero gradients
    check_forward(lambda t: tf.unstack(t, num=1), [rand(1, 2)], lambda v: [v[0]])


def test_split():
    x = rand(4, 6)
    check_forward(lambda t: tf.split(t, 3, axis=1), [x], lambda v: np.split(v, 3, 1))
    check_forward(lambda t: tf.split(t, [1, 3, 2], axis=1), [x], lambda v: np.split(v, [1, 4], 1))
    check_forward(lambda t: tf.split(t, [1, -1], axis=0), [x], lambda v: np.split(v, [1], 0))
    check_forward(lambda t: tf.split(t, 1), [x], lambda v: [v])
    check_gradient(lambda t: tf.split(t, 2, axis=0)[1] * 3.0 + tf.split(t, 2, axis=0)[0], [x])
    check_gradient(lambda t: tf.split(t, [1, 3, 2], axis=1)[1], [x])
    check_gradient(lambda t: tf.split(t, [4, -1], axis=-1)[1], [x])
    with pytest.raises(ValueError, match="Cannot infer num"):
        with tf.Graph().as_default():
            tf.split(tf.placeholder(tf.float32, [4]), tf.placeholder(tf.int32, [None]))


def test_slice():
    x = rand(3, 4, 5)
    check_op(lambda t: tf.slice(t, [1, 0, 2], [2, -1, 2]), [x], lambda v: v[1:3, :, 2:4])
    check_op(lambda t: tf.slice(t, [0, 3, 0], [1, 1, 5]), [x], lambda v: v[0:1, 3:4, :])
    b = np.array([1, 1, 1], np.int32)
    check_op(lambda t, begin: tf.slice(t, begin, [1, 2, -1]), [x, b], lambda v, bb: v[1:2, 1:3, 1:])
    with pytest.raises(tf.errors.InvalidArgumentError):
        run_op(lambda t, begin: tf.slice(t, begin, [2, 2, 2]), [x, np.array([2, 0, 0], np.int32)])


def test_strided_slice():
    x = rand(4, 5, 3)
    check_op(lambda t: tf.strided_slice(t, [1, 0], [4, 5], [2, 2]), [x], lambda v: v[1:4:2, 0:5:2])
    check_op(lambda t: tf.strided_slice(t, [0, 3, 0], [0, 0, 0], [1, -1, 1], begin_mask=1, end_mask=5,
                                         shrink_axis_mask=0), [x], lambda v: v[:, 3:0:-1, :])
    check_op(lambda t: tf.strided_slice(t, [0, 2], [0, 3], [1, 1], ellipsis_mask=1, shrink_axis_mask=2),
             [x], lambda v: v[..., 2])
    check_op(lambda t: tf.strided_slice(t, [1, 0], [2, 0], [1, 1], new_axis_mask=2, shrink_axis_mask=1),
             [x], lambda v: v[1, None])


def test_gather():
    x = rand(5, 3)
    idx = np.array([4, 0, 0, 2], np.int32)
    check_forward(lambda p, i: tf.gather(p, i), [x, idx], lambda p, i: p[i])
    check_forward(lambda p, i: tf.gather(p, i), [x, idx.astype(np.int64).reshape(2, 2)], lambda p, i: p[i])
    check_forward(lambda p: tf.gather(p, 3), [x], lambda p: p[3])
    check_op(lambda p, i: tf.gather(p, i, axis=1), [x, np.array([[2, 0], [1, 1]], np.int32)],
             lambda p, i: np.take(p, i, axis=1))
    y = rand(2, 3, 4)
    check_op(lambda p: tf.gather(p, [3, 1, 3], axis=-1), [y], lambda p: p[..., [3, 1, 3]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in"):
        run_op(lambda p, i: tf.gather(p, i), [x, np.array([5], np.int32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in"):
        run_op(lambda p, i: tf.gather(p, i), [x, np.array([-1], np.int32)])


def _dense(grad):
    return tf.convert_to_tensor(grad) if isinstance(grad, IndexedSlices) else grad


@pytest.mark.parametrize("indices", [[4, 0, 0, 2], [[1, 3], [3, 3]], 2])
def test_gather_gradient_is_indexed_slices_matching_finite_differences(indices):
    x = rand(5, 3)
    indices = np.array(indices, np.int32)
    out_shape = np.take(x, indices, axis=0).shape
    weights = RNG.uniform(0.5, 1.5, out_shape)
    with tf.Graph().as_default():
        p = tf.placeholder(tf.float64, [None, 3])
        out = tf.gather(p, indices)
        (grad,) = tf.gradients(tf.reduce_sum(out * weights), [p])
        assert isinstance(grad, IndexedSlices)
        assert grad.values.shape.as_list() == [indices.size, 3]
        with tf.Session() as sess:
            dense, values, idx = sess.run([tf.convert_to_tensor(grad), grad.values, grad.indices], {p: x})
    numeric = _numeric(lambda t: tf.gather(t, indices), [x], weights, [0])[0]
    np.testing.assert_allclose(dense, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(idx, indices.reshape(-1))
    assert values.shape == (indices.size, 3)


def test_gather_gradients_aggregate_and_flow_through_later_ops():
    x = rand(4, 2)
    with tf.Graph().as_default():
        p = tf.placeholder(tf.float64, [4, 2])
        loss = tf.reduce_sum(tf.gather(p, [0, 1]) * 2.0) + tf.reduce_sum(tf.gather(p, [1, 3]))
        (g,) = tf.gradients(loss, [p])
        (g2,) = tf.gradients(tf.reduce_sum(tf.gather(tf.reshape(p, [8]), [1, 1, 7])), [p])
        with tf.Session() as sess:
            got, got2 = sess.run([_dense(g), _dense(g2)], {p: x})
    np.testing.assert_allclose(got, [[2, 2], [3, 3], [0, 0], [1, 1]])
    np.testing.assert_allclose(got2, [[0, 2], [0, 0], [0, 0], [0, 1]])


def test_gather_gradients_with_unknown_shapes():
    x, idx = rand(2, 5, 3), np.array([[4, 1], [1, 0]], np.int32)
    with tf.Graph().as_default():
        p, i = tf.placeholder(tf.float64, [None, None, 3]), tf.placeholder(tf.int32, [None, None])
        (g1,) = tf.gradients(tf.reduce_sum(tf.gather(p, i, axis=1) * 2.0), [p])
        q = tf.placeholder(tf.float64)
        (g0,) = tf.gradients(tf.reduce_sum(tf.gather(q, i) * 2.0), [q])
        with tf.Session() as sess:
            got1, got0 = sess.run([g1, _dense(g0)], {p: x, q: x[0], i: idx})
    want1, want0 = np.zeros_like(x), np.zeros_like(x[0])
    np.add.at(want1, (slice(None), idx.reshape(-1)), 2.0)
    np.add.at(want0, idx.reshape(-1), 2.0)
    np.testing.assert_array_equal(got1, want1)
    np.testing.assert_array_equal(got0, want0)


def test_legacy_gather_op():
    x, idx = rand(4, 3), np.array([[3, 0], [3, 3]], np.int32)
    build = lambda p: apply_op("Gather", [p, tf.constant(idx)])  # noqa: E731
    check_forward(build, [x], lambda p: p[idx])
    with tf.Graph().as_default():
        p = tf.placeholder(tf.float64, [4, 3])
        out = build(p)
        assert out.shape.as_list() == [2, 2, 3]
        (g,) = tf.gradients(out, [p])
        assert isinstance(g, IndexedSlices)
        with tf.Session() as sess:
            np.testing.assert_allclose(sess.run(tf.convert_to_tensor(g), {p: x}), [[1] * 3, [0] * 3, [0] * 3, [3] * 3])


def test_gather_nd_and_scatter_nd():
    x = rand(3, 4, 2)
    idx = np.array([[0, 1], [2, 3], [0, 1]], np.int32)
    check_op(lambda p: tf.gather_nd(p, idx), [x], lambda p: p[idx[:, 0], idx[:, 1]])
    idx3 = np.array([[[1, 2, 0]], [[2, 0, 1]]], np.int64)
    check_op(lambda p: tf.gather_nd(p, idx3), [x], lambda p: p[idx3[..., 0], idx3[..., 1], idx3[..., 2]])
    check_forward(lambda p: tf.gather_nd(p, [[1]]), [x], lambda p: p[[1]])
    updates = rand(3, 2)

    def scatter_ref(u):
        out = np.zeros((3, 4, 2))
        np.add.at(out, (idx[:, 0], idx[:, 1]), u)
        return out
    check_op(lambda u: gather_ops.scatter_nd(idx, u, [3, 4, 2]), [updates], scatter_ref)


def test_tile():
    x = rand(2, 3)
    check_op(lambda t: tf.tile(t, [2, 3]), [x], lambda v: np.tile(v, (2, 3)))
    check_op(lambda t: tf.tile(t, [1, 2]), [x], lambda v: np.tile(v, (1, 2)))
    check_op(lambda t, m: tf.tile(t, m), [x, np.array([3, 1], np.int32)], lambda v, m: np.tile(v, m))
    with tf.Graph().as_default():
        t = tf.placeholder(tf.float64, [None, 3])
        out = tf.tile(t, [2, 1])
        (g,) = tf.gradients(out, [t])
        with tf.Session() as sess:
            np.testing.assert_allclose(sess.run(g, {t: x}), np.full_like(x, 2.0))


def test_pad():
    x = rand(2, 3)
    p = [[1, 0], [2, 1]]
    check_op(lambda t: tf.pad(t, p), [x], lambda v: np.pad(v, p))
    check_op(lambda t: tf.pad(t, p, constant_values=1.5), [x], lambda v: np.pad(v, p, constant_values=1.5))
    check_op(lambda t: tf.pad(t, p, mode="REFLECT"), [x], lambda v: np.pad(v, p, mode="reflect"))
    check_op(lambda t: tf.pad(t, [[2, 2], [3, 1]], mode="symmetric"), [x],
             lambda v: np.pad(v, [[2, 2], [3, 1]], mode="symmetric"))
    check_op(lambda t, q: tf.pad(t, q), [x, np.array(p, np.int64)], lambda v, q: np.pad(v, q))
    check_forward(lambda t: tf.pad(t, [[1, 1]], constant_values=7), [np.array([1, 2], np.int32)],
                  lambda v: np.array([7, 1, 2, 7], np.int32))
    with pytest.raises(ValueError, match="too large"):
        with tf.Graph().as_default():
            tf.pad(tf.placeholder(tf.float32, [2, 3]), [[0, 0], [3, 0]], mode="REFLECT")


def test_mirror_pad_second_order():
    x = rand(3, 4)
    p = [[2, 1], [1, 3]]
    for mode in ("REFLECT", "SYMMETRIC"):
        def build(t, m=mode):
            padded = tf.pad(t, p, mode=m)
            return tf.gradients(padded * padded, [t])[0]
        check_gradient(build, [x])


def test_one_hot():
    idx = np.array([[0, 2], [3, -1]], np.int32)
    check_forward(lambda i: tf.one_hot(i, 3), [idx], lambda i: (i[..., None] == np.arange(3)).astype(np.float32))
    ref = np.moveaxis(np.where(idx[..., None] == np.arange(4), 5, -1), -1, 0).astype(np.int64)
    check_forward(lambda i: tf.one_hot(i, 4, on_value=5, off_value=-1, axis=0, dtype=tf.int64), [idx],
                  lambda i: ref)
    check_forward(lambda i: tf.one_hot(i, 4, axis=1), [idx.astype(np.int64)],
                  lambda i: np.moveaxis(np.eye(4, dtype=np.float32)[np.clip(i, 0, 3)] * (i >= 0)[..., None], -1, 1))
    check_forward(lambda i: tf.one_hot(i, 2, on_value=1.0, off_value=0.0), [np.array([1, 0], np.uint8)],
                  lambda i: np.eye(2, dtype=np.float32)[i])


def test_where_select_and_indices():
    cond = np.array([[True, False, True], [False, False, True]])
    x, y = rand(2, 3), rand(2, 3)
    check_op(lambda a, b: tf.where(cond, a, b), [x, y], lambda a, b: np.where(cond, a, b))
    rows = np.array([False, True])
    check_op(lambda a, b: tf.where(rows, a, b), [x, y], lambda a, b: np.where(rows[:, None], a, b))
    check_op(lambda a: tf.where(cond, a, np.zeros((2, 3))), [x], lambda a: np.where(cond, a, 0.0))
    check_forward(lambda c: tf.where(c), [cond], lambda c: np.argwhere(c).astype(np.int64))
    check_forward(lambda c: tf.where(c), [np.array([0.0, 2.0, 0.0, 1.0])], lambda c: np.argwhere(c).astype(np.int64))
    check_op(lambda a, b: gather_ops.where_v2(np.array([True, False, True]), a, b), [x, rand(1, 3)],
             lambda a, b: np.where([True, False, True], a, b))
    with pytest.raises(ValueError):
        with tf.Graph().as_default():
            tf.where(tf.placeholder(tf.bool, [3]), tf.placeholder(tf.float32, [2, 3]), tf.zeros([2, 3]))
    with pytest.raises(ValueError, match="both"):
        tf.where(True, 1.0)


def test_unsorted_segment_sum():
    data = rand(5, 2)
    ids = np.array([2, 0, 2, -1, 1], np.int32)

    def ref(d, i, n=4):
        out = np.zeros((n,) + d.shape[i.ndim:])
        for k, s in np.ndenumerate(i):
            if s >= 0:
                out[s] += d[k]
        return out
    check_forward(lambda d, i: tf.unsorted_segment_sum(d, i, 4), [data, ids], ref)
    ids2 = np.array([[0, 3], [3, 1]], np.int64)
    check_forward(lambda d, i: tf.unsorted_segment_sum(d, i, 4), [rand(2, 2, 3), ids2], ref)
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        run_op(lambda d, i: tf.unsorted_segment_sum(d, i, 2), [data, ids])
    many = RNG.integers(-1, 7, size=100).astype(np.int64)  # wide rows take the sorted path
    check_forward(lambda d, i: tf.unsorted_segment_sum(d, i, 7), [rand(100, 5).astype(np.float32), many],
                  lambda d, i: ref(d, i, 7).astype(np.float32))


needs_comparisons = pytest.mark.skipif(
    not all(hasattr(math_ops, f) for f in ("maximum", "greater_equal", "less")) or
    not hasattr(reduction_ops, "reduce_max"),
    reason="math_ops / reduction_ops do not provide maximum/greater_equal/less/reduce_max yet")


@needs_comparisons
def test_unsorted_segment_sum_gradient_drops_negative_ids():
    data = rand(5, 2)
    ids = np.array([2, 0, 2, -1, 1], np.int32)
    check_gradient(lambda d: tf.unsorted_segment_sum(d, ids, 3), [data])
    check_gradient(lambda d: tf.unsorted_segment_sum(d, np.array([[0, -1], [1, 1]]), 2), [rand(2, 2, 3)])


@needs_comparisons
def test_sequence_mask():
    lengths = np.array([[1, 3], [0, 2]], np.int32)
    check_forward(lambda n: tf.sequence_mask(n), [lengths], lambda n: np.arange(3) < n[..., None])
    check_forward(lambda n: tf.sequence_mask(n, 5, dtype=tf.float32), [lengths],
                  lambda n: (np.arange(5) < n[..., None]).astype(np.float32))
    assert static_shape(lambda n: tf.sequence_mask(n, 4), [None], dtype=tf.int32) == [None, 4]


def test_broadcast_to_and_reverse():
    x = rand(3, 1)
    check_op(lambda t: tf.broadcast_to(t, [2, 3, 4]), [x], lambda v: np.broadcast_to(v, (2, 3, 4)))
    check_op(lambda t: tf.broadcast_to(t, [3, 1]), [x], lambda v: v)
    y = rand(2, 3, 4)
    check_op(lambda t: tf.reverse(t, [1]), [y], lambda v: v[:, ::-1])
    check_op(lambda t: tf.reverse(t, [0, -1]), [y], lambda v: v[::-1, :, ::-1])
    check_op(lambda t: padding_ops.reverse_v2(t, []), [y], lambda v: v)


def test_boolean_mask():
    x = rand(2, 3, 4)
    m2 = np.array([[True, False, True], [False, True, True]])
    check_op(lambda t: tf.boolean_mask(t, m2), [x], lambda v: v[m2])
    m1 = np.array([False, True, True, False])
    check_op(lambda t: tf.boolean_mask(t, m1, axis=2), [x], lambda v: v[:, :, m1])
    check_op(lambda t, m: tf.boolean_mask(t, m), [x, np.array([True, False])], lambda v, m: v[m])
    with tf.Graph().as_default():
        t = tf.placeholder(tf.float32, [None, 3, 4])
        assert tf.boolean_mask(t, tf.placeholder(tf.bool, [None, 3])).shape.as_list() == [None, 4]
        assert tf.boolean_mask(t, tf.placeholder(tf.bool, [4]), axis=2).shape.as_list() == [None, 3, None]


def test_shape_n_identity_n_to_double():
    a, b = rand(2, 3), np.arange(4, dtype=np.int32)
    check_forward(lambda x, y: tf.shape_n([x, y]), [a, b], lambda x, y: [np.array([2, 3], np.int32),
                                                                       np.array([4], np.int32)])
    check_forward(lambda x: tf.shape_n([x], out_type=tf.int64), [a], lambda x: [np.array([2, 3], np.int64)])
    check_forward(lambda x, y: tf.identity_n([x, y]), [a, b], lambda x, y: [x, y])
    check_gradient(lambda x, y: tf.identity_n([x, y])[0] * 2.0 + tf.identity_n([y, x])[1], [a, rand(2, 3)])
    check_op(lambda x: tf.to_double(tf.cast(x, tf.float32)), [a.astype(np.float32)], lambda x: x.astype(np.float64),
             grad=False)


# -- static shapes --------------------------------------------------------------------------------

SHAPE_CASES = [
    (lambda x: tf.expand_dims(x, -1), [[None, 3]], [None, 3, 1]),
    (lambda x: tf.expand_dims(x, 0), [None], None),
    (lambda x: tf.squeeze(x, [1]), [[None, 1, 3]], [None, 3]),
    (lambda x: tf.squeeze(x), [[None, 1, 3]], None),
    (lambda x: tf.squeeze(x), [[2, 1, 3, 1]], [2, 3]),
    (lambda x: tf.transpose(x, [2, 0, 1]), [[None, 2, 3]], [3, None, 2]),
    (lambda x: tf.transpose(x), [None], None),
    (lambda x, y: tf.concat([x, y], 1), [[None, 2], [4, 3]], [4, 5]),
    (lambda x, y: tf.concat([x, y], 1), [[None, None], [4, 3]], [4, None]),
    (lambda x, y: tf.concat([x, y], 0), [None, [4, 3]], [None, 3]),
    (lambda x, y: tf.stack([x, y], 1), [[None, 2], [4, None]], [4, 2, 2]),
    (lambda x: tf.unstack(x, axis=1)[0], [[None, 2, 5]], [None, 5]),
    (lambda x: tf.split(x, 2, axis=1)[1], [[None, 6]], [None, 3]),
    (lambda x: tf.split(x, [2, -1], axis=1)[1], [[None, 6]], [None, 4]),
    (lambda x: tf.split(x, [2, -1], axis=1)[1], [[3, None]], [3, None]),
    (lambda x: tf.slice(x, [1, 0], [-1, 2]), [[5, None]], [4, 2]),
    (lambda x: tf.slice(x, [1, 0], [-1, -1]), [[None, 4]], [None, 4]),
    (lambda x: tf.gather(x, tf.placeholder(tf.int32, [None, 2])), [[7, 3]], [None, 2, 3]),
    (lambda x: tf.gather(x, [0, 1], axis=1), [[None, 5, 3]], [None, 2, 3]),
    (lambda x: tf.gather_nd(x, tf.placeholder(tf.int32, [None, 2])), [[4, None, 3]], [None, 3]),
    (lambda x: tf.tile(x, [2, 3]), [[None, 4]], [None, 12]),
    (lambda x: tf.pad(x, [[1, 1], [0, 2]]), [[None, 4]], [None, 6]),
    (lambda x: tf.pad(x, tf.placeholder(tf.int32, [2, 2])), [None], [None, None]),
    (lambda x: tf.one_hot(tf.cast(x, tf.int32), 5, axis=1), [[None, 3]], [None, 5, 3]),
    (lambda x: tf.where(tf.cast(x, tf.bool)), [[None, 3, 2]], [None, 3]),
    (lambda x: tf.unsorted_segment_sum(x, tf.placeholder(tf.int32, [None]), 10), [[None, 3]], [10, 3]),
    (lambda x: tf.broadcast_to(x, [4, 2, 3]), [[None, 1]], [4, 2, 3]),
    (lambda x: tf.broadcast_to(x, tf.shape(tf.zeros([4, 2, 3]))), [[2, 1]], [4, 2, 3]),
    (lambda x: tf.reverse(x, [0]), [[None, 3]], [None, 3]),
    (lambda x: tf.reshape(x, [tf.shape(x)[0], -1]), [[None, 3, 4]], [None, 12]),
    (lambda x: tf.reshape(x, [-1, tf.shape(x)[1]]), [[None, 3, 4]], [None, 3]),
    (lambda x: tf.reshape(x, [-1, tf.shape(x)[1]]), [[2, 3, 4]], [8, 3]),
    (lambda x: tf.reshape(x, tf.stack([tf.shape(x)[1], tf.shape(x)[0], -1])), [[2, 3, 4]], [3, 2, 4]),
    (lambda x: tf.fill(tf.shape(x)[1:], 1.0), [[None, 3, 4]], [3, 4]),
    (lambda x: tf.shape_n([x])[0], [[None, 3]], [2]),
]


@pytest.mark.parametrize("build, shapes, expected", SHAPE_CASES)
def test_static_shape_inference(build, shapes, expected):
    assert static_shape(build, *shapes) == expected


def test_static_shape_errors():
    cases = [
        (lambda x: tf.squeeze(x, [0]), [3, 2]),
        (lambda x: tf.concat([x, tf.zeros([2, 5])], 0), [2, 4]),
        (lambda x: tf.stack([x, tf.zeros([5])]), [4]),
        (lambda x: tf.split(x, 3, axis=1), [2, 4]),
        (lambda x: tf.split(x, [1, 2], axis=1), [2, 4]),
        (lambda x: tf.slice(x, [1, 0], [3, 1]), [3, 2]),
        (lambda x: tf.transpose(x, [0, 0]), [3, 2]),
        (lambda x: tf.gather(x, [0], axis=2), [3, 2]),
        (lambda x: tf.tile(x, [1, 2, 3]), [3, 2]),
        (lambda x: tf.broadcast_to(x, [3, 4]), [3, 2]),
        (lambda x: x[3], [3, 2]),
        (lambda x: x[:, :, 0], [3, 2]),
        (lambda x: tf.reshape(x, [4, -1]), [3, 2]),
    ]
    for build, shape in cases:
        with pytest.raises(ValueError):
            static_shape(build, shape)


def test_shape_is_exact_when_values_are_known():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 3, 4])
        batch = tf.shape(x)[0]
        assert constant_op.partial_value(tf.shape(x)) == [None, 3, 4]
        assert constant_op.partial_value(tf.shape(x)[1:]) == [3, 4]
        assert constant_op.partial_value(tf.stack([batch, 7])) == [None, 7]
        assert constant_op.constant_value_as_shape(tf.concat([tf.shape(x)[1:], [5]], 0)).as_list() == [3, 4, 5]


# -- Tensor.__getitem__ --------------------------------------------------------------------------------

def _index_strategy(rank):
    bound = st.integers(-6, 6) | st.none()
    item = st.one_of(
        st.builds(slice, bound, bound, st.sampled_from([None, 1, 2, 3, -1, -2])),
        st.integers(-3, 2),
        st.just(Ellipsis),
        st.just(None),
    )
    return st.lists(item, min_size=0, max_size=rank + 1).filter(
        lambda items: sum(i is Ellipsis for i in items) <= 1
        and sum(not (i is None or i is Ellipsis) for i in items) <= rank)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_getitem_matches_numpy(data):
    shape = data.draw(st.lists(st.integers(3, 5), min_size=1, max_size=3))
    items = tuple(data.draw(_index_strategy(len(shape))))
    value = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    try:
        want = value[items]
    except IndexError:
        with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
            check_forward(lambda t: t[items], [value], lambda v: v[items])
        return
    with tf.Graph().as_default():
        full = tf.placeholder(tf.float64, shape)
        partial = tf.placeholder(tf.float64, [None] * len(shape))
        out, out_partial = full[items], partial[items]
        assert out.shape.as_list() == list(want.shape)
        assert out_partial.shape.ndims == want.ndim and out_partial.shape.is_compatible_with(want.shape)
        weights = np.random.default_rng(1).uniform(0.5, 1.5, want.shape)
        (grad,) = tf.gradients(out_partial * weights, [partial])
        with tf.Session() as sess:
            got, got_partial, got_grad = sess.run([out, out_partial, grad], {full: value, partial: value})
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_partial, want)
    expected_grad = np.zeros(shape)
    expected_grad[items] = weights
    np.testing.assert_allclose(got_grad, expected_grad)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_getitem_with_fed_tensor_indices_matches_numpy(data):
    shape = data.draw(st.lists(st.integers(3, 5), min_size=1, max_size=3))
    items = tuple(data.draw(_index_strategy(len(shape))))
    value = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    try:
        want = value[items]
    except IndexError:
        return
    with tf.Graph().as_default():
        feeds = {}

        def fed(v):
            if v is None or isinstance(v, type(Ellipsis)):
                return v
            ph = tf.placeholder(tf.int64 if len(feeds) % 2 else tf.int32, [])
            feeds[ph] = v
            return ph
        spec = tuple(slice(fed(i.start), fed(i.stop), fed(i.step)) if isinstance(i, slice) else fed(i)
                     for i in items)
        x = tf.placeholder(tf.float64, shape)
        out = x[spec]
        assert out.shape.ndims == want.ndim and out.shape.is_compatible_with(want.shape)
        with tf.Session() as sess:
            got = sess.run(out, {x: value, **feeds})
    np.testing.assert_array_equal(got, want)


def test_getitem_forms_and_gradients():
    x = rand(3, 4, 5)
    cases = [
        lambda v: v[1],
        lambda v: v[-1, :, 2],
        lambda v: v[::-1, 1:3],
        lambda v: v[..., ::2],
        lambda v: v[None, 1, ..., None],
        lambda v: v[:, slicing_ops.newaxis, -2:],
        lambda v: v[0:100, -100:2],
    ]
    for case in cases:  # the same expression indexes the placeholder and the NumPy array
        check_op(case, [x], case)


def test_getitem_with_tensor_indices():
    x = rand(4, 5)
    check_op(lambda t, i: t[i], [x, np.array(2, np.int32)], lambda v, i: v[i])
    check_op(lambda t, i, j: t[i:j, i], [x, np.array(1, np.int64), np.array(3, np.int64)],
             lambda v, i, j: v[i:j, i])
    check_op(lambda t, i: t[1:, i], [x, np.array(-1, np.int32)], lambda v, i: v[1:, i])
    with tf.Graph().as_default():
        t = tf.placeholder(tf.float32, [None, 5])
        i = tf.placeholder(tf.int32, [])
        assert t[i].shape.as_list() == [5]
        assert t[i, 1:3].shape.as_list() == [2]
        assert t[:, i].shape.as_list() == [None]
        with pytest.raises(TypeError):
            t[tf.placeholder(tf.float32, [])]
        with pytest.raises(TypeError):
            t[[1, 2]]
        with pytest.raises(ValueError):
            t[..., ...]


def test_getitem_on_variables_iteration_and_names():
    with tf.Graph().as_default():
        v = tf.Variable(np.arange(6.0).reshape(2, 3))
        row = v[1]
        first, second = list(tf.constant([[1, 2], [3, 4]]))
        assert row.op.type == "StridedSlice" and row.op.name == "strided_slice"
        (g,) = tf.gradients(tf.reduce_sum(v[:, 1:] * 2.0), [v])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            r, a, b, grad = sess.run([row, first, second, g])
    np.testing.assert_array_equal(r, [3, 4, 5])
    assert a.tolist() == [1, 2] and b.tolist() == [3, 4]
    np.testing.assert_array_equal(grad, [[0, 2, 2], [0, 2, 2]])


def test_strided_slice_grad_is_differentiable():
    x = rand(3, 4)
    check_gradient(lambda t: tf.gradients(t[1:, ::2] * t[1:, ::2], [t])[0], [x])


# -- kernels never write into their inputs ----------------------------------------------------------

def test_kernels_accept_read_only_inputs():
    x = rand(3, 4)
    x.flags.writeable = False
    idx = np.array([2, 0], np.int32)
    idx.flags.writeable = False
    builds = [
        lambda t, i: tf.expand_dims(t, 0), lambda t, i: tf.transpose(t), lambda t, i: tf.concat([t, t], 0),
        lambda t, i: tf.stack([t, t]), lambda t, i: tf.unstack(t)[0], lambda t, i: tf.split(t, 2, 1)[0],
        lambda t, i: tf.slice(t, [0, 0], [2, 2]), lambda t, i: t[::-1, 1], lambda t, i: tf.gather(t, i),
        lambda t, i: tf.gather_nd(t, [[0, 1]]), lambda t, i: tf.tile(t, [2, 1]),
        lambda t, i: tf.pad(t, [[1, 1], [0, 0]]),
        lambda t, i: tf.pad(t, [[1, 1], [0, 0]], "SYMMETRIC"), lambda t, i: tf.one_hot(i, 3),
        lambda t, i: tf.unsorted_segment_sum(t, [0, 0, 1], 2), lambda t, i: tf.broadcast_to(t, [2, 3, 4]),
        lambda t, i: tf.reverse(t, [0]), lambda t, i: tf.boolean_mask(t, [True, False, True]),
        lambda t, i: tf.where(tf.constant([True, False, True]), t, t),
    ]
    for build in builds:
        run_op(build, [x, idx])
    with tf.Graph().as_default():
        t = tf.placeholder(tf.float64, [3, 4])
        grads = tf.gradients([tf.reduce_sum(b(t, idx)) for b in builds
                              if b(t, idx).dtype is tf.float64], [t])
        with tf.Session() as sess:
            sess.run([_dense(g) for g in grads], {t: x})


ARRAY_MODULES = {m.__name__: m for m in (constant_op, array_ops, concat_ops, slicing_ops, gather_ops, padding_ops)}


def test_every_public_array_name_exists():
    targets = [(name, *target.split(":")) for name, target in v1_api.ROOT.items()
               if isinstance(target, str) and target.split(":")[0] in ARRAY_MODULES]
    missing = [name for name, module, attr in targets if not hasattr(ARRAY_MODULES[module], attr)]
    assert targets and missing == []


def test_names_follow_tf():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 3])
        assert tf.concat([x, x], 0).name == "concat:0"
        assert tf.concat([x, x], 1).name == "concat_1:0"
        assert tf.concat([x, x], 1).op.inputs[-1].name == "concat_2/axis:0"
        assert tf.stack([x, x]).name == "stack:0"
        assert x[0].op.inputs[1].name == "strided_slice/stack:0"
        assert tf.transpose(x).name == "transpose:0"
        assert tf.one_hot([1], 2).name == "one_hot:0"


def test_array_ops_survive_a_graph_def_round_trip():
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3, 4], name="x")
        outs = [x[0], x[..., None, 1:3], x[::-1, ::2], tf.expand_dims(x, 1), tf.squeeze(x[:, :1], [1]),
                tf.transpose(x), tf.concat([x, x], 1), tf.stack([x, x], 1), tf.unstack(x, axis=1)[1],
                tf.split(x, 2, axis=2)[1], tf.split(x, [1, -1], axis=2)[1], tf.slice(x, [0, 1, 1], [-1, 2, 2]),
                tf.gather(x, [2, 0], axis=2), tf.gather_nd(x, [[0, 1], [1, 2]]), tf.tile(x, [1, 2, 1]),
                tf.pad(x, [[0, 0], [1, 1], [2, 0]]), tf.pad(x, [[0, 0], [1, 1], [2, 0]], "REFLECT"),
                tf.pad(x, [[0, 0], [1, 1], [2, 0]], constant_values=3.0), tf.one_hot([1, 0, 3], 3),
                tf.where(tf.constant([True, False]), x, -x), tf.where(tf.constant([[True, False], [False, True]])),
                tf.unsorted_segment_sum(x, [1, 0], 3), tf.broadcast_to(tf.constant([1., 2., 3., 4.]), [2, 3, 4]),
                tf.reverse(x, [1]), tf.boolean_mask(x, tf.constant([[True, False, True], [False, False, True]])),
                tf.shape_n([x, x[0]])[1], tf.reshape(x, [tf.shape(x)[0], -1])]
        loss = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in outs])
        outs.append(tf.convert_to_tensor(tf.gradients(loss, [x])[0]))
        graph_def = graph.as_graph_def()
    value = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with tf.Session(graph=graph) as sess:
        want = sess.run(outs, {x: value})
    with tf.Graph().as_default() as imported:
        tf.import_graph_def(graph_def, name="")
        with tf.Session() as sess:
            got = sess.run([o.name for o in outs], {"x:0": value})
    for out, w, g in zip(outs, want, got, strict=True):
        np.testing.assert_array_equal(g, w, err_msg=out.name)
        assert imported.get_tensor_by_name(out.name).shape == out.shape
