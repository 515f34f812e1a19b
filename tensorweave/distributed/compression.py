"""Codecs for float tensors crossing a process boundary (DESIGN.md §3, "Transfers").

A sender picks an encoding by name per session or per edge; the frame header then carries the
original dtype and shape, the encoding, the payload's byte count and the small `meta` dict this
module returns (plain numbers only). The receiver calls `decode` with those fields.

| name                | bytes per float32 | rule                                                      |
|---------------------|-------------------|-----------------------------------------------------------|
| `none`              | 4                 | raw little-endian bytes                                   |
| `bfloat16_truncate` | 2                 | the high 16 bits of each float32 (TF whitepaper §5.5)     |
| `bfloat16`          | 2                 | round to nearest even, as `ml_dtypes.bfloat16` casts      |
| `float16`           | 2                 | IEEE half, as NumPy casts                                 |
| `int8`              | 1                 | linear: `q = rint(x / scale)`, `scale = max|x| / 127`     |

Only float32 tensors are compressed: any other dtype travels as raw bytes under `none`
(`effective_encoding`), on both the encoding and the decoding side, so the two agree from the
dtype alone. String tensors (object arrays of `bytes`/`str`, TF's DT_STRING) travel as one
little-endian u64 length per element followed by the elements' bytes (`encode_strings`); they
decode to `bytes` objects, as TF1 returns strings. Special values:

- `bfloat16_truncate`: rounds toward zero; infinities and zeros (either sign) are kept; a NaN
  stays a NaN of the same sign (a NaN whose payload lives only in the low 16 bits would otherwise
  truncate to an infinity, so it is made quiet, as TF's `truncate_to_bfloat16` does). Float32
  denormals keep their high bits (bfloat16 has float32's exponent range).
- `bfloat16`: NaN stays NaN, infinities stay infinities; finite values that round beyond
  bfloat16's largest value (from about 3.39e38) become infinities, as rounding requires.
- `float16`: finite values beyond half's range (|x| >= 65520) become infinities and values
  below its smallest denormal (about 6e-8) become zeros of the same sign, as NumPy's cast does.
  NaN and infinities are kept.
- `int8`: NaN or infinite inputs raise ValueError (a single one would poison the per-tensor
  scale). Zero maps to zero (the sign of -0.0 is not kept); an all-zero or empty tensor has
  scale 0. The absolute error is at most scale / 2 (plus float32 rounding of the product).

Payloads come from the network, so `decode` trusts nothing: the byte count must equal
shape × element size, `meta` must hold exactly the expected numbers, and nothing is unpickled.
"""

import math
import numbers

import ml_dtypes
import numpy as np

ENCODINGS = ("none", "bfloat16_truncate", "bfloat16", "float16", "int8")

# Wire element type per encoding (little-endian on every host) and the keys `meta` carries.
_WIRE_DTYPES = {
    "bfloat16_truncate": np.dtype("<u2"),
    "bfloat16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
    "int8": np.dtype("i1"),
}
_META_KEYS = {"none": (), "bfloat16_truncate": (), "bfloat16": (), "float16": (), "int8": ("scale",)}

_F32 = np.dtype("<f4")
_F32_TINY = float(np.finfo(np.float32).tiny)
# Below this peak, 127 / peak overflows float32 (so quantization runs in float64).
_INT8_MIN_F32_PEAK = 2 * 127.0 / float(np.finfo(np.float32).max)
# The largest scale `encode` can produce: max finite float32 / 127.
_MAX_SCALE = float(np.finfo(np.float32).max) / 127.0
_BF16_QUIET_BIT = np.uint16(0x0040)


def check_encoding(name):
    """Returns `name` if it names a transfer encoding; raises ValueError listing the valid names."""
    if not isinstance(name, str) or name not in ENCODINGS:
        raise ValueError(f"Unknown tensor transfer encoding {name!r}; expected one of {', '.join(ENCODINGS)}")
    return name


def effective_encoding(dtype, encoding):
    """The encoding a tensor of `dtype` actually travels under: `encoding` for float32, else `none`.

    `dtype` may be a NumPy dtype (or anything `np.dtype` accepts) or a `tf.DType`.
    """
    check_encoding(encoding)
    return encoding if _is_float32(_as_numpy_dtype(dtype)) else "none"


def encoded_nbytes(nbytes_float32, encoding):
    """The payload size, in bytes, of a float32 tensor of `nbytes_float32` bytes under `encoding`.

    `meta` travels beside the payload in the frame header and is not counted.
    """
    check_encoding(encoding)
    if isinstance(nbytes_float32, bool) or not isinstance(nbytes_float32, numbers.Integral):
        raise TypeError(f"nbytes_float32 must be an integer, got {nbytes_float32!r}")
    nbytes_float32 = int(nbytes_float32)
    if nbytes_float32 < 0 or nbytes_float32 % 4:
        raise ValueError(f"nbytes_float32 must be a non-negative multiple of 4, got {nbytes_float32}")
    if encoding == "none":
        return nbytes_float32
    return nbytes_float32 // 4 * _WIRE_DTYPES[encoding].itemsize


