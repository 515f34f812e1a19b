"""Graphs as TensorFlow's own `GraphDef` protobufs: export, import and writing to disk.

Export turns each op into a `NodeDef` whose attrs carry the type attrs TensorFlow's op of the
same name declares ("T", "Tidx", ...), so TensorBoard and TF read our graphs. Import is TF1's
`tf.import_graph_def`: it checks the whole GraphDef first (parse, registered op types, attrs,
inputs, cycles) and only then adds ops, in dependency order, under an `import/` name scope.
Nothing read from a GraphDef is ever evaluated: tensors are dtype + shape + bytes.
"""

import heapq
import os
import sys
import tempfile

import numpy as np
from google.protobuf import message as _message
from google.protobuf import text_format
from tensorboard.compat.proto import attr_value_pb2, graph_pb2, node_def_pb2, tensor_pb2

from tensorweave.framework import device_spec, dtypes, errors, op_def as op_def_lib
from tensorweave.framework.graph import Graph, get_default_graph
from tensorweave.framework.operation import Operation, user_call_site
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape

GRAPH_DEF_VERSION = 27  # the `versions.producer` we write

# -- TF op-schema facts ------------------------------------------------------------------------

# Type attrs of TF ops whose inputs are not all of type T. Export adds a missing attr from the
# named tensor ("in0": input 0's dtype, "in-1": the last input's, "out0": output 0's, "n": the
# number of inputs, "n-1": all inputs but the last, "types": every input's dtype). Every other
# op with inputs gets T = dtype of input 0.
_TYPE_ATTRS = {
    "Cast": {},
    "Const": {},
    "NoOp": {},
    "IdentityN": {"T": "types"},
    "ShapeN": {"T": "in0", "N": "n"},
    "ConcatOffset": {"N": "n-1"},
    "Split": {"T": "in1"},
    "ScatterNd": {"T": "in1", "Tindices": "in0"},
    "AvgPoolGrad": {"T": "in1"},
    "Conv2DBackpropInput": {"T": "in1"},
    "StridedSliceGrad": {"T": "in-1", "Index": "in0"},
    "BroadcastTo": {"T": "in0", "Tidx": "in1"},
    "ReverseV2": {"T": "in0", "Tidx": "in1"},
    "MirrorPad": {"T": "in0", "Tpaddings": "in1"},
    "PadV2": {"T": "in0", "Tpaddings": "in1"},
    "Fill": {"T": "in1", "index_type": "in0"},
    "Range": {"Tidx": "in0"},
    "IsVariableInitialized": {"dtype": "in0"},
    "Reshape": {"T": "in0", "Tshape": "in1"},
    "ExpandDims": {"T": "in0", "Tdim": "in1"},
    "Tile": {"T": "in0", "Tmultiples": "in1"},
    "Transpose": {"T": "in0", "Tperm": "in1"},
    "Pad": {"T": "in0", "Tpaddings": "in1"},
    "Slice": {"T": "in0", "Index": "in1"},
    "StridedSlice": {"T": "in0", "Index": "in1"},
    "Gather": {"Tparams": "in0", "Tindices": "in1"},
    "GatherV2": {"Tparams": "in0", "Tindices": "in1", "Taxis": "in2"},
    "GatherNd": {"Tparams": "in0", "Tindices": "in1"},
    "ConcatV2": {"T": "in0", "Tidx": "in-1", "N": "n-1"},
    "Pack": {"T": "in0", "N": "n"},
    "AddN": {"T": "in0", "N": "n"},
    "Select": {"T": "in1"},
    "SelectV2": {"T": "in1"},
    "OneHot": {"T": "out0", "TI": "in0"},
    "InTopKV2": {"T": "in1"},
    "Any": {"Tidx": "in1"},
    "All": {"Tidx": "in1"},
    "UnsortedSegmentSum": {"T": "in0", "Tindices": "in1", "Tnumsegments": "in2"},
    "SparseSoftmaxCrossEntropyWithLogits": {"T": "in0", "Tlabels": "in1"},
    **{r: {"T": "in0", "Tidx": "in1"} for r in ("Sum", "Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin",
                                                 "Cumsum", "Cumprod")},
}

