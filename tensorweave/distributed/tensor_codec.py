"""Tensors as `NamedTensor` protocol messages: TF dtype enum + dims + raw little-endian bytes.

What crosses the wire is never pickled or evaluated (STYLE.md rule 7). The receiving side
trusts nothing: the dtype must be a fixed-size numeric TF type or DT_STRING (lengths + bytes,
`compression.encode_strings`), the dims non-negative, the size within `max_bytes`, the encoding one of `compression.ENCODINGS` (with a `scale`
exactly when it is `int8`), and the byte count exactly dims x wire element size. Any mismatch is
a ValueError naming the tensor. Float32 tensors may travel compressed (`compression`); every
other dtype travels as raw bytes under "none", whatever encoding was asked for.
"""

import math

import numpy as np

from tensorweave.distributed import compression
from tensorweave.distributed.protocol import tensorweave_service_pb2 as pb
from tensorweave.framework import dtypes
from tensorweave.runtime import config as config_lib
from tensorweave.runtime import step_stats as step_stats_lib

# The largest tensor (decoded, in bytes) accepted from the wire by default; callers with a
# frame or message limit pass their own.
DEFAULT_MAX_BYTES = 1 << 31
# At most this many dims (TF's limit is 254; a few thousand zeros would be a cheap allocation bomb).
MAX_RANK = 254


def _tensor_dtype(name, array):
    try:
        dtype = dtypes.as_dtype(array.dtype.newbyteorder("="))  # ">i4" is int32 too
    except TypeError:
        raise ValueError(f"Tensor {name!r}: dtype {array.dtype} has no TensorFlow DataType") from None
    return dtype


def to_named_tensor(name, array, encoding="none"):
    """A `NamedTensor` message holding `array` under `name`.

    `encoding` (a name from `compression.ENCODINGS`) applies to float32 tensors only; others
    travel as raw bytes, strings as lengths + bytes. Raises ValueError naming the tensor for
    object arrays holding anything but bytes/str, unknown encodings, or (under "int8") NaN or
    infinite values.
    """
    array = np.asarray(array)
    dtype = _tensor_dtype(name, array)
    try:
        effective = compression.effective_encoding(array.dtype, encoding)
        payload, meta = compression.encode(array, effective)
    except ValueError as e:
        raise ValueError(f"Tensor {name!r}: {e}") from None
    msg = pb.NamedTensor(name=name, dtype=dtype.as_datatype_enum, dims=array.shape, content=bytes(payload))
    if effective != "none":
        msg.encoding = effective
    if "scale" in meta:
        msg.scale = meta["scale"]
    return msg


def from_named_tensor(msg, max_bytes=DEFAULT_MAX_BYTES):
    """`(name, ndarray)` decoded from a `NamedTensor` received from the network.

    The array is writable and owns its memory. `max_bytes` bounds the decoded size (checked
    from the dims before anything is allocated). Raises ValueError naming the tensor when the
    dtype is not a fixed-size numeric type, the dims are invalid, the encoding or scale does
    not fit the dtype, or the byte count does not match the dims.
    """
    if not isinstance(msg, pb.NamedTensor):
        raise TypeError(f"from_named_tensor expects a NamedTensor message, got {type(msg).__name__}")
    name = msg.name
    dtype = _wire_dtype(name, msg.dtype)
    np_dtype = np.dtype(dtype.as_numpy_dtype)
    dims = tuple(msg.dims)
    if len(dims) > MAX_RANK:
        raise ValueError(f"Tensor {name!r}: rank {len(dims)} exceeds the limit of {MAX_RANK}")
    if any(d < 0 for d in dims):
        raise ValueError(f"Tensor {name!r}: dims {list(dims)} hold a negative dimension")
    nbytes = len(msg.content) if np_dtype.hasobject else math.prod(dims) * np_dtype.itemsize
    if nbytes > max_bytes:
        raise ValueError(f"Tensor {name!r}: {nbytes} bytes (dims {list(dims)}, {dtype.name}) exceed the "
                         f"limit of {max_bytes} bytes")
    encoding = msg.encoding or "none"
    if encoding not in compression.ENCODINGS:
        raise ValueError(f"Tensor {name!r}: unknown encoding {encoding!r}; expected one of "
                         f"{', '.join(compression.ENCODINGS)}")
    if compression.effective_encoding(np_dtype, encoding) != encoding:
        raise ValueError(f"Tensor {name!r}: encoding {encoding!r} applies to float32 only, not {dtype.name}")
    has_scale = msg.HasField("scale")
    if has_scale != (encoding == "int8"):
        raise ValueError(f"Tensor {name!r}: encoding {encoding!r} " +
                         ("needs a scale" if encoding == "int8" else "carries no scale, but one was sent"))
    meta = {"scale": msg.scale} if has_scale else {}
    try:
        array = compression.decode(msg.content, encoding, np_dtype, dims, meta)
    except ValueError as e:
        raise ValueError(f"Tensor {name!r}: {e}") from None
    if not array.dtype.hasobject and (not array.flags.writeable or not array.flags.owndata):
        array = array.copy()  # "none" decodes to a view of the immutable message bytes
    return name, array


def _wire_dtype(name, enum):
    if enum not in _WIRE_ENUMS:
        raise ValueError(f"Tensor {name!r}: DataType enum {enum} is not a fixed-size numeric type or string "
                         f"(accepted: {sorted(_WIRE_ENUMS)})")
    return dtypes.as_dtype(int(enum))


