"""Export of a frozen graph to ONNX: `export(source, inputs, outputs, path)`.

The exporter walks the same `GraphDef` the runtime runs — frozen (variables become
initializers), imported with the op registry so every tensor has its dtype and static shape — and
maps each op through `EMITTERS`, the one table from TensorFlow op type to ONNX nodes. An op type
missing from the table fails the export with the op's name and type: never a silently wrong
model. Tensor names stay TF's ("x:0"), so the ONNX model is fed and fetched by the same names.

Convolution and pooling run in ONNX's NCHW layout: an NHWC op becomes Transpose → Conv/Pool →
Transpose, and a constant filter is transposed once, at export.
"""

import os

import numpy as np

from tensorweave.framework import dtypes
from tensorweave.inference import frozen_graph
from tensorweave.saved_model import layout

OPSET = 17

EMITTERS = {}  # TF op type -> emitter(ctx, op); each writes the ONNX nodes computing op's outputs


class UnsupportedOpError(ValueError):
    """The graph holds an op the ONNX exporter cannot translate (named in the message)."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'tensorweave[onnx]'") from None
    return onnx


def emits(*op_types):
    """Registers an emitter for `op_types`; registering a type twice raises."""
    def register(fn):
        for op_type in op_types:
            if op_type in EMITTERS:
                raise KeyError(f"ONNX emitter for {op_type!r} registered twice: {EMITTERS[op_type].__name__} and "
                               f"{fn.__name__}")
            EMITTERS[op_type] = fn
        return fn
    return register


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


class _Context:
    """The ONNX graph under construction: nodes, initializers, and what is known constant."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes, self.initializers, self.inputs = [], {}, []
        self._count = 0

    def name(self, tensor):
        return tensor.name

    def fresh(self, hint):
        self._count += 1
        return f"{hint}/_onnx_{self._count}"

    def const(self, tensor):
        """The value of `tensor` if a Const computes it (after Identity chains), else None."""
        op = tensor.op
        while op.type in ("Identity", "StopGradient") and op.inputs:
            op = op.inputs[0].op
        return np.asarray(op.get_attr("value")) if op.type == "Const" else None

    def required_const(self, op, index, what):
        value = self.const(op.inputs[index])
        if value is None:
            raise UnsupportedOpError(f"Op {op.name!r} ({op.type}): ONNX export needs its {what} (input {index}) to "
                                     "be a constant")
        return value

    def add_const(self, array, hint):
        name = self.fresh(hint)
        self.initializers[name] = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def node(self, op_type, inputs, outputs=None, hint="node", **attrs):
        outputs = outputs or [self.fresh(hint)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), list(outputs), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


def _elem_type(onnx, dtype):
    if dtype is dtypes.string or dtype is dtypes.bfloat16:
        raise UnsupportedOpError(f"dtype {dtype.name} has no ONNX export")
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype.as_numpy_dtype))


def _value_info(onnx, tensor, name=None):
    shape = None if tensor.shape.ndims is None else \
        [d if d is not None else f"{tensor.op.name}_dim{i}" for i, d in enumerate(tensor.shape.as_list())]
    return onnx.helper.make_tensor_value_info(name or tensor.name, _elem_type(onnx, tensor.dtype), shape)


# -- the table ---------------------------------------------------------------------------------------

@emits("Const")
def _const(ctx, op):
    ctx.initializers[ctx.name(op.outputs[0])] = ctx.onnx.numpy_helper.from_array(
        np.ascontiguousarray(op.get_attr("value")), ctx.name(op.outputs[0]))


@emits("Placeholder")
def _placeholder(ctx, op):
    # Graph inputs are declared before the walk, which stops at them: this one was not named.
    raise UnsupportedOpError(f"Placeholder {op.name!r} is needed by the outputs but is not among the inputs")


@emits("PlaceholderWithDefault", "Identity", "StopGradient")
def _identity(ctx, op):
    ctx.node("Identity", [ctx.name(op.inputs[0])], [ctx.name(op.outputs[0])])


_ELEMENTWISE = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
                "Maximum": "Max", "Minimum": "Min", "Pow": "Pow", "Equal": "Equal", "Greater": "Greater",
                "Less": "Less", "GreaterEqual": "GreaterOrEqual", "LessEqual": "LessOrEqual",
                "LogicalAnd": "And", "LogicalOr": "Or", "LogicalNot": "Not",
                "Relu": "Relu", "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Exp": "Exp", "Log": "Log", "Neg": "Neg",
                "Sqrt": "Sqrt", "Abs": "Abs", "Reciprocal": "Reciprocal", "Floor": "Floor", "Ceil": "Ceil",
                "Elu": "Elu", "Selu": "Selu", "Softplus": "Softplus", "Softsign": "Softsign", "Sign": "Sign"}


