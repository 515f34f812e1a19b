"""A shared-memory ring for data channel replies between two tasks on one machine.

Over loopback TCP every byte is copied into the kernel by the sender and out by the receiver, and
on a small machine those two copies compete with the computation for its cores. When both ends
of a data channel run on one machine, the client (which receives the replies) offers a ring: a
file in /dev/shm that only its user can open, named on the authenticated connection (and
unlinked once the server has mapped it; a ring whose creator died before that is removed by the
next ring created, `remove_stale_rings`). The server
copies a large reply's bytes into the ring and sends, over the connection, a TENSOR_SHM frame
holding the array's dtype and shape and where its bytes lie. Replies keep their order, small ones
and everything else stay on the stream, and a reply that does not fit in the free space goes on
the stream too.

The client does not copy a numeric payload out: it is lent, as an array over the ring's memory,
and its space is freed once that array and every view of it are gone (a step's received values
live until the step ends). That spares a copy of every large tensor on the receiving side, about
a tenth of a 1 PS + 1 worker step on 2 cores. Space frees in order, so a value the receiver keeps
(a fetch the user holds, a variable assigned from a received value) holds everything after it:
once that has kept over half the ring for a while (`ReplyRing.stuck`), the client offers a fresh
ring and the old one lives on only as long as the values lent from it. Bool payloads are copied.

Layout: a 64-byte header (magic, then the reader's consumed position, a u64 at `_TAIL_AT`), then the
data area. Positions count bytes ever written (they never wrap); the byte at position p lives at
data offset p % capacity. The writer alone moves the head (in its memory); the reader alone moves
the tail (in the header). x86 and ARM both make a copy done before the frame is sent visible to a
reader that receives the frame afterwards (the socket calls are barriers).
"""

import collections
import math
import mmap
import os
import re
import secrets
import struct
import sys
import threading
import time

import numpy as np

from tensorweave.distributed.transport import frames
from tensorweave.framework.graph_io import process_exists

SHM_DIR = "/dev/shm"
DEFAULT_RING_BYTES = 16 << 20  # per connection; a tensor over half of it travels on the stream
MIN_RING_BYTES = 1 << 20
MAX_RING_BYTES = 1 << 30
DEFAULT_MIN_PAYLOAD = 64 << 10  # smaller replies cost less on the stream than a ring hand-off
HOLD_S = 2.0  # a ring over half held by values lent this long ago is replaced (`ReplyRing.stuck`)
_HEADER = 64
_MAGIC = b"TWR1"
_TAIL = struct.Struct("<Q")
_TAIL_AT = 8
_NAME = re.compile(r"^tw-ring-([0-9]{1,10})-[0-9a-f]{32}$")  # the creating process's pid, then a nonce
ENV = "TENSORWEAVE_SHM"  # "0" turns the ring off (every tensor then travels on the stream)


def available():
    """Whether this process may offer rings: Linux with /dev/shm, and not turned off by $TENSORWEAVE_SHM."""
    return sys.platform.startswith("linux") and os.path.isdir(SHM_DIR) and os.environ.get(ENV, "1") != "0"


def remove_stale_rings():
    """Unlinks this user's ring files whose creating process is gone: a task killed between
    creating its ring and the peer's answer (one round trip) leaves its file behind. Returns the
    names removed. A process of another pid namespace may look gone; its ring is then refused by
    its peer, which answers on the stream."""
    removed = []
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return removed
    for name in names:
        match = _NAME.match(name)
        if match is None or process_exists(int(match.group(1))):
            continue
        path = os.path.join(SHM_DIR, name)
        try:
            if os.stat(path, follow_symlinks=False).st_uid == os.getuid():
                os.unlink(path)
                removed.append(name)
        except OSError:  # another process removed it first
            pass
    return removed


class RingError(ValueError):
    """A ring cannot be opened, or a frame points outside it."""


