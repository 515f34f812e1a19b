"""Session-level recovery of `MonitoredSession`: a step failing with UnavailableError/AbortedError
recreates the session through its creator (the chief restoring the latest checkpoint) and the
caller's `run` raises nothing; creation retries with backoff, bounded by max_wait_secs."""

import itertools
import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.summary.writer import FileWriterCache
from tensorweave.train import monitored_session
from tests.distributed.cluster_procs import server_processes

XV = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
YV = np.random.default_rng(2).standard_normal((6, 1)).astype(np.float32)


def _model():
    step = tf.train.get_or_create_global_step()
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    y = tf.placeholder(tf.float32, [None, 1], name="y")
    w = tf.Variable(np.full((4, 1), 0.5, np.float32), name="w")
    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y), name="loss")
    return step, tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step, name="train")


def _feed():
    return {"x:0": XV, "y:0": YV}


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    monkeypatch.setattr(monitored_session, "_INITIAL_BACKOFF_SECS", 0.01)
    yield
    FileWriterCache.clear()


class _FailingSession:
    """A real session whose `fail_at`-th run (1-based) raises `error`, as a lost PS does."""

    def __init__(self, sess, fail_at, error):
        self._sess, self._fail_at, self._error, self.runs = sess, fail_at, error, 0
        self.closed = False

    def run(self, *args, **kwargs):
        self.runs += 1
        if self.runs == self._fail_at:
            raise self._error(None, None, f"task /job:ps/replica:0/task:0 is gone (run {self.runs})")
        return self._sess.run(*args, **kwargs)

    def close(self):
        self.closed = True
        self._sess.close()

    graph = property(lambda self: self._sess.graph)


class _FlakyCreator(tf.train.SessionCreator):
    """Wraps a ChiefSessionCreator: the first sessions fail at the given runs; creation itself
    fails `creation_failures` times first."""

    def __init__(self, checkpoint_dir, fail_ats, error=tf.errors.UnavailableError, creation_failures=0):
        self._chief = tf.train.ChiefSessionCreator(checkpoint_dir=checkpoint_dir)
        self._fail_ats, self._error = list(fail_ats), error
        self.creation_failures = creation_failures
        self.sessions = []

    def create_session(self):
        if self.creation_failures:
            self.creation_failures -= 1
            raise tf.errors.UnavailableError(None, None, "ps not reachable")
        sess = self._chief.create_session()
        if self._fail_ats:
            sess = _FailingSession(sess, self._fail_ats.pop(0), self._error)
        self.sessions.append(sess)
        return sess


class _Counter(tf.train.SessionRunHook):
    created = 0

    def after_create_session(self, session, coord):
        self.created += 1


@pytest.mark.parametrize("error", [tf.errors.UnavailableError, tf.errors.AbortedError])
def test_a_lost_task_recreates_the_session_restores_the_checkpoint_and_run_raises_nothing(tmp_path, error):
    ckpt = str(tmp_path)
    with tf.Graph().as_default():
        step, train = _model()
        saver = tf.train.CheckpointSaverHook(ckpt, save_steps=4)
        counter = _Counter()
        # Runs are hook runs too: the saver hook's global-step reads count. Fail well after step 4's save.
        creator = _FlakyCreator(ckpt, fail_ats=[20, 9], error=error, creation_failures=2)
        steps_seen = []
        stop = tf.train.StopAtStepHook(last_step=12)
        with tf.train.MonitoredSession(session_creator=creator, hooks=[saver, stop, counter]) as sess:
            while not sess.should_stop():
                _, s = sess.run([train, step], _feed())
                steps_seen.append(int(s))
        assert counter.created == 3
        assert all(s.closed for s in creator.sessions[:2])
        # The global step went back to a checkpoint's at each failure, then on to the last step.
        drops = [(a, b) for a, b in itertools.pairwise(steps_seen) if b <= a]
        assert len(drops) == 2, steps_seen
        assert all(b % 4 in (0, 1) for _, b in drops), steps_seen  # resumed at a checkpoint step
        assert tf.train.latest_checkpoint(ckpt).endswith("-12")


def test_creation_retries_are_bounded_by_max_wait_secs():
    with tf.Graph().as_default():
        _model()
        creator = _FlakyCreator(None, fail_ats=[], creation_failures=10 ** 6)
        with pytest.raises(tf.errors.UnavailableError, match="not reachable"):
            tf.train.MonitoredSession(session_creator=creator, max_wait_secs=0.2)


def test_other_errors_are_not_recovered():
    with tf.Graph().as_default():
        _, train = _model()
        creator = _FlakyCreator(None, fail_ats=[1], error=tf.errors.InvalidArgumentError)
        with pytest.raises(tf.errors.InvalidArgumentError), \
                tf.train.MonitoredSession(session_creator=creator) as sess:
            sess.run(train, _feed())
        assert len(creator.sessions) == 1


@pytest.mark.slow
def test_a_killed_ps_restarted_on_its_port_training_resumes_from_the_last_checkpoint(tmp_path):
    """End to end: a PS and a worker server in their own processes, this process the chief's
    client. The PS is SIGKILLed mid-training and a new one starts on the same port a second
    later; `run` raises nothing, the global step resumes from the latest checkpoint (losing at most
    the steps since it) and training reaches the last step."""
    ckpt, last_step, kill_at = str(tmp_path), 30, 12
    with server_processes({"ps": 1, "worker": 1}, token=None, max_lifetime_s=180) as procs:
        restarter = None
        try:
            with tf.Graph().as_default():
                with tf.device(tf.train.replica_device_setter(cluster=procs.cluster,
                                                              worker_device="/job:worker/task:0")):
                    step, train = _model()
                config = tf.ConfigProto(operation_timeout_in_ms=30_000)
                steps_seen, checkpoint_at_kill = [], None
                start = time.monotonic()
                with tf.train.MonitoredTrainingSession(
                        master=procs.target("worker", 0), is_chief=True, checkpoint_dir=ckpt,
                        save_checkpoint_steps=5, save_summaries_steps=None, log_step_count_steps=None,
                        config=config, max_wait_secs=60,
                        hooks=[tf.train.StopAtStepHook(last_step=last_step)]) as sess:
                    while not sess.should_stop():
                        assert time.monotonic() - start < 120, steps_seen
                        _, s = sess.run([train, step], _feed())
                        steps_seen.append(int(s))
                        if checkpoint_at_kill is None and s >= kill_at:
                            checkpoint_at_kill = int(tf.train.latest_checkpoint(ckpt).rsplit("-", 1)[1])
                            procs.kill("ps", 0)
                            restarter = threading.Timer(1.0, procs._start, args=("ps", 0, 180, None))
                            restarter.start()  # meanwhile run() fails and the session waits for the PS
                            killed_after = len(steps_seen)
        finally:
            if restarter is not None:
                restarter.join()
    resumed = steps_seen[killed_after]
    assert checkpoint_at_kill is not None and kill_at - 5 <= checkpoint_at_kill <= kill_at, steps_seen
    assert resumed in (checkpoint_at_kill, checkpoint_at_kill + 1), steps_seen  # the value read with the step
    assert steps_seen[-1] >= last_step - 1 and tf.train.latest_checkpoint(ckpt).endswith(f"-{last_step}")
