"""`tf.train.Server` over gRPC on 127.0.0.1: a PS task and a worker task train a model that
matches a single-process run exactly, a second client sees the PS variables, a wrong or missing
cluster token is refused (UNAUTHENTICATED) while the server keeps serving, and a PS in another
process serves the same way."""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec, free_ports
from tensorweave.framework import errors
from tests.distributed.cluster_procs import wait_serving

TOKEN = "test-cluster-secret"
XV = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
YV = np.random.default_rng(2).standard_normal((6, 1)).astype(np.float32)
STEP_MS = 30_000  # every step in these tests carries a deadline


def _cluster():
    ps, worker = free_ports(2)
    return ClusterSpec({"ps": [f"127.0.0.1:{ps}"], "worker": [f"127.0.0.1:{worker}"]})


def _config(token=TOKEN):
    return tf.ConfigProto(cluster_token=token, operation_timeout_in_ms=STEP_MS)


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


def _single_process(steps=3):
    with tf.Graph().as_default():
        w, b, loss, train = _linear_model(None)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([loss, train], {"x:0": XV, "y:0": YV})[0] for _ in range(steps)]
            return losses, sess.run([w, b])


def _train_and_check(cluster, target):
    expected_losses, expected_weights = _single_process()
    with tf.Graph().as_default() as g:
        w, b, loss, train = _linear_model(tf.train.replica_device_setter(cluster=cluster))
        init = tf.global_variables_initializer()
    assert w.op.device.startswith("/job:ps")
    with tf.Session(target, graph=g, config=_config()) as sess:
        sess.run(init)
        losses = [sess.run([loss, train], {"x:0": XV, "y:0": YV})[0] for _ in range(3)]
        weights = sess.run([w, b])
        with g.as_default():
            doubled = w * 2.0  # added after the session started: the session is extended
        np.testing.assert_array_equal(sess.run(doubled), expected_weights[0] * 2.0)
    for a, e in zip(losses + weights, expected_losses + expected_weights, strict=True):
        np.testing.assert_array_equal(a, e)
    assert losses[0] != losses[2]

    # A second client session reads the trained PS variables without initializing them.
    with tf.Session(target, graph=g, config=_config()) as other:
        got = other.run([w, b])
    for a, e in zip(got, expected_weights, strict=True):
        np.testing.assert_array_equal(a, e)


def test_ps_and_worker_servers_train_like_one_process_and_share_variables():
    cluster = _cluster()
    servers = []
    try:
        servers.append(tf.train.Server(cluster, "ps", 0, config=_config()))
        worker = tf.train.Server(cluster, "worker", 0, config=_config())
        servers.append(worker)
        assert worker.target == f"grpc://{cluster.task_address('worker', 0)}"
        _train_and_check(cluster, worker.target)
        # Closed sessions released their graphs on both tasks; no step rendezvous is left over.
        for s in servers:
            assert s.worker.graph_handles() == []
            assert s.rendezvous.steps() == []
    finally:
        for s in servers:
            s.stop()


@pytest.mark.parametrize("token", ["wrong-secret", None])
def test_wrong_or_missing_token_is_unauthenticated_and_the_server_keeps_serving(token, monkeypatch):
    monkeypatch.delenv("TENSORWEAVE_CLUSTER_TOKEN", raising=False)
    monkeypatch.delenv("TENSORWEAVE_CLUSTER_TOKEN_FILE", raising=False)
    cluster = ClusterSpec({"worker": [f"127.0.0.1:{free_ports(1)[0]}"]})
    server = tf.train.Server(cluster, "worker", 0, config=_config())
    try:
        with tf.Graph().as_default() as g:
            c = tf.constant(3.0, name="c")
        with pytest.raises(errors.UnauthenticatedError):
            tf.Session(server.target, graph=g, config=_config(token))
        with tf.Session(server.target, graph=g, config=_config()) as sess:
            assert sess.run(c) == 3.0
    finally:
        server.stop()


def test_without_a_token_the_server_binds_loopback_and_serves():
    cluster = ClusterSpec({"worker": [f"localhost:{free_ports(1)[0]}"]})
    server = tf.train.Server(cluster, "worker", 0, config=tf.ConfigProto(operation_timeout_in_ms=STEP_MS))
    try:
        with tf.Graph().as_default() as g:
            c = tf.add(tf.constant(1.0), 2.0, name="c")
        target = "grpc://127.0.0.1:" + cluster.task_address("worker", 0).rsplit(":", 1)[1]
        with tf.Session(target, graph=g, config=tf.ConfigProto(operation_timeout_in_ms=STEP_MS)) as sess:
            assert sess.run(c) == 3.0
    finally:
        server.stop()


