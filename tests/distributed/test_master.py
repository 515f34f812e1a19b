"""The transport-neutral master over in-process workers: a PS model trained through master
sessions matches a single-process session exactly, sessions share the PS variables, tensors cross
tasks both ways, a failing op fails only its step, and closing a session releases its graphs.
Device filters keep a session off the tasks they leave out; idle sessions are collected."""

import threading

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec
from tensorweave.distributed.master import Master, MasterRuntime
from tensorweave.distributed.worker import Worker
from tensorweave.framework import errors
from tensorweave.runtime import session as session_lib

CLUSTER = ClusterSpec({"ps": ["ps0.invalid:1"], "worker": ["w0.invalid:1", "w1.invalid:1"]})
PS, W0, W1 = "/job:ps/replica:0/task:0", "/job:worker/replica:0/task:0", "/job:worker/replica:0/task:1"
XV = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
YV = np.random.default_rng(2).standard_normal((6, 1)).astype(np.float32)


@pytest.fixture
def workers():
    return {PS: Worker(PS), W0: Worker(W0), W1: Worker(W1)}


@pytest.fixture
def master(workers):
    return Master(CLUSTER, workers)


def _linear_model(device_fn):
    rng = np.random.default_rng(0)
    with tf.device(device_fn):
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        w = tf.Variable(rng.standard_normal((4, 1)).astype(np.float32), name="w")
        b = tf.Variable(np.zeros(1, np.float32), name="b")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y), name="loss")
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, name="train")
    return w, b, loss, train


def _single_process(model, steps=3):
    with tf.Graph().as_default():
        w, b, loss, train = model(None)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([loss, train], {"x:0": XV, "y:0": YV})[0] for _ in range(steps)]
            return losses, sess.run([w, b])


def test_ps_training_matches_single_process_and_sessions_share_variables(master, workers):
    expected_losses, expected_weights = _single_process(_linear_model)
    with tf.Graph().as_default() as g:
        setter = tf.train.replica_device_setter(cluster=CLUSTER, worker_device="/job:worker/task:1")
        w, b, loss, train = _linear_model(setter)
        init = tf.global_variables_initializer()
    assert w.op.device.startswith("/job:ps") and loss.op.device.startswith("/job:worker/task:1")
    graph_def = g.as_graph_def().SerializeToString()

    sess = master.session(master.create_session(graph_def))
    sess.run({}, [], [init.name])
    feeds = {"x:0": XV, "y:0": YV}
    losses = [sess.run(feeds, [loss.name], [train.name])[loss.name] for _ in range(3)]
    for a, e in zip(losses, expected_losses, strict=True):
        np.testing.assert_array_equal(a, e)
    assert losses[0] != losses[2]
    # Variables live on the PS task, compute on worker 1; worker 0 (the default task) only ran
    # the initializer's NoOp, made outside the device setter.
    assert len(workers[PS].graph_handles()) == len(workers[W1].graph_handles()) == 2
    assert len(workers[W0].graph_handles()) == 1

    # A second session of another client reads the trained values without initializing.
    other = master.session(master.create_session(graph_def))
    got = other.run({}, [w.value().name, b.value().name])
    np.testing.assert_array_equal(got[w.value().name], expected_weights[0])
    np.testing.assert_array_equal(got[b.value().name], expected_weights[1])

    for s in (sess, other):
        s.close()
    assert all(not wk.graph_handles() for wk in workers.values())


def _two_task_model(place):
    rng = np.random.default_rng(3)
    w1v, w2v = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((8, 1)).astype(np.float32)
    with tf.device("/job:worker/task:0" if place else None):
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        w1 = tf.Variable(w1v, name="w1")
        h = tf.nn.relu(tf.matmul(x, w1))
    with tf.device("/job:worker/task:1" if place else None):
        w2 = tf.Variable(w2v, name="w2")
        out = tf.matmul(h, w2, name="out")
    with tf.device("/job:worker/task:0" if place else None):
        loss = tf.add(tf.reduce_mean(tf.square(out)), 0.01 * tf.reduce_sum(h), name="loss")  # back to task 0
        train = tf.train.GradientDescentOptimizer(0.05).minimize(loss)
    return w1, w2, out, loss, train


