"""`SyncReplicasOptimizer` across real server processes (one OS process per task on 127.0.0.1),
each worker's client a thread here with a graph and session of its own.

Backup workers: with 2 of 3 replicas aggregated, a worker that stops (its client no longer runs,
or its server is SIGKILLed or SIGSTOPped mid-step) does not hold up the other two. Without a
backup, the chief's `replica_timeout_secs` ends its blocked step with `DeadlineExceededError`
naming the step and the replica that sent nothing.

The model: loss = sum(w * x) with w on the PS and worker i feeding the one-hot x = e_i, so the
gradient of worker i moves only w[i].
"""

import contextlib
import signal
import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tests.distributed.cluster_procs import server_processes

pytestmark = pytest.mark.slow

TOKEN = "sync-replicas-cluster-test-secret"
STEP_MS = 30_000  # no step of these tests may block longer than this
WAIT_S = 60.0


def _replica(cluster, index, replicas_to_aggregate, total, timeout=None):
    device = f"/job:worker/task:{index}"
    graph = tf.Graph()
    with graph.as_default(), tf.device(tf.train.replica_device_setter(
            worker_device=device, ps_device="/job:ps", cluster=cluster)):
        global_step = tf.train.get_or_create_global_step()
        w = tf.Variable(np.zeros(3, np.float32), name="w")
        x = tf.placeholder(tf.float32, [3], name="x")
        opt = tf.train.SyncReplicasOptimizer(tf.train.GradientDescentOptimizer(0.5),
                                             replicas_to_aggregate=replicas_to_aggregate, total_num_replicas=total,
                                             replica_timeout_secs=timeout)
        train = opt.minimize(tf.reduce_sum(w * x), global_step=global_step)
        init = tf.global_variables_initializer()
        init_tokens = opt.get_init_tokens_op()
    return {"graph": graph, "opt": opt, "train": train, "x": x, "w": w, "step": global_step, "init": init,
            "init_tokens": init_tokens, "feed": {x: np.eye(3, dtype=np.float32)[index]}, "device": device}


def _session(procs, index, r):
    config = tf.ConfigProto(cluster_token=TOKEN, operation_timeout_in_ms=STEP_MS,
                            device_filters=["/job:ps", r["device"]])
    return tf.Session(procs.target("worker", index), graph=r["graph"], config=config)


def _start(procs, rs, coord):
    """Sessions for every replica: the chief initializes the model, puts the initial tokens in and
    starts its queue runner; the others run their local init once the model is ready."""
    sessions = [_session(procs, i, r) for i, r in enumerate(rs)]
    chief, r0 = sessions[0], rs[0]
    chief.run(r0["init"])
    chief.run(r0["opt"].chief_init_op)
    chief.run(r0["init_tokens"])
    r0["opt"].get_chief_queue_runner().create_threads(chief, coord=coord, daemon=True, start=True)
    for sess, r in zip(sessions[1:], rs[1:], strict=True):
        assert len(sess.run(r["opt"].ready_for_local_init_op)) == 0
        sess.run(r["opt"].local_step_init_op)
    return sessions


class _Loop(threading.Thread):
    """A worker's training loop: runs the train op until `stop` is set or after `max_steps`."""

    def __init__(self, sess, r, max_steps=None, after_step=None):
        super().__init__(daemon=True)
        self.sess, self.r, self.max_steps, self.after_step = sess, r, max_steps, after_step
        self.steps, self.error, self.stop = 0, None, threading.Event()

    def run(self):
        try:
            while not self.stop.is_set() and (self.max_steps is None or self.steps < self.max_steps):
                self.sess.run(self.r["train"], self.r["feed"])
                self.steps += 1
                if self.after_step is not None:
                    self.after_step(self.steps)
        except BaseException as e:  # noqa: BLE001 - checked by the test
            self.error = e