# Attrs TF may leave out of a NodeDef (written with strip_default_attrs, or by older TF) with the
# value TF's op schema gives them; import fills them in, `strip_default_attrs` removes them.
_ATTR_DEFAULTS = {
    "MatMul": {"transpose_a": False, "transpose_b": False},
    "VariableV2": {"container": "", "shared_name": ""},
    "Assign": {"validate_shape": True, "use_locking": True},
    "AssignAdd": {"validate_shape": True, "use_locking": False},
    "AssignSub": {"validate_shape": True, "use_locking": False},
    "ApplyGradientDescent": {"use_locking": False},
    "Placeholder": {"shape": TensorShape(None)},
    "Shape": {"out_type": dtypes.int32},
    "Size": {"out_type": dtypes.int32},
    **{r: {"keep_dims": False} for r in ("Sum", "Mean", "Max", "Min", "Prod", "Any", "All")},
}

# The AttrValue fields TF's schemas allow for these attr names; import checks them.
_ATTR_KINDS = {
    **dict.fromkeys(("dtype", "SrcT", "DstT", "out_type", "Tidx", "Tshape", "index_type", "Tparams",
                     "Tindices", "Taxis", "Tlabels", "Tperm", "Tmultiples", "Tpaddings", "Tdim", "TI",
                     "Index", "output_type"), ("type",)),
    "T": ("type", "list"),  # list(type) on ops such as IdentityN
    "shape": ("shape",),
    "value": ("tensor",),
    **dict.fromkeys(("transpose_a", "transpose_b", "keep_dims", "validate_shape", "use_locking",
                     "Truncate"), ("b",)),
    **dict.fromkeys(("container", "shared_name"), ("s",)),
    "N": ("i",),
    "_class": ("list",),
}

# Attrs our ops carry that TF's op of the same name does not declare (TF rejects a NodeDef
# naming them): left out on export when they hold this value, which import fills back in.
_NOT_IN_TF = {"AssignAdd": {"validate_shape": True}, "AssignSub": {"validate_shape": True}}

# String attrs kept as bytes on import (TF's colocation groups); other strings become `str`.
_BYTES_ATTRS = frozenset(("_class",))

_MAX_EXPANDED_ELEMENTS = 1 << 31  # a Const may repeat its last value; a GraphDef cannot ask for more


# -- export ------------------------------------------------------------------------------------

def node_def_of(op):
    """The `NodeDef` of `op`: name, type, inputs ("x", "x:1", "^ctrl"), device and attrs."""
    node = node_def_pb2.NodeDef(name=op.name, op=op.type, device=op.device)
    node.input.extend(_input_name(t) for t in op.inputs)
    node.input.extend(f"^{c.name}" for c in op.control_inputs)
    attrs = dict(op._attrs)
    for name, value in _tf_type_attrs(op, attrs).items():
        attrs.setdefault(name, value)
    for name, value in _NOT_IN_TF.get(op.type, {}).items():
        if name in attrs and attrs[name] == value:
            del attrs[name]
    for name in sorted(attrs):
        try:
            node.attr[name].CopyFrom(attr_value_of(attrs[name]))
        except (TypeError, ValueError, OverflowError) as e:
            raise TypeError(f"Cannot export attr {name!r} of op {op.name!r} ({op.type}): {e}") from None
    return node


def _input_name(t):
    return t.op.name if t.value_index == 0 else f"{t.op.name}:{t.value_index}"


