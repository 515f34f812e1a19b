"""Length-prefixed tensor frames for the data channel (DESIGN.md §3, "Wire").

A frame is a fixed 24-byte prefix, a bounded variable part and a raw payload:

    prefix   magic b"TWDF", version u8, type u8, dtype u8 (TF DataType enum, 0 = none), rank u8,
             key length u16, encoding length u8, meta mask u8, payload byte count u64, reserved u32
    variable key (utf-8), encoding name (ascii), rank x dim u64, one f64 per bit set in the meta mask
    payload  the array's bytes, little-endian, C order

Everything is little-endian. The reader checks every field against fixed tables and configurable
limits before it allocates anything, then receives the payload straight into the array it returns
(memory of 1 MiB and more is reused from received arrays that are gone, `_payload_array`). A
string tensor (dtype 7, DT_STRING) carries one u64 length per element and then the elements'
bytes (`compression.encode_strings`), and is read as an object array of `bytes`.
Nothing received is unpickled or evaluated; a bad frame raises `FrameError`.
"""

import collections
import enum
import math
import struct
import weakref
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from tensorweave.distributed.compression import decode_strings, encode_strings

MAGIC = b"TWDF"
VERSION = 1
MAX_RANK = 32
MAX_ENCODING_LENGTH = 32
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 30
DEFAULT_MAX_KEY_BYTES = 8192  # a FAILED frame's error message fits, as in gRPC's 8 KiB of status metadata

ENCODINGS = frozenset(("none", "bfloat16_truncate", "bfloat16", "float16", "int8"))
_ENCODING_BYTES = {name: name.encode("ascii") for name in ENCODINGS}
_ENCODING_NAMES = {data: name for name, data in _ENCODING_BYTES.items()}
# Meta travels as a bit mask over this fixed tuple plus one float64 per set bit: no free-form data.
META_FIELDS = ("scale",)

_PREFIX = struct.Struct("<4sBBBBHBBQI")
_DIM = struct.Struct("<Q")
_META = struct.Struct("<d")
_DIMS = [struct.Struct(f"<{n}Q") for n in range(MAX_RANK + 1)]
_META_VALUES = [struct.Struct(f"<{n}d") for n in range(len(META_FIELDS) + 1)]
_NO_META = (0, ())
_META_COUNT = [bin(mask).count("1") for mask in range(1 << len(META_FIELDS))]
_EMPTY = memoryview(b"")
_MAX_DIM = 1 << 62
_SMALL_PAYLOAD = 64 << 10  # below this the header and payload are joined into one buffer
_READ_AHEAD = 64 << 10
_REUSE_MIN_BYTES = 1 << 20
_REUSE_MAX_BYTES = 256 << 20  # memory of gone arrays kept for reuse, all sizes together
_free_blocks = {}  # payload size -> deque of bytearrays no array uses now
_free_bytes = [0]  # their total (approximate under races: it only bounds what is kept)
_lent_blocks = {}  # id -> weak reference to an array over a block in use; each gives its block back


def lend(buffer, offset, nbytes, dtype, shape, on_gone):
    """An array of `dtype` and `shape` over `nbytes` bytes of `buffer` from `offset`, and the weak
    reference that calls `on_gone()` once that array and every view of it are gone (keep the
    reference alive until then). numpy stops collapsing view bases at an array whose own base is
    not an array, so every view keeps the uint8 array made here, and the reference fires only
    when the last of them dies."""
    block = np.frombuffer(buffer, np.uint8, nbytes, offset)
    return block.view(dtype).reshape(shape), weakref.ref(block, lambda _: on_gone())


def _payload_array(shape, dtype, nbytes):
    """An array of `shape` and `dtype` (`nbytes` long) to receive a payload into. A large one reuses
    the memory of a received array of that size that is gone (`lend`): fresh memory costs a page
    fault and zeroing per page (a 64 MB tensor took about a third longer to arrive than it does
    this way)."""
    if nbytes < _REUSE_MIN_BYTES:
        return np.empty(shape, dtype)
    try:
        block = _free_blocks[nbytes].pop()  # deque operations are atomic: no lock, which a
        _free_bytes[0] -= nbytes              # weak reference callback could be waiting on
    except (KeyError, IndexError):
        block = bytearray(nbytes)
    array, ref = lend(block, 0, nbytes, dtype, shape, lambda: _give_back_block(ref, block))
    _lent_blocks[id(ref)] = ref
    return array