def test_model_parallelism_across_two_workers(master, workers):
    with tf.Graph().as_default():
        w1, w2, out, loss, train = _two_task_model(place=False)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            expected = [sess.run([loss, out, train], {"x:0": XV})[:2] for _ in range(3)]
            expected_w = sess.run([w1, w2])
    with tf.Graph().as_default() as g:
        w1, w2, out, loss, train = _two_task_model(place=True)
        init = tf.global_variables_initializer()
    handle = master.create_session(g.as_graph_def().SerializeToString())
    master.run(handle, {}, [], [init.name])
    for e_loss, e_out in expected:
        got = master.run(handle, {"x:0": XV}, [loss.name, out.name, "x:0"], [train.name])
        np.testing.assert_array_equal(got[loss.name], e_loss)
        np.testing.assert_array_equal(got[out.name], e_out)
        np.testing.assert_array_equal(got["x:0"], XV)  # a fetched feed is answered with the fed value
    got = master.run(handle, {}, [w1.value().name, w2.value().name])
    np.testing.assert_array_equal(got[w1.value().name], expected_w[0])
    np.testing.assert_array_equal(got[w2.value().name], expected_w[1])
    assert workers[W0].graph_handles() and workers[W1].graph_handles()


def test_failing_op_fails_its_step_naming_task_and_op_and_the_next_step_works(master):
    with tf.Graph().as_default() as g:
        with tf.device("/job:worker/task:0"):
            a = tf.placeholder(tf.float32, [None], name="a")
        with tf.device("/job:worker/task:1"):
            bad = tf.reshape(a * 2.0, [3], name="bad")  # fails unless `a` has 3 elements
        with tf.device("/job:worker/task:0"):
            c = tf.add(bad, 1.0, name="c")  # task 0 waits for task 1's tensor
    sess = master.session(master.create_session(g.as_graph_def().SerializeToString()))
    with pytest.raises(errors.InvalidArgumentError) as info:
        sess.run({"a:0": np.ones(4, np.float32)}, [c.name])
    assert "bad" in str(info.value) and "task:1" in str(info.value)
    assert info.value.op is not None and info.value.op.name == "bad" and info.value.op.graph is sess.graph
    np.testing.assert_array_equal(sess.run({"a:0": np.ones(3, np.float32)}, [c.name])[c.name], [3.0, 3.0, 3.0])


def test_extend_session_and_errors_for_unknown_names_and_closed_sessions(master, workers):
    with tf.Graph().as_default() as g, tf.device("/job:worker/task:1"):
        a = tf.constant(2.0, name="a")
    handle = master.create_session(g.as_graph_def().SerializeToString())
    assert master.run(handle, {}, ["a:0"])["a:0"] == 2.0
    with pytest.raises(errors.InvalidArgumentError, match="'b:0'"):
        master.run(handle, {}, ["b:0"])
    with g.as_default(), tf.device("/job:ps/task:0"):
        tf.multiply(a, 5.0, name="b")
    master.extend_session(handle, g.as_graph_def().SerializeToString())
    assert len(workers[W1].graph_handles()) == 0  # the old signatures were released
    assert master.run(handle, {}, ["b:0"])["b:0"] == 10.0
    master.close_session(handle)
    assert all(not wk.graph_handles() for wk in workers.values())
    with pytest.raises(errors.AbortedError, match="not found"):
        master.run(handle, {}, ["a:0"])


def test_soft_placement_and_several_devices_of_one_task():
    workers = {PS: Worker(PS), W0: Worker(W0, [W0 + "/device:CPU:0", W0 + "/device:CPU:1"]), W1: Worker(W1)}
    master = Master(CLUSTER, workers, config=tf.ConfigProto(allow_soft_placement=True))
    with tf.Graph().as_default() as g:
        with tf.device("/job:worker/task:0/device:CPU:1"):
            a = tf.placeholder(tf.float32, [2], name="a")
            b = tf.multiply(a, 2.0, name="b")
        with tf.device("/job:worker/task:0/device:CPU:0"):
            c = tf.add(b, a, name="c")  # both devices of task 0 read the feed
        with tf.device("/job:worker/task:1/device:GPU:0"):  # no GPU: soft placement takes its CPU
            d = tf.multiply(c, 10.0, name="d")
    handle = master.create_session(g.as_graph_def().SerializeToString())
    got = master.run(handle, {"a:0": np.array([1.0, 2.0], np.float32)}, [d.name, b.name])
    np.testing.assert_array_equal(got[d.name], [30.0, 60.0])
    np.testing.assert_array_equal(got[b.name], [2.0, 4.0])
    assert len(workers[W0].graph_handles()) == 1  # one registration per task, both devices in it


