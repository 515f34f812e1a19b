"""`SyncReplicasOptimizer` over an in-process cluster (1 PS, 3 workers, one a backup): each update
is exactly the mean of the first `replicas_to_aggregate` fresh gradients, and gradients computed
from an older step are dropped, whichever worker sends them."""

import contextlib
import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec
from tensorweave.distributed.master import Master, MasterRuntime
from tensorweave.distributed.worker import Worker
from tensorweave.ops.data_flow_state import AccumulatorState, FIFOQueueState
from tensorweave.runtime import session as session_lib

CLUSTER = ClusterSpec({"ps": ["ps0.invalid:1"], "worker": ["w0.invalid:1", "w1.invalid:1", "w2.invalid:1"]})
TASKS = ["/job:ps/replica:0/task:0"] + [f"/job:worker/replica:0/task:{i}" for i in range(3)]
W_INIT = np.array([1.0, -2.0], np.float32)
WAIT = 10.0


@pytest.fixture
def target(monkeypatch):
    master = Master(CLUSTER, {t: Worker(t) for t in TASKS})

    def factory(target, graph, config):
        return MasterRuntime(master, master.create_session(graph.as_graph_def().SerializeToString(), config), graph)
    monkeypatch.setitem(session_lib._FACTORIES, "sync-replicas-test://", factory)
    return "sync-replicas-test://"


def _replica(task, total=3, timeout=None, average_decay=None):
    """Worker `task`'s graph: loss = sum(w * x), so the gradient of w is the fed x; 2 of `total`
    replicas are aggregated, with `replica_timeout_secs=timeout`; with `average_decay`, the chief
    also keeps an exponential moving average of w."""
    graph = tf.Graph()
    with graph.as_default(), tf.device(tf.train.replica_device_setter(
            cluster=CLUSTER, worker_device=f"/job:worker/task:{task}")):
        global_step = tf.train.get_or_create_global_step()
        w = tf.Variable(W_INIT, name="w")
        x = tf.placeholder(tf.float32, [2], name="x")
        ema = None if average_decay is None else tf.train.ExponentialMovingAverage(average_decay, global_step)
        opt = tf.train.SyncReplicasOptimizer(tf.train.GradientDescentOptimizer(1.0), replicas_to_aggregate=2,
                                             total_num_replicas=total, replica_timeout_secs=timeout,
                                             variable_averages=ema, variables_to_average=None if ema is None else [w])
        train = opt.minimize(tf.reduce_sum(w * x), global_step=global_step)
        init = tf.global_variables_initializer()
    return {"graph": graph, "opt": opt, "train": train, "x": x, "w": w, "step": global_step, "init": init,
            "ema": ema}


class _Train(threading.Thread):
    def __init__(self, sess, r, x):
        super().__init__(daemon=True)
        self._args, self.error = (sess, r, x), None
        self.start()

    def run(self):
        sess, r, x = self._args
        try:
            sess.run(r["train"], {r["x"]: np.asarray(x, np.float32)})
        except BaseException as e:  # noqa: BLE001 - checked by finish()
            self.error = e

    def finish(self):
        self.join(WAIT)
        assert not self.is_alive() and self.error is None, self.error


def _wait_for_step(sess, r, step):
    deadline = time.monotonic() + WAIT
    while sess.run(r["step"]) < step:
        assert time.monotonic() < deadline, f"global step never reached {step}"
        time.sleep(0.01)


