"""A real server process (one task, with a cluster token) against malformed calls: garbage
request bodies, tensors whose declared shape does not fit their bytes or the message limit,
unknown session and graph handles, missing or wrong tokens, a seeded fuzz of every method, and
raw TCP garbage on the gRPC port. Each call gets an error status and the task keeps serving.

Calls go through a raw channel (`channel.unary_unary(path)` with no serializers), so the test
controls every byte of the request body; the token travels as `grpc_auth.auth_metadata` builds it.
The task runs under an address-space limit: a request that made it allocate without bound would
fail there instead of exhausting the shared machine.
"""

import concurrent.futures
import random
import socket
import time

import grpc
import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed import tensor_codec
from tensorweave.distributed.protocol import tensorweave_service_pb2 as pb
from tensorweave.distributed.transport import grpc_auth
from tests.distributed.cluster_procs import server_processes

TOKEN = "malformed-rpc-test-secret"
CALL_S = 10.0            # every call carries a deadline
STEP_MS = 30_000
MEMORY_LIMIT = 4 << 30   # the task's address space (RLIMIT_AS); it idles at about 1.1 GiB
MAX_MESSAGE = grpc_auth.DEFAULT_MAX_MESSAGE_BYTES
DEVICE = "/job:worker/replica:0/task:0/device:CPU:0"

MASTER = ("CreateSession", "ExtendSession", "PartialRunSetup", "RunStep", "CloseSession", "ListDevices", "Reset")
WORKER = ("GetStatus", "RegisterGraph", "DeregisterGraph", "RunGraph", "CleanupGraph", "RecvTensor", "Health")
METHODS = tuple(f"/tensorweave.Master/{m}" for m in MASTER) + tuple(f"/tensorweave.Worker/{m}" for m in WORKER)

# Bodies no protobuf parser accepts, whatever the message: a varint tag left unfinished, a field
# longer than the bytes that follow, a tag with no value, field number 0, wire type 7.
GARBAGE = (b"\xff\xff\xff", b"\x0a\x05ab", b"\x08", b"\x00", b"\x0f", b"\xff" * 32)

XV = np.arange(12, dtype=np.float32).reshape(4, 3) / 7.0
WV = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)


# -- the task and calls ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def task():
    with server_processes({"worker": 1}, TOKEN, max_memory_bytes=MEMORY_LIMIT) as procs:
        yield procs


@pytest.fixture
def channel(task):
    ch = grpc.insecure_channel(task.address("worker", 0), options=(("grpc.max_send_message_length", -1),))
    try:
        yield ch
    finally:
        ch.close()


AUTH = grpc_auth.auth_metadata(TOKEN)


def _call(channel, method, body, metadata=AUTH, timeout=CALL_S):
    """(status code, details, response bytes) of one call with a raw request body."""
    try:
        response = channel.unary_unary(method)(body, metadata=metadata, timeout=timeout)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", None
    return grpc.StatusCode.OK, "", response


def _config_bytes():
    return tensor_codec.config_to_wire(tf.ConfigProto(operation_timeout_in_ms=STEP_MS))


def _run_options_bytes():
    return tf.RunOptions(timeout_in_ms=STEP_MS).SerializeToString()


def _client_graph():
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        tf.add(tf.matmul(x, tf.constant(WV)), 1.0, name="y")
    return g


def _partition_graph_def():
    """A GraphDef the task's Worker service accepts as a registered partition: y = 2 x."""
    with tf.Graph().as_default() as g, tf.device(DEVICE):
        x = tf.placeholder(tf.float32, [None], name="x")
        tf.multiply(x, 2.0, name="y")
    return g.as_graph_def().SerializeToString()


def _create_session(channel):
    code, details, body = _call(channel, "/tensorweave.Master/CreateSession", pb.CreateSessionRequest(
        graph_def=_client_graph().as_graph_def().SerializeToString(), config=_config_bytes()).SerializeToString())
    assert code == grpc.StatusCode.OK, details
    return pb.CreateSessionResponse.FromString(body).session_handle


