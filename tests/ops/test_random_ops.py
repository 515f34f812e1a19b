"""Random ops and initializers: seeds (TF1's graph/op seed rule), distributions, shapes."""

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.framework import errors


def _run(fetches, n=1):
    with tf.Session() as sess:
        return [sess.run(fetches) for _ in range(n)]


# -- seeds ------------------------------------------------------------------------------------------

def _seeded_graph(graph_seed=None, op_seed=None):
    g = tf.Graph()
    with g.as_default():
        if graph_seed is not None:
            tf.set_random_seed(graph_seed)
        x = tf.random_normal([3, 4], seed=op_seed)
        y = tf.random_uniform([5], seed=op_seed)
    return g, [x, y]


def _sequence(graph, fetches, n=2):
    with tf.Session(graph=graph) as sess:
        return [sess.run(fetches) for _ in range(n)]


def test_graph_seed_replays_the_same_sequence_in_a_new_session():
    g, fetches = _seeded_graph(graph_seed=42)
    first, second = _sequence(g, fetches), _sequence(g, fetches)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_graph_seed_is_reproducible_across_graphs():
    g1, f1 = _seeded_graph(graph_seed=7)
    g2, f2 = _seeded_graph(graph_seed=7)
    np.testing.assert_array_equal(_sequence(g1, f1, 1)[0][0], _sequence(g2, f2, 1)[0][0])
    g3, f3 = _seeded_graph(graph_seed=8)
    assert not np.array_equal(_sequence(g1, f1, 1)[0][0], _sequence(g3, f3, 1)[0][0])


def test_successive_runs_of_one_op_differ():
    g, fetches = _seeded_graph(graph_seed=1)
    (x1, y1), (x2, y2) = _sequence(g, fetches)
    assert not np.array_equal(x1, x2)
    assert not np.array_equal(y1, y2)


def test_ops_under_one_graph_seed_differ_from_each_other():
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        a, b = tf.random_normal([10]), tf.random_normal([10])
        va, vb = _run([a, b])[0]
    assert not np.array_equal(va, vb)


def test_op_seed_without_graph_seed_is_deterministic():
    g1, f1 = _seeded_graph(op_seed=5)
    g2, f2 = _seeded_graph(op_seed=5)
    np.testing.assert_array_equal(_sequence(g1, f1, 1)[0][0], _sequence(g2, f2, 1)[0][0])


def test_no_seed_draws_fresh_values_per_session():
    g, fetches = _seeded_graph()
    assert not np.array_equal(_sequence(g, fetches, 1)[0][0], _sequence(g, fetches, 1)[0][0])


def test_new_plans_continue_the_sequence():
    """A second fetch signature (a new plan) draws the next values, not the first ones again."""
    with tf.Graph().as_default():
        tf.set_random_seed(11)
        x = tf.random_normal([4])
        y = x * 2.0
        with tf.Session() as sess:
            v1 = sess.run(x)
            v2 = sess.run(y) / 2.0
        with tf.Session() as sess:
            w1, w2 = sess.run(x), sess.run(x)
    np.testing.assert_array_equal(v1, w1)
    np.testing.assert_allclose(v2, w2)
    assert not np.array_equal(v1, v2)


def test_random_ops_are_never_folded():
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        x = tf.random_uniform([3], 0.0, 1.0)
        a, b = _run(x, 2)
    assert not np.array_equal(a, b)


# -- distributions ----------------------------------------------------------------------------------

def test_random_normal_moments_and_dtype():
    with tf.Graph().as_default():
        x = tf.random_normal([200, 500], mean=3.0, stddev=2.0, seed=1)
        assert x.dtype is tf.float32 and x.shape.as_list() == [200, 500]
        v = _run(x)[0]
    assert v.dtype == np.float32
    assert abs(v.mean() - 3.0) < 0.03 and abs(v.std() - 2.0) < 0.03


def test_random_normal_float64():
    with tf.Graph().as_default():
        v = _run(tf.random_normal([1000], dtype=tf.float64, seed=2))[0]
    assert v.dtype == np.float64


def test_truncated_normal_stays_within_two_stddev():
    with tf.Graph().as_default():
        v = _run(tf.truncated_normal([100000], mean=1.0, stddev=0.5, seed=3))[0]
    assert v.min() >= 0.0 and v.max() <= 2.0
    assert abs(v.mean() - 1.0) < 0.01
    # A standard normal truncated at +-2 has stddev 0.8796.
    assert abs(v.std() - 0.5 * 0.87962566) < 0.01


def test_random_uniform_float_range():
    with tf.Graph().as_default():
        v = _run(tf.random_uniform([100000], minval=-2.0, maxval=3.0, seed=4))[0]
    assert v.dtype == np.float32
    assert v.min() >= -2.0 and v.max() < 3.0
    assert abs(v.mean() - 0.5) < 0.03


def test_random_uniform_default_range():
    with tf.Graph().as_default():
        v = _run(tf.random_uniform([1000], seed=4))[0]
    assert v.min() >= 0.0 and v.max() < 1.0


