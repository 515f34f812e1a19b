"""The master over in-process workers behind the faulty transport: delays change no result, a
task lost in the middle of a step fails that step with UnavailableError naming it (and only
steps that need it), a silent task runs into the step's deadline, and healing restores service."""

import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec
from tensorweave.distributed.master import Master
from tensorweave.distributed.transport.faulty import Faults, FaultyWorker
from tensorweave.distributed.worker import Worker
from tensorweave.framework import errors

CLUSTER = ClusterSpec({"ps": ["ps0.invalid:1"], "worker": ["w0.invalid:1", "w1.invalid:1"]})
PS, W0, W1 = "/job:ps/replica:0/task:0", "/job:worker/replica:0/task:0", "/job:worker/replica:0/task:1"
XV = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
YV = np.random.default_rng(2).standard_normal((6, 1)).astype(np.float32)
BOUND_S = 5.0  # every failure here must surface within this


@pytest.fixture
def faults():
    return Faults()


@pytest.fixture
def master(faults):
    return Master(CLUSTER, {t: FaultyWorker(t, Worker(t), faults) for t in (PS, W0, W1)})


def _model(device_fn, worker="/job:worker/task:1"):
    rng = np.random.default_rng(0)
    with tf.device(device_fn):
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        w = tf.Variable(rng.standard_normal((4, 1)).astype(np.float32), name="w")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y), name="loss")
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, name="train")
    with tf.device("/job:worker/task:0"):
        local = tf.constant(2.0, name="two") * 3.0
    return w, loss, train, local


def _session(master):
    with tf.Graph().as_default() as g:
        setter = tf.train.replica_device_setter(cluster=CLUSTER, worker_device="/job:worker/task:1")
        w, loss, train, local = _model(setter)
        init = tf.global_variables_initializer()
    sess = master.session(master.create_session(g.as_graph_def().SerializeToString()))
    sess.run({}, [], [init.name])
    return sess, w, loss, train, local


def _expected(steps):
    with tf.Graph().as_default():
        w, loss, train, _ = _model(None)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return [sess.run([loss, train], {"x:0": XV, "y:0": YV})[0] for _ in range(steps)]


def test_delays_change_no_result(master, faults):
    sess, w, loss, train, _ = _session(master)
    faults.delay(PS, 0.02)
    faults.on_call(W1, "run_graph", 2, 0.05)  # from its second step on, worker 1 is slow too
    losses = [sess.run({"x:0": XV, "y:0": YV}, [loss.name], [train.name])[loss.name] for _ in range(3)]
    np.testing.assert_array_equal(losses, _expected(3))


def test_a_task_lost_mid_step_fails_that_step_naming_it_and_only_steps_that_need_it(master, faults):
    sess, w, loss, train, local = _session(master)
    feeds = {"x:0": XV, "y:0": YV}
    sess.run(feeds, [loss.name], [train.name])
    faults.on_call(W1, "run_graph", faults.calls(W1, "run_graph") + 1, 1.0)  # the next step stalls there...
    start = time.monotonic()
    killer = threading.Timer(0.3, faults.kill, args=(W1,))  # ...and the task dies meanwhile
    killer.start()
    try:
        with pytest.raises(errors.UnavailableError, match="task:1") as info:
            sess.run(feeds, [loss.name], [train.name], tf.RunOptions(timeout_in_ms=60_000))
    finally:
        killer.cancel()
    assert time.monotonic() - start < BOUND_S
    assert W1 in info.value.message
    assert sess.run({}, [local.name])[local.name] == 6.0  # worker 0 alone still serves
    with pytest.raises(errors.UnavailableError):
        sess.run(feeds, [loss.name])
    faults.heal(W1)
    sess.run(feeds, [loss.name], [train.name])


def test_a_silent_task_runs_into_the_step_deadline_then_heals(master, faults):
    sess, w, loss, train, local = _session(master)
    feeds = {"x:0": XV, "y:0": YV}
    sess.run(feeds, [loss.name], [train.name])  # registered: the next step only runs graphs
    faults.drop(PS)
    start = time.monotonic()
    with pytest.raises(errors.DeadlineExceededError):
        sess.run(feeds, [loss.name], [train.name], tf.RunOptions(timeout_in_ms=300))
    assert time.monotonic() - start < BOUND_S
    faults.heal(PS)
    before = sess.run({}, [w.value().name])[w.value().name]
    sess.run(feeds, [loss.name], [train.name])
    assert not np.array_equal(sess.run({}, [w.value().name])[w.value().name], before)


def test_on_call_needs_a_known_action(faults):
    with pytest.raises(ValueError, match="action"):
        faults.on_call(PS, "run_graph", 1, "explode")
