"""The tensor data channel: frames, handshake, server/client, fuzzing and lost peers."""

import queue
import random
import socket
import struct
import time

import ml_dtypes
import numpy as np
import pytest

from tensorweave.distributed.transport import (
    DataChannelClient,
    DataChannelServer,
    FrameError,
    FrameLimits,
    FrameReader,
    FrameType,
    client_handshake,
    encode_frame,
)
from tensorweave.distributed.transport.frames import _PREFIX, MAGIC, VERSION
from tensorweave.framework.errors import (
    CancelledError,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from tests.distributed.cluster_procs import make_test_cert

TOKEN = "cluster-secret-for-tests"
WAIT = 5.0


def _frame_bytes(*args, **kwargs):
    return b"".join(bytes(b) for b in encode_frame(*args, **kwargs))


def _raw_prefix(ftype=1, code=1, rank=1, key_len=1, enc_len=4, mask=0, nbytes=4, magic=MAGIC,
                version=VERSION, reserved=0):
    return _PREFIX.pack(magic, version, ftype, code, rank, key_len, enc_len, mask, nbytes, reserved)


class _Collector:
    """A server callback that queues what arrives, so tests wait with a timeout."""

    def __init__(self):
        self.items = queue.Queue()

    def __call__(self, key, array, encoding, meta):
        self.items.put((key, array, encoding, meta))

    def get(self):
        return self.items.get(timeout=WAIT)


@pytest.fixture
def server():
    collector = _Collector()
    srv = DataChannelServer(port=0, token=TOKEN, on_tensor=collector, handshake_timeout=0.5)
    srv.collector = collector
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client_factory(server):
    made = []

    def make(token=TOKEN, **kwargs):
        c = DataChannelClient(f"127.0.0.1:{server.port}", token, "/job:worker/task:0", **kwargs)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()


# -- frames (no sockets) ---------------------------------------------------------------------------

ARRAYS = [
    np.float32(1.5),
    np.array(7, np.int64),
    np.zeros((0,), np.float32),
    np.zeros((3, 0, 2), np.uint16),
    np.arange(24, dtype=np.float64).reshape(2, 3, 4),
    np.arange(10, dtype=np.float16),
    np.arange(6, dtype=ml_dtypes.bfloat16).reshape(3, 2),
    np.array([-128, 0, 127], np.int8),
    np.array([1, 2], np.int16), np.array([1, 2], np.int32),
    np.array([255], np.uint8), np.array([2**32 - 1], np.uint32), np.array([2**64 - 1], np.uint64),
    np.array([[True, False]]),
    np.array([1 + 2j], np.complex64), np.array([3 - 4j], np.complex128),
    np.arange(20, dtype=np.float32)[::3],  # not contiguous
    np.arange(4, dtype=">i4"),  # big-endian
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(np.shape(a))}")
def test_frame_round_trip(array):
    frame = FrameReader(_frame_bytes("edge/x:0", array, "int8", {"scale": 0.25})).read()
    assert frame.type is FrameType.TENSOR and frame.key == "edge/x:0"
    assert frame.encoding == "int8" and frame.meta == {"scale": 0.25}
    assert frame.array.dtype == np.asarray(array).dtype.newbyteorder("=") or array.dtype.byteorder == ">"
    assert frame.array.shape == np.shape(array)
    np.testing.assert_array_equal(frame.array, array)


def test_large_contiguous_payload_is_not_copied():
    array = np.ones((512, 512), np.float32)
    header, payload = encode_frame("k", array)
    assert np.shares_memory(np.frombuffer(payload, np.uint8), array)


def test_large_payloads_reuse_the_memory_of_received_arrays_that_are_gone(monkeypatch):
    from tensorweave.distributed.transport import frames
    monkeypatch.setattr(frames, "_free_blocks", {})  # what earlier tests left is not counted on
    monkeypatch.setattr(frames, "_free_bytes", [0])
    first, second = (np.random.default_rng(i).standard_normal((512, 1024)).astype(np.float32) for i in range(2))
    reader = FrameReader(_frame_bytes("a", first) + _frame_bytes("b", second) + _frame_bytes("c", first))
    kept = reader.read().array
    view = kept[::2, 3]  # a view keeps the memory from reuse as the array does
    del kept
    got = reader.read().array
    np.testing.assert_array_equal(view, first[::2, 3])  # not written over by the next payload
    np.testing.assert_array_equal(got, second)
    address = view.__array_interface__["data"][0] - 3 * 4
    del view
    reused = reader.read().array
    assert reused.__array_interface__["data"][0] == address  # the first payload's memory, now free
    np.testing.assert_array_equal(reused, first)
    assert reused.flags.writeable and not np.shares_memory(reused, got)
    # What is kept is bounded: past the bound, blocks of sizes received earlier are let go.
    monkeypatch.setattr(frames, "_REUSE_MAX_BYTES", 3 * first.nbytes)
    del got, reused
    assert frames._free_bytes == [2 * first.nbytes]
    other = FrameReader(_frame_bytes("d", np.ones(first.size * 2, np.float32))).read().array
    del other
    assert frames._free_bytes == [2 * first.nbytes] and list(frames._free_blocks) == [2 * first.nbytes]


def test_reader_returns_none_at_clean_end_and_reads_back_to_back_frames():
    data = _frame_bytes("a", np.ones(3)) + _frame_bytes("", None, frame_type=FrameType.PING)
    reader = FrameReader(data)
    assert reader.read().key == "a"
    assert reader.read().type is FrameType.PING
    assert reader.read() is None


class _TrickleSource:
    """Hands out a byte string in pieces of random size, as a socket may."""

    def __init__(self, data, seed, most):
        self._data, self._pos, self._rng, self._most = memoryview(data), 0, random.Random(seed), most

    def recv_into(self, buf, nbytes=0):
        n = min(len(buf), len(self._data) - self._pos, self._rng.randint(1, self._most))
        buf[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize("most", [1, 7, 1000, 70_000])
def test_frames_split_anywhere_by_the_stream_read_back_whole(most):
    # Small frames are parsed where they were received; a header straddling the end of the
    # read-ahead buffer is moved to its front; a key near its 64 KiB bound and payloads larger
    # than the buffer take the other paths.
    limits = FrameLimits(max_key_bytes=0xFFFF)
    frames_in = [("a", np.arange(3, dtype=np.float32)), ("b" * 300, np.ones((2, 3), bool)),
                 ("k" * 0xFFF0, np.arange(5, dtype=np.int64)), ("big", np.arange(40_000, dtype=np.float64)),
                 ("e", np.zeros((0, 4), np.float32)), ("s", np.arange(17_000, dtype=np.int32))] * 3
    frames_in += [(str(i), np.full(i % 5, i, np.int16)) for i in range(3000)]  # they fill the buffer
    data = b"".join(b"".join(bytes(b) for b in encode_frame(key, array, limits=limits)) for key, array in frames_in)
    data += _frame_bytes("p", None, frame_type=FrameType.PING)
    reader = FrameReader(_TrickleSource(data, seed=most, most=most), limits)
    for key, array in frames_in:
        frame = reader.read()
        assert frame.key == key
        np.testing.assert_array_equal(frame.array, array)
        assert frame.array.dtype == array.dtype and frame.array.flags.writeable
    assert reader.read().type is FrameType.PING
    assert reader.read() is None


@pytest.mark.parametrize("array", [np.array([1], object), np.zeros(2, "datetime64[s]")])
def test_non_numeric_dtypes_are_refused(array):
    with pytest.raises(FrameError, match="dtype|only bytes or str"):
        encode_frame("k", array)


@pytest.mark.parametrize("kwargs, match", [
    (dict(encoding="gzip"), "encoding"),
    (dict(meta={"code": 1.0}), "meta"),
    (dict(meta={"scale": float("nan")}), "finite"),
])
def test_encode_refuses_bad_fields(kwargs, match):
    with pytest.raises(FrameError, match=match):
        encode_frame("k", np.ones(2, np.float32), **kwargs)


def test_encode_enforces_limits():
    with pytest.raises(FrameError, match="key"):
        encode_frame("k" * 10000, np.ones(1))
    with pytest.raises(FrameError, match="limit"):
        encode_frame("k", np.ones(100), limits=FrameLimits(max_payload_bytes=64))


def _bad_frames():
    good = _frame_bytes("k", np.ones(1, np.float32))
    dims = struct.pack("<Q", 1)
    return [
        (b"XXXX" + good[4:], "magic"),
        (_raw_prefix(version=9) + good[20:], "version"),
        (_raw_prefix(ftype=77), "frame type"),
        (_raw_prefix(reserved=1), "reserved"),
        (_raw_prefix(key_len=9000), "key length"),
        (_raw_prefix(enc_len=200), "encoding name length"),
        (_raw_prefix(rank=33), "rank"),
        (_raw_prefix(mask=0x80), "meta"),
        (_raw_prefix(nbytes=1 << 40), "exceeds"),
        (_raw_prefix(ftype=3, nbytes=4), "PING"),
        (_raw_prefix(ftype=11, code=1, nbytes=4) + b"k" + b"none" + dims, "CALL frame must carry a 1-D uint8"),
        (_raw_prefix(ftype=11, code=4, rank=2, nbytes=1) + b"k" + b"none" + dims + dims, "CALL frame must"),
        (_raw_prefix(code=20) + b"k" + b"none" + dims, "dtype enum 20"),  # DT_RESOURCE
        (_raw_prefix(code=7) + b"k" + b"none" + dims, "needs more than"),  # DT_STRING, no room for lengths
        (_raw_prefix(code=99) + b"k" + b"none" + dims, "dtype enum 99"),
        (_raw_prefix(enc_len=4) + b"k" + b"zstd" + dims, "unknown encoding"),
        (_raw_prefix(key_len=2) + b"\xff\xfe" + b"none" + dims, "utf-8"),
        (_raw_prefix(nbytes=8) + b"k" + b"none" + dims, "does not match"),
        (_raw_prefix(rank=2, nbytes=4) + b"k" + b"none" + struct.pack("<QQ", 1 << 40, 1 << 40), "exceeds"),
        (_raw_prefix(rank=3, nbytes=0) + b"k" + b"none" + struct.pack("<QQQ", 0, 1 << 61, 1 << 61), "exceeds"),
        (_raw_prefix(rank=1, nbytes=4) + b"k" + b"none" + struct.pack("<Q", 1 << 63), "too large"),
        (_raw_prefix(mask=1) + b"k" + b"none" + dims + struct.pack("<d", float("inf")), "finite"),
        (_raw_prefix(code=10, nbytes=1) + b"k" + b"none" + dims + b"\x07", "bool"),
        (good[:10], "ended inside"),
        (good[:-1], "ended inside"),
    ]


@pytest.mark.parametrize("data, match", _bad_frames())
def test_reader_rejects_bad_frames_naming_the_problem(data, match):
    with pytest.raises(FrameError, match=match):
        FrameReader(data).read()


# -- channel ---------------------------------------------------------------------------------------

def test_round_trip_over_the_channel(server, client_factory):
    client = client_factory()
    for i, array in enumerate(ARRAYS):
        client.send(f"t{i}", array, "none", None)
        key, got, encoding, meta = server.collector.get()
        assert key == f"t{i}" and encoding == "none" and meta == {}
        assert got.shape == np.shape(array)
        np.testing.assert_array_equal(got, array)
    client.send("q", np.array([1, -2], np.int8), "int8", {"scale": 0.5})
    assert server.collector.get()[2:] == ("int8", {"scale": 0.5})
    assert client.ping(WAIT) < WAIT


def test_64mb_float32_throughput(server, client_factory):
    client = client_factory()
    array = np.random.default_rng(0).standard_normal(16 << 20, dtype=np.float32)  # 64 MiB
    rates = []
    for i in range(4):  # the first send also pays for the receiver's fresh pages
        start = time.perf_counter()
        client.send(f"big{i}", array)
        key, got, _, _ = server.collector.get()
        rates.append(array.nbytes / (time.perf_counter() - start) / 1e9)
        assert key == f"big{i}"
    np.testing.assert_array_equal(got, array)
    print(f"\n64 MiB float32 over the data channel (127.0.0.1): "
          f"{', '.join(f'{r:.2f}' for r in rates)} GB/s (best {max(rates):.2f})")
    rtts = sorted(client.ping(WAIT) for _ in range(50))
    print(f"ping round trip median: {rtts[25] * 1e6:.0f} us")


def test_concurrent_senders_do_not_interleave(server, client_factory):
    import threading
    client = client_factory()
    arrays = {f"s{i}": np.full(200_000, i, np.float32) for i in range(8)}
    threads = [threading.Thread(target=client.send, args=(k, a)) for k, a in arrays.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    got = dict(server.collector.get()[:2] for _ in arrays)
    for k, a in arrays.items():
        np.testing.assert_array_equal(got[k], a)


def test_wrong_token_is_rejected_and_server_keeps_serving(server, client_factory):
    with pytest.raises(UnauthenticatedError):
        client_factory(token="not-the-token")
    with pytest.raises(UnauthenticatedError):
        client_factory(token=None)
    _wait_for(lambda: server.stats.rejected_handshakes == 2)
    client = client_factory()
    client.send("ok", np.ones(3))
    assert server.collector.get()[0] == "ok"


def test_client_refuses_a_server_that_cannot_prove_the_token():
    srv = DataChannelServer(token=None)
    try:
        with pytest.raises(UnauthenticatedError, match="prove"):
            DataChannelClient(f"127.0.0.1:{srv.port}", TOKEN, "w0")
    finally:
        srv.stop()


def test_auth_disabled_works_on_loopback_only():
    with pytest.raises(ValueError, match="non-loopback"):
        DataChannelServer(host="0.0.0.0", token=None)
    collector = _Collector()
    srv = DataChannelServer(host="localhost", token=None, on_tensor=collector)
    client = None
    try:
        client = DataChannelClient(f"127.0.0.1:{srv.port}", None, "w0", keepalive_interval=None)
        client.send("x", np.arange(3))
        assert collector.get()[0] == "x"
    finally:
        if client is not None:
            client.close()
        srv.stop()


def test_silent_peer_is_dropped_after_the_handshake_deadline(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        start = time.monotonic()
        assert len(sock.recv(64)) == 36  # the server's hello; then we say nothing
        while sock.recv(64):
            pass
        assert time.monotonic() - start < 0.5 + 1.0
    _wait_for(lambda: server.stats.rejected_handshakes == 1)


def _wait_for(predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _fuzz_case(rng):
    """Returns (authenticate first?, bytes) for one malicious connection."""
    good = _frame_bytes("k", np.arange(4, dtype=np.float32))
    kind = rng.randrange(6)
    if kind == 0:
        return False, rng.randbytes(rng.randrange(1, 200))
    if kind == 1:
        return True, rng.randbytes(rng.randrange(1, 200))
    if kind == 2:  # truncated header or payload
        return True, good[:rng.randrange(1, len(good))]
    if kind == 3:  # oversized or inconsistent dims
        rank = rng.randrange(1, 5)
        dims = [rng.choice([0, 1, 3, 1 << 31, 1 << 62, (1 << 64) - 1]) for _ in range(rank)]
        return True, (_raw_prefix(rank=rank, nbytes=rng.choice([0, 4, 1 << 30])) + b"k" + b"none"
                      + struct.pack(f"<{rank}Q", *dims))
    if kind == 4:  # bad dtype or bad magic
        return True, rng.choice([_raw_prefix(code=rng.choice([0, 7, 11, 200])) + b"knone" + struct.pack("<Q", 1),
                                 rng.randbytes(4) + good[4:]])
    flipped = bytearray(good)  # one corrupted header byte
    flipped[rng.randrange(_PREFIX.size)] ^= 1 << rng.randrange(8)
    return True, bytes(flipped) + rng.randbytes(rng.randrange(0, 64))


def test_fuzzed_connections_are_closed_and_server_keeps_serving(server, client_factory):
    rng = random.Random(1234)
    for _ in range(300):
        authenticate, data = _fuzz_case(rng)
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
            if authenticate:
                client_handshake(sock, TOKEN.encode(), "fuzzer")
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)  # a truncated frame then ends the stream
            except OSError:  # the server may have closed on the first bad byte already
                pass
            try:
                while sock.recv(4096):  # the server closes every bad connection (recv timeout: WAIT)
                    pass
            except ConnectionResetError:
                pass
    _wait_for(lambda: not server._conns)
    assert server.stats.bad_frames + server.stats.rejected_handshakes > 250
    client = client_factory()
    client.send("after-fuzz", np.ones(2))
    while server.collector.get()[0] != "after-fuzz":  # a flipped bit can still make a valid frame
        pass


def test_callback_error_is_reported_to_the_sender():
    errors = queue.Queue()

    def refuse(key, array, encoding, meta):
        raise KeyError(key)

    srv = DataChannelServer(token=TOKEN, on_tensor=refuse)
    client = None
    try:
        client = DataChannelClient(f"127.0.0.1:{srv.port}", TOKEN, "w0", on_error=errors.put)
        client.send("nobody-wants-me", np.ones(1))
        assert "nobody-wants-me" in str(errors.get(timeout=WAIT))
    finally:
        if client is not None:
            client.close()
        srv.stop()


def test_lost_peer_makes_send_raise_unavailable_quickly(server, client_factory):
    errors = queue.Queue()
    client = client_factory(on_error=errors.put)
    client.send("before", np.ones(4))
    server.collector.get()
    start = time.monotonic()
    server.stop()
    with pytest.raises(UnavailableError, match=f"127.0.0.1:{server.port}"):
        while time.monotonic() - start < WAIT:
            client.send("after", np.ones(1 << 20, np.float32))
    assert time.monotonic() - start < 1.0
    assert isinstance(errors.get(timeout=WAIT), UnavailableError)


def test_keepalive_detects_a_peer_that_stops_answering():
    """A 'server' that completes the handshake and then never reads or answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    errors = queue.Queue()
    conn = client = None
    try:
        import threading
        from tensorweave.distributed.transport import server_handshake
        accepted = queue.Queue()

        def accept():
            c, _ = listener.accept()
            server_handshake(c, TOKEN.encode(), time.monotonic() + WAIT)
            accepted.put(c)

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        client = DataChannelClient(f"127.0.0.1:{listener.getsockname()[1]}", TOKEN, "w0",
                                   keepalive_interval=0.1, keepalive_timeout=0.3, on_error=errors.put)
        conn = accepted.get(timeout=WAIT)
        assert "ping" in str(errors.get(timeout=WAIT))
        with pytest.raises(UnavailableError):
            client.send("x", np.ones(1))
        t.join(WAIT)
    finally:
        if client is not None:
            client.close()
        if conn is not None:
            conn.close()
        listener.close()


def test_unreachable_address_raises_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        with pytest.raises(UnavailableError, match=str(port)):
            DataChannelClient(f"127.0.0.1:{port}", TOKEN, "w0")


def test_tls(tmp_path):
    import ssl
    cert, key = make_test_cert(tmp_path, "localhost")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    collector = _Collector()
    srv = DataChannelServer(token=TOKEN, on_tensor=collector, ssl_context=server_ctx)
    client = None
    try:
        client = DataChannelClient(f"127.0.0.1:{srv.port}", TOKEN, "w0", ssl_context=client_ctx)
        array = np.arange(1 << 20, dtype=np.float32)
        client.send("tls", array)
        np.testing.assert_array_equal(collector.get()[1], array)
        with pytest.raises(UnavailableError):  # a client that does not trust the server's certificate
            DataChannelClient(f"127.0.0.1:{srv.port}", TOKEN, "w1", ssl_context=ssl.create_default_context())
    finally:
        if client is not None:
            client.close()
        srv.stop()


# -- pulls: request / reply ---------------------------------------------------------------------

class _Replies:
    """A `deliver` callback for `request` that queues (frame, error) pairs."""

    def __init__(self):
        self.items = queue.Queue()

    def __call__(self, frame, error):
        self.items.put((frame, error))

    def get(self):
        return self.items.get(timeout=WAIT)


def _parking_server(handler):
    """(server, client) where the server's `handler` ("on_request" or "on_call") parks what it is
    asked, with its reply function, in `server.parked`; the test answers it."""
    parked = queue.Queue()
    srv = DataChannelServer(port=0, token=TOKEN, **{handler: lambda *args: parked.put(args)})
    srv.parked = parked
    client = DataChannelClient(f"127.0.0.1:{srv.port}", TOKEN, "/job:worker/task:0")
    try:
        yield srv, client
    finally:
        client.close()
        srv.stop()


@pytest.fixture
def answering():
    """A server whose `on_request` parks each request; the test answers it."""
    yield from _parking_server("on_request")


def test_request_is_answered_whenever_the_value_is_ready(answering):
    srv, client = answering
    replies = _Replies()
    client.request("7;some/key", replies, "bfloat16")
    peer, what, encoding, reply = srv.parked.get(timeout=WAIT)
    assert (peer, what, encoding) == ("/job:worker/task:0", "7;some/key", "bfloat16")
    assert replies.items.empty()
    array = np.arange(12, dtype=np.uint16).reshape(3, 4)
    reply(array=array, encoding="bfloat16")
    frame, error = replies.get()
    assert error is None and frame.encoding == "bfloat16"
    np.testing.assert_array_equal(frame.array, array)


def test_failed_reply_keeps_the_error_class_and_the_connection(answering):
    srv, client = answering
    replies = _Replies()
    client.request("a", replies)
    srv.parked.get(timeout=WAIT)[3](error=NotFoundError(None, None, "no such tensor"))
    frame, error = replies.get()
    assert frame is None and isinstance(error, NotFoundError) and "no such tensor" in error.message
    client.request("b", replies)  # the connection still serves
    srv.parked.get(timeout=WAIT)[3](array=np.ones(3, np.float32))
    np.testing.assert_array_equal(replies.get()[0].array, np.ones(3, np.float32))


def test_an_object_tensor_cannot_travel_and_the_requester_learns_why(answering):
    srv, client = answering
    replies = _Replies()
    client.request("s", replies)
    srv.parked.get(timeout=WAIT)[3](array=np.array([{"not": "a string"}], dtype=object))
    frame, error = replies.get()
    assert isinstance(error, InvalidArgumentError) and "'s'" in error.message


def test_cancel_delivers_once_and_a_late_reply_is_dropped(answering):
    srv, client = answering
    replies = _Replies()
    cancel = client.request("late", replies)
    reply = srv.parked.get(timeout=WAIT)[3]
    cancel(CancelledError(None, None, "step ended"))
    assert isinstance(replies.get()[1], CancelledError)
    reply(array=np.zeros(4, np.float32))
    assert client.ping() < WAIT  # the late frame was read and dropped; the connection lives
    assert replies.items.empty()


def test_a_lost_server_fails_every_pending_request(answering):
    srv, client = answering
    replies = _Replies()
    for key in ("x", "y"):
        client.request(key, replies)
    srv.parked.get(timeout=WAIT)
    srv.stop()
    errors_seen = [replies.get()[1] for _ in range(2)]
    assert all(isinstance(e, UnavailableError) for e in errors_seen)
    client.request("z", replies)  # after the loss, a request fails at once
    assert isinstance(replies.get()[1], UnavailableError)


def test_a_server_without_on_request_answers_unimplemented(server):
    client = DataChannelClient(f"127.0.0.1:{server.port}", TOKEN, "w0")
    try:
        replies = _Replies()
        client.request("k", replies)
        assert isinstance(replies.get()[1], UnimplementedError)
    finally:
        client.close()


# -- calls: a serialized request, answered like a pull -----------------------------------------------

@pytest.fixture
def calling():
    """A server whose `on_call` parks each call; the test answers it."""
    yield from _parking_server("on_call")


def test_a_call_carries_its_payload_and_gets_the_reply(calling):
    srv, client = calling
    replies = _Replies()
    request = np.frombuffer(b"serialized request", np.uint8)
    client.call("RunGraph", request, replies)
    peer, method, payload, reply = srv.parked.get(timeout=WAIT)
    assert (peer, method, payload.tobytes()) == ("/job:worker/task:0", "RunGraph", b"serialized request")
    response = np.frombuffer(b"x" * (100 << 10), np.uint8)  # large enough for the shared-memory ring
    reply(array=response)
    frame, error = replies.get()
    assert error is None and frame.array.tobytes() == response.tobytes()
    assert srv.stats.calls == 1


def test_a_failed_call_keeps_the_error_class_and_the_connection(calling):
    srv, client = calling
    replies = _Replies()
    client.call("RunGraph", np.zeros(0, np.uint8), replies)
    srv.parked.get(timeout=WAIT)[3](error=NotFoundError(None, None, "graph handle 'g' is not registered"))
    frame, error = replies.get()
    assert frame is None and isinstance(error, NotFoundError) and "'g' is not registered" in error.message
    assert client.ping() < WAIT


def test_a_call_needs_a_byte_payload(calling):
    _, client = calling
    replies = _Replies()
    client.call("RunGraph", np.ones(3, np.float32), replies)
    assert isinstance(replies.get()[1], InvalidArgumentError)
    assert client.ping() < WAIT  # nothing was sent


def test_a_call_in_flight_fails_when_the_server_goes(calling):
    srv, client = calling
    replies = _Replies()
    client.call("RunGraph", np.zeros(4, np.uint8), replies)
    srv.parked.get(timeout=WAIT)
    srv.stop()
    assert isinstance(replies.get()[1], UnavailableError)


def test_a_server_without_on_call_answers_unimplemented(server):
    client = DataChannelClient(f"127.0.0.1:{server.port}", TOKEN, "w0")
    try:
        replies = _Replies()
        client.call("RunGraph", np.zeros(4, np.uint8), replies)
        error = replies.get()[1]
        assert isinstance(error, UnimplementedError) and "CALL" in error.message
    finally:
        client.close()


def test_a_request_without_an_id_drops_the_connection(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    try:
        client_handshake(sock, TOKEN.encode(), "rogue")
        sock.sendall(_frame_bytes("no-id", None, frame_type=FrameType.REQUEST))
        sock.settimeout(WAIT)
        assert sock.recv(1) == b""  # closed by the server
    finally:
        sock.close()
    assert server.stats.bad_frames == 1


# -- string tensors --------------------------------------------------------------------------------

def test_string_tensors_round_trip_as_bytes():
    array = np.array([["a", b"\x00\xffbin"], ["", "\u00e9t\u00e9"]], dtype=object)
    assert FrameReader(_frame_bytes("u", np.array(["xy", "z"]))).read().array.tolist() == [b"xy", b"z"]
    frame = FrameReader(_frame_bytes("s", array)).read()
    assert frame.array.dtype == object and frame.array.shape == (2, 2)
    assert frame.array.tolist() == [[b"a", b"\x00\xffbin"], [b"", "\u00e9t\u00e9".encode()]]
    empty = FrameReader(_frame_bytes("e", np.empty((0, 3), object))).read()
    assert empty.array.shape == (0, 3)


@pytest.mark.parametrize("mutate, message", [
    (lambda lengths, body: (lengths[:8] + struct.pack("<Q", 10 ** 6), body), "add up"),
    (lambda lengths, body: (lengths, body + b"x"), "add up"),
    (lambda lengths, body: (b"", body), "needs more"),
])
def test_bad_string_frames_are_refused(mutate, message):
    good = _frame_bytes("s", np.array([b"ab", b"cde"], dtype=object))
    header_len = len(good) - (16 + 5)  # two u64 lengths, then 5 bytes of elements
    lengths, body = good[header_len:header_len + 16], good[header_len + 16:]
    payload = b"".join(mutate(lengths, body))
    prefix = bytearray(good[:header_len])
    struct.pack_into("<Q", prefix, 12, len(payload))  # the prefix's payload byte count
    with pytest.raises(FrameError, match=message):
        FrameReader(bytes(prefix) + payload).read()
