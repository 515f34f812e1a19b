"""gRPC control-plane authentication, message limits and the Worker service schema."""

from concurrent import futures

import grpc
import pytest

from tensorweave.distributed.protocol import (
    DeviceAttributes,
    NamedTensor,
    WorkerServicer,
    WorkerStub,
    add_WorkerServicer_to_server,
    tensorweave_service_pb2 as pb,
)
from tensorweave.distributed.transport.data_channel import DataChannelServer
from tensorweave.distributed.transport.grpc_auth import (
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    TokenAuthInterceptor,
    auth_metadata,
    channel_options,
    keepalive_seconds,
    intercept_channel,
    server_options,
    token_from,
)
from tensorweave.runtime.config import ConfigProto

TOKEN = "cluster-secret-for-tests"
WAIT = 5.0
SERVER_LIMIT = 4096  # small, so an oversized message is cheap to send
DEVICES = ("/job:worker/replica:0/task:0/device:CPU:0",)
INCARNATION = 0x1234_5678_9ABC_DEF0
GARBAGE = b"\xff" * 32  # field 31, wire type 7: no protobuf parser accepts it


class _Worker(WorkerServicer):
    def GetStatus(self, request, context):
        return pb.GetStatusResponse(
            device_attributes=[DeviceAttributes(name=d, device_type="CPU", incarnation=INCARNATION)
                               for d in DEVICES],
            incarnation=INCARNATION, task_name="/job:worker/replica:0/task:0")

    def RegisterGraph(self, request, context):
        return pb.RegisterGraphResponse(graph_handle=f"g{len(request.graph_def)}")


