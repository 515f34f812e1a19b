"""Writing frames to a data channel connection (`data_channel`): whole frames under one lock, large
tensors through the peer's shared-memory ring when it has room (`shm_ring`), and a server's
replies, large ones on a thread of their own."""

import collections
import threading
import time

from tensorweave.distributed.transport.frames import FrameType, encode_frame, ring_payload, shm_frame

_INLINE_REPLY_BYTES = 64 << 10


class FrameWriter:
    """Writes whole frames under one lock so concurrent senders never interleave bytes."""

    def __init__(self, sock, limits, chunk_bytes=4 << 20):
        self.sock = sock
        self.limits = limits
        self.lock = threading.Lock()
        self.last_progress = time.monotonic()
        self._chunk = chunk_bytes
        self.ring = None  # a `shm_ring.RingWriter` the peer offered: large tensors go through it

    def write(self, frame_type, key="", array=None, encoding="none", meta=None):
        self.write_buffers(encode_frame(key, array, encoding, meta, frame_type, self.limits))

    def try_write(self, frame_type, key=""):
        """Writes an arrayless frame unless another write is under way: then False, nothing written
        (a reader thread must not wait on a write that may wait on it)."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            self._send(encode_frame(key, None, frame_type=frame_type, limits=self.limits))
            return True
        finally:
            self.lock.release()

    def use_ring(self, ring):
        """Answers a ring offer with SHM_ACCEPT (naming `ring`, or "" when None) and sends later
        large frames through `ring`; a refused renewal keeps the current ring. Under the lock, so
        no frame placed in the new ring goes before the answer, nor one in the old ring after it."""
        with self.lock:
            self._send(encode_frame(ring.name if ring is not None else "", None, frame_type=FrameType.SHM_ACCEPT,
                                    limits=self.limits))
            if ring is not None:
                self.ring = ring

    def write_via_ring(self, buffers):
        """Writes a large TENSOR frame through the peer's ring; False (nothing written) if there is
        no ring, the frame is not one, or the ring has no room for it now."""
        payload = ring_payload(buffers) if self.ring is not None else None
        if payload is None:
            return False
        with self.lock:
            place = self.ring.put(payload)  # under the lock: the ring fills in stream order
            if place is None:
                return False
            self.sock.sendall(shm_frame(buffers[0], place))
            self.last_progress = time.monotonic()
            return True

    def write_buffers(self, buffers):
        # Only a frame with a separate payload may take the ring: a small one (joined into one
        # buffer by encode_frame) skips the check.
        if len(buffers) == 2 and self.write_via_ring(buffers):
            return
        with self.lock:
            self._send(buffers)

    def _send(self, buffers):
        """Sends `buffers` on the stream; the caller holds the lock."""
        for buf in buffers:
            if len(buf) <= self._chunk:  # bytes, or a memoryview of bytes: len is the byte count
                self.sock.sendall(buf)
            else:
                view = memoryview(buf)
                for start in range(0, len(view), self._chunk):
                    self.sock.sendall(view[start:start + self._chunk])
                    self.last_progress = time.monotonic()
        self.last_progress = time.monotonic()


class ReplyWriter:
    """Writes one connection's replies, large ones on a thread of their own, so the thread that
    produced a value (a step's executor) goes on computing while its bytes go out. A small reply,
    or one the shared-memory ring has room for (a copy, no waiting on the peer), is written at
    once when nothing is queued: a thread hand-off can cost milliseconds on a busy machine."""

    def __init__(self, writer, name):
        self._writer = writer
        self._queue = collections.deque()
        self._cond = threading.Condition()
        self._busy = False  # a write is under way (ours or an inline one): later replies queue
        self._closed = False
        self.lock = threading.Lock()  # guards `unanswered`, which the connection's server keeps here
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._thread.start()

    def put(self, buffers):
        small = len(buffers) == 1 and len(buffers[0]) <= _INLINE_REPLY_BYTES  # encode_frame joins small frames
        with self._cond:
            if self._closed:
                return
            if (not small and self._writer.ring is None) or self._busy or self._queue:
                self._queue.append(buffers)
                self._cond.notify()
                return
            self._busy = True
        written = True
        try:
            if small:
                self._writer.write_buffers(buffers)
            else:
                written = self._writer.write_via_ring(buffers)
        except OSError:
            self.close()  # the connection is gone; its reader reports it
        finally:
            with self._cond:
                self._busy = False
                if not written:  # no room in the ring now: the thread sends it
                    self._queue.append(buffers)
                if self._queue:  # waking the thread for nothing costs a GIL hand-off per reply
                    self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or (self._queue and not self._busy))
                if self._closed:
                    return
                buffers = self._queue.popleft()
                self._busy = True
            try:
                self._writer.write_buffers(buffers)
            except OSError:
                self.close()
                return
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify()

    def close(self):
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