def _tf_type_attrs(op, attrs):
    spec = _TYPE_ATTRS.get(op.type)
    if spec is None:
        return {"T": op.inputs[0].dtype} if op.inputs and "T" not in attrs else {}
    out = {}
    n = len(op.inputs)
    for name, source in spec.items():
        if name in attrs:
            continue
        if source == "n":
            out[name] = n
        elif source == "n-1":
            out[name] = n - 1
        elif source == "types":
            out[name] = [t.dtype for t in op.inputs]
        else:
            tensors = op.outputs if source.startswith("out") else op.inputs
            index = int(source[3:] if source.startswith("out") else source[2:])
            if -len(tensors) <= index < len(tensors):
                out[name] = tensors[index].dtype
    return out


def graph_to_graph_def(graph, add_shapes=False):
    """`graph` as a `GraphDef` (nodes in creation order); `add_shapes` adds `_output_shapes`."""
    graph_def = graph_pb2.GraphDef()
    graph_def.versions.producer = GRAPH_DEF_VERSION
    for op in graph.get_operations():
        node = graph_def.node.add()
        node.CopyFrom(node_def_of(op))
        if add_shapes and op.outputs:
            node.attr["_output_shapes"].CopyFrom(attr_value_of([t.shape for t in op.outputs]))
    return graph_def


def attr_value_of(value):
    """A Python attr value (DType, TensorShape, ndarray, bool/int/float/str/bytes or a list of
    one of those) as an `AttrValue`."""
    out = attr_value_pb2.AttrValue()
    if value is None:
        return out
    if isinstance(value, (list, tuple)):
        out.list.SetInParent()
        if not value:
            return out
        kinds = {_scalar_kind(v) for v in value}
        if len(kinds) != 1:
            raise TypeError(f"a list attr must hold values of one kind, got {sorted(kinds)}")
        kind = kinds.pop()
        field = getattr(out.list, kind)
        for v in value:
            if kind in ("shape", "tensor"):
                field.add().CopyFrom(_scalar_field(kind, v))
            else:
                field.append(_scalar_field(kind, v))
        return out
    kind = _scalar_kind(value)
    if kind in ("shape", "tensor"):
        getattr(out, kind).CopyFrom(_scalar_field(kind, value))
    else:
        setattr(out, kind, _scalar_field(kind, value))
    return out


def _scalar_kind(value):
    if isinstance(value, dtypes.DType):
        return "type"
    if isinstance(value, TensorShape):
        return "shape"
    if isinstance(value, np.ndarray):
        return "tensor"
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    if isinstance(value, (float, np.floating)):
        return "f"
    if isinstance(value, (str, bytes)):
        return "s"
    raise TypeError(f"unsupported attr value of type {type(value).__name__}")


def _scalar_field(kind, value):
    if kind == "type":
        return value.as_datatype_enum
    if kind == "shape":
        return value.as_proto()
    if kind == "tensor":
        return make_tensor_proto(value)
    if kind == "b":
        return bool(value)
    if kind == "i":
        return int(value)
    if kind == "f":
        return float(value)
    return value.encode() if isinstance(value, str) else bytes(value)


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


# -- import: attr values -----------------------------------------------------------------------

class _Malformed(Exception):
    """A problem with one node; import_graph_def names the node."""


def _dtype_of_enum(enum):
    if enum > 100:  # TF's reference types (DT_FLOAT_REF, ...) read as their base type
        enum -= 100
    try:
        return dtypes.as_dtype(int(enum))
    except TypeError:
        raise _Malformed(f"unsupported DataType enum {enum}") from None


def _shape_of_proto(proto):
    if proto.unknown_rank:
        return TensorShape(None)
    for d in proto.dim:
        if d.size < -1:
            raise _Malformed(f"invalid dimension size {d.size}")
    return TensorShape(proto)


_TYPED_FIELDS = {
    dtypes.float32: "float_val", dtypes.float64: "double_val", dtypes.int32: "int_val",
    dtypes.int16: "int_val", dtypes.int8: "int_val", dtypes.uint8: "int_val", dtypes.uint16: "int_val",
    dtypes.int64: "int64_val", dtypes.uint32: "uint32_val", dtypes.uint64: "uint64_val",
    dtypes.bool: "bool_val", dtypes.float16: "half_val", dtypes.bfloat16: "half_val",
    dtypes.complex64: "scomplex_val", dtypes.complex128: "dcomplex_val",
}