def _register_graph(channel):
    code, details, body = _call(channel, "/tensorweave.Worker/RegisterGraph", pb.RegisterGraphRequest(
        session_handle="malformed-rpc-tests", graph_def=_partition_graph_def(),
        config=_config_bytes()).SerializeToString())
    assert code == grpc.StatusCode.OK, details
    return pb.RegisterGraphResponse.FromString(body).graph_handle


def _release(channel, session, graph=None):
    _call(channel, "/tensorweave.Master/CloseSession",
          pb.CloseSessionRequest(session_handle=session).SerializeToString())
    if graph is not None:
        _call(channel, "/tensorweave.Worker/DeregisterGraph",
              pb.DeregisterGraphRequest(graph_handle=graph).SerializeToString())


def _run_step(channel, session, feeds, fetches=("y:0",)):
    return _call(channel, "/tensorweave.Master/RunStep", pb.RunStepRequest(
        session_handle=session, feeds=feeds, fetches=list(fetches)).SerializeToString())


def _run_graph(channel, graph_handle, sends, step_id=1):
    return _call(channel, "/tensorweave.Worker/RunGraph", pb.RunGraphRequest(
        graph_handle=graph_handle, step_id=step_id, sends=sends, recv_keys=["y:0"]).SerializeToString())


def _assert_serves(task):
    """The task is alive and runs an ordinary client step correctly."""
    assert task.process("worker", 0).poll() is None, task.stderr("worker", 0)
    g = _client_graph()
    config = tf.ConfigProto(cluster_token=TOKEN, operation_timeout_in_ms=STEP_MS)
    with tf.Session(task.target("worker", 0), graph=g, config=config) as sess:
        got = sess.run("y:0", {"x:0": XV})
    np.testing.assert_array_equal(got, XV @ WV + np.float32(1.0))


# -- (a) garbage bodies --------------------------------------------------------------------------

def test_garbage_bodies_get_an_error_status_and_the_task_keeps_serving(task, channel):
    for method in METHODS:
        for body in GARBAGE:
            code, details, _ = _call(channel, method, body)
            # Answered (not a hang, not a dead task), and never accepted.
            assert code not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED,
                                grpc.StatusCode.UNAVAILABLE), (method, body, code, details)
    _assert_serves(task)


def test_garbage_bodies_are_invalid_argument(task, channel):
    codes = {(method, body): _call(channel, method, body)[:2] for method in METHODS for body in GARBAGE}
    wrong = {k: v for k, v in codes.items() if v[0] != grpc.StatusCode.INVALID_ARGUMENT}
    assert not wrong
    unnamed = {k: d for k, (_, d) in codes.items() if k[0] not in d}  # the answer names the method
    assert not unnamed


def test_corrupt_embedded_config_or_run_options_are_invalid_argument(task, channel):
    session = _create_session(channel)
    graph = _register_graph(channel)
    corrupt = GARBAGE[0]
    try:
        codes = {
            "CreateSessionRequest.config": _call(channel, "/tensorweave.Master/CreateSession", pb.CreateSessionRequest(
                graph_def=_client_graph().as_graph_def().SerializeToString(), config=corrupt).SerializeToString()),
            "RunStepRequest.options": _call(channel, "/tensorweave.Master/RunStep", pb.RunStepRequest(
                session_handle=session, feeds=[tensor_codec.to_named_tensor("x:0", XV)], fetches=["y:0"],
                options=corrupt).SerializeToString()),
            "RunGraphRequest.options": _call(channel, "/tensorweave.Worker/RunGraph", pb.RunGraphRequest(
                graph_handle=graph, step_id=3, sends=[tensor_codec.to_named_tensor("x:0", XV[0])],
                recv_keys=["y:0"], options=corrupt).SerializeToString()),
        }
    finally:
        _release(channel, session, graph)
    _assert_serves(task)
    wrong = {field: (code, details) for field, (code, details, _) in codes.items()
             if code != grpc.StatusCode.INVALID_ARGUMENT or field not in details}  # naming the field
    assert not wrong