def test_random_uniform_int():
    with tf.Graph().as_default():
        x = tf.random_uniform([10000], minval=3, maxval=7, dtype=tf.int32, seed=5)
        assert x.dtype is tf.int32
        v = _run(x)[0]
    assert v.dtype == np.int32
    assert set(np.unique(v)) == {3, 4, 5, 6}
    with tf.Graph().as_default():
        v = _run(tf.random_uniform([5], maxval=10**10, dtype=tf.int64, seed=5))[0]
    assert v.dtype == np.int64


def test_random_uniform_int_needs_maxval():
    with tf.Graph().as_default(), pytest.raises(ValueError, match="Must specify maxval"):
        tf.random_uniform([3], dtype=tf.int32)


def test_random_shuffle_permutes_first_dimension():
    value = np.arange(20).reshape(10, 2)
    with tf.Graph().as_default():
        tf.set_random_seed(9)
        s = tf.random_shuffle(value)
        assert s.shape.as_list() == [10, 2]
        a, b = _run(s, 2)
    for v in (a, b):
        np.testing.assert_array_equal(np.sort(v[:, 0]), value[:, 0])
        np.testing.assert_array_equal(v[:, 1], v[:, 0] + 1)  # rows move whole
    assert not np.array_equal(a, b)


def test_dynamic_shape_input():
    with tf.Graph().as_default():
        shape = tf.placeholder(tf.int32, [2])
        x = tf.random_normal(shape, seed=1)
        assert x.shape.ndims == 2 and x.shape.as_list() == [None, None]
        with tf.Session() as sess:
            assert sess.run(x, {shape: [3, 5]}).shape == (3, 5)


def test_shape_from_tensor_shape_and_int():
    with tf.Graph().as_default():
        assert tf.random_uniform(tf.TensorShape([2, 3])).shape.as_list() == [2, 3]
        assert tf.random_normal(4).shape.as_list() == [4]


def test_names_follow_tf():
    with tf.Graph().as_default():
        assert tf.random_normal([2]).op.name == "random_normal"
        assert tf.random_normal([2]).op.name == "random_normal_1"
        assert tf.truncated_normal([2], name="tn").op.name == "tn"
        x = tf.random_uniform([2])
        assert x.op.name == "random_uniform"
        assert x.graph.get_operation_by_name("random_uniform/RandomUniform").type == "RandomUniform"


def test_seeds_are_attrs():
    with tf.Graph().as_default() as g:
        tf.set_random_seed(5)
        x = tf.random_normal([2], seed=9)
        op = g.get_operation_by_name("random_normal/RandomStandardNormal")
        assert (op.get_attr("seed"), op.get_attr("seed2")) == (5, 9)
    with tf.Graph().as_default() as g:
        x = tf.random_normal([2])
        op = x.graph.get_operation_by_name("random_normal/RandomStandardNormal")
        assert (op.get_attr("seed"), op.get_attr("seed2")) == (0, 0)


def test_gradient_flows_to_mean_and_stddev():
    with tf.Graph().as_default():
        mean = tf.constant(1.0)
        stddev = tf.constant(2.0)
        x = tf.random_normal([100], mean=mean, stddev=stddev, seed=1)
        g_mean, g_std = tf.gradients(tf.reduce_sum(x), [mean, stddev])
        with tf.Session() as sess:
            gm, gs, xv = sess.run([g_mean, g_std, x])
    assert gm == pytest.approx(100.0)
    assert gs == pytest.approx(float(np.sum((xv - 1.0) / 2.0)), rel=1e-4)


def test_uniform_int_bad_range_raises_at_run_time():
    with tf.Graph().as_default():
        lo = tf.placeholder(tf.int32, [])
        x = tf.random_uniform([2], minval=lo, maxval=3, dtype=tf.int32)
        with tf.Session() as sess, pytest.raises(errors.InvalidArgumentError):
            sess.run(x, {lo: 5})


# -- initializers -----------------------------------------------------------------------------------

def _init_value(init, shape, dtype=tf.float32):
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        t = init(shape, dtype=dtype)
        assert t.shape.as_list() == list(shape)
        return _run(t)[0]


def test_zeros_ones_constant_initializers():
    np.testing.assert_array_equal(_init_value(tf.zeros_initializer(), [2, 3]), np.zeros((2, 3)))
    np.testing.assert_array_equal(_init_value(tf.ones_initializer(), [2], tf.int32), np.ones(2, np.int32))
    np.testing.assert_array_equal(_init_value(tf.constant_initializer(2.5), [2, 2]), np.full((2, 2), 2.5))
    # TF1: a shorter list fills the remaining entries with its last value.
    np.testing.assert_array_equal(_init_value(tf.constant_initializer([1, 2, 3]), [2, 3]),
                                  [[1, 2, 3], [3, 3, 3]])
    np.testing.assert_array_equal(_init_value(tf.constant_initializer(np.arange(6.0)), [3, 2]),
                                  np.arange(6.0).reshape(3, 2))
    with tf.Graph().as_default(), pytest.raises(ValueError, match="Too many elements"):
        tf.constant_initializer([1, 2, 3])([2])
    with tf.Graph().as_default(), pytest.raises(TypeError):
        tf.constant_initializer([1, 2])([2, 1], verify_shape=True)


