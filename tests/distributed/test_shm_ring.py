"""The shared-memory ring for data channel replies between tasks on one machine: payloads round
trip through it in order and wrap around, a full ring sends on the stream instead, a frame that
points outside the ring is refused, only a private ring of the right size is written to, a
connection offers it and unlinks its file, and a client killed mid-transfer leaves the server
serving and no file behind. Payloads are lent from the ring: their space is reused only once
every view of them is gone, and values a client keeps make it offer a fresh ring."""

import gc
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from tensorweave.distributed.transport import DataChannelClient, DataChannelServer, FrameError, FrameReader
from tensorweave.distributed.transport import shm_ring
from tensorweave.distributed.transport.frames import encode_frame, shm_frame
from tensorweave.framework.errors import UnavailableError

pytestmark = pytest.mark.skipif(not shm_ring.available(), reason="needs Linux with /dev/shm")

TOKEN = "ring-secret"
WAIT = 10.0
MB = 1 << 20


def _ring_files():
    return {f for f in os.listdir(shm_ring.SHM_DIR) if f.startswith("tw-ring-")}


def _payload(nbytes, seed):
    return np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)


def _lent(array):
    """Whether `array` views a ring's memory (lent) rather than owning a copy."""
    return isinstance(array.base, np.ndarray) and isinstance(array.base.base, memoryview)


def _ring_pair(capacity=MB):
    ring = shm_ring.ReplyRing(capacity=capacity)
    try:
        return ring, shm_ring.RingWriter(ring.name, ring.capacity)
    finally:
        ring.unlink()


