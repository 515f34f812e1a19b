"""`tf.Session.reset(target, containers)` and `tf.container`: a reset through a worker's master
clears the named resource containers on the PS (its variables are uninitialized again, for new
sessions and for graphs another master still holds), leaves other containers alone, clears all
of them when none are named, and closes the master's sessions. A client in another process
resets over gRPC with the cluster token; without it the call is refused and nothing changes.
The transport-neutral `Master.reset` and `Worker.cleanup_all` are checked on their own too."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec, free_ports
from tensorweave.distributed.master import Master, MasterRuntime
from tensorweave.distributed.worker import Worker
from tensorweave.framework import errors
from tensorweave.ops import state_ops

TOKEN = "test-reset-secret"
STEP_MS = 30_000  # every step carries a deadline
CHILD_TIMEOUT_S = 120


def _config(token=TOKEN):
    return tf.ConfigProto(cluster_token=token, operation_timeout_in_ms=STEP_MS)


def _model():
    """Three PS variables: `plain` in the default container, `kept` in "keep", `dropped` in "drop"."""
    g = tf.Graph()
    with g.as_default(), tf.device("/job:ps/task:0"):
        plain = tf.Variable(1.0, name="plain")
        with tf.container("keep"):
            kept = tf.Variable(2.0, name="kept")
        with tf.container("drop"):
            dropped = tf.Variable(3.0, name="dropped")
        bump = tf.group(tf.assign_add(plain, 10.0), tf.assign_add(kept, 10.0), tf.assign_add(dropped, 10.0))
        init = tf.global_variables_initializer()
        uninitialized = tf.report_uninitialized_variables()
    return g, (plain, kept, dropped), bump, init, uninitialized


@pytest.fixture
def servers():
    ps_port, worker_port = free_ports(2)
    cluster = ClusterSpec({"ps": [f"127.0.0.1:{ps_port}"], "worker": [f"127.0.0.1:{worker_port}"]})
    started = []
    try:
        for job in ("ps", "worker"):
            started.append(tf.train.Server(cluster, job, 0, config=_config()))
        yield started
    finally:
        for server in started:
            server.stop()


def _uninitialized(target, graph, report):
    with tf.Session(target, graph=graph, config=_config()) as sess:
        return sorted(n.decode() if isinstance(n, bytes) else n for n in sess.run(report))


def test_reset_clears_named_containers_on_the_ps_and_closes_the_masters_sessions(servers):
    ps, worker = servers
    g, (plain, kept, dropped), bump, init, report = _model()
    sess = tf.Session(worker.target, graph=g, config=_config())
    # A session of the PS's own master: not closed by the worker's reset, but its graph (plans
    # already compiled) must see the cleared variables too.
    ps_sess = tf.Session(ps.target, graph=g, config=_config())
    try:
        sess.run(init)
        sess.run(bump)
        assert sess.run([plain, kept, dropped]) == [11.0, 12.0, 13.0]
        assert ps_sess.run(dropped) == 13.0

        tf.Session.reset(worker.target, ["", "drop"], config=_config())

        with pytest.raises(errors.AbortedError):  # closed by the reset, as in TF
            sess.run(plain)
        assert _uninitialized(worker.target, g, report) == ["dropped", "plain"]
        with tf.Session(worker.target, graph=g, config=_config()) as fresh:
            with pytest.raises(errors.FailedPreconditionError, match="plain"):
                fresh.run(plain)
            assert fresh.run(kept) == 12.0  # container "keep" was not named: it survives
        with pytest.raises(errors.FailedPreconditionError, match="dropped"):
            ps_sess.run(dropped)
        assert ps_sess.run(kept) == 12.0

        tf.Session.reset(worker.target, config=_config())  # no containers: all of them
        assert _uninitialized(worker.target, g, report) == ["dropped", "kept", "plain"]
    finally:
        sess.close()
        ps_sess.close()


def test_reset_from_another_process_needs_the_cluster_token(servers):
    _, worker = servers
    g, (plain, kept, dropped), bump, init, report = _model()
    with tf.Session(worker.target, graph=g, config=_config()) as sess:
        sess.run(init)
    script = textwrap.dedent("""
        import sys
        import tensorweave as tf
        target, token, containers = sys.argv[1], sys.argv[2], sys.argv[3:]
        try:
            tf.Session.reset(target, containers, config=tf.ConfigProto(cluster_token=token))
        except tf.errors.UnauthenticatedError as e:
            print("UNAUTHENTICATED", e.message)
            sys.exit(3)
        print("RESET")
    """)

    def child(token, *containers):
        return subprocess.run([sys.executable, "-c", script, worker.target, token, *containers],
                              capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)

    refused = child("not-the-secret", "drop")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert _uninitialized(worker.target, g, report) == []

    done = child(TOKEN, "drop")
    assert done.returncode == 0 and "RESET" in done.stdout, done.stdout + done.stderr
    assert _uninitialized(worker.target, g, report) == ["dropped"]


def test_reset_with_the_wrong_token_in_process_goes_over_grpc_and_is_refused(servers):
    _, worker = servers
    with pytest.raises(errors.UnauthenticatedError):
        tf.Session.reset(worker.target, config=_config("not-the-secret"))


# -- transport-neutral master and worker --------------------------------------------------------

CLUSTER = ClusterSpec({"ps": ["ps0.invalid:1"], "worker": ["w0.invalid:1"]})
PS, W0 = "/job:ps/replica:0/task:0", "/job:worker/replica:0/task:0"


def test_master_reset_closes_sessions_and_clears_every_task():
    workers = {PS: Worker(PS), W0: Worker(W0)}
    master = Master(CLUSTER, workers)
    g, (plain, kept, dropped), bump, init, report = _model()
    graph_def = g.as_graph_def().SerializeToString()
    runtime = MasterRuntime(master, master.create_session(graph_def), g)
    runtime.run([], [], [], [init], None, None)
    assert runtime.run([], [], [dropped.value()], [], None, None) == [3.0]
    assert workers[PS].graph_handles()

    assert master.reset(["drop"]) == [runtime.handle]
    assert workers[PS].graph_handles() == []  # the session's graphs were released
    with pytest.raises(errors.AbortedError):
        runtime.run([], [], [plain.value()], [], None, None)
    again = MasterRuntime(master, master.create_session(graph_def), g)
    (left,) = again.run([], [], [report], [], None, None)
    assert [n.decode() if isinstance(n, bytes) else n for n in left] == ["dropped"]
    assert again.run([], [], [kept.value()], [], None, None) == [2.0]


def test_worker_cleanup_all_clears_containers_under_registered_plans():
    worker = Worker(PS)
    graphs = []
    for part in ("init", "read"):  # a registered graph runs all its sinks: one graph each
        with tf.Graph().as_default() as g, tf.device(PS + "/device:CPU:0"):
            with tf.container("a"):
                v = state_ops.variable_op([], tf.float32, name="v")
            if part == "read":
                tf.identity(v, name="read")
            else:
                tf.assign(v, np.float32(5.0))
        graphs.append(worker.register_graph(part, g.as_graph_def().SerializeToString()))
    init, read = graphs
    worker.run_graph(init, 1, {}, [], _NoRendezvous())
    assert worker.run_graph(read, 2, {}, ["read:0"], _NoRendezvous())["read:0"] == 5.0
    worker.cleanup_all(["b"])  # another container: nothing changes
    assert worker.run_graph(read, 3, {}, ["read:0"], _NoRendezvous())["read:0"] == 5.0
    worker.cleanup_all(["a"])
    assert worker.graph_handles() == sorted(graphs)  # graphs stay registered
    with pytest.raises(errors.FailedPreconditionError, match="v"):
        worker.run_graph(read, 4, {}, ["read:0"], _NoRendezvous())
    worker.run_graph(init, 5, {}, [], _NoRendezvous())  # initialized again, in a fresh cell
    assert worker.run_graph(read, 6, {}, ["read:0"], _NoRendezvous())["read:0"] == 5.0


class _NoRendezvous:
    """A rendezvous for one-task steps: nothing crosses it."""

    def send(self, key, value):
        raise AssertionError(key)

    def recv_async(self, key, callback):
        raise AssertionError(key)

    def recv(self, key, timeout=None):
        raise AssertionError(key)

    def abort(self, error):
        pass

    def pending_keys(self):
        return [], []
