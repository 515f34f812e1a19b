"""`tf.train.Supervisor`: the chief initializes, trains and checkpoints; a new Supervisor on the
same logdir restores; the constructor finalizes the graph; a non-chief on a PS+worker cluster
waits for the chief's initialization, and times out clearly when no chief comes."""

import os
import threading

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec, free_ports
from tensorweave.framework import errors
from tensorweave.train.supervisor import SessionManager

XV = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
YV = np.random.default_rng(2).standard_normal((6, 1)).astype(np.float32)
STEP_MS = 30_000


def _model(device_fn=None):
    """A linear model with a global step; returns (w, train_op)."""
    with tf.device(device_fn):
        step = tf.train.get_or_create_global_step()
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        w = tf.Variable(np.full((4, 1), 0.5, np.float32), name="w")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y), name="loss")
        tf.summary.scalar("w_mean", tf.reduce_mean(w))  # needs no feed: the summary thread runs it
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step, name="train")
    return w, train


def _feed():
    return {"x:0": XV, "y:0": YV}


def test_constructor_builds_defaults_and_finalizes_the_graph():
    with tf.Graph().as_default() as g:
        _model()
        sv = tf.train.Supervisor(logdir=None)
    assert g.finalized
    assert sv.is_chief and sv.saver is not None and sv.summary_writer is None
    assert sv.global_step is tf.train.get_global_step(g)
    assert sv.ready_op is not None and sv.init_op is not None and sv.summary_op is not None
    assert sv.start_queue_runners(None) == []
    with pytest.raises(RuntimeError, match="finalized"), g.as_default():
        tf.constant(1.0)


def test_chief_initializes_trains_saves_on_stop_and_a_new_supervisor_restores(tmp_path):
    logdir = str(tmp_path)
    with tf.Graph().as_default():
        w, train = _model()
        sv = tf.train.Supervisor(logdir=logdir, save_model_secs=3600, save_summaries_secs=3600)
        with sv.managed_session() as sess:
            assert not sv.should_stop()
            for _ in range(3):
                sess.run(train, _feed())
            trained, step = sess.run([w, sv.global_step])
        assert sv.should_stop()
    assert step == 3
    # The checkpoint thread saved at start (step 0) and again on stop (step 3).
    assert tf.train.latest_checkpoint(logdir) == os.path.join(logdir, "model.ckpt-3")
    assert os.path.exists(os.path.join(logdir, "graph.pbtxt"))
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(logdir))

    with tf.Graph().as_default():
        w2, _ = _model()
        sv2 = tf.train.Supervisor(logdir=logdir, save_model_secs=0, save_summaries_secs=0)
        with sv2.managed_session() as sess:
            np.testing.assert_array_equal(sess.run(w2), trained)
            assert sess.run(sv2.global_step) == 3
    assert not np.array_equal(trained, np.full((4, 1), 0.5, np.float32))


def test_managed_session_reraises_errors_and_loop_threads_stop(tmp_path):
    with tf.Graph().as_default():
        _model()
        sv = tf.train.Supervisor(logdir=None)
        ticks = []
        with pytest.raises(ValueError, match="boom"), sv.managed_session():
            sv.loop(0.01, ticks.append, args=(1,))
            raise ValueError("boom")
        assert ticks and sv.should_stop()
        # OutOfRangeError ends training cleanly.
        with sv.managed_session():
            raise errors.OutOfRangeError(None, None, "end of input")


def test_non_chief_local_session_without_chief_times_out():
    with tf.Graph().as_default():
        _model()
        sv = tf.train.Supervisor(is_chief=False, recovery_wait_secs=0.05)
        with pytest.raises(errors.DeadlineExceededError, match="not ready after waiting.*w"):
            sv.prepare_or_wait_for_session(max_wait_secs=0.2)
        assert isinstance(sv.session_manager, SessionManager)


def test_a_tf1_string_ready_op_is_accepted():
    with tf.Graph().as_default():
        w, _ = _model()
        sv = tf.train.Supervisor(ready_op=tf.report_uninitialized_variables(), init_op=None,
                                 init_fn=lambda sess: None)
        with pytest.raises(RuntimeError, match="did not make the model ready.*global_step, w"):
            sv.prepare_or_wait_for_session()
    with tf.Graph().as_default():
        w, _ = _model()
        sv = tf.train.Supervisor(ready_op=tf.report_uninitialized_variables())
        with sv.managed_session() as sess:
            assert sess.run(w).shape == (4, 1)


def _cluster():
    ps, worker = free_ports(2)
    return ClusterSpec({"ps": [f"127.0.0.1:{ps}"], "worker": [f"127.0.0.1:{worker}"]})


def _config():
    return tf.ConfigProto(operation_timeout_in_ms=STEP_MS)


def test_non_chief_waits_for_the_chief_on_a_cluster():
    cluster = _cluster()
    servers = []
    try:
        servers.append(tf.train.Server(cluster, "ps", 0, config=_config()))
        servers.append(tf.train.Server(cluster, "worker", 0, config=_config()))
        target = servers[1].target
        setter = tf.train.replica_device_setter(cluster=cluster)

        with tf.Graph().as_default():
            w_nc, _ = _model(setter)
            non_chief = tf.train.Supervisor(is_chief=False, recovery_wait_secs=0.1)
        with tf.Graph().as_default():
            w_c, train = _model(setter)
            chief = tf.train.Supervisor(is_chief=True)
        assert w_c.op.device.startswith("/job:ps")

        # Without a chief, the non-chief gives up after max_wait_secs.
        with pytest.raises(errors.DeadlineExceededError, match="not ready"):
            non_chief.prepare_or_wait_for_session(target, config=_config(), max_wait_secs=0.3)

        result = {}

        def wait():
            try:
                result["sess"] = non_chief.prepare_or_wait_for_session(target, config=_config(),
                                                                       max_wait_secs=20)
            except Exception as e:  # noqa: BLE001 - checked below
                result["error"] = e

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # still polling: nothing is initialized yet
        with chief.managed_session(target, config=_config()) as sess:
            sess.run(train, _feed())
            chief_w = sess.run(w_c)
            waiter.join(20)
            assert not waiter.is_alive() and "error" not in result, result
            nc_sess = result["sess"]
            try:
                np.testing.assert_array_equal(nc_sess.run(w_nc), chief_w)
                assert nc_sess.run(non_chief.global_step) == 1
            finally:
                nc_sess.close()
    finally:
        for s in servers:
            s.stop()


def test_stop_tells_the_started_queue_runners_that_training_ended():
    class _Runner(tf.train.QueueRunner):
        def __init__(self, *args):
            super().__init__(*args)
            self.abandoned = []

        def abandon_pending_runs(self, sess):
            self.abandoned.append(sess)

    with tf.Graph().as_default():
        _model()
        q = tf.FIFOQueue(2, tf.float32, shapes=[[]])
        qr = _Runner(q, [q.enqueue(1.0)])
        sv = tf.train.Supervisor(logdir=None)
        sess = sv.prepare_or_wait_for_session("")
        try:
            sv.start_queue_runners(sess, [qr])
            assert qr.abandoned == []
            sv.stop()
            assert qr.abandoned == [sess]
        finally:
            sess.close()