def make_ndarray(proto):
    """`tf.make_ndarray`: the read-only NumPy array a `TensorProto` holds.

    Raises ValueError on a malformed proto (unknown dtype, partial shape, wrong byte count)."""
    try:
        return _ndarray_of(proto)
    except _Malformed as e:
        raise ValueError(f"Malformed TensorProto: {e}") from None


def _ndarray_of(proto):
    dtype = _dtype_of_enum(proto.dtype)
    shape = _shape_of_proto(proto.tensor_shape)
    if not shape.is_fully_defined():
        raise _Malformed(f"a tensor value needs a fully defined shape, got {shape}")
    dims = tuple(shape.as_list())
    n = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if n > _MAX_EXPANDED_ELEMENTS:
        raise _Malformed(f"tensor of shape {list(dims)} is too large")
    if dtype is dtypes.string:
        values = list(proto.string_val)
        array = np.empty(n, dtype=object)
        _fill_repeating(array, values, n)
    elif proto.tensor_content:
        np_dtype = np.dtype(dtype.as_numpy_dtype)
        content = proto.tensor_content
        if len(content) != n * np_dtype.itemsize:
            raise _Malformed(f"tensor_content holds {len(content)} bytes, but a {dtype.name} tensor of "
                             f"shape {list(dims)} needs {n * np_dtype.itemsize}")
        array = np.frombuffer(content, dtype=np_dtype).copy()
        if sys.byteorder != "little":
            array = array.byteswap()
    else:
        field = _TYPED_FIELDS.get(dtype)
        if field is None:
            raise _Malformed(f"no value field for dtype {dtype.name}")
        raw = list(getattr(proto, field))
        if field == "half_val":
            values = np.array(raw, dtype=np.uint16).view(dtype.as_numpy_dtype)
        elif dtype.is_complex:
            if len(raw) % 2:
                raise _Malformed(f"{field} holds an odd number of parts")
            parts = np.array(raw, dtype=dtype.real_dtype.as_numpy_dtype)
            values = (parts[0::2] + 1j * parts[1::2]).astype(dtype.as_numpy_dtype)
        else:
            values = np.array(raw).astype(dtype.as_numpy_dtype) if raw else np.array([], dtype.as_numpy_dtype)
        array = np.zeros(n, dtype=dtype.as_numpy_dtype)
        _fill_repeating(array, values, n)
    array = array.reshape(dims)
    array.flags.writeable = False
    return array


def _fill_repeating(array, values, n):
    """TF's rule: fewer values than elements repeat the last one; none means zeros."""
    if len(values) > n:
        raise _Malformed(f"{len(values)} values for a tensor of {n} elements")
    if len(values):
        array[:len(values)] = values
        array[len(values):] = values[-1]
    elif array.dtype == object:
        array[:] = b""


def python_attr_value(name, av):
    """The Python value of AttrValue `av` (the inverse of `attr_value_of`)."""
    kind = av.WhichOneof("value")
    if kind is None:
        return None
    if kind == "list":
        fields = [f for f in ("s", "i", "f", "b", "type", "shape", "tensor", "func") if len(getattr(av.list, f))]
        if len(fields) > 1:
            raise _Malformed(f"attr {name!r} is a list mixing {fields}")
        if not fields:
            return []
        return [_python_scalar(name, fields[0], v) for v in getattr(av.list, fields[0])]
    return _python_scalar(name, kind, getattr(av, kind))


def _python_scalar(name, kind, v):
    if kind == "s":
        if name in _BYTES_ATTRS:
            return bytes(v)
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return bytes(v)
    if kind == "i":
        return int(v)
    if kind == "f":
        return float(v)
    if kind == "b":
        return bool(v)
    if kind == "type":
        return _dtype_of_enum(v)
    if kind == "shape":
        return _shape_of_proto(v)
    if kind == "tensor":
        return _ndarray_of(v)
    raise _Malformed(f"attr {name!r} holds a {kind}, which TensorWeave does not support")