def encode(array, encoding):
    """Encodes `array` for the wire under `encoding` (see `effective_encoding` for other dtypes).

    Returns `(payload, meta)`: `payload` is a 1-D byte `memoryview` (for `none` it may share memory
    with `array`, so send it before changing `array`), `meta` a dict of plain Python numbers that
    `decode` needs (`{"scale": float}` for `int8`, else `{}`). Raises ValueError for an unknown
    encoding, an object dtype, or (under `int8`) NaN or infinite values.
    """
    check_encoding(encoding)
    array = np.asarray(array)
    if _is_string(array.dtype):
        return memoryview(encode_strings(array)), {}
    encoding = effective_encoding(array.dtype, encoding)
    if encoding == "none":
        wire = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        return _bytes_view(wire), {}
    x = np.ascontiguousarray(array, dtype=_F32).reshape(-1)
    return _ENCODERS[encoding](x)


def encode_array(array, encoding):
    """`encode`, with the payload as an array of the wire's element type and `array`'s shape.

    Returns `(wire, meta, effective encoding)`; `decode_array` inverts it. This is the form the
    data channel sends: the frame carries the wire dtype and the original shape.
    """
    array = np.asarray(array)
    encoding = effective_encoding(array.dtype, encoding)
    if _is_string(array.dtype):
        return array, {}, "none"  # strings: the frame writes them with `encode_strings`
    payload, meta = encode(array, encoding)
    wire_dtype = array.dtype.newbyteorder("<") if encoding == "none" else _WIRE_DTYPES[encoding]
    return np.frombuffer(payload, dtype=wire_dtype).reshape(array.shape), meta, encoding


def decode_array(wire, encoding, meta):
    """The tensor `encode_array` encoded as `wire` (float32 for a compressed encoding)."""
    check_encoding(encoding)
    if encoding == "none":
        return wire
    if wire.dtype != _WIRE_DTYPES[encoding]:
        raise ValueError(f"Encoding {encoding!r} travels as {_WIRE_DTYPES[encoding]}, got {wire.dtype}")
    return decode(wire, encoding, _F32, wire.shape, meta)


def decode(payload, encoding, dtype, shape, meta):
    """Decodes a payload produced by `encode` into an array of `dtype` (float32 if compressed) and `shape`.

    `payload` is any contiguous bytes-like object. Raises ValueError, naming the encoding, when its
    length is not shape × element size, when `meta` is not what the encoding needs, or when the
    dtype or shape is invalid. Under `none` the result may share memory with `payload`
    (read-only when `payload` is immutable).
    """
    check_encoding(encoding)
    dtype = _as_numpy_dtype(dtype)
    if dtype.hasobject:
        if encoding != "none":
            raise ValueError(f"String tensors travel under 'none', not {encoding!r}")
        return decode_strings(_payload_bytes(payload, encoding), _check_shape(shape, encoding))
    if dtype.itemsize == 0:
        raise ValueError(f"Cannot decode dtype {dtype} from raw bytes (encoding {encoding!r})")
    encoding = effective_encoding(dtype, encoding)
    shape = _check_shape(shape, encoding)
    count = math.prod(shape)
    meta = _check_meta(meta, encoding)
    wire_dtype = dtype.newbyteorder("<") if encoding == "none" else _WIRE_DTYPES[encoding]
    data = _payload_bytes(payload, encoding)
    expected = count * wire_dtype.itemsize
    if data.size != expected:
        raise ValueError(
            f"Encoding {encoding!r}: payload of {data.size} bytes does not match shape {list(shape)} "
            f"({count} elements x {wire_dtype.itemsize} bytes = {expected} bytes)"
        )
    if encoding == "none" and dtype.kind == "b":
        return (data != 0).reshape(shape)  # untrusted bytes: only 0 and 1 are valid bools
    wire = data.view(wire_dtype)
    if encoding == "none":
        return wire.astype(dtype, copy=False).reshape(shape)
    return _DECODERS[encoding](wire, meta).reshape(shape)


# --- strings ------------------------------------------------------------------------------------

_LENGTH = np.dtype("<u8")


def encode_strings(array):
    """The wire form of a string tensor: a u64 length per element, then the elements' bytes.

    Elements may be `bytes` (or `np.bytes_`) or `str` (sent as UTF-8); anything else is a
    ValueError, so no other Python object is ever serialized.
    """
    items = []
    for x in np.asarray(array, dtype=object).reshape(-1):
        if isinstance(x, str):
            x = x.encode("utf-8")
        elif not isinstance(x, (bytes, bytearray)):
            raise ValueError(f"A string tensor may hold only bytes or str elements, not {type(x).__name__}")
        items.append(bytes(x))
    lengths = np.fromiter(map(len, items), dtype=_LENGTH, count=len(items))
    return lengths.tobytes() + b"".join(items)