@pytest.fixture
def server():
    """A Worker service behind the auth interceptor; yields its port."""
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                      interceptors=[TokenAuthInterceptor(TOKEN)],
                      options=server_options(SERVER_LIMIT))
    add_WorkerServicer_to_server(_Worker(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield port
    finally:
        srv.stop(grace=None)


@pytest.fixture
def channel_factory(server):
    made = []

    def make(token=None):
        # The client may send more than the server accepts, so the server's limit is what is tested.
        channel = grpc.insecure_channel(f"127.0.0.1:{server}", options=channel_options(1 << 20))
        made.append(channel)
        return channel if token is None else intercept_channel(channel, token)

    try:
        yield make
    finally:
        for channel in made:
            channel.close()


def _raw_register_graph(channel):
    # No serializers: the bytes go on the wire exactly as given.
    return channel.unary_unary("/tensorweave.Worker/RegisterGraph")


def _code(call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=WAIT, **kwargs)
    return info.value.code()


def _assert_serving(channel_factory):
    reply = WorkerStub(channel_factory(TOKEN)).GetStatus(pb.GetStatusRequest(), timeout=WAIT)
    assert list(reply.device_attributes)[0].name == DEVICES[0]


# -- authentication --------------------------------------------------------------------------------

def test_correct_token_is_served(channel_factory):
    reply = WorkerStub(channel_factory(TOKEN)).GetStatus(pb.GetStatusRequest(), timeout=WAIT)
    assert [d.name for d in reply.device_attributes] == list(DEVICES)
    assert reply.incarnation == INCARNATION


def test_missing_token_is_unauthenticated(channel_factory):
    stub = WorkerStub(channel_factory())
    assert _code(stub.GetStatus, pb.GetStatusRequest()) == grpc.StatusCode.UNAUTHENTICATED


def test_wrong_token_is_unauthenticated(channel_factory):
    stub = WorkerStub(channel_factory("not-the-secret"))
    assert _code(stub.GetStatus, pb.GetStatusRequest()) == grpc.StatusCode.UNAUTHENTICATED
    _assert_serving(channel_factory)


@pytest.mark.parametrize("value", [TOKEN, "bearer " + TOKEN, "Bearer", "Bearer ", "Basic " + TOKEN,
                                   "Bearer " + TOKEN + " ", "Bearer " + TOKEN[:-1]])
def test_malformed_authorization_header_is_unauthenticated(channel_factory, value):
    stub = WorkerStub(channel_factory())
    code = _code(stub.GetStatus, pb.GetStatusRequest(), metadata=(("authorization", value),))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_two_authorization_headers_are_unauthenticated(channel_factory):
    stub = WorkerStub(channel_factory())
    metadata = auth_metadata(TOKEN) + auth_metadata("other")
    assert _code(stub.GetStatus, pb.GetStatusRequest(), metadata=metadata) == \
        grpc.StatusCode.UNAUTHENTICATED


def test_garbage_body_with_wrong_token_is_unauthenticated_not_parsed(channel_factory):
    # Control: with the right token the same bytes reach the deserializer, which fails.
    authorized = _code(_raw_register_graph(channel_factory(TOKEN)), GARBAGE)
    assert authorized not in (grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED)
    for token in ("not-the-secret", None):
        code = _code(_raw_register_graph(channel_factory(token)), GARBAGE)
        assert code == grpc.StatusCode.UNAUTHENTICATED
    _assert_serving(channel_factory)


def test_rejected_request_never_reaches_the_deserializer():
    parsed = []

    def deserialize(data):
        parsed.append(data)
        return pb.GetStatusRequest.FromString(data)

    handler = grpc.method_handlers_generic_handler("tensorweave.Worker", {
        "GetStatus": grpc.unary_unary_rpc_method_handler(
            _Worker().GetStatus, request_deserializer=deserialize,
            response_serializer=pb.GetStatusResponse.SerializeToString)})
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                      handlers=[handler], interceptors=[TokenAuthInterceptor(TOKEN)])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = WorkerStub(intercept_channel(channel, "not-the-secret"))
        assert _code(stub.GetStatus, pb.GetStatusRequest()) == grpc.StatusCode.UNAUTHENTICATED
        assert parsed == []
        WorkerStub(intercept_channel(channel, TOKEN)).GetStatus(pb.GetStatusRequest(), timeout=WAIT)
        assert len(parsed) == 1
    finally:
        channel.close()
        srv.stop(grace=None)


def test_interceptor_refuses_empty_token():
    for token in (None, "", "  ", b""):
        with pytest.raises(ValueError):
            TokenAuthInterceptor(token)


def test_the_data_channel_refuses_a_blank_token_too():
    for token in ("", "  ", b""):  # None there means no authentication (on loopback only)
        with pytest.raises(ValueError, match="not a secret"):
            DataChannelServer("127.0.0.1", 0, token=token)


# -- message limits ---------------------------------------------------------------------------------

def test_oversized_message_is_resource_exhausted_and_server_keeps_serving(channel_factory):
    stub = WorkerStub(channel_factory(TOKEN))
    fits = stub.RegisterGraph(pb.RegisterGraphRequest(graph_def=b"x" * 100), timeout=WAIT)
    assert fits.graph_handle == "g100"
    big = pb.RegisterGraphRequest(graph_def=b"x" * (2 * SERVER_LIMIT))
    assert _code(stub.RegisterGraph, big) == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_serving(channel_factory)


def test_option_helpers():
    opts = dict(server_options(1 << 20, keepalive_s=10))
    assert opts["grpc.max_receive_message_length"] == opts["grpc.max_send_message_length"] == 1 << 20
    assert opts["grpc.http2.min_ping_interval_without_data_ms"] == 5_000
    opts = dict(channel_options(1 << 20, keepalive_s=15))
    assert opts["grpc.keepalive_time_ms"] == 15_000 and opts["grpc.keepalive_timeout_ms"] == 30_000
    assert opts["grpc.keepalive_permit_without_calls"] == 1
    assert opts["grpc.http2.max_pings_without_data"] == 0
    for bad in (0, -1, 1 << 31, 1.5):
        with pytest.raises(ValueError):
            server_options(bad)


def test_keepalive_interval_comes_from_the_environment():
    assert keepalive_seconds({}) == 10.0
    assert keepalive_seconds({"TENSORWEAVE_KEEPALIVE_SECONDS": "0.5"}) == 0.5
    # Servers accept pings at twice the clients' rate, so one K works for both ends.
    k = 0.5
    assert dict(server_options(keepalive_s=k))["grpc.http2.min_ping_interval_without_data_ms"] * 2 == \
        dict(channel_options(keepalive_s=k))["grpc.keepalive_time_ms"]
    for bad in ("soon", "0", "-3", "1e9"):
        with pytest.raises(ValueError, match="TENSORWEAVE_KEEPALIVE_SECONDS"):
            keepalive_seconds({"TENSORWEAVE_KEEPALIVE_SECONDS": bad})


# -- token_from -------------------------------------------------------------------------------------

def test_token_from_sources(tmp_path):
    path = tmp_path / "token"
    path.write_text("  from-file\n")
    assert token_from(env={}) is None
    assert token_from(env={TOKEN_ENV: " from-env\n"}) == "from-env"
    assert token_from(env={TOKEN_FILE_ENV: str(path)}) == "from-file"
    assert token_from(env={TOKEN_ENV: "from-env"}, token_file=path) == "from-file"
    assert token_from(ConfigProto(cluster_token="from-config"), env={TOKEN_ENV: "x"}) == "from-config"
    assert token_from({"cluster_token": "from-dict"}, env={}) == "from-dict"
    assert token_from(ConfigProto(), env={TOKEN_ENV: "from-env"}) == "from-env"


def test_token_from_refuses_empty(tmp_path):
    path = tmp_path / "token"
    path.write_text(" \n")
    with pytest.raises(ValueError, match="empty"):
        token_from(env={TOKEN_ENV: "  "})
    with pytest.raises(ValueError, match="empty"):
        token_from(token_file=path, env={})
    with pytest.raises(ValueError, match="empty"):
        token_from({"cluster_token": ""}, env={})


# -- schema -----------------------------------------------------------------------------------------

def test_named_tensor_roundtrip_has_no_pickle():
    t = NamedTensor(name="x:0", dtype=1, dims=[2, 3], content=bytes(6), encoding="int8", scale=0.5)
    back = NamedTensor.FromString(t.SerializeToString())
    assert back == t and back.HasField("scale")
    assert not NamedTensor(name="y:0").HasField("scale")
    services = pb.DESCRIPTOR.services_by_name
    assert set(services["Worker"].methods_by_name) >= {
        "GetStatus", "RegisterGraph", "DeregisterGraph", "RunGraph", "CleanupGraph", "Health"}
    assert set(services["Master"].methods_by_name) >= {
        "CreateSession", "ExtendSession", "RunStep", "CloseSession", "ListDevices", "Reset"}