def test_master_runtime_serves_a_client_session(master, workers, monkeypatch):
    def factory(target, graph, config):
        handle = master.create_session(graph.as_graph_def().SerializeToString(), config)
        return MasterRuntime(master, handle, graph)

    monkeypatch.setitem(session_lib._FACTORIES, "test-master://", factory)
    expected_losses, expected_weights = _single_process(_linear_model)
    with tf.Graph().as_default():
        setter = tf.train.replica_device_setter(cluster=CLUSTER, worker_device="/job:worker/task:1")
        w, b, loss, train = _linear_model(setter)
        init = tf.global_variables_initializer()
        with tf.Session("test-master://") as sess:
            sess.run(init)
            losses = [sess.run([loss, train], {"x:0": XV, "y:0": YV})[0] for _ in range(3)]
            weights = sess.run([w, b])
            doubled = w * 2.0  # added after the session started: the session is extended
            np.testing.assert_array_equal(sess.run(doubled), expected_weights[0] * 2.0)
    for a, e in zip(losses + weights, expected_losses + expected_weights, strict=True):
        np.testing.assert_array_equal(a, e)
    assert all(not wk.graph_handles() for wk in workers.values())


def test_step_ids_are_unique_and_fit_int64(master):
    with tf.Graph().as_default() as g:
        tf.constant(1.0, name="k")
    handle = master.create_session(g.as_graph_def().SerializeToString())
    seen = []
    original = master._rendezvous_factory

    def factory():
        seen.append(next(master._step_ids))
        return original()

    master._rendezvous_factory = factory
    for _ in range(3):
        master.run(handle, {}, ["k:0"])
    assert len(set(seen)) == 3
    assert 0 < master._step_base < 1 << 63
    with pytest.raises(ValueError, match="No worker"):
        Master(CLUSTER, {PS: Worker(PS)})


# -- device filters --------------------------------------------------------------------------------