def test_payloads_round_trip_in_order_wrap_around_and_wait_for_free_space():
    ring, writer = _ring_pair()
    assert writer.put(memoryview(_payload(1000, 0))) is None  # small: cheaper on the stream
    assert writer.put(memoryview(_payload(MB // 2 + 1, 0))) is None  # over half the ring
    sent = []
    for i in range(12):  # 300 KiB each: the ring wraps every third or fourth payload
        data = _payload(300 << 10, i)
        place = writer.put(memoryview(data))
        if place is None:  # full until the reader takes what is waiting
            assert len(sent) == 3
            for data_, place_ in sent:
                out = ring.take(np.dtype(np.uint8), data_.shape, *place_)
                assert _lent(out)
                np.testing.assert_array_equal(out, data_)
                del out  # gives its space back
            sent = []
            place = writer.put(memoryview(data))
        assert place is not None and place[1] - place[0] == data.size
        sent.append((data, place))


def test_lent_payloads_hold_their_space_until_every_view_is_gone():
    ring, writer = _ring_pair()
    datas = [_payload(300 << 10, i) for i in range(3)]
    places = [writer.put(memoryview(d)) for d in datas]
    first, second, third = (ring.take(np.dtype(np.float32), (d.size // 4,), *p)
                            for d, p in zip(datas, places, strict=True))
    column = first.reshape(-1, 4)[:, 1]  # a strided view keeps the payload as the array would
    del first
    assert writer.put(memoryview(datas[0])) is None  # nothing was given back
    del second, third  # given back out of order: space frees only up to what is still lent
    gc.collect()
    assert writer.put(memoryview(datas[0])) is None
    np.testing.assert_array_equal(column, datas[0].view(np.float32).reshape(-1, 4)[:, 1])
    del column
    place = writer.put(memoryview(datas[1]))
    assert place is not None
    # A bool payload is copied out (it is checked after reading); its space is free at once.
    flags = ring.take(np.dtype(bool), (datas[1].size,), *place)
    assert flags.flags.owndata and not _lent(flags)
    assert writer.put(memoryview(datas[2])) is not None


def test_a_ring_held_by_kept_values_is_stuck_after_a_while():
    ring, writer = _ring_pair()
    kept = [ring.take(np.dtype(np.uint8), (300 << 10,), *writer.put(memoryview(_payload(300 << 10, i))))
            for i in range(2)]
    assert not ring.stuck(hold_s=60)  # over half the ring lent, but only just now
    assert ring.stuck(hold_s=0.0) and ring.in_use()
    del kept[0]
    assert not ring.stuck(hold_s=0.0)  # under half is held now
    kept.clear()
    assert not ring.in_use()


@pytest.mark.parametrize("offset, end, message", [
    (-1, 4096, "not in the ring"),             # before what was consumed
    (MB - 100, MB + 3996, "not in the ring"),  # would run past the end of the data area
    (0, 100, "not in the ring"),               # frees less than the payload
    (0, 3 * MB, "not in the ring"),            # frees more than was ever written
])
def test_a_placement_outside_the_ring_is_refused(offset, end, message):
    ring = shm_ring.ReplyRing(capacity=MB)
    ring.unlink()
    with pytest.raises(shm_ring.RingError, match=message):
        ring.take(np.dtype(np.uint8), (4096,), offset, end)


def test_only_a_private_ring_of_the_offered_size_is_opened(tmp_path):
    ring = shm_ring.ReplyRing(capacity=MB)
    try:
        with pytest.raises(shm_ring.RingError, match="bad ring offer"):
            shm_ring.RingWriter("../etc/passwd", MB)
        with pytest.raises(shm_ring.RingError, match="bad ring offer"):
            shm_ring.RingWriter(ring.name, 12)
        with pytest.raises(shm_ring.RingError, match="private"):
            shm_ring.RingWriter(ring.name, 2 * MB)  # not the size it has
        os.chmod(ring.path, 0o644)
        with pytest.raises(shm_ring.RingError, match="private"):
            shm_ring.RingWriter(ring.name, MB)
        with pytest.raises(FileNotFoundError):
            shm_ring.RingWriter("tw-ring-1-" + "0" * 32, MB)
    finally:
        ring.unlink()


def test_rings_of_processes_that_are_gone_are_removed_by_the_next_ring():
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=WAIT, check=True)
    stale = os.path.join(shm_ring.SHM_DIR, f"tw-ring-{int(gone.stdout)}-{'a' * 32}")
    alive = os.path.join(shm_ring.SHM_DIR, f"tw-ring-{os.getppid()}-{'b' * 32}")  # pytest's parent lives
    impossible = os.path.join(shm_ring.SHM_DIR, f"tw-ring-9999999999-{'c' * 32}")  # past any pid
    for path in (stale, alive, impossible):
        with open(path, "wb"):
            pass
    try:
        ring = shm_ring.ReplyRing(capacity=MB)
        ring.unlink()
        assert not os.path.exists(stale) and not os.path.exists(impossible) and os.path.exists(alive)
        assert ring.name.startswith(f"tw-ring-{os.getpid()}-")
    finally:
        for path in (stale, alive, impossible):
            if os.path.exists(path):
                os.unlink(path)


def test_a_shared_memory_frame_needs_the_connections_ring():
    array = np.arange(20_000, dtype=np.float32)
    header = encode_frame("7", array)[0]
    frame = shm_frame(header, (0, array.nbytes))
    with pytest.raises(FrameError, match="without a ring"):
        FrameReader(frame).read()
    reader = FrameReader(frame)
    reader.ring = shm_ring.ReplyRing(capacity=MB)
    reader.ring.unlink()
    got = reader.read()  # the ring holds zeros there; the frame is read as a TENSOR
    assert got.array.shape == array.shape and got.array.dtype == np.float32
    reader = FrameReader(shm_frame(header, (5 * MB, 5 * MB + array.nbytes)))
    reader.ring = shm_ring.ReplyRing(capacity=MB)
    reader.ring.unlink()
    with pytest.raises(FrameError, match="not in the ring"):
        reader.read()


def _pull(client, what):
    done, box = threading.Event(), []

    def deliver(frame, error):
        box.append((frame, error))
        done.set()
    client.request(what, deliver)
    assert done.wait(WAIT), f"no reply to {what}"
    frame, error = box[0]
    if error is not None:
        raise error
    return frame.array


@pytest.mark.parametrize("server_shm", [True, False])
def test_a_loopback_connection_moves_large_replies_through_the_ring_and_leaves_no_file(server_shm):
    arrays = {"big": np.random.default_rng(1).standard_normal((512, 300)).astype(np.float32),
              "small": np.arange(10, dtype=np.int64),
              "strings": np.array([b"x" * 1000] * 100, dtype=object)}  # 100 KB, but strings stay on the stream
    before = _ring_files()
    server = DataChannelServer("127.0.0.1", 0, token=TOKEN, shm=server_shm,
                               on_request=lambda peer, what, encoding, reply: reply(array=arrays[what]))
    client = DataChannelClient(f"127.0.0.1:{server.port}", TOKEN, "/job:worker/replica:0/task:0")
    try:
        for _ in range(40):  # more than the ring holds: its space is freed as replies are read
            np.testing.assert_array_equal(_pull(client, "big"), arrays["big"])
            np.testing.assert_array_equal(_pull(client, "small"), arrays["small"])
        assert _pull(client, "strings").tolist() == arrays["strings"].tolist()
        assert client.shm is server_shm and client.alive
        assert _lent(_pull(client, "big")) is server_shm and not client._retired  # given back each time
        assert _ring_files() == before  # unlinked once taken, or once refused
    finally:
        client.close()
        server.stop()
    assert _ring_files() == before


def test_values_a_client_keeps_make_it_offer_a_fresh_ring_and_stay_intact(monkeypatch):
    monkeypatch.setattr(shm_ring, "HOLD_S", 0.0)
    arrays = [np.random.default_rng(i).standard_normal(MB // 4).astype(np.float32) for i in range(4)]
    before = _ring_files()
    server = DataChannelServer("127.0.0.1", 0, token=TOKEN,
                               on_request=lambda peer, what, encoding, reply: reply(array=arrays[int(what) % 4]))
    client = DataChannelClient(f"127.0.0.1:{server.port}", TOKEN, "/job:worker/replica:0/task:0")
    try:
        kept = [_pull(client, str(i)) for i in range(40)]  # 40 MiB kept: more than two 16 MiB rings
        assert client._retired, "no fresh ring was offered"
        assert sum(map(_lent, kept)) > 16, "the fresh rings were not used"
        for i, value in enumerate(kept):  # nothing lent was written over
            np.testing.assert_array_equal(value, arrays[i % 4])
        kept.clear()
        assert all(_lent(_pull(client, str(i))) for i in range(8)) and client.alive
        assert _ring_files() == before
    finally:
        client.close()
        server.stop()


_PULLER = textwrap.dedent("""
    import sys, threading
    from tensorweave.distributed.transport import DataChannelClient
    client = DataChannelClient(sys.argv[1], sys.argv[2], "/job:worker/replica:0/task:1")
    print("connected", flush=True)
    while True:  # pull until killed
        done = threading.Event()
        client.request("big", lambda frame, error: done.set())
        done.wait(10)
""")


def test_a_client_killed_mid_transfer_leaves_the_server_serving_and_no_ring_file():
    big = np.ones(4 * MB // 4, np.float32)
    server = DataChannelServer("127.0.0.1", 0, token=TOKEN,
                               on_request=lambda peer, what, encoding, reply: reply(array=big))
    before = _ring_files()
    puller = subprocess.Popen([sys.executable, "-c", _PULLER, f"127.0.0.1:{server.port}", TOKEN],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert puller.stdout.readline().strip() == "connected"
        threading.Event().wait(0.5)  # pulls in flight through the ring
        puller.kill()
        puller.wait(timeout=WAIT)
        client = DataChannelClient(f"127.0.0.1:{server.port}", TOKEN, "/job:worker/replica:0/task:0")
        try:
            np.testing.assert_array_equal(_pull(client, "big"), big)
        finally:
            client.close()
        assert _ring_files() == before
    finally:
        if puller.poll() is None:
            puller.kill()
            puller.wait(timeout=WAIT)
        server.stop()


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(shm_ring.ENV, "0")
    assert not shm_ring.available()
    server = DataChannelServer("127.0.0.1", 0, token=TOKEN,
                               on_request=lambda peer, what, encoding, reply: reply(array=np.ones(MB, np.uint8)))
    client = DataChannelClient(f"127.0.0.1:{server.port}", TOKEN, "/job:worker/replica:0/task:0")
    try:
        assert client._ring is None
        assert _pull(client, "x").nbytes == MB
    finally:
        client.close()
        server.stop()
    with pytest.raises(UnavailableError):
        _pull(client, "x")