@emits(*_ELEMENTWISE)
def _elementwise(ctx, op):
    # ONNX broadcasts multidirectionally, as NumPy and TF do.
    ctx.node(_ELEMENTWISE[op.type], [ctx.name(t) for t in op.inputs], [ctx.name(op.outputs[0])])


@emits("Square")
def _square(ctx, op):
    x = ctx.name(op.inputs[0])
    ctx.node("Mul", [x, x], [ctx.name(op.outputs[0])])


@emits("Rsqrt")
def _rsqrt(ctx, op):
    ctx.node("Reciprocal", [ctx.node("Sqrt", [ctx.name(op.inputs[0])], hint=op.name)], [ctx.name(op.outputs[0])])


@emits("Relu6")
def _relu6(ctx, op):
    np_dtype = op.inputs[0].dtype.as_numpy_dtype
    low, high = ctx.add_const(np.array(0, np_dtype), op.name), ctx.add_const(np.array(6, np_dtype), op.name)
    ctx.node("Clip", [ctx.name(op.inputs[0]), low, high], [ctx.name(op.outputs[0])])


@emits("Softmax", "LogSoftmax")
def _softmax(ctx, op):
    # TF normalizes over the last axis; ONNX >= 13 does the same per axis.
    ctx.node(op.type, [ctx.name(op.inputs[0])], [ctx.name(op.outputs[0])], axis=-1)


@emits("MatMul")
def _matmul(ctx, op):
    a, b = (ctx.name(t) for t in op.inputs)
    if op.get_attr("transpose_a"):
        a = ctx.node("Transpose", [a], hint=op.name, perm=[1, 0])
    if op.get_attr("transpose_b"):
        b = ctx.node("Transpose", [b], hint=op.name, perm=[1, 0])
    ctx.node("MatMul", [a, b], [ctx.name(op.outputs[0])])


@emits("BiasAdd")
def _bias_add(ctx, op):
    bias = ctx.name(op.inputs[1])
    if _text(op.get_attr("data_format")) == "NCHW":  # the bias runs along axis 1
        rank = op.inputs[0].shape.ndims
        if rank is None:
            raise UnsupportedOpError(f"Op {op.name!r} (BiasAdd, NCHW): the input's rank must be known")
        bias = ctx.node("Reshape", [bias, ctx.add_const(np.array([-1] + [1] * (rank - 2), np.int64), op.name)],
                        hint=op.name)
    ctx.node("Add", [ctx.name(op.inputs[0]), bias], [ctx.name(op.outputs[0])])


@emits("Cast")
def _cast(ctx, op):
    ctx.node("Cast", [ctx.name(op.inputs[0])], [ctx.name(op.outputs[0])],
             to=_elem_type(ctx.onnx, op.get_attr("DstT")))


@emits("Reshape")
def _reshape(ctx, op):
    shape = ctx.const(op.inputs[1])
    if shape is not None:
        shape_name = ctx.add_const(shape.astype(np.int64).reshape(-1), op.name)
        zero = bool((shape == 0).any())
    else:
        shape_name = ctx.node("Cast", [ctx.name(op.inputs[1])], hint=op.name, to=ctx.onnx.TensorProto.INT64)
        zero = True
    # TF reads 0 as a zero-sized dimension; ONNX copies the input's unless allowzero.
    ctx.node("Reshape", [ctx.name(op.inputs[0]), shape_name], [ctx.name(op.outputs[0])], allowzero=int(zero))


@emits("Transpose")
def _transpose(ctx, op):
    perm = ctx.required_const(op, 1, "permutation")
    ctx.node("Transpose", [ctx.name(op.inputs[0])], [ctx.name(op.outputs[0])], perm=[int(p) for p in perm])


@emits("Squeeze")
def _squeeze(ctx, op):
    axes = [int(a) for a in op.get_attr("squeeze_dims")]
    inputs = [ctx.name(op.inputs[0])] + ([ctx.add_const(np.array(axes, np.int64), op.name)] if axes else [])
    ctx.node("Squeeze", inputs, [ctx.name(op.outputs[0])])


@emits("ExpandDims")
def _expand_dims(ctx, op):
    axis = ctx.required_const(op, 1, "axis").astype(np.int64).reshape(-1)
    ctx.node("Unsqueeze", [ctx.name(op.inputs[0]), ctx.add_const(axis, op.name)], [ctx.name(op.outputs[0])])


@emits("ConcatV2")
def _concat(ctx, op):
    axis = int(ctx.required_const(op, len(op.inputs) - 1, "axis"))
    ctx.node("Concat", [ctx.name(t) for t in op.inputs[:-1]], [ctx.name(op.outputs[0])], axis=axis)


