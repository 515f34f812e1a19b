"""`tf.gradients` placement: without `colocate_gradients_with_ops` gradient ops take the device
scope active where `gradients` is called; with it, each op's gradient ops sit on that op's device
and in its colocation group, whatever scope the call is made in. Training values are the same either way."""

import numpy as np
import pytest

import tensorweave as tf

FIRST, SECOND, CALLER = "/job:worker/task:0", "/job:worker/task:1", "/job:ps/task:0"


def _two_device_model():
    """loss = sum(tanh(x * w) ** 2): `w` and the product on FIRST, tanh and the loss on SECOND."""
    with tf.device(FIRST):
        w = tf.Variable(np.array([0.5, -1.0, 2.0], np.float32), name="w")
        x = tf.placeholder(tf.float32, [3], name="x")
        product = tf.multiply(x, w, name="product")
    with tf.device(SECOND):
        act = tf.tanh(product, name="act")
        loss = tf.reduce_sum(tf.square(act), name="loss")
    return w, x, product, act, loss


def _gradient_ops(graph, forward_name):
    ops = [op for op in graph.get_operations() if op.name.startswith(f"gradients/{forward_name}_grad/")]
    assert ops, [op.name for op in graph.get_operations()]
    return ops


def test_without_the_flag_gradient_ops_take_the_callers_device_scope():
    with tf.Graph().as_default() as g:
        w, _, _, _, loss = _two_device_model()
        with tf.device(CALLER):
            tf.gradients(loss, [w])
    for forward in ("product", "act", "loss"):
        for op in _gradient_ops(g, forward):
            assert op.device == CALLER, (op.name, op.device)
            assert op.colocation_groups() == [f"loc:@{op.name}".encode()]


def test_with_the_flag_each_gradient_op_sits_on_its_forward_ops_device_and_group():
    with tf.Graph().as_default() as g:
        w, _, product, act, loss = _two_device_model()
        with tf.device(CALLER):
            tf.gradients(loss, [w], colocate_gradients_with_ops=True)
    for forward in (product.op, act.op, loss.op):
        for op in _gradient_ops(g, forward.name):
            assert op.device == forward.device, (op.name, op.device, forward.device)
            assert op.colocation_groups() == forward.colocation_groups(), op.name
    assert product.op.device.startswith(FIRST) and act.op.device.startswith(SECOND)


@pytest.mark.parametrize("colocate", [False, True])
def test_optimizer_minimize_passes_the_flag_and_trains_locally(colocate):
    with tf.Graph().as_default():
        w = tf.Variable(np.array([0.5, -1.0, 2.0], np.float32), name="w")
        x = tf.placeholder(tf.float32, [3], name="x")
        loss = tf.reduce_sum(tf.square(tf.tanh(x * w)), name="loss")
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, colocate_gradients_with_ops=colocate)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            xv = np.array([1.0, 2.0, -0.5], np.float32)
            before = sess.run(w)
            sess.run(train, {x: xv})
            after = sess.run(w)
    t = np.tanh(xv * before)
    expected = before - 0.1 * 2 * t * (1 - t * t) * xv
    np.testing.assert_allclose(after, expected, rtol=1e-6)