class _DeadWorker:
    """A task that is gone: every call fails as a dead gRPC peer's would."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise errors.UnavailableError(None, None, f"{name}: task is dead")
        return call


class _CallLog:
    """Forwards every call to `worker` and records its method name."""

    def __init__(self, worker):
        self._worker, self.calls = worker, []

    def __getattr__(self, name):
        method = getattr(self._worker, name)

        def call(*args, **kwargs):
            self.calls.append(name)
            return method(*args, **kwargs)
        return call


def _ps_and_worker0_graph():
    with tf.Graph().as_default() as g:
        with tf.device("/job:ps/task:0"):
            v = tf.Variable(np.float32(2.0), name="v")
        with tf.device("/job:worker/task:0"):
            doubled = tf.multiply(v, 2.0, name="doubled")
        init = tf.global_variables_initializer()
    return g.as_graph_def().SerializeToString(), init.name, doubled.name


def test_device_filters_leave_a_dead_task_out_of_the_session_entirely():
    logs = {PS: _CallLog(Worker(PS)), W0: _CallLog(Worker(W0))}
    dead = _CallLog(_DeadWorker())
    master = Master(CLUSTER, {**logs, W1: dead})
    graph_def, init, doubled = _ps_and_worker0_graph()
    with pytest.raises(errors.UnavailableError, match="get_status") as info:
        # Without filters every task is asked, the dead one again until the session's deadline.
        master.create_session(graph_def, tf.ConfigProto(operation_timeout_in_ms=300))
    assert "waited 0.3 s for task " + W1 in info.value.message
    assert dead.calls.count("get_status") > 1
    dead.calls.clear()

    config = tf.ConfigProto(device_filters=["/job:ps", "/job:worker/task:0"])
    handle = master.create_session(graph_def, config)
    master.run(handle, {}, [], [init])
    assert master.run(handle, {}, [doubled])[doubled] == 4.0
    assert master.list_devices(handle) == [PS + "/device:CPU:0", W0 + "/device:CPU:0"]
    master.close_session(handle)
    assert dead.calls == []  # not asked for its status, given no graph, not told of the close
    assert all("close_session" in log.calls for log in logs.values())
    assert all(not log._worker.graph_handles() for log in logs.values())


class _LateWorker:
    """A worker whose first `down` status calls fail as a task not started yet does."""

    def __init__(self, worker, down):
        self._worker, self.down = worker, down

    def get_status(self):
        if self.down:
            self.down -= 1
            raise errors.UnavailableError(None, None, "Connection refused")
        return self._worker.get_status()

    def __getattr__(self, name):
        return getattr(self._worker, name)


def test_a_new_session_waits_for_a_task_that_is_still_starting():
    late = _LateWorker(Worker(PS), down=3)
    master = Master(CLUSTER, {PS: late, W0: Worker(W0), W1: Worker(W1)})
    graph_def, init, doubled = _ps_and_worker0_graph()
    handle = master.create_session(graph_def, tf.ConfigProto(operation_timeout_in_ms=10_000))
    assert late.down == 0
    master.run(handle, {}, [], [init])
    assert master.run(handle, {}, [doubled])[doubled] == 4.0
    master.close_session(handle)


def test_device_filters_that_match_no_task_fail_naming_them(master):
    graph_def, _, _ = _ps_and_worker0_graph()
    with pytest.raises(errors.InvalidArgumentError, match="/job:chief"):
        master.create_session(graph_def, tf.ConfigProto(device_filters=["/job:chief"]))


# -- idle sessions -----------------------------------------------------------------------------------

class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_collect_idle_closes_sessions_unused_for_that_long_and_never_a_running_one(workers):
    clock = _FakeClock()
    master = Master(CLUSTER, workers, clock=clock)
    with tf.Graph().as_default() as g, tf.device("/job:worker/task:1"):
        a = tf.placeholder(tf.float32, [], name="a")
        out = tf.multiply(a, 3.0, name="out")
    graph_def = g.as_graph_def().SerializeToString()
    gone, kept = master.create_session(graph_def), master.create_session(graph_def)
    for handle in (gone, kept):
        assert master.run(handle, {"a:0": np.float32(1.0)}, [out.name])[out.name] == 3.0
    clock.now = 5.0
    master.extend_session(kept, graph_def)  # an extend counts as use
    clock.now = 10.0
    assert master.collect_idle(10.0) == [gone]
    assert len(workers[W1].graph_handles()) == 0  # `gone`'s graph released; `kept` re-registers on use
    with pytest.raises(errors.AbortedError, match="collected as idle"):
        master.run(gone, {"a:0": np.float32(1.0)}, [out.name])
    assert master.run(kept, {"a:0": np.float32(2.0)}, [out.name])[out.name] == 6.0

    # A session whose step is running is not collected, however long the step takes.
    started, release = threading.Event(), threading.Event()
    slow_worker = workers[W1]
    run_graph = slow_worker.run_graph

    def slow_run_graph(*args, **kwargs):
        started.set()
        release.wait(10)
        return run_graph(*args, **kwargs)

    slow_worker.run_graph = slow_run_graph
    step = threading.Thread(target=master.run, args=(kept, {"a:0": np.float32(1.0)}, [out.name]))
    step.start()
    assert started.wait(10)
    clock.now = 100.0
    assert master.collect_idle(10.0) == []
    release.set()
    step.join(10)
    assert master.collect_idle(10.0) == []  # the step just ended: used at 100
    clock.now = 110.0
    assert master.collect_idle(10.0) == [kept]
    assert all(not wk.graph_handles() for wk in workers.values())
    master.close_session(kept)  # closing a collected session is a no-op


def test_closing_a_session_cancels_its_steps_still_waiting(master):
    with tf.Graph().as_default() as g:
        with tf.device("/job:ps/task:0"):
            queue = tf.FIFOQueue(4, tf.float32, shared_name="never_filled")
            taken = queue.dequeue()
        with tf.device("/job:worker/task:1"):
            doubled = taken * 2.0
    handle = master.create_session(g.as_graph_def().SerializeToString())
    box = []

    def run():
        try:
            master.run(handle, {}, [doubled.name])
        except errors.OpError as e:
            box.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting for an element that never comes
    master.close_session(handle)
    thread.join(10)
    assert not thread.is_alive() and isinstance(box[0], errors.CancelledError)


def test_a_failed_task_is_recorded_as_the_step_error_before_its_peers_are_stopped():
    """`AbortForwardingWorker` stops the step on the other tasks when one fails; the failed task's
    error must reach the master's view first, or a peer's CancelledError could be reported."""
    from tensorweave.distributed.server import AbortForwardingWorker

    events = []
    peer_stopped = threading.Event()

    class Failing:
        def run_graph(self, *args):
            raise errors.InvalidArgumentError(None, None, "bad reshape")

    class Peer:
        def cleanup_graph(self, step_id):
            events.append(("cleanup", step_id))
            peer_stopped.set()

    class View:
        def abort(self, error):
            events.append(("abort", type(error).__name__))

    worker = AbortForwardingWorker(Failing(), {"/job:worker/replica:0/task:0": Peer()})
    with pytest.raises(errors.InvalidArgumentError):
        worker.run_graph("graph", 7, {}, [], View())
    assert peer_stopped.wait(5)
    assert events == [("abort", "InvalidArgumentError"), ("cleanup", 7)]