@emits("ArgMax", "ArgMin")
def _argmax(ctx, op):
    axis = int(ctx.required_const(op, 1, "axis"))
    out = ctx.name(op.outputs[0])
    wide = out if op.get_attr("output_type") is dtypes.int64 else ctx.fresh(op.name)
    ctx.node(op.type, [ctx.name(op.inputs[0])], [wide], axis=axis, keepdims=0)  # ONNX gives int64
    if wide != out:
        ctx.node("Cast", [wide], [out], to=_elem_type(ctx.onnx, op.get_attr("output_type")))


_REDUCTIONS = {"Sum": "ReduceSum", "Mean": "ReduceMean", "Max": "ReduceMax", "Min": "ReduceMin",
               "Prod": "ReduceProd"}


@emits(*_REDUCTIONS)
def _reduce(ctx, op):
    axes = [int(a) for a in ctx.required_const(op, 1, "reduction axes").reshape(-1)]
    x, out = ctx.name(op.inputs[0]), ctx.name(op.outputs[0])
    if not axes:  # TF reduces over no axis; ONNX would reduce over all
        ctx.node("Identity", [x], [out])
        return
    keep = int(bool(op.get_attr("keep_dims")))
    if op.type == "Sum":  # opset 13 takes ReduceSum's axes as an input, the others' as an attribute
        ctx.node("ReduceSum", [x, ctx.add_const(np.array(axes, np.int64), op.name)], [out], keepdims=keep)
    else:
        ctx.node(_REDUCTIONS[op.type], [x], [out], axes=axes, keepdims=keep)


# Convolution and pooling: TF's NHWC in, ONNX's NCHW inside.

def _window(op, attr):
    values = [int(v) for v in op.get_attr(attr)]
    return values[1:3] if _text(op.get_attr("data_format")) != "NCHW" else values[2:4]