class ReplyRing:
    """The receiving end: creates the ring file (mode 0600) and copies payloads out of it."""

    def __init__(self, capacity=DEFAULT_RING_BYTES):
        if not MIN_RING_BYTES <= capacity <= MAX_RING_BYTES:
            raise ValueError(f"ring capacity {capacity} is outside [{MIN_RING_BYTES}, {MAX_RING_BYTES}]")
        remove_stale_rings()
        self.name = f"tw-ring-{os.getpid()}-{secrets.token_hex(16)}"
        self.capacity = capacity
        self.path = os.path.join(SHM_DIR, self.name)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # Allocated now, so a full /dev/shm (a container's is often 64 MiB) is an OSError here,
            # not a SIGBUS at the first copy into a page it could not back.
            os.posix_fallocate(fd, 0, _HEADER + capacity)
            self._map = mmap.mmap(fd, _HEADER + capacity)
        except BaseException:
            os.close(fd)
            self.unlink()
            raise
        os.close(fd)
        self._map[:4] = _MAGIC
        self._data = np.frombuffer(self._map, np.uint8, capacity, _HEADER)
        self._data[:] = 0  # mapped into this process now, not during the first copies
        self._tail = 0  # what the writer may reuse: everything before it was given back
        self._taken = 0  # the end of the last payload taken
        # [end, given back, weak reference, time lent] per payload taken, in stream order; only
        # `_give_back` pops them, under `_lock`, which nothing else waits on.
        self._lent = collections.deque()
        self._lock = threading.Lock()

    def unlink(self):
        """Removes the file name (the mappings live on); called once the peer has opened it."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def take(self, dtype, shape, offset, end):
        """The payload at position `offset`, an array of numpy `dtype` and `shape`, whose frame
        frees the ring up to position `end`. A numeric payload is lent (a view of the ring, freed
        when the last view of it is gone); any other is copied out. RingError if the frame's
        numbers are not a payload the writer could have placed there."""
        nbytes = math.prod(shape) * dtype.itemsize
        start = offset % self.capacity
        if not (self._taken <= offset and offset + nbytes <= end <= self._tail + self.capacity
                and start + nbytes <= self.capacity):
            raise RingError(f"shared-memory payload at {offset}+{nbytes} (freeing to {end}) is not in the ring "
                            f"(taken up to {self._taken}, freed up to {self._tail}, capacity {self.capacity})")
        self._taken = end
        entry = [end, False, None, time.monotonic()]
        if dtype.kind != "b" and nbytes:  # bool payloads are checked after reading: copied first
            array, entry[2] = frames.lend(self._map, _HEADER + start, nbytes, dtype, shape,
                                          lambda: self._give_back(entry))
        else:
            array = np.empty(shape, dtype)
            array.reshape(-1).view(np.uint8)[:] = self._data[start:start + nbytes]
            entry[1] = True
        with self._lock:
            self._lent.append(entry)
        self._give_back(None)
        return array

    def _give_back(self, entry):
        """Marks `entry` given back (it runs wherever the last view of a lent payload died, even
        inside another call here) and frees the ring up to the first payload still lent."""
        if entry is not None:
            entry[1] = True
        lent = self._lent
        while lent and lent[0][1] and self._lock.acquire(blocking=False):
            try:
                end = None
                while lent and lent[0][1]:
                    end = lent.popleft()[0]
                if end is not None:
                    self._tail = end
                    _TAIL.pack_into(self._map, _TAIL_AT, end)
            finally:
                self._lock.release()

    def stuck(self, hold_s=None):
        """Whether values still lent have kept over half the ring from the writer for `hold_s`
        seconds (default `HOLD_S`): then a fresh ring serves the connection better."""
        if self._taken - self._tail <= self.capacity // 2:  # the common case, checked after every reply
            return False
        try:
            first = self._lent[0]  # no lock: a callback may hold it (and the answer is advisory)
        except IndexError:
            return False
        return not first[1] and time.monotonic() - first[3] > (HOLD_S if hold_s is None else hold_s)

    def in_use(self):
        """Whether any payload taken from this ring is still lent."""
        return any(not entry[1] for entry in list(self._lent))


class RingWriter:
    """The sending end: maps a ring the peer offered and copies payloads into it."""

    def __init__(self, name, capacity):
        if not _NAME.match(name) or not MIN_RING_BYTES <= capacity <= MAX_RING_BYTES:
            raise RingError(f"bad ring offer {name!r} of {capacity} bytes")
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR | os.O_NOFOLLOW)
        try:
            info = os.fstat(fd)
            # Only a ring of our own user, of the size offered, is written to.
            if info.st_uid != os.getuid() or info.st_mode & 0o077 or info.st_size != _HEADER + capacity:
                raise RingError(f"ring {name!r} is not a {capacity}-byte ring private to this user")
            self._map = mmap.mmap(fd, _HEADER + capacity)
        finally:
            os.close(fd)
        if self._map[:4] != _MAGIC:
            raise RingError(f"ring {name!r} has no ring header")
        self.name, self.capacity = name, capacity
        self._data = np.frombuffer(self._map, np.uint8, capacity, _HEADER)
        self._head = 0

    def put(self, payload, min_bytes=DEFAULT_MIN_PAYLOAD):
        """Copies `payload` (a uint8 memoryview) into the ring; returns (offset, end) to send in the
        frame, or None if it is small or does not fit now (then it goes on the stream). Callers
        serialize `put` with the frames they send, so payloads are taken in the order placed."""
        nbytes = len(payload)
        if nbytes < min_bytes or nbytes > self.capacity // 2:
            return None
        tail = _TAIL.unpack_from(self._map, _TAIL_AT)[0]
        offset = self._head
        if offset % self.capacity + nbytes > self.capacity:  # no room before the end: start over at 0
            offset += self.capacity - offset % self.capacity
        end = offset + nbytes
        if end - tail > self.capacity:
            return None  # the reader has not freed enough yet
        start = offset % self.capacity
        self._data[start:start + nbytes] = np.frombuffer(payload, np.uint8)
        self._head = end
        return offset, end