# -- (b) tensors that do not fit -------------------------------------------------------------------

def _tensor(name, dims, content, dtype=tf.float32.as_datatype_enum, **fields):
    return pb.NamedTensor(name=name, dtype=dtype, dims=dims, content=content, **fields)


# (declared dims, content, extra fields): each lies about its size or type.
BAD_TENSORS = {
    "huge shape, 4 bytes": ([1 << 20, 1 << 20, 3], b"\0" * 4, {}),
    "shape over int64": ([1 << 62, 1 << 62, 1 << 62], b"\0" * 4, {}),
    "shape within limits, too few bytes": ([4, 3], b"\0" * 8, {}),
    "too many bytes": ([4, 3], b"\0" * 52, {}),
    "negative dim": ([-4, 3], b"\0" * 48, {}),
    "rank 300": ([1] * 300, b"\0" * 4, {}),
    "string dtype": ([4, 3], b"\0" * 48, {"dtype": 7}),
    "unknown dtype enum": ([4, 3], b"\0" * 48, {"dtype": 9999}),
    "unknown encoding": ([4, 3], b"\0" * 48, {"encoding": "gzip"}),
    "int8 without a scale": ([4, 3], b"\0" * 12, {"encoding": "int8"}),
}


def test_tensors_whose_shape_does_not_fit_their_bytes_are_invalid_argument(task, channel):
    session = _create_session(channel)
    graph = _register_graph(channel)
    try:
        # Well-formed tensors work, so the refusals below are about the tensors alone.
        code, details, body = _run_step(channel, session, [tensor_codec.to_named_tensor("x:0", XV)])
        assert code == grpc.StatusCode.OK, details
        _, y = tensor_codec.from_named_tensor(pb.RunStepResponse.FromString(body).tensors[0])
        np.testing.assert_array_equal(y, XV @ WV + np.float32(1.0))
        code, details, body = _run_graph(channel, graph, [tensor_codec.to_named_tensor("x:0", XV[0])])
        assert code == grpc.StatusCode.OK, details
        _, y = tensor_codec.from_named_tensor(pb.RunGraphResponse.FromString(body).recvs[0])
        np.testing.assert_array_equal(y, XV[0] * np.float32(2.0))

        for case, (dims, content, fields) in BAD_TENSORS.items():
            fields = dict(fields)
            dtype = fields.pop("dtype", tf.float32.as_datatype_enum)
            started = time.monotonic()
            for what, (code, details, _) in (
                    ("RunStep feed", _run_step(channel, session, [_tensor("x:0", dims, content, dtype, **fields)])),
                    ("RunGraph send", _run_graph(channel, graph, [_tensor("x:0", dims, content, dtype, **fields)]))):
                assert code == grpc.StatusCode.INVALID_ARGUMENT, (case, what, code, details)
                assert "x:0" in details, (case, what, details)  # the message names the tensor
            assert time.monotonic() - started < 5, case  # refused from the header, nothing allocated
    finally:
        _release(channel, session, graph)
    _assert_serves(task)