def _give_back_block(ref, block):
    _lent_blocks.pop(id(ref), None)
    if len(block) > _REUSE_MAX_BYTES:
        return
    if _free_bytes[0] + len(block) > _REUSE_MAX_BYTES:  # sizes received earlier go: these are current
        _free_blocks.clear()
        _free_bytes[0] = 0
    _free_bytes[0] += len(block)
    _free_blocks.setdefault(len(block), collections.deque()).append(block)


class FrameError(ValueError):
    """A frame on the data channel is malformed or exceeds a limit."""


class FrameType(enum.IntEnum):
    TENSOR = 1
    ERROR = 2  # the key carries a short utf-8 message
    PING = 3  # the key carries the ping's sequence number
    PONG = 4
    CLOSE = 5
    REQUEST = 6  # the key carries "<request id>;<what>", the encoding the one asked for the reply
    FAILED = 7  # answers a REQUEST: the key carries "<request id>;<TF error code>;<message>"
    TENSOR_SHM = 8  # a TENSOR whose bytes lie in the connection's shared-memory ring (`shm_ring`):
    #                 the stream payload is two u64, the position of the bytes and the ring's new tail
    SHM_OFFER = 9  # client -> server: the key carries "<ring name>;<capacity>"
    SHM_ACCEPT = 10  # server -> client: the key carries the ring's name, or "" if not taken
    CALL = 11  # client -> server: the key carries "<request id>;<method>", the payload (1-D uint8) the
    #            serialized request; answered as a REQUEST is, its TENSOR the serialized response


_FRAME_TYPES = {int(t): t for t in FrameType}
_TENSOR_TYPES = (FrameType.TENSOR, FrameType.TENSOR_SHM)
_PAYLOAD_TYPES = frozenset((*_TENSOR_TYPES, FrameType.CALL))
_CALL = int(FrameType.CALL)  # a plain int: the reader compares it once per frame
_U8 = 4  # TF's DT_UINT8, the dtype of a CALL frame's payload
_SHM_PLACE = struct.Struct("<QQ")


# TF DataType enum -> little-endian NumPy dtype. Only fixed-size numeric types: never object/string.
_DTYPES = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 19: np.dtype("<f2"), 14: np.dtype(ml_dtypes.bfloat16),
    6: np.dtype("i1"), 5: np.dtype("<i2"), 3: np.dtype("<i4"), 9: np.dtype("<i8"),
    4: np.dtype("u1"), 17: np.dtype("<u2"), 22: np.dtype("<u4"), 23: np.dtype("<u8"),
    10: np.dtype("?"), 8: np.dtype("<c8"), 18: np.dtype("<c16"),
}
_ENUMS = {dt.newbyteorder("=") if dt.byteorder != "|" else dt: e for e, dt in _DTYPES.items()}
_STRING = 7  # TF's DT_STRING: object arrays of bytes/str, framed as lengths + bytes


@dataclass(frozen=True)
class FrameLimits:
    """Bounds a reader enforces on every frame; the defaults are safe for a shared network."""

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES

    def __post_init__(self):
        if not 0 <= self.max_payload_bytes <= _MAX_DIM or not 0 <= self.max_key_bytes <= 0xFFFF:
            raise ValueError(f"Invalid frame limits {self}")


class Frame:
    """One decoded frame. `array` is None except for TENSOR and CALL frames. (A plain class with
    slots: one is made per frame received, and a dataclass's field defaults cost more.)"""

    __slots__ = ("type", "key", "array", "encoding", "meta")

    def __init__(self, frame_type, key="", array=None, encoding="none", meta=None):
        self.type, self.key, self.array, self.encoding = frame_type, key, array, encoding
        self.meta = {} if meta is None else meta