def _pads(op, in_hw, kernel_hw, strides, dilations):
    """ONNX pads [top, left, bottom, right] for TF's padding; SAME puts the odd pixel last."""
    padding = _text(op.get_attr("padding"))
    if padding == "VALID":
        return [0, 0, 0, 0]
    if padding != "SAME":
        raise UnsupportedOpError(f"Op {op.name!r} ({op.type}): padding {padding!r} has no ONNX export")
    if any(d is None for d in in_hw):
        raise UnsupportedOpError(f"Op {op.name!r} ({op.type}): SAME padding needs a known input height and width")
    before, after = [], []
    for size, k, s, d in zip(in_hw, kernel_hw, strides, dilations, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before + after


def _nchw(ctx, op, compute):
    """Runs `compute(x_nchw, in_hw) -> y_nchw` between layout transposes for an NHWC op."""
    x = op.inputs[0]
    nhwc = _text(op.get_attr("data_format")) != "NCHW"
    dims = x.shape.as_list() if x.shape.ndims == 4 else [None] * 4
    in_hw = dims[1:3] if nhwc else dims[2:4]
    x_name = ctx.node("Transpose", [ctx.name(x)], hint=op.name, perm=[0, 3, 1, 2]) if nhwc else ctx.name(x)
    y = compute(x_name, in_hw)
    ctx.node("Transpose" if nhwc else "Identity", [y], [ctx.name(op.outputs[0])],
             **({"perm": [0, 2, 3, 1]} if nhwc else {}))


@emits("Conv2D")
def _conv2d(ctx, op):
    strides, dilations = _window(op, "strides"), _window(op, "dilations")
    filt = ctx.const(op.inputs[1])
    if filt is not None:  # HWIO -> OIHW, once
        w = ctx.add_const(filt.transpose(3, 2, 0, 1), op.name)
    else:
        w = ctx.node("Transpose", [ctx.name(op.inputs[1])], hint=op.name, perm=[3, 2, 0, 1])
    k_hw = op.inputs[1].shape.as_list()[:2] if op.inputs[1].shape.ndims == 4 else [None, None]
    if None in k_hw:
        raise UnsupportedOpError(f"Op {op.name!r} (Conv2D): the filter's height and width must be known")

    def compute(x, in_hw):
        return ctx.node("Conv", [x, w], hint=op.name, kernel_shape=k_hw, strides=strides, dilations=dilations,
                        pads=_pads(op, in_hw, k_hw, strides, dilations))
    _nchw(ctx, op, compute)


@emits("MaxPool", "AvgPool")
def _pool(ctx, op):
    k_hw, strides = _window(op, "ksize"), _window(op, "strides")
    onnx_type = "MaxPool" if op.type == "MaxPool" else "AveragePool"

    def compute(x, in_hw):
        # AveragePool's default count_include_pad=0 matches TF: padding is not averaged in.
        return ctx.node(onnx_type, [x], hint=op.name, kernel_shape=k_hw, strides=strides,
                        pads=_pads(op, in_hw, k_hw, strides, [1, 1]))
    _nchw(ctx, op, compute)


# -- export ---------------------------------------------------------------------------------------

def _frozen_source(source, outputs):
    """A frozen GraphDef from a GraphDef, a GraphDef file, a `simple_save` directory or a
    checkpoint prefix (`prefix.meta` + `prefix.safetensors`)."""
    from tensorboard.compat.proto import graph_pb2

    from tensorweave.framework.graph_util import (
        extract_sub_graph,
        freeze_with_checkpoint_values,
    )
    if isinstance(source, graph_pb2.GraphDef):
        return extract_sub_graph(source, outputs)
    path = os.fspath(source)
    if os.path.isdir(path) and layout.is_saved_model_dir(path):
        return frozen_graph.load_saved_model(path, outputs=outputs)[0]
    if os.path.isfile(path + ".meta") or os.path.isfile(path + ".safetensors"):
        from tensorweave.framework.meta_graph import read_meta_graph_file
        meta = read_meta_graph_file(path + ".meta")
        weights = frozen_graph.read_weights(path + ".safetensors")
        return freeze_with_checkpoint_values(meta.graph_def, outputs, weights)
    if os.path.isfile(path):
        return frozen_graph.read_graph_def(path)
    raise FileNotFoundError(f"No GraphDef file, saved model directory or checkpoint at {path!r}")


def _names(names):
    """Tensor names ("x" means "x:0")."""
    return [n if ":" in n else f"{n}:0" for n in _raw(names)]


def _signature_names(export_dir, inputs, outputs):
    """Inputs and outputs of a saved model: signature keys become tensor names; an empty list
    means the whole signature."""
    signature = layout.signature(layout.read_signature_file(export_dir))

    def resolve(names, part):
        entries = signature[part]
        return [entries[n]["name"] if n in entries else n for n in _raw(names)] or \
            [e["name"] for e in entries.values()]
    return resolve(inputs, "inputs"), resolve(outputs, "outputs")


def _raw(names):
    return [names] if isinstance(names, str) else list(names or [])


def to_onnx_model(source, inputs, outputs, opset=OPSET, producer_name="tensorweave"):
    """The `onnx.ModelProto` computing `outputs` (tensor names) from `inputs` (tensor names;
    default: the placeholders the outputs need) of `source`: a GraphDef (frozen), a GraphDef
    file, a `simple_save` directory (whose signature keys may name the tensors, and which gives
    both lists by default) or a checkpoint prefix. Raises `UnsupportedOpError` naming the first
    op it cannot export."""
    onnx = _onnx()
    from tensorweave.version import __version__
    if isinstance(source, (str, os.PathLike)) and layout.is_saved_model_dir(source):
        inputs, outputs = _signature_names(source, inputs, outputs)
    inputs, outputs = _names(inputs), _names(outputs)
    if not outputs:
        raise ValueError("ONNX export needs at least one output")
    graph = frozen_graph.import_frozen(_frozen_source(source, [o.rpartition(":")[0] for o in outputs]))
    in_tensors = [frozen_graph.tensor_of(graph, n) for n in inputs]
    out_tensors = [frozen_graph.tensor_of(graph, n) for n in outputs]
    if not inputs:  # default: every placeholder the outputs need
        in_tensors = [op.outputs[0] for op in frozen_graph.needed_ops([], out_tensors) if op.type == "Placeholder"]
    ctx = _Context(onnx)
    ctx.inputs.extend(_value_info(onnx, t) for t in in_tensors)
    for op in frozen_graph.needed_ops(in_tensors, out_tensors):
        emitter = EMITTERS.get(op.type)
        if emitter is None:
            raise UnsupportedOpError(f"Op {op.name!r} of type {op.type} has no ONNX export (supported types: "
                                     f"{', '.join(sorted(EMITTERS))})")
        emitter(ctx, op)
    used = {name for node in ctx.nodes for name in node.input} | set(outputs)
    graph_proto = onnx.helper.make_graph(
        ctx.nodes, "tensorweave", ctx.inputs, [_value_info(onnx, t) for t in out_tensors],
        initializer=[v for k, v in ctx.initializers.items() if k in used])
    model = onnx.helper.make_model(graph_proto, producer_name=producer_name, producer_version=__version__,
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def export(source, inputs, outputs, path):
    """Writes the ONNX model of `source` (see `to_onnx_model`) to `path`; returns the model.

    `tensorweave export onnx --checkpoint PREFIX --inputs x --outputs y out.onnx` does the same
    from the command line."""
    from tensorweave.framework.graph_io import atomic_write

    model = to_onnx_model(source, inputs, outputs)
    atomic_write(os.fspath(path), model.SerializeToString())
    return model