@pytest.mark.slow
def test_messages_over_the_size_limit_are_resource_exhausted(task, channel):
    session = _create_session(channel)
    graph = _register_graph(channel)
    try:
        # One float32 tensor of just over the task's message limit: a well-formed request, too big.
        content = bytes(MAX_MESSAGE + 4096)
        dims = [len(content) // 4]
        for what, method, request in (
                ("RunStep", "/tensorweave.Master/RunStep",
                 pb.RunStepRequest(session_handle=session, feeds=[_tensor("x:0", dims, content)], fetches=["y:0"])),
                ("RunGraph", "/tensorweave.Worker/RunGraph",
                 pb.RunGraphRequest(graph_handle=graph, step_id=2, sends=[_tensor("x:0", dims, content)],
                                    recv_keys=["y:0"]))):
            body = request.SerializeToString()
            assert len(body) > MAX_MESSAGE
            code, details, _ = _call(channel, method, body)
            del body
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (what, code, details)
    finally:
        _release(channel, session, graph)
    _assert_serves(task)


# -- (c) unknown handles ---------------------------------------------------------------------------

def test_unknown_session_and_graph_handles(task, channel):
    x = tensor_codec.to_named_tensor("x:0", XV)
    # The master answers an unknown session ABORTED, as TF's master does ("Session ... is not
    # found"): the usual cause is a restarted master, and ABORTED tells the client to start over.
    code, details, _ = _run_step(channel, "no-such-session", [x])
    assert code == grpc.StatusCode.ABORTED and "no-such-session" in details, (code, details)
    code, details, _ = _call(channel, "/tensorweave.Master/ExtendSession", pb.ExtendSessionRequest(
        session_handle="no-such-session", graph_def=_client_graph().as_graph_def().SerializeToString(),
        current_graph_version=0).SerializeToString())
    assert code == grpc.StatusCode.ABORTED and "no-such-session" in details, (code, details)
    # Closing is idempotent (a retried CloseSession must not fail).
    code, details, _ = _call(channel, "/tensorweave.Master/CloseSession",
                             pb.CloseSessionRequest(session_handle="no-such-session").SerializeToString())
    assert code == grpc.StatusCode.OK, details

    code, details, _ = _run_graph(channel, "no-such-graph", [tensor_codec.to_named_tensor("x:0", XV[0])])
    assert code == grpc.StatusCode.NOT_FOUND and "no-such-graph" in details, (code, details)
    code, details, _ = _call(channel, "/tensorweave.Worker/DeregisterGraph",
                             pb.DeregisterGraphRequest(graph_handle="no-such-graph").SerializeToString())
    assert code == grpc.StatusCode.NOT_FOUND and "no-such-graph" in details, (code, details)

    # A RunStep fetching a tensor that is not in the session's graph.
    session = _create_session(channel)
    try:
        code, details, _ = _run_step(channel, session, [x], fetches=["nope:0"])
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "nope:0" in details, (code, details)
    finally:
        _release(channel, session)
    _assert_serves(task)


def test_a_receive_whose_caller_gave_up_does_not_block_the_next_receive_of_its_key(task, channel):
    key = f"{DEVICE};1;{DEVICE};never_sent:0;{DEVICE};424242"
    body = pb.RecvTensorRequest(step_id=424242, rendezvous_key=key).SerializeToString()
    codes = []
    for _ in range(3):
        # Nobody sends this key: each receive waits until its caller's deadline, as TF's does.
        codes.append(_call(channel, "/tensorweave.Worker/RecvTensor", body, timeout=0.3)[:2])
    _assert_serves(task)
    assert [c for c, _ in codes] == [grpc.StatusCode.DEADLINE_EXCEEDED] * 3, codes


# -- (d) tokens ------------------------------------------------------------------------------------

BAD_METADATA = {
    "no token": (),
    "wrong token": grpc_auth.auth_metadata("not-the-secret"),
    "token as a prefix": grpc_auth.auth_metadata(TOKEN[:-1]),
    "token with a suffix": grpc_auth.auth_metadata(TOKEN + "x"),
    "other scheme": (("authorization", f"Basic {TOKEN}"),),
    "bare token": (("authorization", TOKEN),),
    "empty bearer": (("authorization", "Bearer "),),
    "right and wrong header": grpc_auth.auth_metadata(TOKEN) + grpc_auth.auth_metadata("not-the-secret"),
    "token in another header": (("x-authorization", f"Bearer {TOKEN}"),),
}


def test_missing_or_wrong_token_is_unauthenticated_before_the_body_is_read(task, channel):
    valid_bodies = {"/tensorweave.Master/ListDevices": pb.ListDevicesRequest().SerializeToString(),
                    "/tensorweave.Worker/GetStatus": b"", "/tensorweave.Worker/Health": b""}
    for method in METHODS:
        for case, metadata in BAD_METADATA.items():
            # Garbage and a valid body alike: the body is never parsed for an unauthenticated call.
            for body in (GARBAGE[0], valid_bodies.get(method, b"")):
                code, details, _ = _call(channel, method, body, metadata=metadata)
                assert code == grpc.StatusCode.UNAUTHENTICATED, (method, case, code, details)
                assert TOKEN not in details
    for method, body in valid_bodies.items():  # the same calls with the token succeed
        assert _call(channel, method, body)[0] == grpc.StatusCode.OK, method
    _assert_serves(task)


# -- (e) fuzz ----------------------------------------------------------------------------------------

FUZZ_SEED = 20240607
FUZZ_PER_METHOD = 400
FUZZ_IN_FLIGHT = 32
RECV_FUZZ_S = 0.2  # RecvTensor waits for its tensor until the caller's deadline (as TF's does)


def _valid_requests(channel):
    """A well-formed request body per method, naming live handles where the method takes one
    (the session and graph are throwaway ones: a mutated request may close or run them)."""
    session = _create_session(channel)
    graph = _register_graph(channel)
    x = tensor_codec.to_named_tensor("x:0", XV)
    key = f"{DEVICE};1;{DEVICE};y:0;{DEVICE};77"
    return session, graph, {
        "/tensorweave.Master/CreateSession": pb.CreateSessionRequest(
            graph_def=_client_graph().as_graph_def().SerializeToString(), config=_config_bytes()),
        "/tensorweave.Master/ExtendSession": pb.ExtendSessionRequest(
            session_handle=session, graph_def=_client_graph().as_graph_def().SerializeToString(),
            current_graph_version=0),
        "/tensorweave.Master/PartialRunSetup": pb.PartialRunSetupRequest(
            session_handle=session, feeds=["x:0"], fetches=["y:0"]),
        "/tensorweave.Master/RunStep": pb.RunStepRequest(session_handle=session, feeds=[x], fetches=["y:0"],
                                                         options=_run_options_bytes(), request_id=3),
        "/tensorweave.Master/CloseSession": pb.CloseSessionRequest(session_handle=session),
        "/tensorweave.Master/ListDevices": pb.ListDevicesRequest(session_handle=session),
        "/tensorweave.Master/Reset": pb.ResetRequest(container=["fuzz"], device_filters=["/job:worker"]),
        "/tensorweave.Worker/GetStatus": pb.GetStatusRequest(),
        "/tensorweave.Worker/RegisterGraph": pb.RegisterGraphRequest(
            session_handle=session, graph_def=_partition_graph_def(), config=_config_bytes()),
        "/tensorweave.Worker/DeregisterGraph": pb.DeregisterGraphRequest(session_handle=session,
                                                                         graph_handle=graph),
        "/tensorweave.Worker/RunGraph": pb.RunGraphRequest(
            session_handle=session, graph_handle=graph, step_id=5,
            sends=[tensor_codec.to_named_tensor("x:0", XV[0])], recv_keys=["y:0"], options=_run_options_bytes()),
        "/tensorweave.Worker/CleanupGraph": pb.CleanupGraphRequest(step_id=77),
        "/tensorweave.Worker/RecvTensor": pb.RecvTensorRequest(step_id=77, rendezvous_key=key, encoding="none"),
        "/tensorweave.Worker/Health": pb.HealthRequest(),
    }


def _fuzz_bodies(rng, valid, n):
    """`n` bodies: random bytes, truncations of `valid`, and `valid` with a few bytes changed."""
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0 or len(valid) < 2:
            out.append(rng.randbytes(rng.randrange(0, 257)))
        elif kind == 1:
            out.append(valid[:rng.randrange(1, len(valid))])
        else:
            body = bytearray(valid)
            for _ in range(rng.randrange(1, 5)):
                at = rng.randrange(len(body))
                body[at] = body[at] ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256)
            out.append(bytes(body))
    return out


