"""`SyncReplicasOptimizer.make_session_run_hook` in `tf.train.MonitoredTrainingSession`, end to
end on real server processes (1 PS + 2 workers, one OS process per task on 127.0.0.1): each
worker's client, a thread here with a graph of its own, trains until the global step reaches the
StopAtStepHook's last step, and both sessions then close within their grace period. And, in one
process: a thread of the session's coordinator still blocked after the grace period does not
make `close()` fail (TF1 logs it); the session is closed all the same.

The model makes the aggregation visible: loss = sum(w * x) with w on the PS, worker i feeding the
one-hot x = e_i, so w[i] moves only by worker i's gradients and every applied update (a mean of
gradients that each sum to 1) lowers sum(w) by exactly the learning rate.
"""

import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tests.distributed.cluster_procs import server_processes

TOKEN = "sync-monitored-session-test-secret"
LAST_STEP = 20
LR = 0.25  # a power of two: every sum below is exact in float32
GRACE_S = 2.0
STEP_MS = 30_000   # a step blocked longer than this (a token that never comes) fails
JOIN_S = 90.0


class _Worker(threading.Thread):
    """Worker `index`'s client: its own graph and MonitoredTrainingSession on its own server."""

    def __init__(self, procs, index, start_together):
        super().__init__(daemon=True, name=f"sync-worker-{index}")
        self.procs, self.index, self.start_together = procs, index, start_together
        self.local_steps, self.error, self.closed_in_s = 0, None, None

    def run(self):
        try:
            self._train()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
            self.start_together.abort()  # the other worker must not wait for this one

    def _train(self):
        cluster = self.procs.cluster
        device = f"/job:worker/task:{self.index}"
        is_chief = self.index == 0
        with tf.Graph().as_default(), tf.device(tf.train.replica_device_setter(
                worker_device=device, ps_device="/job:ps", cluster=cluster)):
            global_step = tf.train.get_or_create_global_step()
            w = tf.Variable(np.zeros(2, np.float32), name="w")
            x = tf.placeholder(tf.float32, [2], name="x")
            opt = tf.train.SyncReplicasOptimizer(tf.train.GradientDescentOptimizer(LR), replicas_to_aggregate=2,
                                                 total_num_replicas=2)
            train = opt.minimize(tf.reduce_sum(w * x), global_step=global_step)
            hooks = [opt.make_session_run_hook(is_chief), tf.train.StopAtStepHook(last_step=LAST_STEP)]
            config = tf.ConfigProto(cluster_token=TOKEN, operation_timeout_in_ms=STEP_MS,
                                    device_filters=["/job:ps", device])
            feed = {x: np.eye(2, dtype=np.float32)[self.index]}
            sess = tf.train.MonitoredTrainingSession(master=self.procs.target("worker", self.index),
                                                     is_chief=is_chief, hooks=hooks, config=config,
                                                     stop_grace_period_secs=GRACE_S, max_wait_secs=60)
            with sess:
                self.start_together.wait(JOIN_S)
                while not sess.should_stop():
                    sess.run(train, feed)
                    self.local_steps += 1
                self.final_step, self.final_w = sess.run_step_fn(
                    lambda context: context.session.run([global_step, w]))
                t0 = time.monotonic()
            self.closed_in_s = time.monotonic() - t0


@pytest.mark.slow
def test_two_workers_train_in_lockstep_to_the_last_step_and_close():
    with server_processes({"ps": 1, "worker": 2}, token=TOKEN) as procs:
        # Sessions first, then training: a chief on its own would take every token and train alone
        # (as in TF1, an update counts gradients, not workers).
        start_together = threading.Barrier(2)
        workers = [_Worker(procs, i, start_together) for i in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(JOIN_S)
        for worker in workers:
            assert not worker.is_alive(), f"worker {worker.index} still runs after {JOIN_S} s " \
                                          f"(it has taken {worker.local_steps} steps)"
            assert worker.error is None, f"worker {worker.index}: {worker.error!r}"
        # Closing the chief's session cancelled its queue runner's step: no thread is left blocked.
        deadline = time.monotonic() + 10
        while any(t.name.startswith("QueueRunner") for t in threading.enumerate()):
            assert time.monotonic() < deadline, [t.name for t in threading.enumerate()]
            time.sleep(0.05)

    chief, other = workers
    steps = int(chief.final_step)
    assert steps >= LAST_STEP
    assert all(w.local_steps > 0 for w in workers), [w.local_steps for w in workers]
    # Both workers' gradients were applied: each moved its own coordinate of w.
    w = chief.final_w
    assert w[0] < 0 and w[1] < 0, w
    # Each update is the mean of aggregated gradients: sum(w) fell by LR per global step.
    assert w.sum() == pytest.approx(-LR * steps, abs=1e-6)
    # Sync: every update took at least two gradients, one from each worker step (both loops ended
    # by themselves, so no step was left waiting for a token).
    assert chief.local_steps + other.local_steps >= 2 * steps
    # The chief's queue runner, blocked on the next aggregate, does not hold up close() past its grace.
    assert chief.closed_in_s < GRACE_S + 10, chief.closed_in_s


def test_close_logs_a_thread_that_outlives_the_grace_period_and_closes_the_session():
    release = threading.Event()  # the thread waits as a chief's queue runner waits for gradients

    class _BlockedThreadHook(tf.train.SessionRunHook):
        def after_create_session(self, session, coord):
            thread = threading.Thread(target=release.wait, daemon=True, name="QueueRunner-blocked")
            coord.register_thread(thread)
            thread.start()

    try:
        with tf.Graph().as_default():
            tf.train.get_or_create_global_step()
            sess = tf.train.MonitoredSession(hooks=[_BlockedThreadHook()], stop_grace_period_secs=0.2)
            t0 = time.monotonic()
            sess.close()
            assert time.monotonic() - t0 < 5
            assert sess.should_stop()
    finally:
        release.set()
