"""Tensors between tasks travel on the data channel, fall back to gRPC when it cannot be reached,
and both ports serve TLS (and mutual TLS) from certificate files."""

import queue

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed import tensor_codec
from tensorweave.distributed.cluster import ClusterSpec, free_ports
from tensorweave.distributed.peer_transport import answer_request
from tensorweave.distributed.remote_rendezvous import StepRendezvousTable
from tensorweave.framework import errors
from tests.distributed.cluster_procs import make_test_cert

TOKEN = "peer-transport-secret"
STEP_MS = 20_000
VALUE = np.random.default_rng(3).standard_normal((300, 200)).astype(np.float32)


def _config(**extra):
    return tf.ConfigProto(cluster_token=TOKEN, operation_timeout_in_ms=STEP_MS, **extra)


class _Cluster:
    """A PS and a worker server in this process (both stopped on exit)."""

    def __init__(self, ps_kwargs=None, config=None):
        ps, worker = free_ports(2)
        self.spec = ClusterSpec({"ps": [f"127.0.0.1:{ps}"], "worker": [f"127.0.0.1:{worker}"]})
        self.config = config or _config()
        self.ps = tf.train.Server(self.spec, "ps", 0, config=self.config, **(ps_kwargs or {}))
        self.worker = tf.train.Server(self.spec, "worker", 0, config=self.config)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.worker.stop()
        self.ps.stop()


def _cross_task_sum(target, config):
    """Runs reduce_sum(2 * v) on the worker with v on the PS; returns (value, bytes received)."""
    with tf.Graph().as_default():
        with tf.device("/job:ps/task:0"):
            v = tf.Variable(VALUE, name="v")
        with tf.device("/job:worker/task:0"):
            y = tf.reduce_sum(v * 2.0)
        with tf.Session(target, config=config) as sess:
            sess.run(v.initializer)
            md = tf.RunMetadata()
            out = sess.run(y, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), run_metadata=md)
            return out, sum(tensor_codec.transfer_bytes(md.step_stats).values())


def test_tensors_cross_tasks_on_the_data_channel():
    with _Cluster() as c:
        out, nbytes = _cross_task_sum(c.worker.target, c.config)
        assert out == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-5)
        assert nbytes == VALUE.nbytes
        assert c.worker.transport.channels() == {c.ps.task_name: f"127.0.0.1:{c.ps.data_port}"}
        assert c.ps._data_server.stats.payload_bytes >= VALUE.nbytes


@pytest.mark.parametrize("encoding, factor", [("bfloat16", 2), ("float16", 2), ("int8", 4)])
def test_compressed_tensors_on_the_data_channel(encoding, factor):
    with _Cluster() as c:
        config = _config(transfer_encoding=encoding)
        out, nbytes = _cross_task_sum(c.worker.target, config)
        assert nbytes == VALUE.nbytes // factor
        assert out == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-2, abs=5.0)


def test_a_task_without_a_data_channel_is_reached_over_grpc():
    with _Cluster(ps_kwargs={"data_port": None}) as c:
        assert c.ps.data_port is None
        out, nbytes = _cross_task_sum(c.worker.target, c.config)
        assert out == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-5)
        assert nbytes == VALUE.nbytes and c.worker.transport.channels() == {}


def test_an_unreachable_data_port_falls_back_to_grpc():
    with _Cluster() as c:
        c.ps._data_server.stop()  # gRPC answers, the announced data port refuses connections
        out, _ = _cross_task_sum(c.worker.target, c.config)
        assert out == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-5)
        assert c.worker.transport.channels() == {}


def test_a_lost_data_channel_is_made_again_for_the_next_step():
    with _Cluster() as c:
        _cross_task_sum(c.worker.target, c.config)
        for channel in list(c.worker.transport._peers.values()):
            channel.channel.close()  # as if the connection broke between steps
        out, _ = _cross_task_sum(c.worker.target, c.config)
        assert out == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-5)
        assert c.ps.task_name in c.worker.transport.channels()


def test_answer_request_rejects_a_malformed_request():
    table = StepRendezvousTable("/job:ps/replica:0/task:0", fetch_remote=None)
    answers = []
    answer_request(table, "peer", "not-a-step;key", "none", lambda **kw: answers.append(kw))
    assert isinstance(answers[0]["error"], errors.InvalidArgumentError)


# -- TLS -------------------------------------------------------------------------------------------

def test_tls_on_both_ports(tmp_path):
    cert, key = make_test_cert(tmp_path, "cluster")
    tls = dict(tls_cert_file=cert, tls_key_file=key, tls_ca_file=cert)  # mutual TLS, one self-signed CA
    with _Cluster(config=_config(**tls)) as c:
        out, _ = _cross_task_sum(c.worker.target, c.config)
        assert out == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-5)
        assert c.ps.task_name in c.worker.transport.channels()  # the data channel, under TLS
        # A client that speaks plain gRPC, or TLS without a client certificate, is refused.
        for config in (_config(), _config(tls_ca_file=cert)):
            with pytest.raises(errors.UnavailableError):
                with tf.Graph().as_default(), tf.Session(c.worker.target, config=config) as sess:
                    sess.run(tf.constant(1.0))
        other_cert, other_key = make_test_cert(tmp_path, "stranger")  # signed by no CA the cluster trusts
        with pytest.raises(errors.UnavailableError):
            with tf.Graph().as_default(), tf.Session(c.worker.target, config=_config(
                    tls_cert_file=other_cert, tls_key_file=other_key, tls_ca_file=cert)) as sess:
                sess.run(tf.constant(1.0))


