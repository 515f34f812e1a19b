"""Failures during a step, on real server processes (one OS process per task, on 127.0.0.1):
a worker SIGKILLed while it computes fails the step at once with UnavailableError/AbortedError
naming it (not at the step's deadline) and the surviving tasks go on serving; a step deadline
ends a slow step with DeadlineExceededError.

The slow part of a step is real work: a chain of 2048 x 2048 matmuls pinned to worker 1 (about
0.08 s each on these machines), with its input fed on worker 0 and its result read back there.
"""

import os
import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tests.distributed.cluster_procs import server_processes

TOKEN = "failures-test-secret"
PS, WORKER0, WORKER1 = "/job:ps/task:0", "/job:worker/task:0", "/job:worker/task:1"
WORKER1_TASK = "/job:worker/replica:0/task:1"
N = 2048  # a power of two: 1/N and every partial sum below are exact in float32
CHAIN = 40
LONG_MS = 60_000        # the deadline of steps that must end sooner for another reason
DETECT_S = 10.0         # a lost task must fail the step within this
JOIN_S = 60.0

pytestmark = pytest.mark.slow


def _config(**kwargs):
    kwargs.setdefault("operation_timeout_in_ms", LONG_MS)
    return tf.ConfigProto(cluster_token=TOKEN, **kwargs)


def _slow_graph(with_ps):
    """out = sum(x @ m @ m ... @ m) + 1, the chain on worker 1, x and out on worker 0; with a PS,
    also a variable there and a step that touches only the PS and worker 0."""
    ops = {}
    with tf.Graph().as_default() as g:
        with tf.device(WORKER0):
            x = tf.placeholder(tf.float32, [None, N], name="x")
        with tf.device(WORKER1):
            m = tf.fill([N, N], 1.0 / N)  # x @ m averages each row: values stay finite
            h = x
            for i in range(CHAIN):
                h = tf.matmul(h, m, name=f"chain_{i}")
            chain_sum = tf.reduce_sum(h, name="chain_sum")
        with tf.device(WORKER0):
            ops["out"] = tf.add(chain_sum, 1.0, name="out")
        if with_ps:
            with tf.device(PS):
                v = tf.Variable(np.float32(1.0), name="v")
                ops["increment"] = tf.assign_add(v, 1.0, name="increment")
            with tf.device(WORKER0):
                ops["doubled"] = tf.multiply(ops["increment"], 2.0, name="doubled")
            ops["init"] = tf.global_variables_initializer()
    return g, x, ops


def _expected_out(rows):
    # Each matmul with m replaces every element by its row's mean; rows of ones stay ones.
    return np.float32(rows * N + 1.0)


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _wait_busy(pid, seconds=0.3, timeout=DETECT_S):
    """Returns once process `pid` has used `seconds` of CPU more than now (it is computing)."""
    start, deadline = _cpu_seconds(pid), time.monotonic() + timeout
    while _cpu_seconds(pid) - start < seconds:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Process {pid} did not start computing within {timeout} s")
        time.sleep(0.02)


def _run_in_thread(sess, fetch, feed, options):
    box = {}

    def run():
        try:
            box["value"] = sess.run(fetch, feed, options=options)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            box["error"] = e
        box["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def test_a_worker_killed_mid_step_fails_the_step_naming_it_and_the_other_tasks_go_on():
    with server_processes({"ps": 1, "worker": 2}, TOKEN) as procs:
        g, x, ops = _slow_graph(with_ps=True)
        with tf.Session(procs.target("worker", 0), graph=g, config=_config()) as sess:
            sess.run(ops["init"])
            # One row: registers the step on every task and runs fast.
            assert sess.run(ops["out"], {x: np.ones((1, N), np.float32)}) == _expected_out(1)

            thread, box = _run_in_thread(sess, ops["out"], {x: np.ones((N, N), np.float32)},
                                         tf.RunOptions(timeout_in_ms=LONG_MS))
            _wait_busy(procs.process("worker", 1).pid)  # worker 1 is inside the chain
            assert "value" not in box and "error" not in box
            killed_at = time.monotonic()
            procs.kill("worker", 1)
            thread.join(JOIN_S)
            assert not thread.is_alive(), "the step still runs after its worker was killed"
            error = box.get("error")
            assert isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError)), box
            assert WORKER1_TASK in error.message, error.message
            assert box["at"] - killed_at < DETECT_S

            # Steps that need only the PS and worker 0 still run in the same session.
            assert sess.run(ops["doubled"]) == 4.0
            assert sess.run(ops["doubled"]) == 6.0
            # A step that needs the dead task fails again, promptly, naming it.
            started = time.monotonic()
            with pytest.raises((tf.errors.UnavailableError, tf.errors.AbortedError), match=WORKER1_TASK):
                sess.run(ops["out"], {x: np.ones((1, N), np.float32)}, options=tf.RunOptions(timeout_in_ms=LONG_MS))
            assert time.monotonic() - started < DETECT_S
        # The session closed although a task of it is dead; the other tasks still serve.
        assert procs.process("ps", 0).poll() is None and procs.process("worker", 0).poll() is None


def test_a_new_session_whose_device_filters_leave_out_a_dead_task_runs():
    with server_processes({"ps": 1, "worker": 2}, TOKEN) as procs:
        procs.kill("worker", 1)
        with tf.Graph().as_default() as g:
            with tf.device(PS):
                v = tf.Variable(np.float32(2.0), name="v")
            with tf.device(WORKER0):
                doubled = tf.multiply(v, 2.0, name="doubled")
            init = tf.global_variables_initializer()
        # As a between-graph replica sets them: the PS and its own task only.
        config = _config(device_filters=["/job:ps", "/job:worker/task:0"])
        with tf.Session(procs.target("worker", 0), graph=g, config=config) as sess:
            sess.run(init)
            assert sess.run(doubled) == 4.0


@pytest.mark.parametrize("deadline_from", ["RunOptions.timeout_in_ms", "ConfigProto.operation_timeout_in_ms"])
def test_a_step_deadline_ends_a_slow_step_with_deadline_exceeded(deadline_from):
    with server_processes({"worker": 2}, TOKEN) as procs:
        g, x, ops = _slow_graph(with_ps=False)
        if deadline_from == "RunOptions.timeout_in_ms":
            config, options = _config(), tf.RunOptions(timeout_in_ms=500)
        else:
            config, options = _config(operation_timeout_in_ms=500), None
        with tf.Session(procs.target("worker", 0), graph=g, config=config) as sess:
            assert sess.run(ops["out"], {x: np.ones((1, N), np.float32)},
                            options=tf.RunOptions(timeout_in_ms=LONG_MS)) == _expected_out(1)
            started = time.monotonic()
            with pytest.raises(tf.errors.DeadlineExceededError):
                sess.run(ops["out"], {x: np.ones((N, N), np.float32)}, options=options)
            assert time.monotonic() - started < 0.5 + 3.0
            # The session still runs steps; a step within its deadline succeeds.
            assert sess.run(ops["out"], {x: np.ones((1, N), np.float32)},
                            options=tf.RunOptions(timeout_in_ms=LONG_MS)) == _expected_out(1)