def test_random_initializers_stats():
    v = _init_value(tf.random_normal_initializer(mean=1.0, stddev=0.1, seed=2), [300, 300])
    assert abs(v.mean() - 1.0) < 0.01 and abs(v.std() - 0.1) < 0.005
    v = _init_value(tf.truncated_normal_initializer(stddev=0.1, seed=2), [300, 300])
    assert np.abs(v).max() <= 0.2
    v = _init_value(tf.random_uniform_initializer(-0.5, 0.5, seed=2), [300, 300])
    assert v.min() >= -0.5 and v.max() < 0.5 and abs(v.mean()) < 0.01
    v = _init_value(tf.random_uniform_initializer(0, 4, dtype=tf.int32), [100], tf.int32)
    assert v.dtype == np.int32 and v.min() >= 0 and v.max() < 4


def test_glorot_uniform_limit():
    v = _init_value(tf.glorot_uniform_initializer(seed=3), [200, 300])
    limit = np.sqrt(6.0 / 500)
    assert np.abs(v).max() <= limit
    assert np.abs(v).max() > 0.95 * limit
    assert abs(v.std() - limit / np.sqrt(3)) < 0.02 * limit


def test_glorot_normal_std():
    v = _init_value(tf.glorot_normal_initializer(seed=3), [300, 500])
    assert abs(v.std() - np.sqrt(2.0 / 800)) < 0.03 * np.sqrt(2.0 / 800)


@pytest.mark.parametrize("mode,fan", [("fan_in", 300), ("fan_out", 240), ("fan_avg", 270)])
@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling(mode, fan, distribution):
    init = tf.variance_scaling_initializer(scale=2.0, mode=mode, distribution=distribution, seed=1)
    # A conv kernel: receptive field 3*2, so fan_in = 6*50 and fan_out = 6*40.
    v = _init_value(init, [3, 2, 50, 40])
    want_std = np.sqrt(2.0 / fan)
    assert abs(v.std() - want_std) < 0.05 * want_std
    if distribution in ("normal", "truncated_normal"):
        assert np.abs(v).max() <= 2 * want_std / 0.87962566103423978 + 1e-6
    if distribution == "uniform":
        assert np.abs(v).max() <= np.sqrt(3.0) * want_std + 1e-6


def test_variance_scaling_fans_of_a_matrix():
    v = _init_value(tf.variance_scaling_initializer(mode="fan_out", distribution="uniform", seed=2),
                    [1000, 20])
    assert abs(v.std() - np.sqrt(1.0 / 20)) < 0.05 * np.sqrt(1.0 / 20)


def test_variance_scaling_validates_arguments():
    with pytest.raises(ValueError, match="positive"):
        tf.variance_scaling_initializer(scale=0.0)
    with pytest.raises(ValueError, match="mode"):
        tf.variance_scaling_initializer(mode="fan")
    with pytest.raises(ValueError, match="distribution"):
        tf.variance_scaling_initializer(distribution="cauchy")
    with pytest.raises(ValueError, match="floating"):
        tf.glorot_uniform_initializer(dtype=tf.int32)


@pytest.mark.parametrize("shape", [[6, 4], [4, 6], [2, 3, 5]])
def test_orthogonal_initializer(shape):
    v = _init_value(tf.orthogonal_initializer(gain=2.0, seed=4), shape)
    flat = v.reshape(-1, shape[-1]) / 2.0
    if flat.shape[0] >= flat.shape[1]:
        np.testing.assert_allclose(flat.T @ flat, np.eye(flat.shape[1]), atol=1e-5)
    else:
        np.testing.assert_allclose(flat @ flat.T, np.eye(flat.shape[0]), atol=1e-5)
    with tf.Graph().as_default(), pytest.raises(ValueError, match="two-dimensional"):
        tf.orthogonal_initializer()([3])


def test_initializer_config_round_trip():
    init = tf.variance_scaling_initializer(scale=3.0, mode="fan_avg", distribution="uniform", seed=7)
    again = type(init).from_config(init.get_config())
    assert (again.scale, again.mode, again.distribution, again.seed) == (3.0, "fan_avg", "uniform", 7)


def test_seeded_initializer_is_reproducible():
    a = _init_value(tf.glorot_uniform_initializer(seed=5), [4, 4])
    b = _init_value(tf.glorot_uniform_initializer(seed=5), [4, 4])
    np.testing.assert_array_equal(a, b)


def test_initializers_accept_a_dynamic_shape():
    with tf.Graph().as_default():
        shape = tf.placeholder(tf.int32, [2])
        z = tf.zeros_initializer()(shape)
        r = tf.random_uniform_initializer(seed=1)(shape)
        with tf.Session() as sess:
            zv, rv = sess.run([z, r], {shape: [2, 3]})
    assert zv.shape == rv.shape == (2, 3) and not zv.any()