# What a fuzzed call may get back: a result, or an error the servicer chose (never UNKNOWN, never
# an unexpected exception surfacing as INTERNAL, never a hang or a dead task).
_FUZZ_CODES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
               grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED,
               grpc.StatusCode.CANCELLED, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED}


@pytest.mark.slow
def test_fuzzed_bodies_to_every_method_leave_the_task_serving(task, channel):
    rng = random.Random(FUZZ_SEED)
    session, graph, valid = _valid_requests(channel)
    unexpected = []
    # Calls that release the session or graph go last, so the others still find them alive.
    for method in sorted(METHODS, key=lambda m: m.endswith(("/CloseSession", "/DeregisterGraph", "/Reset"))):
        bodies = _fuzz_bodies(rng, valid[method].SerializeToString(), FUZZ_PER_METHOD)
        timeout = RECV_FUZZ_S if method.endswith("/RecvTensor") else CALL_S
        call = channel.unary_unary(method)
        for start in range(0, len(bodies), FUZZ_IN_FLIGHT):
            batch = bodies[start:start + FUZZ_IN_FLIGHT]
            futures = [call.future(b, metadata=AUTH, timeout=timeout) for b in batch]
            for body, future in zip(batch, futures, strict=True):
                try:
                    future.result(timeout=timeout + 30)
                    code, details = grpc.StatusCode.OK, ""
                except grpc.RpcError as e:
                    code, details = e.code(), e.details() or ""
                allowed = (code in _FUZZ_CODES
                           or (code == grpc.StatusCode.DEADLINE_EXCEEDED and method.endswith("/RecvTensor")))
                if not allowed:
                    unexpected.append((method, body, code, details))
        assert task.process("worker", 0).poll() is None, (method, task.stderr("worker", 0))
    _release(channel, session, graph)
    assert not unexpected, sorted({(m, c.name, d[:150]) for m, _, c, d in unexpected})
    _assert_serves(task)


