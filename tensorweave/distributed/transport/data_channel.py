"""The tensor data channel between two tasks (DESIGN.md §3, "Wire" and "Security").

One persistent TCP stream per pair of tasks (optionally under TLS), authenticated at connect time
(`handshake`: it proves knowledge of the cluster token without sending it) and then carrying
`frames`. With `token=None` authentication is off, so the server then only binds to loopback.
Lost peers are found by connection errors and PING/PONG keepalives.

Two ways to move a tensor: the client pushes it (`send`, a TENSOR frame handed to the server's
`on_tensor`), or pulls it (`request`: a REQUEST frame "<id>;<what>" that the server's `on_request`
answers, whenever the value is ready, with a TENSOR frame keyed "<id>" or a FAILED frame
"<id>;<TF error code>;<message>"). Pulls are how step rendezvous fetch tensors from peers.
A `call` is a pull whose CALL frame carries a serialized request for the server's `on_call`
(the master's per-step RunGraph): a reply in the same form, without gRPC's latency.

A client whose server is on this machine (a loopback address) offers a shared-memory ring for
the replies (`shm_ring`, frames SHM_OFFER/SHM_ACCEPT); a server that can map it privately then
sends replies of 64 KiB and more through it (TENSOR_SHM frames), sparing both processes the copies
through loopback TCP. The client lends those replies' bytes straight from the ring, and offers a
fresh ring when values it keeps hold the old one (the server then answers with that ring; later
large replies use it). $TENSORWEAVE_SHM=0 turns this off.
"""

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass

from tensorweave.distributed.transport import shm_ring
from tensorweave.distributed.transport.frame_writer import FrameWriter, ReplyWriter
from tensorweave.distributed.transport.handshake import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    HandshakeError,
    token_bytes,
    client_handshake,
    server_handshake,
)
from tensorweave.distributed.transport.frames import (
    FrameError,
    FrameLimits,
    FrameReader,
    FrameType,
    encode_frame,
)
from tensorweave.framework import errors
from tensorweave.framework.errors import UnauthenticatedError, UnavailableError

_MAX_RETIRED_RINGS = 3  # per connection, rings replaced while values lent from them live on
_log = logging.getLogger(__name__)


