"""Buffer donation: an op may write its result into an input's array only when nothing else can
see that array (fresh, no views, dies at that op, not fed, fetched or constant)."""

import numpy as np

import tensorweave as tf
from tensorweave.runtime.device import Device
from tensorweave.runtime.plan import compile_plan

N = 64  # 64 x 64 = 4096 elements: large enough to be donated


def test_dense_layer_reuses_its_buffers_and_gives_the_same_values():
    xv = np.random.default_rng(0).standard_normal((N, N)).astype(np.float32)
    wv = np.random.default_rng(1).standard_normal((N, N)).astype(np.float32)
    x_copy = xv.copy()
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, N])
        w = tf.Variable(wv)
        h = tf.nn.relu(tf.matmul(x, w) + 1.0)
        loss = tf.reduce_sum(h * h)
        train = tf.train.GradientDescentOptimizer(0.001).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            got_h, _ = sess.run([h, train], {x: xv})
            new_w = sess.run(w)
    ref_h = np.maximum(xv @ wv + 1.0, 0)
    grad_w = xv.T @ (2 * ref_h * (ref_h > 0))
    np.testing.assert_allclose(got_h, ref_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_w, wv - 0.001 * grad_w, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(xv, x_copy)  # a fed array is never written


def test_donation_happens_only_where_nothing_else_sees_the_array():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, N])
        y = tf.exp(x)                   # x is fed: not donated
        z = y + 1.0                     # y is fresh and dies here: donated
        viewed = tf.tanh(x)             # (distinct ops: equal ones would be merged)
        v = tf.reshape(viewed, [-1])    # a view of `viewed` exists ...
        u = viewed * 2.0                # ... so `viewed` is not donated
        fetched = tf.square(x)
        w = fetched - 1.0               # `fetched` is fetched: not donated
        plan = compile_plan([x], [z, v, u, fetched, w], [], Device("/cpu:0"))
    donated = {s.op.name for s in plan.steps if s.fn is not None and
               getattr(s.fn, "__name__", "") == "into_first"}
    assert z.op.name in donated
    assert u.op.name not in donated and w.op.name not in donated
    with tf.Session(graph=x.graph) as sess:
        xv = np.random.default_rng(0).standard_normal((3, N)).astype(np.float32)
        out = sess.run([z, v, u, fetched, w], {x: xv})
    np.testing.assert_allclose(out[0], np.exp(xv) + 1, rtol=1e-6)
    np.testing.assert_allclose(out[1], np.tanh(xv).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(out[2], np.tanh(xv) * 2, rtol=1e-6)
    np.testing.assert_allclose(out[3], np.square(xv), rtol=1e-6)
    np.testing.assert_allclose(out[4], np.square(xv) - 1, rtol=1e-6)


def test_small_tensors_are_not_donated():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [10])
        z = tf.exp(x) + 1.0
        plan = compile_plan([x], [z], [], Device("/cpu:0"))
    assert all(getattr(s.fn, "__name__", "") != "into_first" for s in plan.steps)