_WIRE_ENUMS = frozenset(d.as_datatype_enum for d in (
    dtypes.float16, dtypes.float32, dtypes.float64, dtypes.bfloat16, dtypes.int8, dtypes.int16,
    dtypes.int32, dtypes.int64, dtypes.uint8, dtypes.uint16, dtypes.uint32, dtypes.uint64,
    dtypes.bool, dtypes.complex64, dtypes.complex128, dtypes.string))


# --- the session's transfer encoding inside a serialized TF ConfigProto ----------------------------
#
# `ConfigProto.transfer_encoding` is TensorWeave's own field, absent from TF's message, yet it must
# reach the master (CreateSession.config) and every worker (RegisterGraph.config), which carry the
# serialized TF message only. It travels in TF's `rpc_options.compression_algorithm` (the field TF
# uses to pick the compression of RPC payloads) as "tensorweave-transfer-encoding:<name>"; the
# receiving side moves it back into `transfer_encoding` and clears the TF field. Under "none"
# nothing is written, so such configs serialize exactly as before.

TRANSFER_ENCODING_TAG = "tensorweave-transfer-encoding:"


def config_to_wire(config):
    """The serialized TF ConfigProto of `config` (ours, TF's or None), carrying its transfer encoding."""
    config = config_lib.as_config(config)
    encoding = compression.check_encoding(config.transfer_encoding)
    if encoding == "none":
        return config.proto.SerializeToString()
    proto = config_lib.config_pb2.ConfigProto()
    proto.CopyFrom(config.proto)
    current = proto.rpc_options.compression_algorithm
    if current and not current.startswith(TRANSFER_ENCODING_TAG):
        raise ValueError(f"ConfigProto sets both rpc_options.compression_algorithm={current!r} and "
                         f"transfer_encoding={encoding!r}; TensorWeave carries the latter in the former")
    proto.rpc_options.compression_algorithm = TRANSFER_ENCODING_TAG + encoding
    return proto.SerializeToString()


def config_from_wire(config):
    """Our ConfigProto from a TF ConfigProto message (or ours) that `config_to_wire` may have tagged.

    Raises ValueError for a tag naming an unknown encoding.
    """
    config = config_lib.as_config(config)
    algorithm = config.proto.rpc_options.compression_algorithm
    if algorithm.startswith(TRANSFER_ENCODING_TAG):
        config.transfer_encoding = compression.check_encoding(algorithm[len(TRANSFER_ENCODING_TAG):])
        config.proto.rpc_options.compression_algorithm = ""
        if config.proto.rpc_options.ByteSize() == 0:
            config.proto.ClearField("rpc_options")
    return config


# --- bytes crossing tasks, as TF StepStats -------------------------------------------------------
#
# A task records each tensor it received from another task in a step (`RemoteRendezvous`); with
# RunOptions(trace_level=FULL_TRACE) it reports them as StepStats: under its own device a node
# "_recv/<tensor name>" and under the producer's device a node "_send/<tensor name>", each with
# one output whose `tensor_description.allocation_description.requested_bytes` is the payload size
# on the wire (NamedTensor.content, headers not counted) and whose allocator_name and
# `timeline_label` name the encoding. Both span the fetch, from its request to the value's
# arrival (the time on the wire, as both ends see it), on the devices' "transfers" thread row
# (`step_stats.TRANSFER_THREAD`); the `_Send` and `_Recv` ops themselves are recorded by the
# executor with the other ops, and a timeline joins them by tensor name. The receiver records
# the send too: only it knows that the transfer finished. The master merges the tasks'
# StepStats by device into RunMetadata.step_stats.

def transfer_step_stats(transfers, step_stats):
    """Adds `transfers` ([(rendezvous key, payload bytes, encoding[, start ns, end ns])]) to a TF
    StepStats message."""
    devices = {d.device: d for d in step_stats.dev_stats}

    def dev(name):
        if name not in devices:
            devices[name] = step_stats.dev_stats.add(device=name)
        d = devices[name]
        if step_stats_lib.TRANSFER_THREAD not in d.thread_names:
            d.thread_names[step_stats_lib.TRANSFER_THREAD] = step_stats_lib.THREAD_NAMES[step_stats_lib.TRANSFER_THREAD]
        return d

    for key, nbytes, encoding, *times in transfers:
        src, _, dst, tensor = key.split(";")[:4]
        for device, kind in ((dst, "_recv"), (src, "_send")):
            node = dev(device).node_stats.add(node_name=f"{kind}/{tensor}",
                                              timeline_label=f"{kind} {tensor} {encoding} {nbytes} bytes",
                                              thread_id=step_stats_lib.TRANSFER_THREAD)
            if times:
                step_stats_lib.set_times(node, *times)
            alloc = node.output.add(slot=0).tensor_description.allocation_description
            alloc.requested_bytes = nbytes
            alloc.allocated_bytes = nbytes
            alloc.allocator_name = f"wire:{encoding}"
    return step_stats


def merge_step_stats(into, other):
    """Merges TF StepStats `other` into `into`, one dev_stats per device."""
    devices = {d.device: d for d in into.dev_stats}
    for d in other.dev_stats:
        if d.device in devices:
            devices[d.device].node_stats.extend(d.node_stats)
            for tid, name in d.thread_names.items():
                devices[d.device].thread_names[tid] = name
        else:
            devices[d.device] = into.dev_stats.add()
            devices[d.device].CopyFrom(d)
    return into


def transfer_bytes(step_stats, kind="_recv"):
    """{device: payload bytes} of the "_recv" (or "_send") transfers in a TF StepStats."""
    out = {}
    for d in step_stats.dev_stats:
        total = sum(o.tensor_description.allocation_description.requested_bytes
                    for n in d.node_stats if n.node_name.startswith(kind + "/") for o in n.output)
        if total:
            out[d.device] = total
    return out