# -- raw TCP -------------------------------------------------------------------------------------------

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _raw_payloads():
    rng = random.Random(FUZZ_SEED + 1)
    return {
        "random bytes": rng.randbytes(4096),
        "HTTP/1.1 request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "TLS ClientHello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(500),
        "HTTP/2 preface, then garbage": _PREFACE + rng.randbytes(4096),
        "HTTP/2 preface, then a DATA frame declaring 16 MiB":
            _PREFACE + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"x" * 100,
        "a megabyte of zeros": bytes(1 << 20),
    }


def _server_closes(address, payload, timeout=10.0):
    """Whether the server closes a connection after `payload` (reads and drops what it answers)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        deadline = time.monotonic() + timeout
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            return True  # closed while we were still writing
        while time.monotonic() < deadline:
            try:
                if not s.recv(65536):
                    return True
            except ConnectionResetError:
                return True
            except TimeoutError:
                return False
        return False


def test_raw_tcp_garbage_on_the_grpc_port_is_dropped(task):
    address = task.address("worker", 0)
    host, port = address.rsplit(":", 1)
    # A connection that never says anything stays open meanwhile; it must not block others.
    with socket.create_connection((host, int(port)), timeout=10):
        for case, payload in _raw_payloads().items():
            assert _server_closes(address, payload), case
            assert task.process("worker", 0).poll() is None, (case, task.stderr("worker", 0))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:  # several at once
            assert all(pool.map(lambda p: _server_closes(address, p), list(_raw_payloads().values()) * 4))
        _assert_serves(task)
    _assert_serves(task)