def test_each_update_is_the_mean_of_the_first_fresh_gradients_and_stale_ones_are_dropped(target):
    rs = [_replica(i) for i in range(3)]
    sessions = [tf.Session(target, graph=r["graph"]) for r in rs]
    chief, s1, s2 = sessions
    coord = tf.train.Coordinator()
    try:
        chief.run(rs[0]["init"])
        chief.run(rs[0]["opt"].chief_init_op)
        chief.run(rs[0]["opt"].get_init_tokens_op())
        threads = rs[0]["opt"].get_chief_queue_runner().create_threads(chief, coord=coord, daemon=True, start=True)
        for sess, r in zip(sessions[1:], rs[1:], strict=True):
            assert len(sess.run(r["opt"].ready_for_local_init_op)) == 0
            sess.run(r["opt"].local_step_init_op)

        # Step 1: workers 0 and 1 start with the initial tokens; their mean is applied.
        _Train(chief, rs[0], [1.0, 2.0]).finish()
        _Train(s1, rs[1], [3.0, 6.0]).finish()
        _wait_for_step(chief, rs[0], 1)
        w1 = W_INIT - np.array([2.0, 4.0], np.float32)
        np.testing.assert_array_equal(chief.run(rs[0]["w"]), w1)

        # Gradients from step 0 arrive late (the backup, then 0 and 1 again): all dropped.
        _Train(s2, rs[2], [100.0, 100.0]).finish()
        _Train(chief, rs[0], [100.0, 100.0]).finish()
        _Train(s1, rs[1], [100.0, 100.0]).finish()
        np.testing.assert_array_equal(chief.run(rs[0]["w"]), w1)
        assert chief.run(rs[0]["step"]) == 1

        # Step 2: the backup and worker 0 are first; worker 1's gradient, now stale, is dropped.
        waiting = _Train(s2, rs[2], [4.0, 0.0])
        _Train(chief, rs[0], [2.0, 2.0]).finish()
        waiting.finish()
        _wait_for_step(chief, rs[0], 2)
        w2 = w1 - np.array([3.0, 1.0], np.float32)
        np.testing.assert_array_equal(chief.run(rs[0]["w"]), w2)
        _Train(s1, rs[1], [100.0, 100.0]).finish()
        np.testing.assert_array_equal(chief.run(rs[0]["w"]), w2)

        # The chief's queue runner stops after the update it waits for.
        coord.request_stop()
        waiting = _Train(s2, rs[2], [1.0, 1.0])
        _Train(chief, rs[0], [1.0, 1.0]).finish()
        waiting.finish()
        coord.join(threads, stop_grace_period_secs=WAIT)
        np.testing.assert_array_equal(chief.run(rs[0]["w"]), w2 - 1.0)
    finally:
        coord.request_stop()
        for sess in sessions:
            sess.close()


def test_variable_averages_follow_each_global_step_on_the_ps(target):
    # As in TF's distributed Inception trainer: the chief updates the averages after each
    # aggregated update, with the decay capped by the global step.
    rs = [_replica(i, total=2, average_decay=0.9) for i in range(2)]
    sessions = [tf.Session(target, graph=r["graph"]) for r in rs]
    chief, s1 = sessions
    coord, threads = tf.train.Coordinator(), []
    try:
        shadow = rs[0]["ema"].average(rs[0]["w"])
        assert shadow.op.name == "w/ExponentialMovingAverage" and shadow.device == rs[0]["w"].device
        chief.run(rs[0]["init"])
        chief.run(rs[0]["opt"].chief_init_op)
        chief.run(rs[0]["opt"].get_init_tokens_op())
        threads = rs[0]["opt"].get_chief_queue_runner().create_threads(chief, coord=coord, daemon=True, start=True)
        s1.run(rs[1]["opt"].local_step_init_op)
        w, average = W_INIT.astype(np.float64), W_INIT.astype(np.float64)
        for step, (x0, x1) in enumerate([([1.0, 2.0], [3.0, 6.0]), ([2.0, 0.0], [0.0, 2.0])], start=1):
            if step > 1:  # the gradients of the round that took step 1's first tokens are stale
                _Train(chief, rs[0], [100.0, 100.0]).finish()
                _Train(s1, rs[1], [100.0, 100.0]).finish()
            rounds = [_Train(chief, rs[0], x0), _Train(s1, rs[1], x1)]  # each waits for the other's push
            for r in rounds:
                r.finish()
            _wait_for_step(chief, rs[0], step)
            w = w - (np.array(x0) + np.array(x1)) / 2
            decay = min(0.9, (1 + step) / (10 + step))
            average = decay * average + (1 - decay) * w
            deadline = time.monotonic() + WAIT  # the averages follow the step's tokens, just after them
            while not np.allclose(chief.run(shadow), average, rtol=1e-6):
                assert time.monotonic() < deadline, (chief.run(shadow), average)
                time.sleep(0.01)
        np.testing.assert_allclose(chief.run(rs[0]["w"]), w, rtol=1e-6)
    finally:
        coord.request_stop()
        for sess in sessions:
            sess.close()  # ends the queue runner's wait for the next step's gradients
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive()


