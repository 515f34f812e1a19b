"""Tensors as TensorFlow's `TensorProto`: `tf.make_tensor_proto` and `tf.make_ndarray`.

A TensorProto is dtype + shape + values, either as raw little-endian bytes (`tensor_content`)
or in a typed field (`float_val`, ...) that may hold fewer values than the shape asks for. Nothing
in one is ever evaluated.
"""

import math
import sys

import numpy as np
from tensorboard.compat.proto import tensor_pb2

from tensorweave.framework import dtypes
from tensorweave.framework.tensor_shape import TensorShape

# A TensorProto may hold fewer values than its shape asks for (the last one repeats), so a
# 50-byte Const could declare terabytes. Values written out in `tensor_content` are bounded by the
# message holding them; what is expanded is bounded here, in bytes whatever the dtype: well above
# what a gRPC message (256 MiB by default) could hold written out, far below a task's memory.
MAX_EXPANDED_BYTES = 1 << 30

_TYPED_FIELDS = {
    dtypes.float32: "float_val", dtypes.float64: "double_val", dtypes.int32: "int_val",
    dtypes.int16: "int_val", dtypes.int8: "int_val", dtypes.uint8: "int_val", dtypes.uint16: "int_val",
    dtypes.int64: "int64_val", dtypes.uint32: "uint32_val", dtypes.uint64: "uint64_val",
    dtypes.bool: "bool_val", dtypes.float16: "half_val", dtypes.bfloat16: "half_val",
    dtypes.complex64: "scomplex_val", dtypes.complex128: "dcomplex_val",
}


class MalformedProto(Exception):
    """A TensorProto or AttrValue that cannot be read; the importer names the node it came from."""


def make_tensor_proto(values, dtype=None, shape=None):
    """`tf.make_tensor_proto`: `values` as a `TensorProto` (raw little-endian bytes for numbers,
    `string_val` for strings)."""
    dtype = dtypes.as_dtype(dtype) if dtype is not None else None
    if dtype is dtypes.string or (dtype is None and isinstance(values, (str, bytes))):
        array = np.asarray(values, dtype=object)
    else:
        array = np.asarray(values, dtype=None if dtype is None else dtype.as_numpy_dtype)
    if shape is not None:
        array = np.broadcast_to(array, tuple(TensorShape(shape).as_list()))
    dtype = dtypes.as_dtype(array.dtype) if dtype is None else dtype
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum,
                                   tensor_shape=TensorShape(array.shape).as_proto())
    if dtype is dtypes.string:
        proto.string_val.extend(v.encode() if isinstance(v, str) else bytes(v) for v in array.reshape(-1))
    else:
        array = np.ascontiguousarray(array)
        if sys.byteorder != "little":
            array = array.byteswap()
        proto.tensor_content = array.tobytes()
    return proto


def make_ndarray(proto):
    """`tf.make_ndarray`: the read-only NumPy array a `TensorProto` holds.

    Raises ValueError on a malformed proto (unknown dtype, partial shape, wrong byte count)."""
    try:
        return ndarray_of(proto)
    except MalformedProto as e:
        raise ValueError(f"Malformed TensorProto: {e}") from None


def dtype_of_enum(enum):
    """The DType of a `DataType` enum value; TF's reference types read as their base type."""
    if enum > 100:  # DT_FLOAT_REF, ...
        enum -= 100
    try:
        return dtypes.as_dtype(int(enum))
    except TypeError:
        raise MalformedProto(f"unsupported DataType enum {enum}") from None


def shape_of_proto(proto):
    """The TensorShape of a `TensorShapeProto` (-1 is an unknown dimension)."""
    if proto.unknown_rank:
        return TensorShape(None)
    for d in proto.dim:
        if d.size < -1:
            raise MalformedProto(f"invalid dimension size {d.size}")
    return TensorShape(proto)


def _declared(proto):
    """(dtype, dims, element count) of a tensor value, from its header alone."""
    dtype = dtype_of_enum(proto.dtype)
    shape = shape_of_proto(proto.tensor_shape)
    if not shape.is_fully_defined():
        raise MalformedProto(f"a tensor value needs a fully defined shape, got {shape}")
    dims = tuple(shape.as_list())
    return dtype, dims, math.prod(dims)  # exact: a product over int64 could wrap around


def expanded_nbytes(proto):
    """The bytes `ndarray_of(proto)` would allocate beyond what `proto` holds: 0 when
    `tensor_content` holds every value, else the declared size (values repeated or zeros; a
    string element counts as one reference). Reads the header only; raises `MalformedProto`."""
    dtype, _, n = _declared(proto)
    if proto.tensor_content and dtype is not dtypes.string:
        return 0
    itemsize = np.dtype(object if dtype is dtypes.string else dtype.as_numpy_dtype).itemsize
    return n * itemsize


def ndarray_of(proto):
    """`make_ndarray`, raising `MalformedProto` (also for a value that would expand to more than
    `MAX_EXPANDED_BYTES`)."""
    dtype, dims, n = _declared(proto)
    nbytes = expanded_nbytes(proto)
    if nbytes > MAX_EXPANDED_BYTES:
        raise MalformedProto(f"a {dtype.name} tensor of shape {list(dims)} would expand to {nbytes} bytes, over "
                             f"the limit of {MAX_EXPANDED_BYTES}")
    if dtype is dtypes.string:
        values = list(proto.string_val)
        array = np.empty(n, dtype=object)
        _fill_repeating(array, values, n)
    elif proto.tensor_content:
        np_dtype = np.dtype(dtype.as_numpy_dtype)
        content = proto.tensor_content
        if len(content) != n * np_dtype.itemsize:
            raise MalformedProto(f"tensor_content holds {len(content)} bytes, but a {dtype.name} tensor of "
                                 f"shape {list(dims)} needs {n * np_dtype.itemsize}")
        array = np.frombuffer(content, dtype=np_dtype).copy()
        if sys.byteorder != "little":
            array = array.byteswap()
    else:
        array = np.zeros(n, dtype=dtype.as_numpy_dtype)
        _fill_repeating(array, _typed_values(proto, dtype), n)
    array = array.reshape(dims)
    array.flags.writeable = False
    return array


def _typed_values(proto, dtype):
    field = _TYPED_FIELDS.get(dtype)
    if field is None:
        raise MalformedProto(f"no value field for dtype {dtype.name}")
    raw = list(getattr(proto, field))
    if field == "half_val":  # the 16 bits of each value, in an int32
        return np.array(raw, dtype=np.uint16).view(dtype.as_numpy_dtype)
    if dtype.is_complex:
        if len(raw) % 2:
            raise MalformedProto(f"{field} holds an odd number of parts")
        parts = np.array(raw, dtype=dtype.real_dtype.as_numpy_dtype)
        return (parts[0::2] + 1j * parts[1::2]).astype(dtype.as_numpy_dtype)
    return np.array(raw).astype(dtype.as_numpy_dtype) if raw else np.array([], dtype.as_numpy_dtype)


def _fill_repeating(array, values, n):
    """TF's rule: fewer values than elements repeat the last one; none means zeros."""
    if len(values) > n:
        raise MalformedProto(f"{len(values)} values for a tensor of {n} elements")
    if len(values):
        array[:len(values)] = values
        array[len(values):] = values[-1]
    elif array.dtype == object:
        array[:] = b""
