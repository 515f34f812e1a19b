"""`SyncReplicasOptimizer` over an in-process cluster (1 PS, 3 workers, one a backup): each update
is exactly the mean of the first `replicas_to_aggregate` fresh gradients, and gradients computed
from an older step are dropped, whichever worker sends them."""

import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec
from tensorweave.distributed.master import Master, MasterRuntime
from tensorweave.distributed.worker import Worker
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


def _replica(task):
    """Worker `task`'s graph: loss = sum(w * x), so the gradient of w is the fed x."""
    graph = tf.Graph()
    with graph.as_default(), tf.device(tf.train.replica_device_setter(
            cluster=CLUSTER, worker_device=f"/job:worker/task:{task}")):
        global_step = tf.train.get_or_create_global_step()
        w = tf.Variable(W_INIT, name="w")
        x = tf.placeholder(tf.float32, [2], name="x")
        opt = tf.train.SyncReplicasOptimizer(tf.train.GradientDescentOptimizer(1.0), replicas_to_aggregate=2,
                                             total_num_replicas=3)
        train = opt.minimize(tf.reduce_sum(w * x), global_step=global_step)
        init = tf.global_variables_initializer()
    return {"graph": graph, "opt": opt, "train": train, "x": x, "w": w, "step": global_step, "init": init}


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