def test_sparse_gradients_travel_and_average_row_by_row(target):
    # An embedding's gradient stays IndexedSlices: a SparseConditionalAccumulator on the PS takes
    # the rows, and each row is averaged over the gradients that held it (as TF's is).
    def replica(task):
        graph = tf.Graph()
        with graph.as_default(), tf.device(tf.train.replica_device_setter(
                cluster=CLUSTER, worker_device=f"/job:worker/task:{task}")):
            global_step = tf.train.get_or_create_global_step()
            table = tf.Variable(np.ones((4, 2), np.float32), name="table")
            ids = tf.placeholder(tf.int32, [None], name="ids")
            x = tf.placeholder(tf.float32, [None, 2], name="x")
            opt = tf.train.SyncReplicasOptimizer(tf.train.GradientDescentOptimizer(1.0), replicas_to_aggregate=2,
                                                 total_num_replicas=2)
            train = opt.minimize(tf.reduce_sum(tf.nn.embedding_lookup(table, ids) * x), global_step=global_step)
            init = tf.global_variables_initializer()
        return {"graph": graph, "opt": opt, "train": train, "ids": ids, "x": x, "table": table,
                "step": global_step, "init": init}

    rs = [replica(i) for i in range(2)]
    types = {op.type for op in rs[1]["graph"].get_operations()}
    assert "SparseAccumulatorApplyGradient" in types and "AccumulatorApplyGradient" not in types
    sessions = [tf.Session(target, graph=r["graph"]) for r in rs]
    chief, s1 = sessions
    coord, threads = tf.train.Coordinator(), []
    try:
        chief.run(rs[0]["init"])
        chief.run(rs[0]["opt"].chief_init_op)
        chief.run(rs[0]["opt"].get_init_tokens_op())
        threads = rs[0]["opt"].get_chief_queue_runner().create_threads(chief, coord=coord, daemon=True, start=True)
        s1.run(rs[1]["opt"].local_step_init_op)
        pushes = [threading.Thread(target=sess.run, args=(r["train"], {r["ids"]: ids, r["x"]: x}), daemon=True)
                  for sess, r, ids, x in [(chief, rs[0], [0, 2], [[1.0, 1.0], [2.0, 2.0]]),
                                          (s1, rs[1], [2, 3], [[4.0, 4.0], [6.0, 6.0]])]]
        for p in pushes:
            p.start()
        for p in pushes:
            p.join(WAIT)
            assert not p.is_alive()
        _wait_for_step(chief, rs[0], 1)
        expected = np.ones((4, 2), np.float32) - np.array([[1, 1], [0, 0], [3, 3], [6, 6]], np.float32)
        np.testing.assert_array_equal(chief.run(rs[0]["table"]), expected)
    finally:
        coord.request_stop()
        for sess in sessions:
            sess.close()
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive()


# -- which replica sent what, and the chief's timeout ------------------------------------------

def _take(state, n, timeout_secs=None, replica=""):
    """Starts a take on `state`; returns an event set when done and a list receiving (value, error)."""
    done, result = threading.Event(), []

    def callback(value, error):
        result.append((value, error))
        done.set()
    state.take(n, callback, None, "/cpu:0", "take", replica, timeout_secs)
    return done, result


def test_accumulator_records_the_replica_of_each_gradient_and_names_the_missing_ones():
    state = AccumulatorState("w/grad_accum", tf.float32, tf.TensorShape([2]), "MEAN")
    g = np.ones(2, np.float32)
    state.apply(0, g, "/job:worker/task:0")
    state.apply(0, g, "/job:worker/task:1")
    assert state.contributors() == ["/job:worker/task:0", "/job:worker/task:1"]
    done, result = _take(state, 2)
    assert done.wait(WAIT) and result[0][1] is None
    assert state.contributors() == [] and state.global_step == 1

    # Step 1: worker 2 is late (stale), worker 0 sends one fresh gradient, worker 1 sends none.
    state.apply(0, g, "/job:worker/task:2")
    state.apply(1, g, "/job:worker/task:0")
    assert list(state.known_replicas) == [f"/job:worker/task:{i}" for i in (0, 1, 2)]
    done, result = _take(state, 2, timeout_secs=0.3)
    assert done.wait(WAIT)
    value, error = result[0]
    assert value is None and isinstance(error, tf.errors.DeadlineExceededError)
    assert "step 1" in error.message and "1 of 2 gradients" in error.message
    assert "from replicas [/job:worker/task:0]" in error.message
    assert "missing known replicas [/job:worker/task:1, /job:worker/task:2]" in error.message
    assert "stale gradients from [/job:worker/task:2]" in error.message
    # The gradient stays for a later take; a gradient without a replica is still counted.
    state.apply(1, 3 * g, "")
    done, result = _take(state, 2)
    assert done.wait(WAIT)
    np.testing.assert_array_equal(result[0][0], 2 * g)


def test_a_take_without_timeout_waits_as_long_as_it_takes():
    state = AccumulatorState("w/grad_accum", tf.float32, tf.TensorShape([2]), "MEAN")
    state.apply(0, np.ones(2, np.float32), "a")
    done, result = _take(state, 2)
    assert not done.wait(1.0)
    state.apply(0, np.zeros(2, np.float32), "b")
    assert done.wait(WAIT) and result[0][1] is None


