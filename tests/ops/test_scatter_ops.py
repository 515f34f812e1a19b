"""tf.scatter_update and its kin against NumPy; their errors; Variable.scatter_*; and
GradientDescent applying an embedding's sparse gradient with ScatterSub."""

import numpy as np
import pytest

import tensorweave as tf

BASE = np.arange(15, dtype=np.float32).reshape(5, 3) - 4.0


@pytest.fixture(autouse=True)
def _fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def _run_scatter(fn, base, indices, updates):
    v = tf.Variable(base)
    out = fn(v, indices, updates)
    with tf.Session() as sess:
        sess.run(v.initializer)
        returned = sess.run(out)
        stored = sess.run(v)
    np.testing.assert_array_equal(returned, stored)
    return stored


def _reference(ufunc_at, base, indices, updates):
    want = base.copy()
    ufunc_at(want, np.asarray(indices).reshape(-1),
             np.reshape(updates, (-1,) + base.shape[1:]) if np.ndim(updates) else updates)
    return want


def _set_at(a, rows, updates):
    a[rows] = updates


CASES = [(tf.scatter_add, np.add.at), (tf.scatter_sub, np.subtract.at), (tf.scatter_mul, np.multiply.at),
         (tf.scatter_div, np.divide.at), (tf.scatter_min, np.minimum.at), (tf.scatter_max, np.maximum.at),
         (tf.scatter_update, _set_at)]


@pytest.mark.parametrize(("fn", "ufunc_at"), CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_rows_change_as_numpy_changes_them(fn, ufunc_at):
    rng = np.random.default_rng(3)
    updates = rng.uniform(0.5, 2.0, (2, 2, 3)).astype(np.float32)
    indices = [[4, 0], [2, 1]]  # 2-D indices: updates carry indices.shape + row shape
    np.testing.assert_allclose(_run_scatter(fn, BASE, indices, updates), _reference(ufunc_at, BASE, indices, updates),
                               rtol=1e-6)
    # A scalar applies to every selected row.
    np.testing.assert_allclose(_run_scatter(fn, BASE, [3, 0], 2.0), _reference(ufunc_at, BASE, [3, 0], 2.0))


@pytest.mark.parametrize(("fn", "ufunc_at"), CASES[:2] + CASES[4:6], ids=lambda c: getattr(c, "__name__", ""))
def test_a_repeated_row_takes_every_update(fn, ufunc_at):
    updates = np.array([[1, 2, 3], [10, 20, 30], [-5, 0, 5]], np.float32)
    got = _run_scatter(fn, BASE, [1, 1, 1], updates)
    np.testing.assert_array_equal(got, _reference(ufunc_at, BASE, [1, 1, 1], updates))


def test_integer_division_truncates_toward_zero_as_tf():
    base = np.array([[7, -7], [9, 9]], np.int32)
    got = _run_scatter(tf.scatter_div, base, [0, 0], np.array([[2, 2], [3, 3]], np.int32))
    np.testing.assert_array_equal(got, [[1, -1], [9, 9]])  # 7/2 = 3, then 3/3 = 1; -7/2 = -3, -3/3 = -1


def test_bad_indices_name_the_op_and_leave_the_variable_as_it_was():
    v = tf.Variable(BASE)
    out = tf.scatter_add(v, [1, 5], np.ones((2, 3), np.float32), name="bad_scatter")
    with tf.Session() as sess:
        sess.run(v.initializer)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] = 5 is not in \[0, 5\).*bad_scatter"):
            sess.run(out)
        np.testing.assert_array_equal(sess.run(v), BASE)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[0\] = -1"):
            sess.run(tf.scatter_update(v, [-1], np.ones((1, 3), np.float32)))


def test_build_time_errors():
    v = tf.Variable(BASE, name="table")
    with pytest.raises(ValueError, match=r"indices.shape \+ variable.shape\[1:\] = \(2, 3\)"):
        tf.scatter_update(v, [0, 1], np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="indices must be integers"):
        tf.scatter_add(v, [0.5], np.ones((1, 3), np.float32))
    with pytest.raises(TypeError, match="Can only assign to a variable"):
        tf.scatter_add(tf.constant(BASE), [0], np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="is a scalar"):
        tf.scatter_add(tf.Variable(1.0, name="s"), [0], 1.0)


def test_an_uninitialized_variable_is_named():
    v = tf.Variable(BASE, name="never_set")
    with tf.Session() as sess, pytest.raises(tf.errors.FailedPreconditionError, match="never_set"):
        sess.run(tf.scatter_add(v, [0], np.ones((1, 3), np.float32)))


def test_variable_methods_take_indexed_slices():
    v = tf.Variable(BASE)
    delta = tf.IndexedSlices(tf.constant([[1.0, 1.0, 1.0]]), tf.constant([2]))
    add, sub, update = v.scatter_add(delta), v.scatter_sub(delta), v.scatter_update(delta)
    with tf.Session() as sess:
        sess.run(v.initializer)
        row = BASE[2].copy()
        np.testing.assert_array_equal(sess.run(add)[2], row + 1)
        np.testing.assert_array_equal(sess.run(sub)[2], row)
        np.testing.assert_array_equal(sess.run(update)[2], [1.0, 1.0, 1.0])


def test_gradient_descent_applies_an_embedding_gradient_to_its_rows_only():
    rng = np.random.default_rng(0)
    table0 = rng.standard_normal((10, 4)).astype(np.float32)
    ids = np.array([3, 7, 3], np.int32)  # a repeated id: both gradients apply
    target = rng.standard_normal((3, 4)).astype(np.float32)
    table = tf.Variable(table0, name="embedding")
    rows = tf.nn.embedding_lookup(table, ids)
    loss = 0.5 * tf.reduce_sum(tf.square(rows - target))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    types = {op.type for op in tf.get_default_graph().get_operations()}
    assert "ScatterSub" in types and "ApplyGradientDescent" not in types
    with tf.Session() as sess:
        sess.run(table.initializer)
        sess.run(train)
        got = sess.run(table)
    want = table0.copy()
    np.subtract.at(want, ids, 0.1 * (table0[ids] - target))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    untouched = [i for i in range(10) if i not in ids]
    np.testing.assert_array_equal(got[untouched], table0[untouched])


def test_the_sparse_update_runs_on_the_ps_and_only_rows_cross_to_it():
    cluster = tf.train.ClusterSpec({"ps": ["ps0:1"], "worker": ["w0:1"]})
    with tf.device(tf.train.replica_device_setter(cluster=cluster, worker_device="/job:worker/task:0")):
        table = tf.Variable(np.zeros((1000, 8), np.float32), name="embedding")
        ids = tf.placeholder(tf.int32, [None])
        loss = tf.reduce_sum(tf.nn.embedding_lookup(table, ids))
        tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    [scatter] = [op for op in tf.get_default_graph().get_operations() if op.type == "ScatterSub"]
    assert scatter.device == table.device == "/job:ps/task:0"
    indices, values = scatter.inputs[1], scatter.inputs[2]
    assert values.shape.as_list() == [None, 8] and indices.shape.as_list() == [None]