def decode_strings(data, shape):
    """The object array of `bytes` that `encode_strings` wrote, for a tensor of `shape`.

    Checks, before allocating per element, that the lengths fit and add up to the payload.
    """
    data = memoryview(data).cast("B")
    count = math.prod(shape)
    head = count * _LENGTH.itemsize
    if head > len(data):
        raise ValueError(f"String payload of {len(data)} bytes is too short for {count} element lengths")
    lengths = np.frombuffer(data[:head], dtype=_LENGTH)
    body = len(data) - head
    if count and (int(lengths.max()) > body or int(lengths.sum(dtype=np.uint64)) != body):
        raise ValueError(f"String element lengths do not add up to the {body} payload bytes after them")
    if not count and body:
        raise ValueError(f"An empty string tensor carries {body} stray bytes")
    out = np.empty(count, dtype=object)
    pos = head
    for i, n in enumerate(lengths.tolist()):
        out[i] = bytes(data[pos:pos + n])
        pos += n
    return out.reshape(shape)


# --- encoders and decoders over flat little-endian float32 ---------------------------------------


def _encode_bfloat16_truncate(x):
    # Element 2i+1 of the little-endian uint16 view is the high half of float32 element i.
    high = x.view("<u2")[1::2].copy()
    if x.size and np.isnan(x.min()):  # min propagates NaN: one cheap pass without a mask
        np.bitwise_or(high, _BF16_QUIET_BIT, out=high, where=np.isnan(x))
    return _bytes_view(high), {}


def _encode_bfloat16(x):
    with np.errstate(all="ignore"):  # NaN and overflow are documented results, not warnings
        return _bytes_view(x.astype(ml_dtypes.bfloat16).view("<u2")), {}


_U32 = np.uint32


_HALF_STEP_MAGIC = np.float32(0.5)  # float32's ulp at 0.5 is 2**-24, the step of half's subnormals
_HALF_STEP_MAGIC_BITS = _U32(126 << 23)  # the bits of 0.5


def _encode_float16(x):
    """IEEE half bits, bit for bit what NumPy's cast gives, in whole-array passes: NumPy's own cast
    converts one element at a time, and takes about 20x longer again on values below half's
    normal range, which gradients hold many of. Half normals are rounded to nearest even by
    integer arithmetic on the float32 bits. Below 2**-14 (half subnormals and zeros), adding 0.5
    in float32 lets the FPU round |x| to a multiple of 2**-24, the subnormal step: the sum's low
    bits are the half's. Values that overflow to infinity, and NaN, are rare and fixed up last."""
    # In place where it can be: at these sizes every temporary is fresh memory to fault in.
    u = x.view(_U32)
    a = u & _U32(0x7FFFFFFF)
    h = a >> _U32(13)
    h &= _U32(1)
    h += a
    h += _U32(0xFFF)
    h >>= _U32(13)
    h -= _U32(112 << 10)  # float32's exponent bias 127 -> half's 15
    # Half subnormals and zeros, below 2**-14, are computed for every element and blended in
    # without branches: a mask scattered through a gradient slows masked or gathering passes.
    scratch = np.empty_like(a)
    with np.errstate(all="ignore"):  # NaN and infinity go through too; their results are not kept
        np.add(a.view(np.float32), _HALF_STEP_MAGIC, out=scratch.view(np.float32))
    scratch -= _HALF_STEP_MAGIC_BITS
    scratch -= h
    scratch *= a < _U32(0x38800000)
    h += scratch
    rare = np.flatnonzero(a >= _U32(0x477FF000))  # from 65520 (rounds past half's largest), inf, NaN
    if rare.size:
        ar = a[rare]
        h[rare] = np.where(ar > _U32(0x7F800000), _U32(0x7E00) | ((ar & _U32(0x7FE000)) >> _U32(13)),
                           _U32(0x7C00))  # NaN keeps its top payload bits (quiet); else infinity
    np.right_shift(u, _U32(16), out=scratch)
    scratch &= _U32(0x8000)
    h |= scratch
    return _bytes_view(h.astype(np.uint16)), {}