def _node_attrs(node, op_type):
    attrs = {}
    for name, av in node.attr.items():
        if name == "_output_shapes":  # derived data; our shape rules recompute it
            continue
        kind = av.WhichOneof("value")
        expected = _ATTR_KINDS.get(name)
        if expected is not None and kind not in expected:
            raise _Malformed(f"attr {name!r} must be of kind {' or '.join(map(repr, expected))}, got "
                             f"{kind or 'nothing'!r}")
        try:
            attrs[name] = python_attr_value(name, av)
        except _Malformed as e:
            raise _Malformed(f"attr {name!r}: {e}") from None
    for name, value in _ATTR_DEFAULTS.get(op_type, {}).items():
        attrs.setdefault(name, value)
    if op_type == "Const":
        if "value" not in attrs or "dtype" not in attrs:
            raise _Malformed("a Const needs attrs 'value' and 'dtype'")
        if dtypes.as_dtype(attrs["value"].dtype) is not attrs["dtype"]:
            raise _Malformed(f"Const value has dtype {dtypes.as_dtype(attrs['value'].dtype).name} but attr "
                             f"dtype is {attrs['dtype'].name}")
    return attrs


def strip_default_attrs(graph_def):
    """Removes attrs equal to TF's schema defaults (TF's `strip_default_attrs`), in place."""
    for node in graph_def.node:
        for name, value in _ATTR_DEFAULTS.get(node.op, {}).items():
            if name in node.attr and node.attr[name] == attr_value_of(value):
                del node.attr[name]
    return graph_def


# -- import: the graph -------------------------------------------------------------------------

def _parse_input(spec):
    """("node", output index, is_control) for a NodeDef input string."""
    if spec.startswith("^"):
        return spec[1:], None, True
    name, sep, index = spec.rpartition(":")
    if sep and index.isdigit():
        return name, int(index), False
    return spec, 0, False


def _tensor_key(name):
    name, index, control = _parse_input(name)
    return f"^{name}" if control else f"{name}:{index}"


def _error(node_name, op_type, message):
    where = f"node {node_name!r}" + (f" (op type {op_type})" if op_type else "")
    return errors.GraphConstructionError(None, None, f"import_graph_def: {where}: {message}")


