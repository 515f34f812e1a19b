"""A graph placed on two devices runs as two partitions exchanging tensors both ways, and gives
exactly the single-device results (model parallelism, in one process)."""

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.runtime.config import ConfigProto
from tensorweave.runtime.multi_device import MultiDeviceRuntime

T0 = "/job:worker/replica:0/task:0/device:CPU:0"
T1 = "/job:worker/replica:0/task:1/device:CPU:0"


def _model(place):
    rng = np.random.default_rng(0)
    w1v, w2v = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    with tf.device("/job:worker/task:0" if place else None):
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        w1 = tf.Variable(w1v, name="w1")
        h = tf.nn.relu(tf.matmul(x, w1))
    with tf.device("/job:worker/task:1" if place else None):
        w2 = tf.Variable(w2v, name="w2")
        y = tf.matmul(h, w2)
    with tf.device("/job:worker/task:0" if place else None):
        loss = tf.reduce_mean(tf.square(y)) + 0.01 * tf.reduce_sum(h)   # back from task 1 to task 0
        train = tf.train.GradientDescentOptimizer(0.05).minimize(loss)
    return x, w1, w2, y, loss, train


def _run(runtime, fetches, feed):
    feeds = list(feed)
    tensors = [f for f in fetches if isinstance(f, tf.Tensor)]
    ops = [f for f in fetches if not isinstance(f, tf.Tensor)]
    return runtime.run(feeds, [feed[t] for t in feeds], tensors, ops, None, None)


def test_two_device_training_matches_one_device_exactly():
    xv = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    with tf.Graph().as_default():
        x, w1, w2, y, loss, train = _model(place=False)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            single = [sess.run([loss, train], {x: xv})[0] for _ in range(3)] + list(sess.run([w1, w2]))
    with tf.Graph().as_default() as g2:
        x, w1, w2, y, loss, train = _model(place=True)
        init = tf.global_variables_initializer()
        runtime = MultiDeviceRuntime(g2, [T0, T1], T0, ConfigProto())
        try:
            _run(runtime, [init], {})
            multi = [_run(runtime, [loss, train], {x: xv})[0] for _ in range(3)]
            multi += _run(runtime, [w1.value(), w2.value()], {})
            assert {op.device for op in g2.get_operations() if op.type == "VariableV2"} == {
                "/job:worker/task:0", "/job:worker/task:1"}
        finally:
            runtime.close()
    assert len(single) == len(multi)
    for a, b in zip(single, multi, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_error_in_one_partition_fails_the_step_without_hanging():
    with tf.Graph().as_default() as g:
        with tf.device("/job:worker/task:0"):
            x = tf.placeholder(tf.float32, [None], name="x")
            a = x * 2.0
        with tf.device("/job:worker/task:1"):
            b = tf.reshape(a, [2, 2])          # fails for 3 elements, on task 1
        with tf.device("/job:worker/task:0"):
            c = b + 1.0
        runtime = MultiDeviceRuntime(g, [T0, T1], T0, ConfigProto(operation_timeout_in_ms=10000))
        try:
            with pytest.raises(tf.errors.InvalidArgumentError, match="Reshape"):
                _run(runtime, [c], {x: np.zeros(3, np.float32)})
            np.testing.assert_allclose(_run(runtime, [c], {x: np.ones(4, np.float32)})[0], [[3, 3], [3, 3]])
        finally:
            runtime.close()
