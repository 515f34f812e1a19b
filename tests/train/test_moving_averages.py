"""`tf.train.ExponentialMovingAverage`: the update rule against NumPy, names and collections,
loading the averages with a Saver, debiased averages of tensors, and where the shadows live."""

import numpy as np
import pytest

import tensorweave as tf


@pytest.fixture(autouse=True)
def _fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def test_averages_follow_numpy_with_the_decay_capped_by_num_updates():
    w = tf.Variable([1.0, 2.0], name="w")
    d = tf.Variable([3.0], dtype=tf.float64, name="d")  # the float32 decay is cast for it
    step = tf.train.get_or_create_global_step()
    ema = tf.train.ExponentialMovingAverage(0.9, num_updates=step)
    with tf.control_dependencies([tf.assign_add(w, [1.0, -1.0]), tf.assign_add(d, [2.0]),
                                  tf.assign_add(step, 1)]):
        train = tf.no_op()
    with tf.control_dependencies([train]):
        average = ema.apply([w, d])
    w_ref, d_ref = np.array([1.0, 2.0]), np.array([3.0])
    w_avg, d_avg = w_ref.copy(), d_ref.copy()  # a variable's average starts at its initial value
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for n in range(1, 30):
            sess.run(average)
            w_ref, d_ref = w_ref + [1.0, -1.0], d_ref + 2.0
            decay = min(0.9, (1 + n) / (10 + n))  # the step is read after this step's increment
            w_avg = decay * w_avg + (1 - decay) * w_ref
            d_avg = decay * d_avg + (1 - decay) * d_ref
            np.testing.assert_allclose(sess.run(ema.average(w)), w_avg, rtol=1e-5)
            np.testing.assert_allclose(sess.run(ema.average(d)), d_avg, rtol=1e-6)
    assert ema.average(d).dtype == tf.float64


def test_names_collections_and_loading_the_averages_with_a_saver(tmp_path):
    w = tf.Variable([4.0, 8.0], name="w")
    b = tf.Variable([1.0], name="b", trainable=False)  # saved and restored under its own name
    ema = tf.train.ExponentialMovingAverage(0.5, name="avg")
    assert ema.name == "avg" and ema.average_name(w) == "w/avg" and ema.average(w) is None
    with tf.control_dependencies([ema.apply([w])]):
        step = tf.assign(w, w * 0.0)  # the average is taken, then the variable moves away from it
    shadow = ema.average(w)
    assert shadow.op.name == "w/avg" and ema.average_name(w) == "w/avg"
    assert shadow in tf.global_variables() and shadow not in tf.trainable_variables()
    assert tf.moving_average_variables() == [w]
    assert ema.variables_to_restore() == {"w/avg": w, "b": b}
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(step)
        np.testing.assert_array_equal(sess.run(shadow), [4.0, 8.0])  # 0.5 * 4 + 0.5 * 4, ...
        np.testing.assert_array_equal(sess.run(w), [0.0, 0.0])
        path = saver.save(sess, str(tmp_path / "model"))

    with tf.Graph().as_default():  # an eval graph: the model alone, loaded from the averages
        w2 = tf.Variable([0.0, 0.0], name="w")
        b2 = tf.Variable([0.0], name="b", trainable=False)
        names = tf.train.ExponentialMovingAverage(0.5, name="avg").variables_to_restore()
        assert names == {"w/avg": w2, "b": b2}
        with tf.Session() as sess:
            tf.train.Saver(names).restore(sess, path)
            np.testing.assert_array_equal(sess.run(w2), [4.0, 8.0])
            np.testing.assert_array_equal(sess.run(b2), [1.0])


@pytest.mark.parametrize("zero_debias", [False, True])
def test_a_tensor_is_averaged_from_zero_and_debiased_if_asked(zero_debias):
    x = tf.placeholder(tf.float32, [2])
    value = x * 2.0
    ema = tf.train.ExponentialMovingAverage(0.75, zero_debias=zero_debias)
    average = ema.apply([value])
    shadow = ema.average(value)
    assert shadow.op.name == "mul/ExponentialMovingAverage"
    feeds = [np.array([1.0, 2.0], np.float32), np.array([3.0, -1.0], np.float32), np.array([0.5, 0.0], np.float32)]
    biased, expected = np.zeros(2), []
    for i, f in enumerate(feeds, start=1):
        biased = 0.75 * biased + 0.25 * (2 * f)
        expected.append(biased / (1 - 0.75 ** i) if zero_debias else biased)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for f, want in zip(feeds, expected, strict=True):
            sess.run(average, {x: f})
            np.testing.assert_allclose(sess.run(shadow), want, rtol=1e-6)
    names = {v.op.name for v in tf.global_variables()}
    if zero_debias:  # the first debiased average is the first value itself
        np.testing.assert_allclose(expected[0], 2 * feeds[0])
        assert {"mul/ExponentialMovingAverage/biased", "mul/ExponentialMovingAverage/local_step"} <= names
    assert tf.moving_average_variables() == []  # only variables are recorded there


def test_only_float_values_are_averaged():
    counter = tf.Variable(3, name="counter")
    with pytest.raises(TypeError, match="half, float, or double: counter"):
        tf.train.ExponentialMovingAverage(0.9).apply([counter])


def test_the_average_lives_and_updates_on_its_variables_ps():
    cluster = tf.train.ClusterSpec({"ps": ["ps0:1", "ps1:1"], "worker": ["w0:1"]})
    with tf.device(tf.train.replica_device_setter(cluster=cluster, worker_device="/job:worker/task:0")):
        w1 = tf.Variable([1.0], name="w1")
        w2 = tf.Variable([2.0], name="w2")
        ema = tf.train.ExponentialMovingAverage(0.9)
        ema.apply([w1, w2])
    for w in (w1, w2):
        assert ema.average(w).device == w.device
    assert w1.device != w2.device
    updates = [op for op in tf.get_default_graph().get_operations() if op.type == "AssignSub"]
    assert sorted(op.device for op in updates) == sorted([w1.device, w2.device])