def dtype_enum(dtype):
    """The TF DataType enum number the wire uses for a NumPy dtype; FrameError if it cannot travel."""
    dt = np.dtype(dtype)
    if dt.hasobject or dt.kind in "SU":
        return _STRING
    key = dt.newbyteorder("=") if dt.byteorder not in ("|", "=") else dt
    try:
        return _ENUMS[key]
    except KeyError:
        raise FrameError(f"dtype {dt} cannot travel on the data channel (numeric dtypes only)") from None


def encode_frame(key, array, encoding="none", meta=None, frame_type=FrameType.TENSOR,
                 limits=FrameLimits()):
    """Returns the buffers of one frame: `[header, payload]`, or `[header + payload]` if small.

    For a C-contiguous little-endian array the payload is a view of the array's memory (no copy),
    so do not change the array until the buffers are sent. Non-TENSOR frames pass `array=None`.
    """
    if frame_type.__class__ is not FrameType:
        frame_type = FrameType(frame_type)
    key_bytes = _check_key(key, limits)
    enc_bytes = _check_encoding(encoding)
    mask, meta_values = _pack_meta(meta) if meta else _NO_META
    if frame_type is FrameType.CALL and not (isinstance(array, np.ndarray) and array.dtype == np.uint8
                                             and array.ndim == 1):
        raise FrameError(f"CALL frame {key!r} needs a 1-D uint8 array (the serialized request)")
    if frame_type is FrameType.TENSOR or frame_type is FrameType.CALL:
        if not isinstance(array, (np.ndarray, np.generic)):
            raise FrameError(f"TENSOR frame {key!r} needs a numpy array, got {type(array).__name__}")
        # Small tensors (a step's scalars) are the common case: skip what a native array does not need.
        code = _ENUMS.get(array.dtype)
        if code is None:
            code = dtype_enum(array.dtype)
        if array.ndim > MAX_RANK:
            raise FrameError(f"rank {array.ndim} of {key!r} exceeds {MAX_RANK}")
        if code == _STRING:
            try:
                shape, payload = array.shape, memoryview(encode_strings(array))
            except ValueError as e:
                raise FrameError(f"string tensor {key!r}: {e}") from None
        else:
            wire = np.asarray(array, dtype=_DTYPES[code], order="C")  # keeps 0-d arrays 0-d
            shape, payload = wire.shape, wire.reshape(-1).view(np.uint8).data
        if payload.nbytes > limits.max_payload_bytes:
            raise FrameError(f"payload of {key!r} is {payload.nbytes} bytes, over the "
                             f"{limits.max_payload_bytes}-byte limit")
    elif array is not None:
        raise FrameError(f"{frame_type.name} frames carry no array")
    else:
        code, shape, payload = 0, (), _EMPTY
    parts = [_PREFIX.pack(MAGIC, VERSION, frame_type, code, len(shape), len(key_bytes), len(enc_bytes),
                          mask, payload.nbytes, 0), key_bytes, enc_bytes]
    if shape:
        parts.append(_DIMS[len(shape)].pack(*shape))
    if meta_values:
        parts.append(_META_VALUES[len(meta_values)].pack(*meta_values))
    if payload.nbytes < _SMALL_PAYLOAD:
        parts.append(payload)
        return [b"".join(parts)]
    return [b"".join(parts), payload]


def ring_payload(buffers):
    """The payload of `buffers` (from `encode_frame`) if it may travel through a shared-memory ring:
    a TENSOR frame with a separate payload (64 KiB or more) of a numeric dtype; else None."""
    if len(buffers) != 2 or buffers[0][5] != FrameType.TENSOR or buffers[0][6] == _STRING:
        return None
    return buffers[1]


def shm_frame(header, place):
    """The TENSOR_SHM frame for a TENSOR frame whose payload was copied into the connection's ring
    at `place` = (offset, end) (`shm_ring.RingWriter.put`): `header` is the TENSOR frame's first
    buffer from `encode_frame` (a payload of 64 KiB or more is its second one)."""
    prefix = bytearray(header[:_PREFIX.size])
    prefix[5] = FrameType.TENSOR_SHM
    struct.pack_into("<Q", prefix, 12, _SHM_PLACE.size)  # the prefix's payload byte count
    return b"".join((prefix, header[_PREFIX.size:], _SHM_PLACE.pack(*place)))


