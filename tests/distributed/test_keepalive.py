"""A peer that stops answering (SIGSTOP: its sockets stay open, nothing resets them) is found by
liveness checks: data channel PING/PONG for tensors awaited from it and for a step call running
on it over that channel, Worker.Health polls for one running over gRPC. The step fails with
UnavailableError naming the task within a few keepalive intervals, long before the step's own
deadline, and never hangs."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec, free_ports
from tests.distributed.cluster_procs import wait_serving

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")

TOKEN = "keepalive-secret"
KEEPALIVE_S = 0.5
STEP_DEADLINE_MS = 60_000
DETECT_WITHIN_S = 12.0  # the data channel gives up after about 4 K, the master waits 2 s more


@pytest.fixture
def cluster(monkeypatch, request):
    """A PS process and an in-process worker server, all pinging every KEEPALIVE_S. Parametrized
    indirectly with False, the PS has no data channel (every call to it goes over gRPC)."""
    data_port = 0 if getattr(request, "param", True) else None
    monkeypatch.setenv("TENSORWEAVE_KEEPALIVE_SECONDS", str(KEEPALIVE_S))
    ps_port, worker_port = free_ports(2)
    spec = ClusterSpec({"ps": [f"127.0.0.1:{ps_port}"], "worker": [f"127.0.0.1:{worker_port}"]})
    script = textwrap.dedent(f"""
        import tensorweave as tf
        server = tf.train.Server({spec.as_dict()!r}, "ps", 0, config=tf.ConfigProto(cluster_token={TOKEN!r}),
                                 data_port={data_port!r})
        server.join()
    """)
    ps = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ))
    worker = None
    try:
        worker = tf.train.Server(spec, "worker", 0, config=tf.ConfigProto(cluster_token=TOKEN))
        wait_serving(spec.task_address("ps", 0))
        yield ps, worker
    finally:
        if worker is not None:
            worker.stop()
        ps.send_signal(signal.SIGCONT)
        ps.kill()
        ps.wait(timeout=30)


def _stop(process):
    """SIGSTOPs `process` and waits (bounded) until every thread of it has stopped: a thread busy on
    another core stops a moment after the signal, in time to answer a fast call."""
    process.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 5.0
    task_dir = f"/proc/{process.pid}/task"
    while os.path.isdir(task_dir) and time.monotonic() < deadline:
        states = []
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:  # the thread ended
                pass
        if all(state in "Tt" for state in states):
            return
        time.sleep(0.005)


def _step_fails_fast(sess, fetch):
    options = tf.RunOptions(timeout_in_ms=STEP_DEADLINE_MS)
    start = time.monotonic()
    with pytest.raises((tf.errors.UnavailableError, tf.errors.AbortedError)) as info:
        sess.run(fetch, options=options)
    elapsed = time.monotonic() - start
    assert elapsed < DETECT_WITHIN_S, f"took {elapsed:.1f} s to notice the silent PS"
    assert "/job:ps" in info.value.message
    return elapsed


@pytest.mark.slow
def test_a_silent_ps_fails_a_cross_task_step_through_data_channel_keepalives(cluster):
    ps, worker = cluster
    with tf.Graph().as_default():
        with tf.device("/job:ps/task:0"):
            v = tf.Variable(np.ones((64, 64), np.float32))
        with tf.device("/job:worker/task:0"):
            total = tf.reduce_sum(v * 3.0)
            local = tf.constant(2.0) * 4.0
        config = tf.ConfigProto(cluster_token=TOKEN)
        with tf.Session(worker.target, config=config) as sess:
            sess.run(v.initializer)
            assert sess.run(total) == 3 * 64 * 64  # the data channel to the PS is up
            _stop(ps)
            _step_fails_fast(sess, total)
            assert sess.run(local) == 8.0  # steps that do not touch the PS still run


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [True, False], indirect=True, ids=["data-channel", "grpc-health"])
def test_a_silent_ps_fails_a_step_that_runs_only_there(cluster):
    ps, worker = cluster
    with tf.Graph().as_default():
        with tf.device("/job:ps/task:0"):
            v = tf.Variable(np.ones(3, np.float32))
            doubled = v * 2.0
        with tf.Session(worker.target, config=tf.ConfigProto(cluster_token=TOKEN)) as sess:
            sess.run(v.initializer)
            np.testing.assert_array_equal(sess.run(doubled), [2.0, 2.0, 2.0])
            _stop(ps)
            _step_fails_fast(sess, doubled)


@pytest.mark.slow
def test_a_program_whose_master_went_silent_still_exits_promptly(tmp_path):
    # Sessions left open are closed at exit (see test_server); a master that no longer answers
    # gets EXIT_CLOSE_SECONDS, not the 30 s a setup call may take.
    port, = free_ports(1)
    spec = ClusterSpec({"worker": [f"127.0.0.1:{port}"]})
    server_script = textwrap.dedent(f"""
        import tensorweave as tf
        tf.train.Server({spec.as_dict()!r}, "worker", 0, config=tf.ConfigProto(cluster_token={TOKEN!r})).join()
    """)
    client_script = textwrap.dedent(f"""
        import sys
        import tensorweave as tf
        sess = tf.Session("grpc://127.0.0.1:{port}", config=tf.ConfigProto(cluster_token={TOKEN!r}))
        print(sess.run(tf.constant(2.0) * 3.0), flush=True)
        sys.stdin.readline()  # the test stops the server, then lets this program end
    """)
    server = subprocess.Popen([sys.executable, "-c", server_script])
    client = None
    try:
        wait_serving(spec.task_address("worker", 0))
        client = subprocess.Popen([sys.executable, "-c", client_script], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "6.0"
        server.send_signal(signal.SIGSTOP)
        start = time.monotonic()
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.wait(timeout=25) == 0
        assert time.monotonic() - start < 12.0
    finally:
        for process in (client, server):
            if process is not None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(timeout=30)
