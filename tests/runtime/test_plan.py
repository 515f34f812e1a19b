"""Plan compilation: pruning, constant folding, common subexpressions, slot freeing, stateful ops."""

import numpy as np

import tensorweave as tf
from tensorweave.runtime.device import Device
from tensorweave.runtime.plan import compile_plan, prune


def _plan(feeds, fetches, targets=()):
    return compile_plan(list(feeds), list(fetches), list(targets), Device("/cpu:0"))


def test_pruning_keeps_only_what_fetches_need_and_feeds_cut_producers():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [])
        a = x + 1.0
        b = a * 2.0
        unrelated = tf.exp(x)
        names = {op.name for op in prune([a], [b], [])}
        assert b.op.name in names and a.op.name not in names and x.op.name not in names
        assert unrelated.op.name not in names


def test_constant_subgraphs_are_folded_at_compile_time():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3])
        c = tf.constant([1.0, 2.0, 3.0]) * 2.0 + 1.0
        y = x + c
        plan = _plan([x], [y])
        assert [s.op.type for s in plan.steps] == ["AddV2"]
        with tf.Session() as sess:
            np.testing.assert_allclose(sess.run(y, {x: np.zeros(3)}), [3.0, 5.0, 7.0])


def test_common_subexpressions_run_once():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3])
        y = tf.exp(x) + tf.exp(x)
        plan = _plan([x], [y])
        assert sorted(s.op.type for s in plan.steps) == ["AddV2", "Exp"]


def test_stateful_ops_are_neither_folded_nor_merged():
    with tf.Graph().as_default():
        r1 = tf.random_uniform([2], seed=1)
        r2 = tf.random_uniform([2], seed=1)
        plan = _plan([], [r1, r2])
        assert len([s for s in plan.steps if s.op.type == "RandomUniform"]) == 2
        with tf.Session() as sess:
            first = sess.run(r1)
            assert not np.array_equal(first, sess.run(r1))  # a new draw each run


def test_values_die_after_their_last_consumer():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [])
        a = x + 1.0
        b = a * 2.0
        c = b - 3.0
        plan = _plan([x], [c])
        freed = [slot for s in plan.steps for slot in s.frees]
        assert len(freed) == 3  # x, a and b are released as soon as they are consumed


def test_a_step_kernel_reads_a_variable_reference_at_its_own_argument_position():
    # A _Send's kernel takes (step, value): the variable it sends is read at position 1, not 0.
    from tensorweave.ops import comm_ops
    dev = "/job:localhost/replica:0/task:0/device:CPU:0"
    with tf.Graph().as_default() as g:
        v = tf.Variable([1.0, 2.0], name="v")
        send = comm_ops.send(v._ref(), "v_value", dev, dev)
        got = comm_ops.recv(g, tf.float32, [2], "v_value", dev, dev)
        with tf.Session(config=tf.ConfigProto(operation_timeout_in_ms=10_000)) as sess:
            sess.run(v.initializer)
            np.testing.assert_array_equal(sess.run([got, send])[0], [1.0, 2.0])