class _BytesSource:
    """Lets a FrameReader parse frames from an in-memory buffer (tests, fuzzing)."""

    def __init__(self, data):
        self._data = memoryview(bytes(data))
        self._pos = 0

    def recv_into(self, buf, nbytes=0):
        n = min(nbytes or len(buf), len(self._data) - self._pos)
        buf[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


class FrameReader:
    """Reads frames one at a time from a socket (anything with `recv_into`) or a bytes object.

    `read()` returns a `Frame`, or None on a clean end of stream between frames. A stream that ends
    inside a frame, or a frame that breaks a rule or limit, raises `FrameError`.
    """

    def __init__(self, source, limits=FrameLimits(), chunk_bytes=4 << 20, on_progress=None):
        self._source = _BytesSource(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        self._limits = limits
        self._chunk = chunk_bytes
        self._on_progress = on_progress
        self._ahead = memoryview(bytearray(_READ_AHEAD))
        self.ring = None  # a `shm_ring.ReplyRing` once the peer took one: TENSOR_SHM frames read from it
        self._start = self._end = 0  # the unread part of `_ahead`

    def read(self):
        if self._end - self._start < _PREFIX.size and not self._buffer(_PREFIX.size, at_boundary=True):
            return None
        ahead, pos = self._ahead, self._start
        magic, version, ftype, code, rank, key_len, enc_len, mask, nbytes, reserved = _PREFIX.unpack_from(ahead, pos)
        # One test for the common case; `_check_prefix` says which rule a bad frame broke.
        if (magic != MAGIC or version != VERSION or ftype not in _FRAME_TYPES or reserved
                or key_len > self._limits.max_key_bytes or enc_len > MAX_ENCODING_LENGTH or rank > MAX_RANK
                or mask >> len(META_FIELDS) or nbytes > self._limits.max_payload_bytes
                or (ftype not in _PAYLOAD_TYPES and (code or rank or nbytes))
                or (ftype == _CALL and (code != _U8 or rank != 1))):
            self._check_prefix(magic, version, ftype, code, rank, key_len, enc_len, mask, nbytes, reserved)
        ftype = _FRAME_TYPES[ftype]
        n_meta = _META_COUNT[mask]
        var_len = key_len + enc_len + rank * _DIM.size + n_meta * _META.size
        if _PREFIX.size + var_len <= len(ahead):  # the usual case: parse the header where it was received
            if self._end - pos < _PREFIX.size + var_len:
                self._buffer(_PREFIX.size + var_len)
                pos = self._start
            var, pos = ahead, pos + _PREFIX.size
            self._start = pos + var_len
        else:  # a key near its 64 KiB bound
            self._start = pos + _PREFIX.size
            var, pos = self._take(var_len), 0
        key = _decode_text(var[pos:pos + key_len], "utf-8", "key")
        pos += key_len
        encoding = _ENCODING_NAMES.get(bytes(var[pos:pos + enc_len]))
        if encoding is None:
            name = _decode_text(var[pos:pos + enc_len], "ascii", "encoding")
            raise FrameError(f"unknown encoding {name!r}; expected one of {sorted(ENCODINGS)}")
        pos += enc_len
        shape = _DIMS[rank].unpack_from(var, pos)
        meta = _unpack_meta(mask, _META_VALUES[n_meta].unpack_from(var, pos + rank * _DIM.size)) if mask else {}
        if ftype not in _PAYLOAD_TYPES:
            return Frame(ftype, key, None, encoding, meta)
        if ftype is FrameType.TENSOR_SHM:
            return Frame(FrameType.TENSOR, key, self._read_from_ring(code, shape, nbytes, key), encoding, meta)
        if code == _STRING:
            return Frame(ftype, key, self._read_strings(shape, nbytes, key), encoding, meta)
        dtype = _DTYPES.get(code)
        if dtype is None:
            raise FrameError(f"unsupported dtype enum {code} for tensor {key!r}")
        _check_shape(shape, dtype, nbytes, key, self._limits)
        start = self._start
        if 0 < nbytes <= self._end - start:  # all received already (a small tensor): one copy out
            array = np.frombuffer(self._ahead, dtype, nbytes // dtype.itemsize, start).reshape(shape).copy()
            self._start = start + nbytes
        else:
            array = _payload_array(shape, dtype, nbytes)
            if nbytes:
                self._fill(array.reshape(-1).view(np.uint8).data)
        if dtype.kind == "b" and array.size and array.view(np.uint8).max() > 1:
            raise FrameError(f"bool tensor {key!r} holds bytes other than 0 and 1")
        return Frame(ftype, key, array, encoding, meta)

    def _read_from_ring(self, code, shape, nbytes, key):
        dtype = _DTYPES.get(code)
        if dtype is None:
            raise FrameError(f"unsupported dtype enum {code} for shared-memory tensor {key!r}")
        if self.ring is None or nbytes != _SHM_PLACE.size:
            raise FrameError(f"shared-memory tensor {key!r} on a connection without a ring, or with a "
                             f"{nbytes}-byte placement")
        _check_shape(shape, dtype, None, key, self._limits)
        offset, end = _SHM_PLACE.unpack(self._take(_SHM_PLACE.size))
        try:
            array = self.ring.take(dtype, shape, offset, end)
        except ValueError as e:  # shm_ring.RingError
            raise FrameError(f"shared-memory tensor {key!r}: {e}") from None
        if dtype.kind == "b" and array.size and array.view(np.uint8).max() > 1:
            raise FrameError(f"bool tensor {key!r} holds bytes other than 0 and 1")
        return array

    def _check_prefix(self, magic, version, ftype, code, rank, key_len, enc_len, mask, nbytes, reserved):
        if magic != MAGIC:
            raise FrameError(f"bad magic {bytes(magic)!r} (expected {MAGIC!r})")
        if version != VERSION:
            raise FrameError(f"unsupported frame version {version} (expected {VERSION})")
        if ftype not in _FRAME_TYPES:
            raise FrameError(f"unknown frame type {ftype}")
        if reserved:
            raise FrameError("reserved header field is not zero")
        if key_len > self._limits.max_key_bytes:
            raise FrameError(f"key length {key_len} exceeds the {self._limits.max_key_bytes}-byte limit")
        if enc_len > MAX_ENCODING_LENGTH:
            raise FrameError(f"encoding name length {enc_len} exceeds {MAX_ENCODING_LENGTH}")
        if rank > MAX_RANK:
            raise FrameError(f"rank {rank} exceeds {MAX_RANK}")
        if mask >> len(META_FIELDS):
            raise FrameError(f"unknown meta fields in mask {mask:#x}")
        if nbytes > self._limits.max_payload_bytes:
            raise FrameError(f"payload of {nbytes} bytes exceeds the {self._limits.max_payload_bytes}-byte limit")
        if ftype == FrameType.CALL:
            raise FrameError(f"CALL frame must carry a 1-D uint8 payload, not dtype enum {code} of rank {rank}")
        raise FrameError(f"{FrameType(ftype).name} frame must not carry a dtype, shape or payload")

    def _take(self, n, at_boundary=False):
        """The next `n` bytes (None at a clean end of stream if `at_boundary`)."""
        if self._end - self._start >= n:
            start = self._start
            self._start = start + n
            return self._ahead[start:start + n].tobytes()
        out = bytearray(n)
        if not self._fill(memoryview(out), at_boundary):
            return None
        return out

    def _buffer(self, n, at_boundary=False):
        """Receives until the read-ahead buffer holds `n` bytes (at most its size) from `_start`;
        False on end of stream before the first byte if at a boundary."""
        ahead, start, end = self._ahead, self._start, self._end
        if start + n > len(ahead):  # move what is buffered to the front
            ahead[:end - start] = ahead[start:end]
            start, end = 0, end - start
            self._start, self._end = start, end
        while end - start < n:
            got = self._source.recv_into(ahead[end:])
            if not got:
                if at_boundary and end == start:
                    return False
                raise FrameError(f"stream ended inside a frame ({end - start} of {n} bytes)")
            end += got
            self._end = end
            if self._on_progress is not None:
                self._on_progress(got)
        return True

    def _read_strings(self, shape, nbytes, key):
        # Each element costs at least its 8-byte length, so the payload bound bounds the count.
        _check_shape(shape, np.dtype("<u8"), None, key, self._limits)
        if math.prod(shape) * 8 > nbytes:
            raise FrameError(f"string tensor {key!r} of shape {list(shape)} needs more than its {nbytes} bytes")
        payload = bytearray(nbytes)
        self._fill(memoryview(payload))
        try:
            return decode_strings(payload, shape)
        except ValueError as e:
            raise FrameError(f"string tensor {key!r}: {e}") from None

    def _fill(self, view, at_boundary=False):
        """Fills `view` completely; False on end of stream before the first byte if at a boundary.

        Small reads go through a read-ahead buffer, so a small frame costs one receive, not one
        per field; what a large payload still needs goes straight into its destination.
        """
        got, total = 0, len(view)
        buffered = self._end - self._start
        if buffered:
            got = min(buffered, total)
            view[:got] = self._ahead[self._start:self._start + got]
            self._start += got
        while got < total:
            if total - got < len(self._ahead):
                n = self._source.recv_into(self._ahead)
                if n:
                    take = min(n, total - got)
                    view[got:got + take] = self._ahead[:take]
                    self._start, self._end = take, n
            else:
                n = take = self._source.recv_into(view[got:got + self._chunk])
            if n == 0:
                if at_boundary and got == 0:
                    return False
                raise FrameError(f"stream ended inside a frame ({got} of {total} bytes)")
            got += take
            if self._on_progress is not None:
                self._on_progress(n)
        return True


def _check_key(key, limits):
    if not isinstance(key, str):
        raise FrameError(f"frame key must be a str, got {type(key).__name__}")
    data = key.encode("utf-8")
    if len(data) > limits.max_key_bytes:
        raise FrameError(f"key of {len(data)} bytes exceeds the {limits.max_key_bytes}-byte limit")
    return data


def _check_encoding(encoding):
    data = _ENCODING_BYTES.get(encoding) if isinstance(encoding, str) else None
    if data is not None:
        return data
    if encoding not in ENCODINGS:
        raise FrameError(f"unknown encoding {encoding!r}; expected one of {sorted(ENCODINGS)}")
    return encoding.encode("ascii")


def _pack_meta(meta):
    meta = dict(meta or {})
    unknown = set(meta) - set(META_FIELDS)
    if unknown:
        raise FrameError(f"unknown meta fields {sorted(unknown)}; allowed: {list(META_FIELDS)}")
    mask, values = 0, []
    for bit, name in enumerate(META_FIELDS):
        if name in meta:
            value = float(meta[name])
            if not math.isfinite(value):
                raise FrameError(f"meta field {name!r} must be finite, got {value}")
            mask |= 1 << bit
            values.append(value)
    return mask, values


def _unpack_meta(mask, values):
    names = [name for bit, name in enumerate(META_FIELDS) if mask & (1 << bit)]
    meta = dict(zip(names, values, strict=True))
    for name, value in meta.items():
        if not math.isfinite(value):
            raise FrameError(f"meta field {name!r} is not finite ({value})")
    return meta


def _decode_text(data, codec, what):
    try:
        return bytes(data).decode(codec)
    except UnicodeDecodeError:
        raise FrameError(f"{what} is not valid {codec}") from None


def _check_shape(shape, dtype, nbytes, key, limits):
    """Dims must be bounded and multiply to the payload byte count (checked step by step).

    Zero-sized dims are skipped in the running product so `(0, 2**62, 2**62)` is refused too.
    """
    count = 1
    for d in shape:
        if d > _MAX_DIM:
            raise FrameError(f"dimension {d} of tensor {key!r} is too large")
        count *= max(d, 1)
        if count * dtype.itemsize > max(limits.max_payload_bytes, dtype.itemsize):
            raise FrameError(f"shape {list(shape)} of tensor {key!r} exceeds the payload limit")
    if 0 in shape:
        count = 0
    if nbytes is not None and count * dtype.itemsize != nbytes:
        raise FrameError(f"shape {list(shape)} x {dtype.itemsize} bytes of tensor {key!r} does not "
                         f"match the payload byte count {nbytes}")