def test_failing_op_on_the_ps_fails_the_step_and_the_next_step_works():
    cluster = _cluster()
    servers = []
    try:
        servers.append(tf.train.Server(cluster, "ps", 0, config=_config()))
        servers.append(tf.train.Server(cluster, "worker", 0, config=_config()))
        with tf.Graph().as_default() as g:
            with tf.device("/job:worker/task:0"):
                a = tf.placeholder(tf.float32, [None], name="a")
            with tf.device("/job:ps/task:0"):
                bad = tf.reshape(a * 2.0, [3], name="bad")
            with tf.device("/job:worker/task:0"):
                c = tf.add(bad, 1.0, name="c")  # waits for the PS's tensor
        with tf.Session(servers[1].target, graph=g, config=_config()) as sess:
            with pytest.raises(errors.InvalidArgumentError, match="bad") as info:
                sess.run(c, {a: np.ones(4, np.float32)})
            # The error points at the client's op and where the client defined it, not at the
            # server's import of the GraphDef.
            assert info.value.op is bad.op
            assert f"[[node bad (defined at {bad.op.creation_site})]]" in info.value.message
            assert "test_server.py" in bad.op.creation_site and "site-packages" not in info.value.message
            np.testing.assert_array_equal(sess.run(c, {a: np.ones(3, np.float32)}), [3.0, 3.0, 3.0])
    finally:
        for s in servers:
            s.stop()


def test_sessions_and_graphs_left_behind_are_collected_once_idle():
    cluster = ClusterSpec({"worker": [f"127.0.0.1:{free_ports(1)[0]}"]})
    server = tf.train.Server(cluster, "worker", 0, config=_config(), max_idle_seconds=0.5,
                             collect_interval_seconds=0.1)
    try:
        with tf.Graph().as_default() as g:
            c = tf.add(tf.constant(1.0), 2.0, name="c")
        sess = tf.Session(server.target, graph=g, config=_config())  # its client never closes it
        assert sess.run(c) == 3.0
        # A graph a master of another task registered here, whose master went away.
        with tf.Graph().as_default() as other, tf.device("/job:worker/task:0"):
            tf.constant(1.0, name="k")
        orphan = server.worker.register_graph("a-vanished-master-session", other.as_graph_def())
        assert len(server.worker.graph_handles()) == 2
        deadline = time.monotonic() + 30
        while server.worker.graph_handles() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.worker.graph_handles() == []
        with pytest.raises(errors.NotFoundError, match=orphan):
            server.worker.deregister_graph(orphan)
        with pytest.raises(errors.AbortedError, match="is not found"):  # the master closed the session
            sess.run(c)
        sess.close()  # closing a collected session does not fail
    finally:
        server.stop()
    assert not server._collector.is_alive()


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_ps_in_another_process():
    cluster = _cluster()
    script = textwrap.dedent(f"""
        import tensorweave as tf
        cluster = tf.train.ClusterSpec({cluster.as_dict()!r})
        tf.train.Server(cluster, "ps", 0, config=tf.ConfigProto(cluster_token={TOKEN!r})).join()
    """)
    ps = subprocess.Popen([sys.executable, "-c", script])
    worker = None
    try:
        worker = tf.train.Server(cluster, "worker", 0, config=_config())
        wait_serving(cluster.task_address("ps", 0))
        _train_and_check(cluster, worker.target)
    finally:
        if worker is not None:
            worker.stop()
        ps.kill()
        ps.wait(timeout=30)


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_a_killed_ps_fails_the_next_step_naming_it_and_the_session_still_closes():
    cluster = _cluster()
    script = textwrap.dedent(f"""
        import tensorweave as tf
        cluster = tf.train.ClusterSpec({cluster.as_dict()!r})
        tf.train.Server(cluster, "ps", 0, config=tf.ConfigProto(cluster_token={TOKEN!r})).join()
    """)
    ps = subprocess.Popen([sys.executable, "-c", script])
    worker = None
    try:
        worker = tf.train.Server(cluster, "worker", 0, config=_config())
        wait_serving(cluster.task_address("ps", 0))
        with tf.Graph().as_default():
            w, b, loss, train = _linear_model(tf.train.replica_device_setter(
                worker_device="/job:worker/task:0", cluster=cluster))
            feed = {"x:0": XV, "y:0": YV}
            sess = tf.Session(worker.target, config=_config())
            try:
                sess.run(tf.global_variables_initializer())
                sess.run(train, feed)
                ps.kill()
                ps.wait(timeout=30)
                started = time.monotonic()
                with pytest.raises(tf.errors.UnavailableError, match="job:ps"):
                    sess.run(train, feed, options=tf.RunOptions(timeout_in_ms=10_000))
                assert time.monotonic() - started < 10
            finally:
                sess.close()  # a dead task holds nothing of the session: closing does not fail
    finally:
        if worker is not None:
            worker.stop()
        ps.kill()
        ps.wait(timeout=30)