def test_failing_a_replica_fails_only_its_requests_or_its_next_one():
    queue = FIFOQueueState("q", [tf.int64], [tf.TensorShape([])], None)
    got = {}

    def dequeue(replica):
        event = threading.Event()
        queue.dequeue(None, lambda v, e: (got.__setitem__(replica, (v, e)), event.set()), None, "/cpu:0", "d",
                      replica)
        return event
    chief, other = dequeue("chief"), dequeue("other")
    queue.fail_replica("chief", tf.errors.DeadlineExceededError(None, None, "step 3: worker 1 is missing"))
    assert chief.wait(WAIT) and "worker 1 is missing" in got["chief"][1].message
    assert not other.is_set()
    # With none waiting, the replica's next request fails; withdrawn, it waits as before.
    queue.fail_replica("chief", tf.errors.CancelledError(None, None, "stopped"))
    assert dequeue("chief").wait(WAIT) and isinstance(got["chief"][1], tf.errors.CancelledError)
    queue.fail_replica("chief", tf.errors.CancelledError(None, None, "stopped"))
    queue.fail_replica("chief", None)
    chief = dequeue("chief")
    queue.enqueue([(np.int64(7),), (np.int64(8),)], lambda v, e: None, None, "/cpu:0", "e")
    assert other.wait(WAIT) and chief.wait(WAIT)
    assert got["other"][0][0] == 7 and got["chief"][0][0] == 8


@contextlib.contextmanager
def _worker_1_falls_behind(target, timeout):
    """Chief and worker 1 (N=2 of 2) with their hooks started, past update 1. Each then takes
    one token of update 1 (their gradients, from step 0, are dropped), so the chief's next push
    waits for worker 1's. Yields (replicas, sessions, hooks, coordinator); closes the sessions."""
    rs = [_replica(i, total=2, timeout=timeout) for i in range(2)]
    chief, s1 = sessions = [tf.Session(target, graph=r["graph"]) for r in rs]
    coord = tf.train.Coordinator()
    try:
        hooks = [rs[0]["opt"].make_session_run_hook(True), rs[1]["opt"].make_session_run_hook(False)]
        chief.run(rs[0]["init"])
        for hook, sess in zip(hooks, sessions, strict=True):
            hook.begin()
            hook.after_create_session(sess, coord)
        _Train(chief, rs[0], [1.0, 1.0]).finish()
        _Train(s1, rs[1], [3.0, 3.0]).finish()
        _wait_for_step(chief, rs[0], 1)
        _Train(chief, rs[0], [5.0, 5.0]).finish()
        _Train(s1, rs[1], [5.0, 5.0]).finish()
        yield rs, sessions, hooks, coord
    finally:
        coord.request_stop()
        for sess in sessions:
            sess.close()


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_with_a_replica_timeout_the_chief_names_the_missing_replica_and_its_step_ends(target):
    with _worker_1_falls_behind(target, timeout=1.0) as (rs, (chief, s1), hooks, coord):
        start = time.monotonic()
        blocked = _Train(chief, rs[0], [1.0, 1.0])
        blocked.join(WAIT)
        assert not blocked.is_alive(), "the chief's step still waits"
        assert time.monotonic() - start >= 0.9
        error = blocked.error
        assert isinstance(error, tf.errors.DeadlineExceededError), error
        assert "step 1" in error.message and "1 of 2 gradients" in error.message
        assert "from replicas [/job:worker/task:0]" in error.message
        assert "missing known replicas [/job:worker/task:1]" in error.message
        assert coord.should_stop()
        with pytest.raises(tf.errors.DeadlineExceededError, match="missing known replicas"):
            coord.raise_requested_exception()

        # Worker 1 comes back: its step waits for a token (not failed), which a restarted chief
        # hands out; the failure left for the old chief does not hit the new one.
        waiting = _Train(s1, rs[1], [3.0, 3.0])
        time.sleep(0.5)
        assert waiting.is_alive()
        coord2 = tf.train.Coordinator()
        hook = rs[0]["opt"].make_session_run_hook(True)
        hook.begin()
        hook.after_create_session(chief, coord2)
        waiting.finish()
        hook.end(chief)
        coord2.request_stop()


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_without_a_replica_timeout_the_chief_keeps_waiting(target):
    with _worker_1_falls_behind(target, timeout=None) as (rs, (chief, s1), hooks, coord):
        blocked = _Train(chief, rs[0], [1.0, 1.0])
        blocked.join(2.0)
        assert blocked.is_alive() and not coord.should_stop()
        _Train(s1, rs[1], [3.0, 3.0]).finish()
        blocked.finish()
        _wait_for_step(chief, rs[0], 2)
        np.testing.assert_array_equal(chief.run(rs[0]["w"]), W_INIT - 4.0)
        # The end of training ends the queue runner's wait for step 3's gradients.
        coord.request_stop()
        hooks[0].end(chief)
        coord.join(stop_grace_period_secs=WAIT)