def test_tls_needs_the_cert_and_key_together(tmp_path):
    cert, _ = make_test_cert(tmp_path, "half")
    ps, = free_ports(1)
    with pytest.raises(ValueError, match="together"):
        tf.train.Server({"ps": [f"127.0.0.1:{ps}"]}, "ps", 0, config=_config(tls_cert_file=cert))


def test_string_tensors_cross_tasks_and_reach_the_client():
    with _Cluster() as c:
        with tf.Graph().as_default():
            with tf.device("/job:ps/task:0"):
                v = tf.Variable(1.0, name="v")
                w = tf.Variable(2.0, name="w")
            with tf.device("/job:worker/task:0"):
                # The list is made on the PS (the op reads the variables there) and used here.
                missing = tf.identity(tf.report_uninitialized_variables(), name="missing")
                summary = tf.summary.scalar("loss", v * 2.0)
            with tf.Session(c.worker.target, config=c.config) as sess:
                assert sorted(sess.run(missing).tolist()) == [b"v", b"w"]
                sess.run(v.initializer)
                assert sess.run(missing).tolist() == [b"w"]
                sess.run(w.initializer)
                assert sess.run(missing).shape == (0,)
                proto = tf.Summary.FromString(sess.run(summary))
                assert proto.value[0].tag == "loss" and proto.value[0].simple_value == 2.0


def test_a_requester_that_disconnects_leaves_no_waiter_behind():
    import time

    from tensorweave.distributed.transport.data_channel import DataChannelClient, DataChannelServer
    table = StepRendezvousTable("/job:ps/replica:0/task:0", fetch_remote=None)
    server = DataChannelServer(token=TOKEN, on_request=lambda peer, what, encoding, reply: answer_request(
        table, peer, what, encoding, reply))
    try:
        client = DataChannelClient(f"127.0.0.1:{server.port}", TOKEN, "/job:worker/replica:0/task:0")
        client.request("7;never/sent", lambda frame, error: None)
        deadline = time.monotonic() + 5
        while table.steps() != [7] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert table.steps() == [7]  # the request waits for the value
        client.close()
        while table.steps() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert table.steps() == []  # withdrawn when the requester went
    finally:
        server.stop()


# -- RunGraph over the data channel --------------------------------------------------------------

def test_run_graph_goes_over_the_data_channel_once_it_is_connected():
    with _Cluster() as c:
        with tf.Graph().as_default():
            with tf.device("/job:ps/task:0"):
                v = tf.Variable(VALUE, name="v")
                bad = tf.debugging.check_numerics(v / 0.0, "v over zero")
            with tf.device("/job:worker/task:0"):
                y = tf.reduce_sum(v * 2.0)
            with tf.Session(c.worker.target, config=c.config) as sess:
                sess.run(v.initializer)
                for _ in range(3):
                    assert sess.run(y) == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-5)
                assert c.ps._data_server.stats.calls >= 2  # the first step connected the channel
                calls = c.ps._data_server.stats.calls
                # An op failing on the PS fails the step with its own error, as over gRPC.
                with pytest.raises(errors.InvalidArgumentError, match="v over zero") as raised:
                    sess.run(bad)
                assert raised.value.op is not None and raised.value.op.name == bad.op.name
                assert c.ps._data_server.stats.calls == calls + 1
                assert sess.run(y) == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-5)


def test_malformed_data_channel_calls_get_errors_and_the_server_keeps_serving():
    from tensorweave.distributed.protocol import tensorweave_service_pb2 as pb
    from tensorweave.distributed.transport.data_channel import DataChannelClient

    with _Cluster() as c:
        client = DataChannelClient(f"127.0.0.1:{c.ps.data_port}", TOKEN, "/job:worker/replica:0/task:0")
        try:
            def call(method, data):
                answers = queue.Queue()
                client.call(method, np.frombuffer(data, np.uint8), lambda frame, error: answers.put(error))
                return answers.get(timeout=5)

            assert isinstance(call("DeleteEverything", b""), errors.UnimplementedError)
            error = call("RunGraph", b"\xff\xff\xff garbage")
            assert isinstance(error, errors.InvalidArgumentError) and "RunGraphRequest" in error.message
            error = call("RunGraph", pb.RunGraphRequest(graph_handle="no-such-graph", step_id=1).SerializeToString())
            assert isinstance(error, errors.OpError) and "no-such-graph" in error.message
        finally:
            client.close()
        out, _ = _cross_task_sum(c.worker.target, c.config)
        assert out == pytest.approx(2 * VALUE.sum(dtype=np.float64), rel=1e-5)


def test_data_channel_calls_keep_to_grpcs_message_limit():
    from tensorweave.distributed import grpc_services
    from tensorweave.distributed.protocol import tensorweave_service_pb2 as pb
    from tensorweave.distributed.worker import Worker

    request = pb.RunGraphRequest(graph_handle="no-such-graph", step_id=1).SerializeToString()
    payload = np.frombuffer(request, np.uint8)
    with pytest.raises(errors.ResourceExhaustedError, match=f"RunGraph request of {len(request)} bytes"):
        grpc_services.serve_data_call(Worker("/job:ps/replica:0/task:0"), None, "RunGraph", payload,
                                      max_message_bytes=len(request) - 1)
    # Within the limit the request is parsed and served (here: the worker's error for the handle).
    with pytest.raises(errors.OpError, match="no-such-graph"):
        grpc_services.serve_data_call(Worker("/job:ps/replica:0/task:0"), StepRendezvousTable(
            "/job:ps/replica:0/task:0", None), "RunGraph", payload, max_message_bytes=len(request))