def test_a_session_on_a_server_of_its_own_process_calls_the_master_directly():
    from tensorweave.distributed.grpc_services import GrpcSessionRuntime
    from tensorweave.distributed.server import InProcessSessionRuntime
    cluster = _cluster()
    ps = tf.train.Server(cluster, "ps", 0, config=_config())
    worker = tf.train.Server(cluster, "worker", 0, config=_config())
    try:
        with tf.Graph().as_default():
            with tf.device("/job:ps/task:0"):
                v = tf.Variable([1.0, 2.0])
            with tf.device("/job:worker/task:0"):
                total = tf.reduce_sum(v * 3.0)
            with tf.Session(worker.target, config=_config()) as sess:
                assert isinstance(sess._runtime, InProcessSessionRuntime)
                sess.run(v.initializer)
                assert sess.run(total) == 9.0
                with tf.device("/job:ps/task:0"):
                    never = tf.Variable(5.0, name="never_initialized")
                with pytest.raises(errors.FailedPreconditionError, match="never_initialized") as info:
                    sess.run(never * 2.0)
                assert info.value.op is not None and info.value.op.graph is tf.get_default_graph()
            with pytest.raises(errors.UnauthenticatedError):  # a wrong token still goes to gRPC, and fails
                tf.Session(worker.target, config=_config(token="wrong"))
        worker.stop()
        with tf.Graph().as_default():  # a stopped server is no longer called in-process
            with pytest.raises(errors.UnavailableError):
                with tf.Session(worker.target, config=_config()) as sess:
                    assert isinstance(sess._runtime, GrpcSessionRuntime)
                    sess.run(tf.constant(1.0))
    finally:
        worker.stop()
        ps.stop()


def test_create_local_server_serves_a_one_task_cluster():
    server = tf.train.Server.create_local_server()
    try:
        assert server.target.startswith("grpc://localhost:")
        assert server.server_def[1:] == ("localhost", 0)
        with tf.Graph().as_default() as g:
            c = tf.multiply(tf.constant(2.0), 3.0)
        with tf.Session(server.target, graph=g) as sess:
            assert sess.run(c) == 6.0
            assert [d.name for d in sess.list_devices()] == ["/job:localhost/replica:0/task:0/device:CPU:0"]
    finally:
        server.stop()


_UNCLOSED_SESSION = textwrap.dedent("""
    import sys
    import tensorweave as tf
    target = sys.argv[1] if len(sys.argv) > 1 else tf.train.Server.create_local_server().target
    x = tf.multiply(tf.constant(2.0), 3.0)
    sess = tf.Session(target, config=tf.ConfigProto(cluster_token={token!r}))  # never closed
    print(sess.run(x), flush=True)
""")


def test_a_program_that_never_closes_its_session_exits_and_its_server_releases_it():
    # A session closed only by garbage collection at interpreter exit used to hang the program:
    # its __del__ started a thread, which can no longer start then.
    script = _UNCLOSED_SESSION.format(token=TOKEN)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6.0"

    cluster = ClusterSpec({"worker": [f"127.0.0.1:{free_ports(1)[0]}"]})
    server = tf.train.Server(cluster, "worker", 0, config=_config())
    try:  # a client in another process: the server frees its session when the client exits
        done = subprocess.run([sys.executable, "-c", script, server.target], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "6.0"
        assert server.master._sessions == {}
        assert server.worker.graph_handles() == []
    finally:
        server.stop()


def test_graphs_sharing_a_variable_by_name_must_agree_on_its_dtype_and_shape():
    # Graphs of different clients share a server's variables by name, as in TF; a mismatch is an
    # error naming the op, never a silent overwrite or a value of another dtype.
    server = tf.train.Server.create_local_server()
    try:
        def session_with(value):
            with tf.Graph().as_default() as g:
                w = tf.Variable(value, name="w")
            return tf.Session(server.target, graph=g), w

        first, w = session_with(np.ones((4, 1), np.float32))
        first.run(w.initializer)
        wider, w8 = session_with(np.zeros((8, 1), np.float32))
        with pytest.raises(errors.InvalidArgumentError, match=r"lhs shape= \[4, 1\] rhs shape= \[8, 1\]"):
            wider.run(w8.initializer)
        other_dtype, w_int = session_with(np.ones((4, 1), np.int32))
        with pytest.raises(errors.InvalidArgumentError, match="Trying to share variable w, but specified dtype "
                                                              "int32 and found dtype float32"):
            other_dtype.run(w_int)
        np.testing.assert_array_equal(first.run(w), np.ones((4, 1), np.float32))  # untouched
        for sess in (first, wider, other_dtype):
            sess.close()
    finally:
        server.stop()


def test_the_data_channel_never_takes_a_port_the_cluster_spec_names(monkeypatch):
    # free_ports (and `tensorweave launch`) release the ports they pick until each task binds its
    # own; a data channel binding port 0 meanwhile must not be handed another task's port.
    from tensorweave.distributed import server as server_module

    spec = _cluster()
    worker_port = int(spec.task_address("worker", 0).rsplit(":", 1)[1])
    real, made = server_module.DataChannelServer, []

    def os_hands_out_the_worker_port_first(host, port, *args, **kwargs):
        made.append(real(host, worker_port if not made and port == 0 else port, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(server_module, "DataChannelServer", os_hands_out_the_worker_port_first)
    ps = tf.train.Server(spec, "ps", 0, config=_config())
    try:
        assert len(made) == 2 and made[0].port == worker_port and ps.data_port == made[1].port != worker_port
        worker = tf.train.Server(spec, "worker", 0, config=_config())  # its port was given back
        worker.stop()
    finally:
        ps.stop()