def _is_loopback(host):
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def _close_socket(sock):
    """Shuts a socket down first: that wakes any thread blocked in recv or sendall on it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@dataclass
class ChannelStats:
    """Counters a DataChannelServer keeps (read them, do not write them)."""

    connections: int = 0
    rejected_handshakes: int = 0
    bad_frames: int = 0
    frames: int = 0
    payload_bytes: int = 0
    calls: int = 0


class DataChannelServer:
    """Accepts authenticated data channel connections and hands each received tensor to `on_tensor`.

    `on_tensor(key, array, encoding, meta)` runs on the connection's reader thread; an exception
    from it is sent back to the client as an ERROR frame. `on_request(peer, what, encoding, reply)`
    answers a pull: it must call `reply(array=..., encoding=..., meta=...)` or `reply(error=...)`
    once, from any thread, now or later (`peer` is the client's task name from the handshake). It
    may return a function, called if the connection ends before the reply was made (so whatever
    waits to answer can stop waiting). `on_call(peer, method, payload, reply)` answers a call the
    same way (`payload` a 1-D uint8 array); it runs on the reader thread too, so it must hand
    anything that blocks to another thread.
    One accept thread plus one thread per connection. With `token=None` the server refuses any
    non-loopback `host`.
    """

    def __init__(self, host="127.0.0.1", port=0, token=None, on_tensor=None, *, on_request=None, on_call=None,
                 ssl_context=None, limits=FrameLimits(), handshake_timeout=DEFAULT_HANDSHAKE_TIMEOUT,
                 idle_timeout=60.0, max_connections=256, on_error=None, shm=True):
        self._token = token_bytes(token)
        self._shm = shm  # take shared-memory rings clients on this machine offer (`shm_ring`)
        if self._token is None and not _is_loopback(host):
            raise ValueError(f"Refusing to serve the data channel on non-loopback host {host!r} without a "
                             "cluster token: anyone on the network could inject tensors")
        self._on_tensor = on_tensor or (lambda key, array, encoding, meta: None)
        self._on_request = on_request
        self._on_call = on_call
        self._on_error = on_error
        self._ssl = ssl_context
        self._limits = limits
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self.stats = ChannelStats()
        self._stats_lock = threading.Lock()
        self._conns = {}  # socket -> reader thread
        self._conns_lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)  # the accept loop checks for stop() this often
        self.host, self.port = self._listener.getsockname()[:2]
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"tw-dc-accept:{self.port}",
                                               daemon=True)
        self._accept_thread.start()

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def _count(self, **deltas):
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _count_frame(self, payload_bytes):  # once per tensor: spares `_count`'s keyword dict
        with self._stats_lock:
            self.stats.frames += 1
            self.stats.payload_bytes += payload_bytes

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._conns_lock:
                if self._stopping.is_set() or len(self._conns) >= self._max_connections:
                    conn.close()
                    continue
                thread = threading.Thread(target=self._serve, args=(conn, peer), daemon=True,
                                          name=f"tw-dc-conn:{peer[0]}:{peer[1]}")
                self._conns[conn] = thread
            self._count(connections=1)
            thread.start()

    def _serve(self, conn, peer):
        sock, replies = conn, None
        try:
            conn.settimeout(self._handshake_timeout)  # a peer that connects and says nothing is dropped
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                if self._ssl is not None:
                    sock = self._ssl.wrap_socket(conn, server_side=True)
                peer_task = server_handshake(sock, self._token, time.monotonic() + self._handshake_timeout)
            except (HandshakeError, OSError) as e:
                self._count(rejected_handshakes=1)
                self._report(UnauthenticatedError(message=f"Data channel peer {peer} rejected: {e}"))
                return
            sock.settimeout(self._idle_timeout)  # clients ping well within this
            writer = FrameWriter(sock, self._limits)
            replies = ReplyWriter(writer, f"tw-dc-replies:{peer[0]}:{peer[1]}")
            replies.unanswered = {}  # request id -> what on_request returned, until the reply
            reader = FrameReader(sock, self._limits)
            while not self._stopping.is_set():
                frame = reader.read()
                if frame is None or frame.type is FrameType.CLOSE:
                    return
                if frame.type is FrameType.PING:
                    writer.write(FrameType.PONG, frame.key)
                elif frame.type is FrameType.TENSOR:
                    self._count_frame(frame.array.nbytes)
                    try:
                        self._on_tensor(frame.key, frame.array, frame.encoding, frame.meta)
                    except Exception as e:  # the sender learns why its tensor was not taken
                        writer.write(FrameType.ERROR, f"{type(e).__name__}: {e}"[:self._limits.max_key_bytes // 4])
                elif frame.type is FrameType.REQUEST:
                    self._answer(replies, frame, self._on_request, peer_task, frame.encoding)
                elif frame.type is FrameType.CALL:
                    self._count(calls=1)
                    self._answer(replies, frame, self._on_call, peer_task, array=frame.array)
                elif frame.type is FrameType.SHM_OFFER:  # the first ring, or a fresh one for a held ring
                    writer.use_ring(self._take_ring(frame.key, peer))
                else:
                    raise FrameError(f"unexpected {frame.type.name} frame from a client")
        except FrameError as e:
            self._count(bad_frames=1)
            self._report(UnavailableError(message=f"Bad frame from data channel peer {peer}: {e}"))
        except OSError as e:
            if not self._stopping.is_set():
                self._report(UnavailableError(message=f"Data channel peer {peer} lost: {e}"))
        except Exception as e:  # e.g. MemoryError allocating a (valid) payload: drop this peer only
            self._report(UnavailableError(message=f"Data channel peer {peer} dropped: {type(e).__name__}: {e}"))
        finally:
            if replies is not None:
                replies.close()
                with replies.lock:
                    withdraws, replies.unanswered = list(replies.unanswered.values()), {}
                for withdraw in withdraws:
                    with contextlib.suppress(Exception):  # the connection is gone either way
                        withdraw()
            _close_socket(sock)
            with self._conns_lock:
                self._conns.pop(conn, None)

    def _take_ring(self, offer, peer):
        """Maps the shared-memory ring a client on this machine offered ("<name>;<capacity>");
        None when it cannot be used (then replies stay on the stream)."""
        name, _, capacity = offer.partition(";")
        if not self._shm or not capacity.isdigit():
            return None
        try:
            return shm_ring.RingWriter(name, int(capacity))
        except (OSError, ValueError) as e:  # another machine's ring, or not this user's
            _log.info("Data channel peer %s: its shared-memory ring is not used: %s", peer, e)
            return None

    def _answer(self, replies, frame, handler, peer_task, encoding=None, array=None):
        """Hands a REQUEST (`handler(peer_task, what, encoding, reply)`) or a CALL (`handler(peer_task,
        method, array, reply)`) to its handler, with the `reply` that answers it once."""
        request_id, sep, what = frame.key.partition(";")
        if not sep or not request_id.isdigit():
            raise FrameError(f"{frame.type.name} key {frame.key[:64]!r} is not \"<id>;<what>\"")
        answered = threading.Lock()

        def reply(array=None, encoding="none", meta=None, error=None):
            if not answered.acquire(blocking=False):
                raise RuntimeError(f"request {frame.key[:64]!r} was answered twice")
            with replies.lock:
                replies.unanswered.pop(request_id, None)
            if error is None:
                try:
                    buffers = encode_frame(request_id, array, encoding, meta, FrameType.TENSOR, self._limits)
                except FrameError as e:  # e.g. an object tensor: the requester learns why
                    error = errors.InvalidArgumentError(None, None, f"Cannot send {what!r}: {e}")
                else:
                    self._count_frame(array.nbytes)
                    replies.put(buffers)
                    return
            replies.put(encode_frame(_failure_key(request_id, error, self._limits), None,
                                     frame_type=FrameType.FAILED, limits=self._limits))

        if handler is None:
            reply(error=errors.UnimplementedError(None, None, f"This data channel server answers no "
                                                  f"{frame.type.name} frames"))
            return
        try:
            withdraw = handler(peer_task, what, encoding if array is None else array, reply)
        except Exception as e:  # noqa: BLE001 - the requester learns why, the connection lives on
            if not answered.locked():
                reply(error=e)
            return
        if callable(withdraw):
            with replies.lock:
                if not answered.locked():
                    replies.unanswered[request_id] = withdraw

    def _report(self, error):
        if self._on_error is not None:
            self._on_error(error)

    def stop(self, timeout=2.0):
        """Closes the listener and every connection; joins the threads for at most `timeout` seconds."""
        self._stopping.set()
        self._listener.close()
        with self._conns_lock:
            conns = dict(self._conns)
        for conn in conns:
            _close_socket(conn)
        deadline = time.monotonic() + timeout
        for thread in (self._accept_thread, *conns.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class DataChannelClient:
    """One authenticated connection to a peer's DataChannelServer; `send` is thread-safe.

    A lost peer (reset, end of stream, or no PONG within `keepalive_timeout`) is reported once to
    `on_error` and makes every later `send` raise UnavailableError naming the peer.
    """

    def __init__(self, address, token, task_name, *, ssl_context=None, server_hostname=None,
                 limits=FrameLimits(), connect_timeout=DEFAULT_HANDSHAKE_TIMEOUT,
                 keepalive_interval=10.0, keepalive_timeout=None, on_error=None, shm=True):
        host, _, port = address.rpartition(":")
        self.address = address
        self._on_error = on_error
        self._limits = limits
        self._error = None
        self._closed = threading.Event()
        self._pongs = {}
        self._pong_cond = threading.Condition()
        self._seq = 0
        self._requests = {}  # request id -> deliver(frame, error), guarded by _requests_lock
        self._requests_lock = threading.Lock()
        try:
            raw = socket.create_connection((host.strip("[]"), int(port)), timeout=connect_timeout)
        except OSError as e:
            raise UnavailableError(message=f"Cannot connect the data channel to {address}: {e}") from e
        sock = raw
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(raw, server_hostname=server_hostname or host.strip("[]"))
            client_handshake(sock, token_bytes(token), task_name, peer=address)
        except BaseException as e:
            _close_socket(sock)
            if isinstance(e, OSError):
                raise UnavailableError(message=f"Data channel TLS/handshake with {address} failed: {e}") from e
            raise
        sock.settimeout(None)  # blocking; keepalives, not socket deadlines, find lost peers
        self._sock = sock
        self._writer = FrameWriter(sock, limits)
        self._last_heard = time.monotonic()
        self._ring = None  # a shared-memory ring offered to a server on this machine (`shm_ring`), until answered
        self._retired = []  # rings replaced while values lent from them still live
        self._renew = True  # offer a fresh ring when values kept hold the one in use
        self.shm = False  # True once the server took a ring: its large replies come through it
        if shm and shm_ring.available() and _is_loopback(host.strip("[]")):
            try:
                self._ring = shm_ring.ReplyRing()
                self._writer.write(FrameType.SHM_OFFER, f"{self._ring.name};{self._ring.capacity}")
            except OSError as e:  # no /dev/shm space: replies stay on the stream
                _log.info("Data channel to %s: no shared-memory ring: %s", address, e)
                self._drop_ring()
        self._reader_thread = threading.Thread(target=self._read_loop, daemon=True,
                                               name=f"tw-dc-client:{address}")
        self._reader_thread.start()
        self._keepalive_thread = None
        if keepalive_interval:
            self._keepalive_thread = threading.Thread(
                target=self._keepalive_loop, args=(keepalive_interval, keepalive_timeout or 3 * keepalive_interval),
                daemon=True, name=f"tw-dc-keepalive:{address}")
            self._keepalive_thread.start()

    def send(self, key, array, encoding="none", meta=None):
        """Sends one tensor frame. Raises UnavailableError if the peer is gone, FrameError if invalid."""
        self._check_alive()
        try:
            self._writer.write(FrameType.TENSOR, key, array, encoding, meta)
        except OSError as e:
            raise self._fail(f"send of {key!r} failed: {e}") from e

    def request(self, what, deliver, encoding="none"):
        """Pulls one tensor: asks the peer for `what` and returns `cancel(error)` at once.

        `deliver(frame, error)` is called exactly once: with the reply's TENSOR `Frame` (its array,
        encoding and meta as the server sent them), or with an error: the server's (same TF error
        class), UnavailableError if the connection is lost first, or the one given to `cancel`.
        """
        return self._ask(FrameType.REQUEST, what, None, encoding, deliver)

    def call(self, method, payload, deliver):
        """Calls the server's `on_call` with `payload` (a 1-D uint8 array, the serialized request)
        and returns `cancel(error)` at once; `deliver(frame, error)` as for `request`, the reply's
        array holding the serialized response."""
        return self._ask(FrameType.CALL, method, payload, "none", deliver)

    def _ask(self, frame_type, what, array, encoding, deliver):
        with self._requests_lock:
            self._seq += 1
            request_id = str(self._seq)
            self._requests[request_id] = deliver
        try:
            self._check_alive()
            self._writer.write(frame_type, f"{request_id};{what}", array, encoding)
        except UnavailableError as e:
            self._settle(request_id, None, e)
        except FrameError as e:
            self._settle(request_id, None, errors.InvalidArgumentError(None, None, f"Cannot request {what!r}: {e}"))
        except OSError as e:
            self._fail(f"request of {what!r} failed: {e}")  # fails this request and every other one
        return lambda error: self._settle(request_id, None, error)

    def _settle(self, request_id, frame, error):
        with self._requests_lock:
            deliver = self._requests.pop(request_id, None)
        if deliver is not None:
            deliver(frame, error)

    def ping(self, timeout=5.0):
        """Round trip to the peer; returns the seconds it took. UnavailableError if no PONG in `timeout`."""
        self._check_alive()
        with self._requests_lock:
            self._seq += 1
            seq = str(self._seq)
        start = time.monotonic()
        try:
            self._writer.write(FrameType.PING, seq)
        except OSError as e:
            raise self._fail(f"ping failed: {e}") from e
        with self._pong_cond:
            if not self._pong_cond.wait_for(lambda: seq in self._pongs or self._error is not None, timeout):
                raise UnavailableError(message=f"Data channel peer {self.address} did not answer a ping "
                                               f"within {timeout}s")
            if seq not in self._pongs:
                self._check_alive()
            return self._pongs.pop(seq) - start

    def _read_loop(self):
        reader = FrameReader(self._sock, self._limits, on_progress=self._heard)
        try:
            while True:
                frame = reader.read()
                if frame is None or frame.type is FrameType.CLOSE:
                    raise ConnectionResetError("peer closed the connection")
                if frame.type is FrameType.TENSOR:
                    self._settle(frame.key, frame, None)  # a late reply to a cancelled request is dropped
                    if reader.ring is not None and self._renew and self._ring is None and reader.ring.stuck():
                        self._offer_fresh_ring(reader.ring.capacity)
                elif frame.type is FrameType.PONG:
                    with self._pong_cond:
                        self._pongs[frame.key] = time.monotonic()
                        self._pong_cond.notify_all()
                elif frame.type is FrameType.PING:
                    self._writer.write(FrameType.PONG, frame.key)
                elif frame.type is FrameType.FAILED:
                    request_id, error = _parse_failure(frame.key, self.address)
                    self._settle(request_id, None, error)
                elif frame.type is FrameType.SHM_ACCEPT and self._ring is not None:
                    offered = self._ring
                    self._drop_ring()  # taken (both ends have it mapped) or refused: no file is left behind
                    if frame.key == offered.name:
                        if reader.ring is not None:
                            self._retired.append(reader.ring)
                        reader.ring = offered
                        self.shm = True
                    else:
                        self._renew = False  # the server keeps the ring it has
                elif frame.type is FrameType.ERROR:
                    self._report(UnavailableError(message=f"Data channel peer {self.address} "
                                                          f"reported: {frame.key}"))
                else:
                    raise FrameError(f"unexpected {frame.type.name} frame from the server")
        except (OSError, FrameError) as e:
            self._fail(f"connection lost: {e}")
        finally:
            self._drop_ring()

    def _drop_ring(self):
        ring, self._ring = self._ring, None
        if ring is not None:
            ring.unlink()

    def _offer_fresh_ring(self, capacity):
        """Offers the server a new ring: values this task keeps hold most of the current one."""
        self._retired = [ring for ring in self._retired if ring.in_use()]
        if len(self._retired) >= _MAX_RETIRED_RINGS:
            return  # large replies take the stream until some of those values are gone
        if self._writer.lock.locked():
            return  # a send is under way: offer after a later reply (see `try_write`)
        try:
            ring = shm_ring.ReplyRing(capacity)
        except OSError as e:
            _log.info("Data channel to %s: no fresh shared-memory ring: %s", self.address, e)
            self._renew = False
            return
        self._ring = ring
        if not self._writer.try_write(FrameType.SHM_OFFER, f"{ring.name};{ring.capacity}"):
            self._drop_ring()  # a send is under way: offer after a later reply

    def _heard(self, nbytes):
        self._last_heard = time.monotonic()

    def _keepalive_loop(self, interval, timeout):
        while not self._closed.wait(interval):
            # Only what the peer sends proves it alive: our own writes (pings included) land in
            # kernel buffers even when the peer has stopped reading.
            idle_since = self._last_heard
            if self._writer.lock.locked():  # a long send is under way: it is alive while it moves
                if time.monotonic() - self._writer.last_progress > timeout:
                    self._fail(f"no send progress for {timeout}s")
                    return
                continue
            try:
                self.ping(timeout)
            except UnavailableError as e:
                if time.monotonic() - idle_since > timeout:
                    self._fail(str(e))
                    return

    def _report(self, error):
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:  # a broken callback must not kill the reader thread
                pass

    def _fail(self, reason):
        """Marks the channel dead once (closing the socket wakes blocked threads); returns the error."""
        with self._pong_cond:
            first = self._error is None and not self._closed.is_set()
            if self._error is None:
                self._error = UnavailableError(message=f"Data channel to {self.address} is unavailable: {reason}")
            self._pong_cond.notify_all()
        if first:
            _close_socket(self._sock)
            self._report(self._error)
        self._fail_requests(self._error)
        return self._error

    def _fail_requests(self, error):
        with self._requests_lock:
            pending, self._requests = self._requests, {}
        for deliver in pending.values():
            deliver(None, error)

    def _check_alive(self):
        if self._closed.is_set():
            raise UnavailableError(message=f"Data channel to {self.address} is closed")
        if self._error is not None:
            raise UnavailableError(message=self._error.message)

    def close(self, timeout=2.0):
        """Says goodbye to the peer (best effort) and closes the connection and threads."""
        if self._closed.is_set():
            return
        if self._error is None:
            try:
                if self._writer.lock.acquire(timeout=timeout):
                    self._writer.lock.release()
                    self._writer.write(FrameType.CLOSE)
            except OSError:
                pass
        self._closed.set()
        _close_socket(self._sock)
        ring = self._ring
        if ring is not None:
            ring.unlink()  # in case the server never answered the offer
        self._fail_requests(UnavailableError(message=f"Data channel to {self.address} was closed"))
        for thread in (self._reader_thread, self._keepalive_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def alive(self):
        """False once the connection is closed or lost."""
        return self._error is None and not self._closed.is_set()


def _failure_key(request_id, error, limits):
    code = error.error_code if isinstance(error, errors.OpError) else errors.INTERNAL
    message = error.message if isinstance(error, errors.OpError) else f"{type(error).__name__}: {error}"
    key = f"{request_id};{code};{message}"
    data = key.encode("utf-8")[:limits.max_key_bytes]
    return data.decode("utf-8", "ignore")


def _parse_failure(key, peer):
    request_id, _, rest = key.partition(";")
    code, _, message = rest.partition(";")
    try:
        cls = errors.exception_type_from_error_code(int(code))
    except ValueError:
        cls = errors.UnknownError
    return request_id, cls(None, None, f"{message} (from data channel peer {peer})")
