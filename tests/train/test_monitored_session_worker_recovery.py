"""A non-chief `MonitoredSession` (`WorkerSessionCreator`) survives a parameter server that comes
back empty: its step fails with UnavailableError, the recreated session waits until the chief has
restored the model from its checkpoint, then training goes on from that step. An in-process
cluster (a Master and in-process Workers); "restarting the PS" swaps in fresh Workers."""

import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec
from tensorweave.distributed.master import Master, MasterRuntime
from tensorweave.distributed.worker import Worker
from tensorweave.runtime import session as session_lib
from tensorweave.train import monitored_session

CLUSTER = ClusterSpec({"ps": ["ps0.invalid:1"], "worker": ["w0.invalid:1", "w1.invalid:1"]})
TASKS = ["/job:ps/replica:0/task:0", "/job:worker/replica:0/task:0", "/job:worker/replica:0/task:1"]
TARGET = "worker-recovery-test://"
XV = np.ones((2, 3), np.float32)


class _Cluster:
    """The in-process cluster sessions of TARGET reach; `restart()` replaces every task with a
    fresh one, as a PS process restarted from nothing (sessions already open then fail)."""

    def __init__(self):
        self.master = None
        self.restart()

    def restart(self):
        old, self.master = self.master, Master(CLUSTER, {t: Worker(t) for t in TASKS})
        if old is not None:
            for handle in list(old._sessions):
                old.close_session(handle)

    def factory(self, target, graph, config):
        master = self.master
        return MasterRuntime(master, master.create_session(graph.as_graph_def().SerializeToString(), config), graph)


@pytest.fixture
def cluster(monkeypatch):
    c = _Cluster()
    monkeypatch.setitem(session_lib._FACTORIES, TARGET, c.factory)
    monkeypatch.setattr(monitored_session, "_INITIAL_BACKOFF_SECS", 0.01)
    monkeypatch.setattr(monitored_session, "_WORKER_RECOVERY_WAIT_SECS", 0.05)
    return c


def _model(task):
    with tf.device(tf.train.replica_device_setter(cluster=CLUSTER, worker_device=f"/job:worker/task:{task}")):
        step = tf.train.get_or_create_global_step()
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        w = tf.Variable(np.zeros((3, 1), np.float32), name="w")
        train = tf.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_sum(tf.matmul(x, w)),
                                                                global_step=step)
    return step, x, train


class _LosesThePs(tf.train.SessionCreator):
    """A WorkerSessionCreator whose first session's `fail_at`-th run finds the PS gone: the cluster
    restarts (empty) and the run raises UnavailableError, as a killed PS makes it."""

    def __init__(self, cluster, fail_at):
        self._inner = tf.train.WorkerSessionCreator(master=TARGET, max_wait_secs=30)
        self._cluster, self._fail_at = cluster, fail_at
        self.created = []

    def create_session(self):
        self.created.append(time.monotonic())
        sess = self._inner.create_session()
        if len(self.created) > 1:
            return sess
        cluster, fail_at = self._cluster, self._fail_at

        class Failing:
            runs = 0
            graph = property(lambda self: sess.graph)

            def run(self, *args, **kwargs):
                Failing.runs += 1
                if Failing.runs == fail_at:
                    cluster.restart()
                    raise tf.errors.UnavailableError(None, None, "task /job:ps/replica:0/task:0 is gone")
                return sess.run(*args, **kwargs)

            def close(self):
                sess.close()
        return Failing()


def test_a_non_chief_waits_for_the_chief_to_restore_then_trains_on_from_the_checkpoint(cluster, tmp_path):
    ckpt = str(tmp_path / "m")
    with tf.Graph().as_default() as chief_graph:  # the chief: initializes, trains to step 5, saves
        step, x, train = _model(0)
        saver = tf.train.Saver()
        with tf.Session(TARGET) as chief:
            chief.run(tf.global_variables_initializer())
            for _ in range(5):
                chief.run(train, {x: XV})
            saver.save(chief, ckpt, global_step=step)

    restored = threading.Event()

    def chief_restores_later():
        time.sleep(0.5)  # the non-chief must wait meanwhile, not fail and not initialize
        with chief_graph.as_default(), tf.Session(TARGET) as chief:
            saver.restore(chief, tf.train.latest_checkpoint(str(tmp_path)))
        restored.set()

    restorer = None
    with tf.Graph().as_default():
        step, x, train = _model(1)
        creator = _LosesThePs(cluster, fail_at=3)
        seen, restored_by_then = [], []
        with tf.train.MonitoredSession(session_creator=creator,
                                       hooks=[tf.train.StopAtStepHook(last_step=12)]) as sess:
            while not sess.should_stop():
                if len(seen) == 1 and restorer is None:
                    restorer = threading.Thread(target=chief_restores_later, daemon=True)
                    restorer.start()
                _, s = sess.run([train, step], {x: XV})
                seen.append(int(s))
                restored_by_then.append(restored.is_set())
    restorer.join(10)
    assert restored.is_set()
    assert len(creator.created) == 2
    # Step 6, then the PS was lost. The retried step ran only once the chief had restored step 5
    # (the new session waited for it), so it made step 6 again; training went on to the last step.
    assert seen == [6, 6, 7, 8, 9, 10, 11, 12], seen
    assert restored_by_then == [False] + [True] * 7