def _encode_int8(x):
    if x.size == 0:
        return _bytes_view(np.empty(0, np.int8)), {"scale": 0.0}
    # min/max propagate NaN, so one check covers NaN and infinities.
    peak = max(-float(x.min()), float(x.max()))
    if not math.isfinite(peak):
        raise ValueError("Encoding 'int8' needs finite values; the tensor holds NaN or infinity")
    if peak == 0.0:
        return _bytes_view(np.zeros(x.size, np.int8)), {"scale": 0.0}
    scale = peak / 127.0
    if peak < _INT8_MIN_F32_PEAK:  # rare tiny tensors: 127 / peak would overflow float32
        q = np.rint(x.astype(np.float64) / scale)
    else:
        q = np.multiply(x, np.float32(127.0 / peak))
        np.rint(q, out=q)
    # |x| <= peak, so |q| <= 127 up to float32 rounding, which rint absorbs: no clip needed.
    return _bytes_view(q.astype(np.int8)), {"scale": scale}


def _decode_bfloat16_truncate(wire, meta):
    out = wire.astype("<u4")
    out <<= 16
    return out.view(_F32).astype(np.float32, copy=False)


def _decode_bfloat16(wire, meta):
    return wire.view(ml_dtypes.bfloat16).astype(np.float32)


def _half_to_float32_bits(h):
    """float32 bits of the halves `h` (uint32 holding half bits), exact: NaN keeps its sign and
    payload, as NumPy's scalar conversion does."""
    bits = ((h & _U32(0x7FFF)) << _U32(13)) + _U32(0x38000000)
    exponent = h & _U32(0x7C00)
    subnormal = (h & _U32(0x3FF)).astype(np.float32) * np.float32(2.0 ** -24)
    bits = np.where(exponent == 0, subnormal.view(_U32), bits)
    bits = np.where(exponent == _U32(0x7C00), _U32(0x7F800000) | ((h & _U32(0x3FF)) << _U32(13)), bits)
    return bits | ((h & _U32(0x8000)) << _U32(16))


# Every half's float32, in a 256 KiB table: one gather per element, whatever the values.
_HALF_TO_FLOAT32 = _half_to_float32_bits(np.arange(1 << 16, dtype=_U32)).view(np.float32)


def _decode_float16(wire, meta):
    return _HALF_TO_FLOAT32.take(wire.view(np.uint16))


def _decode_int8(wire, meta):
    scale = meta["scale"]
    if scale < _F32_TINY:  # zero, or a float32 denormal that float32 arithmetic would lose
        return (wire.astype(np.float64) * scale).astype(np.float32)
    return np.multiply(wire, np.float32(scale), dtype=np.float32)


_ENCODERS = {
    "bfloat16_truncate": _encode_bfloat16_truncate,
    "bfloat16": _encode_bfloat16,
    "float16": _encode_float16,
    "int8": _encode_int8,
}
_DECODERS = {
    "bfloat16_truncate": _decode_bfloat16_truncate,
    "bfloat16": _decode_bfloat16,
    "float16": _decode_float16,
    "int8": _decode_int8,
}


# --- validation of what came from the wire -------------------------------------------------------


def _check_shape(shape, encoding):
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"Shape {shape!r} is not a sequence of dimensions (encoding {encoding!r})") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"Shape {list(dims)} has an invalid dimension {d!r} (encoding {encoding!r})")
    return tuple(int(d) for d in dims)


def _check_meta(meta, encoding):
    if not isinstance(meta, dict):
        raise ValueError(f"Meta for encoding {encoding!r} must be a dict, got {type(meta).__name__}")
    expected = _META_KEYS[encoding]
    if set(meta) != set(expected):
        raise ValueError(f"Meta for encoding {encoding!r} must have keys {list(expected)}, got {sorted(map(str, meta))}")
    if encoding == "int8":
        scale = meta["scale"]
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise ValueError(f"Meta 'scale' for encoding 'int8' must be a number, got {scale!r}")
        scale = float(scale)
        if not (0.0 <= scale <= _MAX_SCALE):  # also rejects NaN
            raise ValueError(f"Meta 'scale' for encoding 'int8' must be in [0, {_MAX_SCALE:g}], got {scale!r}")
        return {"scale": scale}
    return meta


def _payload_bytes(payload, encoding):
    try:
        view = memoryview(payload)
    except TypeError:
        raise ValueError(f"Payload for encoding {encoding!r} must be bytes-like, got {type(payload).__name__}") from None
    if not view.c_contiguous:
        raise ValueError(f"Payload for encoding {encoding!r} must be contiguous")
    return np.frombuffer(view, dtype=np.uint8)


# --- helpers -------------------------------------------------------------------------------------


def _as_numpy_dtype(dtype):
    return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


def _is_string(dtype):
    """Object arrays (TF's DT_STRING in this runtime) and NumPy's fixed-width str/bytes arrays."""
    return dtype.hasobject or dtype.kind in "SU"


def _is_float32(dtype):
    return dtype.kind == "f" and dtype.itemsize == 4


def _bytes_view(array):
    return memoryview(array.reshape(-1).view(np.uint8))