class _Plan:
    """A checked GraphDef: nodes by name, their attrs, inputs and a dependency order."""

    def __init__(self, graph_def, input_map):
        self.nodes = {}
        self.attrs = {}
        self.inputs = {}
        for node in graph_def.node:
            if not node.name:
                raise _error("", node.op, "a node has an empty name")
            if node.name in self.nodes:
                raise _error(node.name, node.op, "the GraphDef has two nodes of this name")
            self.nodes[node.name] = node
        for node in graph_def.node:
            try:
                op_def_lib.get_op_def(node.op)
            except LookupError:
                raise _error(node.name, node.op, f"op type {node.op!r} is not registered in TensorWeave "
                             "(import the module defining it first, or the op is not supported)") from None
            try:
                self.attrs[node.name] = _node_attrs(node, node.op)
            except Exception as e:  # noqa: BLE001 - any bad attr is this node's error
                raise _error(node.name, node.op, str(e)) from None
            if node.device:
                try:
                    device_spec.DeviceSpec.from_string(node.device)
                except ValueError as e:
                    raise _error(node.name, node.op, f"bad device: {e}") from None
            parsed = [_parse_input(spec) for spec in node.input]
            seen_control = False
            for (src, index, control), spec in zip(parsed, node.input, strict=True):
                if control:
                    seen_control = True
                elif seen_control:
                    raise _error(node.name, node.op, f"data input {spec!r} follows a control input")
                key = f"^{src}" if control else f"{src}:{index}"
                if src not in self.nodes and key not in input_map:
                    raise _error(node.name, node.op, f"input {spec!r} names node {src!r}, which is not in "
                                 "the GraphDef")
            self.inputs[node.name] = parsed
        for key in input_map:
            src = key[1:] if key.startswith("^") else key.rpartition(":")[0]
            if src not in self.nodes:
                raise errors.GraphConstructionError(
                    None, None, f"Attempted to map inputs that were not found in graph_def: [{key}]")
        self.order = self._topological_order(graph_def)

    def _topological_order(self, graph_def):
        position = {node.name: i for i, node in enumerate(graph_def.node)}
        indegree = {name: 0 for name in self.nodes}
        consumers = {name: [] for name in self.nodes}
        for name, parsed in self.inputs.items():
            for src in {src for src, _, _ in parsed if src in self.nodes}:
                indegree[name] += 1
                consumers[src].append(name)
        ready = [(position[n], n) for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, name = heapq.heappop(ready)
            order.append(name)
            for c in consumers[name]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    heapq.heappush(ready, (position[c], c))
        if len(order) != len(self.nodes):
            stuck = sorted(n for n, d in indegree.items() if d > 0)
            raise _error(stuck[0], self.nodes[stuck[0]].op,
                         f"the GraphDef has a cycle through nodes {stuck[:5]}")
        return order


def _as_graph_def(graph_def):
    if isinstance(graph_def, graph_pb2.GraphDef):
        return graph_def
    if isinstance(graph_def, (bytes, bytearray, memoryview)):
        parsed = graph_pb2.GraphDef()
        try:
            parsed.ParseFromString(bytes(graph_def))
        except (_message.DecodeError, ValueError, RuntimeError) as e:
            raise errors.GraphConstructionError(None, None,
                                                f"import_graph_def: cannot parse GraphDef bytes: {e}") from None
        return parsed
    raise TypeError(f"graph_def must be a GraphDef proto, got {type(graph_def).__name__}")


def _mapped_value(key, value, graph):
    if key.startswith("^"):
        op = value.op if isinstance(value, Tensor) else value
        if not isinstance(op, Operation) or op.graph is not graph:
            raise TypeError(f"input_map[{key!r}] must be an Operation of the default graph")
        return op
    if not isinstance(value, Tensor):
        from tensorweave.framework.op_builder import convert_to_tensor
        value = convert_to_tensor(value)
    if value.graph is not graph:
        raise ValueError(f"input_map[{key!r}] is a tensor of another graph: {value.name}")
    return value


def import_graph_def(graph_def, input_map=None, return_elements=None, name=None, op_dict=None,
                     producer_op_list=None):
    """`tf.import_graph_def`: adds the ops of `graph_def` to the default graph.

    Ops are named `<name>/<node name>` (`name` defaults to "import"; "" adds no prefix).
    `input_map` maps tensor names of `graph_def` ("x:0" or "x"; "^x" for control inputs) to
    tensors of the default graph that replace them. Returns the ops and tensors named in
    `return_elements` ("op" or "op:0", names as in `graph_def`), or None.
    Raises ValueError naming the node for malformed GraphDefs and unregistered op types.
    """
    import tensorweave.ops  # noqa: F401 - registers every op type a GraphDef may name
    graph_def = _as_graph_def(graph_def)
    graph = get_default_graph()
    input_map = {_tensor_key(k): _mapped_value(_tensor_key(k), v, graph) for k, v in (input_map or {}).items()}
    plan = _Plan(graph_def, input_map)
    wanted = []
    for element in return_elements or ():
        src, _, control = _parse_input(element)
        if control or src not in plan.nodes:
            raise ValueError(f"Requested return_element {element!r} not found in graph_def.")
        wanted.append(element)

    created = {}
    site = user_call_site()
    with graph.as_default(), graph.name_scope("import" if name is None else name):
        for node_name in plan.order:
            node = plan.nodes[node_name]
            inputs, controls = [], []
            for src, index, control in plan.inputs[node_name]:
                if control:
                    controls.append(input_map.get(f"^{src}") or created[src])
                    continue
                mapped = input_map.get(f"{src}:{index}")
                producer = created.get(src)
                if producer is not None and index >= len(producer.outputs):
                    raise _error(node_name, node.op, f"input {src}:{index} does not exist: {src} has "
                                 f"{len(producer.outputs)} outputs")
                if mapped is not None:
                    if producer is not None and producer.outputs[index].dtype is not mapped.dtype:
                        raise _error(node_name, node.op, f"input_map replaces {src}:{index} "
                                     f"({producer.outputs[index].dtype.name}) with {mapped.name} "
                                     f"({mapped.dtype.name})")
                    inputs.append(mapped)
                else:
                    inputs.append(producer.outputs[index])
            created[node_name] = _create(graph, node, plan.attrs[node_name], inputs, controls, site)
        _remap_colocation(graph, plan, created)

    if return_elements is None:
        return None
    out = []
    for element in wanted:
        src, index, _ = _parse_input(element)
        op = created[src]
        if ":" not in element:
            out.append(op)
        elif index < len(op.outputs):
            out.append(op.outputs[index])
        else:
            raise ValueError(f"Requested return_element {element!r} not found in graph_def.")
    return out


def _create(graph, node, attrs, inputs, controls, site):
    where = f"{site} (import_graph_def node {node.name!r})"
    try:
        if controls:
            with graph.control_dependencies(controls):
                return graph.create_op(node.op, inputs, attrs, name=node.name, device=node.device or None,
                                       site=where)
        return graph.create_op(node.op, inputs, attrs, name=node.name, device=node.device or None, site=where)
    except errors.OpError:
        raise
    except RuntimeError:
        raise
    except Exception as e:  # a shape rule rejecting the node's attrs or inputs
        raise _error(node.name, node.op, f"{type(e).__name__}: {e}") from None


def _remap_colocation(graph, plan, created):
    """`loc:@x` groups name nodes of the GraphDef; point them at the ops created for them."""
    for node_name, op in created.items():
        groups = op._attrs.get("_class")
        if not groups:
            continue
        remapped = []
        for group in groups:
            group = group.encode() if isinstance(group, str) else group
            if group.startswith(b"loc:@"):
                target = group[5:].decode("utf-8", "replace")
                if target in created:
                    group = f"loc:@{created[target].name}".encode()
                elif not _has_op(graph, target):
                    raise _error(node_name, op.type, f"colocated with {target!r}, which is neither in the "
                                 "GraphDef nor in the graph")
            remapped.append(group)
        if remapped != list(groups):
            op._attrs["_class"] = remapped


def _has_op(graph, name):
    try:
        graph.get_operation_by_name(name)
    except KeyError:
        return False
    return True


# -- files -------------------------------------------------------------------------------------

def atomic_write(path, data):
    """Writes `data` (bytes) to `path` so readers see the old file or the whole new one: a temp
    file in the same directory, flushed and fsynced, then renamed over `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable; not every platform lets a directory be opened
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_graph(graph_or_graph_def, logdir, name, as_text=True):
    """`tf.train.write_graph`: writes a graph (or GraphDef) to `logdir/name`; returns the path."""
    graph_def = graph_or_graph_def.as_graph_def() if isinstance(graph_or_graph_def, Graph) \
        else graph_or_graph_def
    if not isinstance(graph_def, graph_pb2.GraphDef):
        raise TypeError(f"write_graph needs a Graph or GraphDef, got {type(graph_or_graph_def).__name__}")
    logdir = os.fspath(logdir)
    os.makedirs(logdir, exist_ok=True)
    path = os.path.join(logdir, name)
    data = text_format.MessageToString(graph_def).encode() if as_text else graph_def.SerializeToString()
    atomic_write(path, data)
    return path