def _wait_until(condition, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def _close(coord, sessions, loops):
    coord.request_stop()
    for loop in loops:
        loop.stop.set()
    for sess in sessions:
        _close_session(sess)  # cancels a step still waiting for a token
    for loop in loops:
        loop.join(WAIT_S)


def _close_session(sess):
    with contextlib.suppress(tf.errors.OpError):  # its server may be dead
        sess.close()


STALLS = ["client_stops", "server_killed", "server_stopped"]


@pytest.mark.parametrize("stall", STALLS)
def test_two_of_three_workers_go_on_when_the_third_stalls(stall):
    k = 3
    with server_processes({"ps": 1, "worker": 3}, token=TOKEN) as procs:
        rs = [_replica(procs.cluster, i, replicas_to_aggregate=2, total=3) for i in range(3)]
        coord = tf.train.Coordinator()
        sessions, loops = [], []
        stalled = threading.Event()

        def stall_worker2(steps):
            # After its k-th step the third worker stalls; its client then tries one more step.
            if steps == k and stall != "client_stops":
                if stall == "server_killed":
                    procs.kill("worker", 2)
                else:
                    procs.process("worker", 2).send_signal(signal.SIGSTOP)
            if steps == k:
                stalled.set()
        try:
            sessions = _start(procs, rs, coord)
            loops = [_Loop(sessions[0], rs[0]), _Loop(sessions[1], rs[1]),
                     _Loop(sessions[2], rs[2], max_steps=k if stall == "client_stops" else None,
                           after_step=stall_worker2)]
            for loop in loops:
                loop.start()
            assert stalled.wait(WAIT_S), f"worker 2 did not take {k} steps: {[loop.error for loop in loops]}"
            step0 = sessions[0].run(rs[0]["step"])
            done0, done1 = loops[0].steps, loops[1].steps
            _wait_until(lambda: sessions[0].run(rs[0]["step"]) >= step0 + 10 or
                        any(loop.error for loop in loops[:2]), "the global step advanced by 10")
            assert loops[0].error is None and loops[1].error is None, (loops[0].error, loops[1].error)
            assert loops[0].steps > done0 and loops[1].steps > done1
            w = sessions[0].run(rs[0]["w"])
            assert w[0] < 0 and w[1] < 0, w  # both live workers' gradients are applied
            assert not coord.should_stop()
            if stall == "server_stopped":
                procs.kill("worker", 2)  # SIGKILL ends a stopped process too
        finally:
            _close(coord, sessions, loops)
        assert not any(loop.is_alive() for loop in loops)


def test_without_backups_the_chief_names_the_missing_replica_after_its_timeout():
    with server_processes({"ps": 1, "worker": 2}, token=TOKEN) as procs:
        rs = [_replica(procs.cluster, i, replicas_to_aggregate=2, total=2, timeout=2.0) for i in range(2)]
        coord = tf.train.Coordinator()
        sessions = []
        try:
            sessions = _start(procs, rs, coord)
            chief = sessions[0]
            # Two rounds in lockstep: the initial tokens, then one token each of update 1 (their
            # gradients of step 0 come too late for it and are dropped).
            for _ in range(2):
                for sess, r in zip(sessions, rs, strict=True):
                    sess.run(r["train"], r["feed"])
                _wait_until(lambda: chief.run(rs[0]["step"]) >= 1, "update 1 was applied")
            # Worker 1 dies; the chief pushes its gradient of step 1 and waits for a token.
            procs.kill("worker", 1)
            loop = _Loop(chief, rs[0], max_steps=1)
            start = time.monotonic()
            loop.start()
            loop.join(WAIT_S)
            assert not loop.is_alive(), "the chief's step still waits"
            assert time.monotonic() - start >= 1.5
            error = loop.error
            assert isinstance(error, tf.errors.DeadlineExceededError), repr(error)
            message = error.message
            assert "step 1" in message and "1 of 2 gradients" in message, message
            assert "from replicas [/job:worker/task:0]" in message, message
            assert "missing known replicas [/job:worker/task:1]" in message, message
            _wait_until(coord.should_stop, "the queue runner reported the error")
            with pytest.raises(tf.errors.DeadlineExceededError, match="missing known replicas"):
                coord.raise_requested_exception()
        finally:
            coord.request_stop()
            for sess in sessions:
                _close_session(sess)
