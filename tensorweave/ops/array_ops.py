"""Array ops: constants, placeholders, shapes, reshaping, casting, slicing, joining, gathering,
padding and selection, with `Tensor.__getitem__` (one StridedSlice op)."""

import builtins

import numpy as np

from tensorweave.framework import batch_rules, dtypes, errors
from tensorweave.framework.indexed_slices import IndexedSlices
from tensorweave.framework.op_builder import (apply_op, convert_to_tensor, convert_to_tensor_like, name_scope,
                                              register_tensor_conversion_function)
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, as_shape, unknown_shape

# -- Const ----------------------------------------------------------------------------------------

Const = define_op("Const", differentiable=False)


@Const.shape_fn
def _const_shape(op):
    value = op.get_attr("value")
    return [(op.get_attr("dtype"), TensorShape(value.shape))]


@Const.kernel
def _const_kernel(op, device):
    value = op.get_attr("value")
    return lambda: value


def constant(value, dtype=None, shape=None, name="Const", verify_shape=False):
    """`tf.constant`: a tensor holding `value` (broadcast from a scalar if `shape` is given)."""
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.dtype_of_value(value)
    array = np.asarray(value, dtype=dtype.as_numpy_dtype) if dtype is not dtypes.string \
        else np.asarray(value, dtype=object)
    if shape is not None:
        shape = tuple(int(d) for d in as_shape(shape).as_list())
        if array.shape != shape:
            if verify_shape:
                raise TypeError(f"Expected Tensor's shape: {shape}, got {array.shape}.")
            if array.size == 1:
                array = np.full(shape, array.reshape(()), dtype=array.dtype)
            elif array.size == int(np.prod(shape)):
                array = array.reshape(shape)
            else:
                raise ValueError(f"Too many elements provided. Needed at most {int(np.prod(shape))}, "
                                 f"but received {array.size}")
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return apply_op("Const", [], {"value": array, "dtype": dtype}, name=name)


def _constant_conversion(value, dtype, name):
    return constant(value, dtype=dtype, name=name or "Const")


register_tensor_conversion_function((int, float, bool, complex, str, bytes, list, tuple, np.ndarray,
                                     np.generic), _constant_conversion)


def _is_graph_value(value):
    return isinstance(value, Tensor) or hasattr(value, "_ref")  # a Tensor or a Variable


def _contains_tensor(value):
    if _is_graph_value(value):
        return True
    return isinstance(value, (list, tuple)) and any(_contains_tensor(v) for v in value)


def _first_graph_dtype(value):
    if _is_graph_value(value):
        return value.dtype.base_dtype
    for v in value if isinstance(value, (list, tuple)) else ():
        dtype = _first_graph_dtype(v)
        if dtype is not None:
            return dtype
    return None


def _autopack(value, dtype, name):
    parts = []
    for v in value:
        if _is_graph_value(v):
            parts.append(convert_to_tensor(v, dtype=dtype))
        elif isinstance(v, (list, tuple)) and _contains_tensor(v):
            parts.append(_autopack(v, dtype, None))
        else:
            parts.append(constant(v, dtype=dtype))
    return apply_op("Pack", parts, {"N": len(parts), "T": dtype, "axis": 0}, name=name or "packed")


def _autopacking_conversion(value, dtype, name):
    """TF1's autopacking: a (nested) list holding Tensors, e.g. `[tf.shape(x)[0], -1]`, becomes a
    Pack of its elements; Python numbers in it take the Tensors' dtype. Other lists are constants."""
    if not _contains_tensor(value):
        return _constant_conversion(value, dtype, name)
    return _autopack(value, dtypes.as_dtype(dtype) if dtype is not None else _first_graph_dtype(value), name)


register_tensor_conversion_function((list, tuple), _autopacking_conversion, priority=99)

# -- Placeholders -----------------------------------------------------------------------------

# A placeholder has no value of its own: it is marked stateful so nothing ever folds it.
Placeholder = define_op("Placeholder", differentiable=False, stateful=True)


@Placeholder.shape_fn
def _placeholder_shape(op):
    return [(op.get_attr("dtype"), op.get_attr("shape"))]


@Placeholder.kernel
def _placeholder_kernel(op, device):
    shape = op.get_attr("shape")
    dims = "<unknown>" if shape.ndims is None else \
        "[" + ",".join("?" if d is None else str(d) for d in shape.as_list()) + "]"
    raise op.error(errors.InvalidArgumentError,
                   f"You must feed a value for placeholder tensor '{op.name}' with dtype "
                   f"{op.get_attr('dtype').name} and shape {dims}")


def placeholder(dtype, shape=None, name=None):
    """`tf.placeholder`: a tensor whose value must be fed at run time."""
    shape = unknown_shape() if shape is None else as_shape(shape)
    return apply_op("Placeholder", [], {"dtype": dtypes.as_dtype(dtype), "shape": shape},
                    name=name or "Placeholder")


PlaceholderWithDefault = define_op("PlaceholderWithDefault")


@PlaceholderWithDefault.shape_fn
def _pwd_shape(op):
    shape = op.get_attr("shape")
    if not shape.is_compatible_with(op.inputs[0].shape):
        raise ValueError(f"default value shape {op.inputs[0].shape} is incompatible with {shape}")
    return [(op.inputs[0].dtype, shape)]


@PlaceholderWithDefault.kernel
def _pwd_kernel(op, device):
    return lambda x: x


@PlaceholderWithDefault.gradient
def _pwd_grad(op, grad):
    return (grad,)


def placeholder_with_default(input, shape, name=None):  # noqa: A002 - TF's argument name
    """`tf.placeholder_with_default`: `input` unless a value is fed."""
    input = convert_to_tensor(input)
    return apply_op("PlaceholderWithDefault", [input], {"shape": as_shape(shape), "dtype": input.dtype},
                    name=name or "PlaceholderWithDefault")


# -- Identity and friends ------------------------------------------------------------------------

def _same_as_input(op):
    return [(op.inputs[0].dtype, op.inputs[0].shape)]


def _identity_kernel(op, device):
    return lambda x: x


Identity = define_op("Identity")
Identity.shape_fn(_same_as_input)
Identity.kernel(_identity_kernel)


@Identity.gradient
def _identity_grad(op, grad):
    return (grad,)


def identity(input, name=None):  # noqa: A002
    """`tf.identity`: the same value; on a variable, reads its value when this op runs."""
    return apply_op("Identity", [convert_to_tensor(input)], name=name or "Identity")


StopGradient = define_op("StopGradient", differentiable=False)
StopGradient.shape_fn(_same_as_input)
StopGradient.kernel(_identity_kernel)


def stop_gradient(input, name=None):  # noqa: A002
    """`tf.stop_gradient`: the same value, but gradients do not flow through it."""
    return apply_op("StopGradient", [convert_to_tensor(input)], name=name or "StopGradient")


# -- Shapes ------------------------------------------------------------------------------------

def _shape_vector_shape(op):
    rank = op.inputs[0].shape.ndims
    return [(op.get_attr("out_type"), TensorShape([rank]))]


Shape = define_op("Shape", differentiable=False)
Shape.shape_fn(_shape_vector_shape)


@Shape.kernel
def _shape_kernel(op, device):
    out_type = op.get_attr("out_type").as_numpy_dtype
    return lambda x: np.array(np.shape(x), dtype=out_type)


def shape(input, name=None, out_type=dtypes.int32):  # noqa: A002
    """`tf.shape`: the dynamic shape of `input` as a 1-D int tensor."""
    return apply_op("Shape", [convert_to_tensor(input)], {"out_type": dtypes.as_dtype(out_type)},
                    name=name or "Shape")


def _scalar_count_shape(op):
    return [(op.get_attr("out_type"), TensorShape([]))]


Size = define_op("Size", differentiable=False)
Size.shape_fn(_scalar_count_shape)


@Size.kernel
def _size_kernel(op, device):
    out_type = op.get_attr("out_type").as_numpy_dtype
    return lambda x: np.array(np.size(x), dtype=out_type)


def size(input, name=None, out_type=dtypes.int32):  # noqa: A002
    """`tf.size`: the number of elements of `input`."""
    return apply_op("Size", [convert_to_tensor(input)], {"out_type": dtypes.as_dtype(out_type)},
                    name=name or "Size")


Rank = define_op("Rank", differentiable=False)


@Rank.shape_fn
def _rank_shape(op):
    return [(dtypes.int32, TensorShape([]))]


@Rank.kernel
def _rank_kernel(op, device):
    return lambda x: np.array(np.ndim(x), dtype=np.int32)


def rank(input, name=None):  # noqa: A002
    """`tf.rank`: the number of dimensions of `input`."""
    return apply_op("Rank", [convert_to_tensor(input)], name=name or "Rank")


def static_value(t):
    """The value of `t` if it is known while building the graph (a Const), else None."""
    if isinstance(t, Tensor):
        return t.op.get_attr("value") if t.op.type == "Const" else None
    return np.asarray(t)


def partial_value(t):
    """What is statically known of an integer tensor's value, element by element.

    A Python int for a known scalar, a list (with None for unknown elements) for a vector, or
    None when nothing is known. Follows Const, Shape, Pack, ConcatV2, StridedSlice, Cast and
    Identity, so `tf.reshape(x, [tf.shape(x)[0], -1])` keeps every dimension that is known.
    """
    if not isinstance(t, Tensor):
        return np.asarray(t).tolist()
    op = t.op
    value = None
    if op.type == "Const":
        value = op.get_attr("value").tolist()
    elif op.type == "Shape":
        s = op.inputs[0].shape
        value = None if s.ndims is None else s.as_list()
    elif op.type in ("Identity", "Cast") and op.inputs[0].dtype.is_integer and t.dtype.is_integer:
        value = partial_value(op.inputs[0])
    elif op.type == "Pack" and op.get_attr("axis") == 0 and all(x.shape.ndims == 0 for x in op.inputs):
        value = [partial_value(x) for x in op.inputs]
    elif op.type == "ConcatV2" and t.shape.ndims == 1:
        parts = []
        for x in op.inputs[:-1]:
            part = partial_value(x)
            if not isinstance(part, list):
                n = x.shape[0].value if x.shape.ndims == 1 else None
                if n is None:
                    parts = None
                    break
                part = [None] * n
            parts.extend(part)
        value = parts
    elif op.type == "StridedSlice" and op.inputs[0].shape.ndims == 1:
        base = partial_value(op.inputs[0])
        spec = [static_value(x) for x in op.inputs[1:]]
        if isinstance(base, list) and all(v is not None for v in spec):
            masks = [op.get_attr(m) for m in _MASKS]
            try:
                picked = np.array(base, dtype=object)[_strided_index(*spec, *masks)]
            except (IndexError, ValueError):
                picked = None
            value = picked.tolist() if isinstance(picked, np.ndarray) else picked
    if value is None and t.shape.ndims == 1 and t.shape[0].value is not None:
        value = [None] * t.shape[0].value
    if isinstance(value, list) and t.shape.ndims == 1 and any(isinstance(v, list) for v in value):
        return [None] * len(value)
    return value


def constant_value_as_shape(t):
    """The (partial) `TensorShape` that a 1-D int tensor holds; -1 or unknown entries are None."""
    value = partial_value(t)
    if isinstance(t, Tensor) and t.shape.ndims == 0:
        return TensorShape(None) if value is None or value == -1 else TensorShape([value])
    if not isinstance(value, list):
        return unknown_shape()
    return TensorShape([None if d is None or d < 0 else d for d in value])


def static_int(t):
    """A scalar int tensor's (or 1-element vector's) value if known while building the graph, else None."""
    value = static_value(t)
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise ValueError(f"Expected a scalar, got a tensor of shape {np.shape(value)}")
    return int(flat[0])


def _copied_input_dim(element, x):
    """i if `element` is `tf.shape(x)[i]` (a constant i), else None."""
    op = element.op
    if op.type != "StridedSlice" or op.get_attr("shrink_axis_mask") != 1 or op.get_attr("ellipsis_mask") \
            or op.get_attr("new_axis_mask"):
        return None
    source = op.inputs[0].op
    index = static_value(op.inputs[1])
    if source.type != "Shape" or source.inputs[0] is not x or index is None or np.size(index) != 1:
        return None
    return int(np.reshape(index, -1)[0]) % x.shape.ndims


def _infer_from_copied_dims(x, shape_t, target, dims):
    """Fills the -1 of a reshape target such as `[tf.shape(x)[0], -1]`: when every unknown
    dimension of x is copied into the target, the rest of the elements are known."""
    if x.shape.ndims is None or shape_t.op.type != "Pack":
        return
    in_dims = x.shape.as_list()
    copied = [_copied_input_dim(e, x) if d is None else None
              for e, d in zip(shape_t.op.inputs, target, strict=True)]
    if any(d is None and c is None for d, c in zip(target, copied, strict=True)):
        return
    if sorted(c for c in copied if c is not None) != [i for i, d in enumerate(in_dims) if d is None]:
        return
    rest = int(np.prod([d for d in target if d is not None and d != -1]))
    in_known = int(np.prod([d for d in in_dims if d is not None]))
    if rest and in_known % rest == 0:
        dims[target.index(-1)] = in_known // rest


Reshape = define_op("Reshape")


@Reshape.shape_fn
def _reshape_shape(op):
    x, shape_t = op.inputs
    target = partial_value(shape_t)
    if not isinstance(target, list):
        n = shape_t.shape.as_list()[0] if shape_t.shape.ndims == 1 else None
        return [(x.dtype, unknown_shape(n))]
    if any(d is not None and d < -1 for d in target):
        raise ValueError(f"Reshape target {target} holds a negative size other than -1")
    if target.count(-1) > 1:
        raise ValueError(f"Reshape can infer at most one dimension (-1), got {target}")
    dims = [None if d == -1 else d for d in target]
    known = x.shape.num_elements()
    if known is None and -1 in target:
        _infer_from_copied_dims(x, shape_t, target, dims)
    open_dims = [i for i, d in enumerate(dims) if d is None]
    rest = int(np.prod([d for d in dims if d is not None]))
    if known is not None:
        if len(open_dims) == 1:
            if (rest == 0 and known) or (rest and known % rest):
                raise ValueError(f"Cannot reshape a tensor with {known} elements to shape {target}")
            if rest:
                dims[open_dims[0]] = known // rest
        elif not open_dims and known != rest:
            raise ValueError(f"Cannot reshape a tensor with {known} elements to shape {target} "
                             f"({rest} elements)")
    return [(x.dtype, TensorShape(dims))]


@Reshape.kernel
def _reshape_kernel(op, device):
    return lambda x, s: np.reshape(x, s)


@Reshape.gradient
def _reshape_grad(op, grad):
    return (reshape(grad, _shape_of(op.inputs[0])), None)


def _shape_of(t):
    """A tensor holding t's shape: a constant when the static shape is fully known."""
    if t.shape.is_fully_defined():
        return constant(t.shape.as_list(), dtype=dtypes.int32)
    return shape(t)


def reshape(tensor, shape, name=None):  # noqa: A002,F811 - TF's argument name
    """`tf.reshape`: the same values in a new shape (one dimension may be -1)."""
    tensor = convert_to_tensor(tensor)
    if isinstance(shape, Tensor):
        shape_t = shape
    elif _contains_tensor(shape):
        shape_t = convert_to_tensor(shape)  # autopacked, e.g. [tf.shape(x)[0], -1]
    else:
        dims = shape.as_list() if isinstance(shape, TensorShape) else np.asarray(shape).reshape(-1).tolist()
        shape_t = constant([-1 if d is None else int(d) for d in dims], dtype=dtypes.int32)
    return apply_op("Reshape", [tensor, shape_t], name=name or "Reshape")


# -- Filling -----------------------------------------------------------------------------------

Fill = define_op("Fill")


@Fill.shape_fn
def _fill_shape(op):
    dims, value = op.inputs
    return [(value.dtype, constant_value_as_shape(dims))]


@Fill.kernel
def _fill_kernel(op, device):
    return lambda dims, value: np.full(tuple(dims), value, dtype=value.dtype)


@Fill.gradient
def _fill_grad(op, grad):
    from tensorweave.ops import math_ops
    return (None, math_ops.reduce_sum(grad))


def fill(dims, value, name=None):
    """`tf.fill`: a tensor of shape `dims` filled with the scalar `value`."""
    value = convert_to_tensor(value)
    return apply_op("Fill", [_dims_tensor(dims), value], name=name or "Fill")


def _dims_tensor(dims):
    if isinstance(dims, Tensor):
        return dims
    if _contains_tensor(dims):
        return convert_to_tensor(dims)
    if isinstance(dims, TensorShape):
        dims = dims.as_list()
    dims = [int(d) for d in (dims if isinstance(dims, (list, tuple)) else np.asarray(dims).reshape(-1))]
    return constant(dims, dtype=dtypes.int32)


def zeros(shape, dtype=dtypes.float32, name=None):
    """`tf.zeros`: a tensor of `shape` filled with zeros."""
    dtype = dtypes.as_dtype(dtype)
    if not isinstance(shape, Tensor):
        dims = as_shape(shape).as_list() if not isinstance(shape, (int, np.integer)) else [shape]
        return constant(np.zeros(dims, dtype=dtype.as_numpy_dtype), dtype=dtype, name=name or "zeros")
    return fill(shape, constant(0, dtype=dtype), name=name or "zeros")


def ones(shape, dtype=dtypes.float32, name=None):
    """`tf.ones`: a tensor of `shape` filled with ones."""
    dtype = dtypes.as_dtype(dtype)
    if not isinstance(shape, Tensor):
        dims = as_shape(shape).as_list() if not isinstance(shape, (int, np.integer)) else [shape]
        return constant(np.ones(dims, dtype=dtype.as_numpy_dtype), dtype=dtype, name=name or "ones")
    return fill(shape, constant(1, dtype=dtype), name=name or "ones")


def _like_kernel(fill_value):
    def make(op, device):
        return lambda x: np.full(np.shape(x), fill_value, dtype=np.asarray(x).dtype)
    return make


ZerosLike = define_op("ZerosLike", differentiable=False)
ZerosLike.shape_fn(_same_as_input)
ZerosLike.kernel(_like_kernel(0))
OnesLike = define_op("OnesLike", differentiable=False)
OnesLike.shape_fn(_same_as_input)
OnesLike.kernel(_like_kernel(1))


def zeros_like(tensor, dtype=None, name=None, optimize=True):
    """`tf.zeros_like`: zeros with the shape (and by default the dtype) of `tensor`."""
    tensor = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not tensor.dtype:
        return zeros(shape(tensor), dtype=dtype, name=name)
    if optimize and tensor.shape.is_fully_defined():
        return zeros(tensor.shape, dtype=tensor.dtype, name=name)
    return apply_op("ZerosLike", [tensor], name=name or "zeros_like")


def ones_like(tensor, dtype=None, name=None, optimize=True):
    """`tf.ones_like`: ones with the shape (and by default the dtype) of `tensor`."""
    tensor = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not tensor.dtype:
        return ones(shape(tensor), dtype=dtype, name=name)
    if optimize and tensor.shape.is_fully_defined():
        return ones(tensor.shape, dtype=tensor.dtype, name=name)
    return apply_op("OnesLike", [tensor], name=name or "ones_like")


# -- Cast --------------------------------------------------------------------------------------

Cast = define_op("Cast")


@Cast.shape_fn
def _cast_shape(op):
    return [(op.get_attr("DstT"), op.inputs[0].shape)]


@Cast.kernel
def _cast_kernel(op, device):
    dst = op.get_attr("DstT")
    if dst is dtypes.string:
        raise ValueError("Cast to string is not supported; use tf.strings functions")
    np_dst = dst.as_numpy_dtype
    return lambda x: np.asarray(x).astype(np_dst)


@Cast.gradient
def _cast_grad(op, grad):
    src = op.inputs[0].dtype
    if (src.is_floating or src.is_complex) and (op.get_attr("DstT").is_floating or op.get_attr("DstT").is_complex):
        return (cast(grad, src),)
    return (None,)


def cast(x, dtype, name=None):
    """`tf.cast`: `x` converted element-wise to `dtype` (floats to ints truncate toward zero)."""
    x = convert_to_tensor(x)
    dtype = dtypes.as_dtype(dtype)
    if x.dtype is dtype:
        return x
    return apply_op("Cast", [x], {"SrcT": x.dtype, "DstT": dtype}, name=name or "Cast")


def to_float(x, name="ToFloat"):
    return cast(x, dtypes.float32, name=name)


def to_int32(x, name="ToInt32"):
    return cast(x, dtypes.int32, name=name)


def to_int64(x, name="ToInt64"):
    return cast(x, dtypes.int64, name=name)


def to_double(x, name="ToDouble"):
    """`tf.to_double`: `x` cast to float64."""
    return cast(x, dtypes.float64, name=name)


# -- Broadcasting helper for gradients ---------------------------------------------------------

BroadcastGradientArgs = define_op("BroadcastGradientArgs", differentiable=False)


@BroadcastGradientArgs.shape_fn
def _bga_shape(op):
    return [(dtypes.int32, TensorShape([None])), (dtypes.int32, TensorShape([None]))]


@BroadcastGradientArgs.kernel
def _bga_kernel(op, device):
    def reduction_axes(s0, s1):
        s0, s1 = list(s0), list(s1)
        n = max(len(s0), len(s1))
        p0, p1 = [1] * (n - len(s0)) + s0, [1] * (n - len(s1)) + s1
        r0 = [i for i in range(n) if p0[i] == 1 and p1[i] != 1 or i < n - len(s0)]
        r1 = [i for i in range(n) if p1[i] == 1 and p0[i] != 1 or i < n - len(s1)]
        return np.array(r0, dtype=np.int32), np.array(r1, dtype=np.int32)
    return reduction_axes


def broadcast_gradient_args(s0, s1, name=None):
    return apply_op("BroadcastGradientArgs", [s0, s1], name=name or "BroadcastGradientArgs")


# -- shared helpers for the ops below ----------------------------------------------------------

newaxis = None  # `tf.newaxis`: inserts a dimension of size 1 in `t[...]`


def _int_tensor(value, name=None):
    """`value` as an int tensor: Tensors pass through, Python values become int32 (int64 if large)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, TensorShape):
        value = value.as_list()
    if _contains_tensor(value):
        return convert_to_tensor(value, name=name)
    array = np.asarray(value)
    if array.dtype.kind not in "iu" and array.size:
        raise TypeError(f"Expected an integer value, got {value!r}")
    fits = not array.size or (array.min() >= -2**31 and array.max() < 2**31)
    return constant(array.astype(np.int64), dtype=dtypes.int32 if fits else dtypes.int64, name=name or "Const")


def _apply_multi(op_type, inputs, attrs, name):
    """apply_op for an op with a variable number of outputs: always a list."""
    result = apply_op(op_type, inputs, attrs, name=name)
    if isinstance(result, Tensor):
        return [result]
    return result if isinstance(result, list) else []


def _n_outputs(n, fn):
    """A kernel for an op with `n` outputs (the executor takes a lone output unwrapped)."""
    if n == 1:
        return lambda *args: fn(*args)[0]
    return fn


def _norm_axis(axis, rank, what="axis"):
    if rank is None:
        return axis if axis >= 0 else None
    if not -rank <= axis < rank:
        raise ValueError(f"{what} {axis} is out of range for a tensor of rank {rank}")
    return axis % rank


def _convert_like_first(values):
    """Converts a list of values; Python values take the dtype of the first Tensor among them."""
    first = next((v for v in values if isinstance(v, Tensor)), None)
    if first is None:
        return [convert_to_tensor(v) for v in values]
    return [convert_to_tensor_like(v, first) for v in values]


def _math():
    # math_ops imports this module, so it is imported where gradients and derived ops need it.
    from tensorweave.ops import math_ops
    return math_ops


def _inverse_permutation(perm):
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return inverse


# -- ExpandDims and Squeeze ----------------------------------------------------------------------

ExpandDims = define_op("ExpandDims")


@ExpandDims.shape_fn
def _expand_dims_shape(op):
    x, dim = op.inputs
    axis = static_int(dim)
    rank = x.shape.ndims
    if rank is None:
        return [(x.dtype, unknown_shape())]
    if axis is None:
        return [(x.dtype, unknown_shape(rank + 1))]
    if not -rank - 1 <= axis <= rank:
        raise ValueError(f"ExpandDims axis {axis} is out of range [{-rank - 1}, {rank}] for rank {rank}")
    axis = axis % (rank + 1)
    dims = x.shape.as_list()
    return [(x.dtype, TensorShape(dims[:axis] + [1] + dims[axis:]))]


@ExpandDims.kernel
def _expand_dims_kernel(op, device):
    return lambda x, dim: np.expand_dims(x, int(np.reshape(dim, -1)[0]))


def _reshape_to_input_grad(op, grad):
    return (reshape(grad, _shape_of(op.inputs[0])),) + (None,) * (len(op.inputs) - 1)


ExpandDims.gradient(_reshape_to_input_grad)


def expand_dims(input, axis=None, name=None, dim=None):  # noqa: A002
    """`tf.expand_dims`: `input` with a dimension of size 1 inserted at `axis` (negative counts from the end)."""
    if axis is None and dim is None:
        raise ValueError("Must specify an axis argument to tf.expand_dims()")
    if axis is not None and dim is not None:
        raise ValueError("Cannot specify both 'axis' and 'dim'")
    axis = dim if axis is None else axis
    input = convert_to_tensor(input)
    axis_t = _int_tensor(axis)
    return apply_op("ExpandDims", [input, axis_t], {"T": input.dtype, "Tdim": axis_t.dtype},
                    name=name or "ExpandDims")


Squeeze = define_op("Squeeze")


@Squeeze.shape_fn
def _squeeze_shape(op):
    x = op.inputs[0]
    axes = list(op.get_attr("squeeze_dims"))
    rank = x.shape.ndims
    if rank is None:
        return [(x.dtype, unknown_shape())]
    dims = x.shape.as_list()
    if not axes:
        if None in dims:
            return [(x.dtype, unknown_shape())]
        return [(x.dtype, TensorShape([d for d in dims if d != 1]))]
    axes = {_norm_axis(a, rank, "Squeeze dimension") for a in axes}
    for a in axes:
        if dims[a] is not None and dims[a] != 1:
            raise ValueError(f"Can not squeeze dim[{a}], expected a dimension of 1, got {dims[a]}")
    return [(x.dtype, TensorShape([d for i, d in enumerate(dims) if i not in axes]))]


@Squeeze.kernel
def _squeeze_kernel(op, device):
    axes = tuple(op.get_attr("squeeze_dims"))
    if not axes:
        return np.squeeze
    return lambda x: np.squeeze(x, axis=axes)


Squeeze.gradient(_reshape_to_input_grad)


def squeeze(input, axis=None, name=None, squeeze_dims=None):  # noqa: A002
    """`tf.squeeze`: `input` without its size-1 dimensions (only those in `axis`, if given)."""
    if axis is not None and squeeze_dims is not None:
        raise ValueError("Cannot specify both 'axis' and 'squeeze_dims'")
    axis = squeeze_dims if axis is None else axis
    if axis is None:
        axis = []
    elif isinstance(axis, (int, np.integer)):
        axis = [int(axis)]
    input = convert_to_tensor(input)
    return apply_op("Squeeze", [input], {"T": input.dtype, "squeeze_dims": [int(a) for a in axis]},
                    name=name or "Squeeze")


# -- Transpose -----------------------------------------------------------------------------------

def _transpose_shape(op):
    x, perm_t = op.inputs
    perm = static_value(perm_t)
    rank = x.shape.ndims
    if rank is None and perm_t.shape.ndims == 1:
        rank = perm_t.shape[0].value
    if perm is None:
        return [(x.dtype, unknown_shape(rank))]
    perm = [int(p) for p in np.reshape(perm, -1)]
    if rank is not None and len(perm) != rank:
        raise ValueError(f"Dimension must be {rank} but is {len(perm)}: perm {perm} for a tensor of rank {rank}")
    if sorted(p % len(perm) for p in perm) != list(range(len(perm))) or \
            any(not -len(perm) <= p < len(perm) for p in perm):
        raise ValueError(f"perm {perm} is not a permutation of 0..{len(perm) - 1}")
    if x.shape.ndims is None:
        return [(x.dtype, unknown_shape(len(perm)))]
    dims = x.shape.as_list()
    return [(x.dtype, TensorShape([dims[p] for p in perm]))]


Transpose = define_op("Transpose")
Transpose.shape_fn(_transpose_shape)
Transpose.kernel(lambda op, device: np.transpose)
ConjugateTranspose = define_op("ConjugateTranspose")
ConjugateTranspose.shape_fn(_transpose_shape)
ConjugateTranspose.kernel(lambda op, device: lambda x, perm: np.conj(np.transpose(x, perm)))


def _inverted_perm(perm_t):
    perm = static_value(perm_t)
    if perm is not None:
        return constant(_inverse_permutation([int(p) % max(len(perm), 1) for p in np.reshape(perm, -1)]),
                        dtype=perm_t.dtype)
    return invert_permutation(perm_t)


@Transpose.gradient
def _transpose_grad(op, grad):
    return (transpose(grad, _inverted_perm(op.inputs[1])), None)


@ConjugateTranspose.gradient
def _conjugate_transpose_grad(op, grad):
    return (transpose(grad, _inverted_perm(op.inputs[1]), conjugate=True), None)


def transpose(a, perm=None, name="transpose", conjugate=False):
    """`tf.transpose`: `a` with its dimensions permuted by `perm` (reversed if None).

    With `conjugate=True` a complex `a` is also conjugated.
    """
    a = convert_to_tensor(a)
    op_type = "ConjugateTranspose" if conjugate and a.dtype.is_complex else "Transpose"
    with name_scope(name, "transpose", [a]) as scope:
        if perm is None:
            if a.shape.ndims is not None:
                perm = list(range(a.shape.ndims - 1, -1, -1))
            else:
                math_ops = _math()
                perm = apply_op("Range", [math_ops.subtract(rank(a), 1), constant(-1), constant(-1)],
                                name="perm")
        perm_t = _int_tensor(perm, name="perm")
        return apply_op(op_type, [a, perm_t], {"T": a.dtype, "Tperm": perm_t.dtype}, name=scope)


InvertPermutation = define_op("InvertPermutation", differentiable=False)


@InvertPermutation.shape_fn
def _invert_permutation_shape(op):
    x = op.inputs[0]
    x.shape.with_rank(1)
    return [(x.dtype, x.shape)]


@InvertPermutation.kernel
def _invert_permutation_kernel(op, device):
    def invert(p):
        p = np.asarray(p)
        if sorted(p.tolist()) != list(range(p.size)):
            raise ValueError(f"{p.tolist()} is not a permutation of 0..{p.size - 1}")
        out = np.empty_like(p)
        out[p] = np.arange(p.size, dtype=p.dtype)
        return out
    return invert


def invert_permutation(x, name=None):
    """`tf.invert_permutation`: y such that y[x[i]] = i."""
    x = _int_tensor(x)
    return apply_op("InvertPermutation", [x], {"T": x.dtype}, name=name or "InvertPermutation")


# -- ConcatV2, Pack, Unpack ------------------------------------------------------------------------

ConcatV2 = define_op("ConcatV2")


@ConcatV2.shape_fn
def _concat_shape(op):
    *values, axis_t = op.inputs
    dtype = values[0].dtype
    for v in values[1:]:
        if v.dtype is not dtype:
            raise TypeError(f"ConcatV2 inputs must share one dtype, got {dtype.name} and {v.dtype.name}")
    rank = next((v.shape.ndims for v in values if v.shape.ndims is not None), None)
    if rank is None:
        return [(dtype, unknown_shape())]
    if rank == 0:
        raise ValueError("Can't concatenate scalars (use tf.stack instead)")
    for v in values:
        if v.shape.ndims is not None and v.shape.ndims != rank:
            raise ValueError(f"Shape {v.shape} of {v.name} must have rank {rank} to be concatenated")
    axis = static_int(axis_t)
    if axis is None:
        return [(dtype, unknown_shape(rank))]
    axis = _norm_axis(axis, rank, "ConcatV2 axis")
    out = [None] * rank
    total = 0
    for v in values:
        dims = v.shape.as_list() if v.shape.ndims is not None else [None] * rank
        for i, d in enumerate(dims):
            if i == axis:
                total = None if total is None or d is None else total + d
            elif d is not None:
                if out[i] is not None and out[i] != d:
                    raise ValueError(f"Dimension {i} in both shapes must be equal, but are {out[i]} and {d}: "
                                     f"concatenating {[str(x.shape) for x in values]} along axis {axis}")
                out[i] = d
    out[axis] = total
    return [(dtype, TensorShape(out))]


@ConcatV2.kernel
def _concat_kernel(op, device):
    return lambda *args: np.concatenate(args[:-1], axis=int(args[-1]))


@ConcatV2.gradient
def _concat_grad(op, grad):
    *values, axis_t = op.inputs
    grad = convert_to_tensor(grad)
    axis = static_int(axis_t)
    rank = grad.shape.ndims
    if axis is not None and rank is not None:
        axis = axis % rank
        sizes = [v.shape[axis].value if v.shape.ndims is not None else None for v in values]
        if None not in sizes:
            return tuple(split(grad, sizes, axis=axis)) + (None,)
    shapes = [shape(v) for v in values]
    offsets = _apply_multi("ConcatOffset", [cast(axis_t, dtypes.int32)] + shapes, {"N": len(values)},
                           name="ConcatOffset")
    return tuple(slice(grad, o, s) for o, s in zip(offsets, shapes, strict=True)) + (None,)


def concat(values, axis, name="concat"):
    """`tf.concat`: the tensors in `values` joined along dimension `axis`."""
    if not isinstance(values, (list, tuple)):
        values = [values]
    values = _convert_like_first(list(values))
    with name_scope(name, "concat", values) as scope:
        axis_t = _int_tensor(axis, name="axis")
        if len(values) == 1:
            static_int(axis_t)
            return identity(values[0], name=scope)
        return apply_op("ConcatV2", values + [axis_t], {"N": len(values), "T": values[0].dtype,
                                                        "Tidx": axis_t.dtype}, name=scope)


ConcatOffset = define_op("ConcatOffset", differentiable=False)


@ConcatOffset.shape_fn
def _concat_offset_shape(op):
    return [(s.dtype, s.shape) for s in op.inputs[1:]]


@ConcatOffset.kernel
def _concat_offset_kernel(op, device):
    n = len(op.inputs) - 1

    def offsets(axis, *shapes):
        axis = int(axis) % max(len(shapes[0]), 1)
        out, at = [], 0
        for s in shapes:
            o = np.zeros_like(s)
            o[axis] = at
            at += s[axis]
            out.append(o)
        return out
    return _n_outputs(n, offsets)


Pack = define_op("Pack")


@Pack.shape_fn
def _pack_shape(op):
    values = op.inputs
    merged = values[0].shape
    for v in values[1:]:
        if v.dtype is not values[0].dtype:
            raise TypeError(f"Pack inputs must share one dtype, got {values[0].dtype.name} and {v.dtype.name}")
        if not merged.is_compatible_with(v.shape):
            raise ValueError(f"Shapes of all inputs must match: {values[0].shape} != {v.shape}")
        merged = merged.merge_with(v.shape)
    if merged.ndims is None:
        return [(values[0].dtype, unknown_shape())]
    axis = op.get_attr("axis")
    rank = merged.ndims
    if not -rank - 1 <= axis <= rank:
        raise ValueError(f"Pack axis {axis} is out of range [{-rank - 1}, {rank}]")
    axis = axis % (rank + 1)
    dims = merged.as_list()
    return [(values[0].dtype, TensorShape(dims[:axis] + [len(values)] + dims[axis:]))]


@Pack.kernel
def _pack_kernel(op, device):
    axis = op.get_attr("axis")
    return lambda *xs: np.stack(xs, axis=axis)


@Pack.gradient
def _pack_grad(op, grad):
    return tuple(unstack(grad, num=len(op.inputs), axis=op.get_attr("axis")))


def stack(values, axis=0, name="stack"):
    """`tf.stack` (`tf.pack`): the rank-R tensors in `values` joined into one rank-(R+1) tensor."""
    if axis == 0 and not _contains_tensor(values):
        return constant(values, name=name)
    values = _convert_like_first(list(values))
    return apply_op("Pack", values, {"N": len(values), "T": values[0].dtype, "axis": int(axis)}, name=name)


Unpack = define_op("Unpack")


@Unpack.shape_fn
def _unpack_shape(op):
    x = op.inputs[0]
    num = op.get_attr("num")
    if x.shape.ndims is None:
        return [(x.dtype, unknown_shape())] * num
    axis = _norm_axis(op.get_attr("axis"), x.shape.ndims, "Unpack axis")
    dims = x.shape.as_list()
    if dims[axis] is not None and dims[axis] != num:
        raise ValueError(f"Dimension {axis} of {x.shape} has size {dims[axis]}, but num={num}")
    return [(x.dtype, TensorShape(dims[:axis] + dims[axis + 1:]))] * num


@Unpack.kernel
def _unpack_kernel(op, device):
    axis, num = op.get_attr("axis"), op.get_attr("num")

    def unpack(x):
        if x.shape[axis] != num:
            raise ValueError(f"Input dimension {axis} has size {x.shape[axis]}, but num={num}")
        return tuple(np.moveaxis(x, axis, 0))
    return _n_outputs(num, unpack)


@Unpack.gradient
def _unpack_grad(op, *grads):
    return (stack(list(grads), axis=op.get_attr("axis")),)


def unstack(value, num=None, axis=0, name="unstack"):
    """`tf.unstack` (`tf.unpack`): the slices of `value` along `axis`, as a list of tensors."""
    value = convert_to_tensor(value)
    if num is None:
        if value.shape.ndims is None:
            raise ValueError(f"Cannot infer num from shape {value.shape}")
        num = value.shape[_norm_axis(axis, value.shape.ndims)].value
        if num is None:
            raise ValueError(f"Cannot infer num from shape {value.shape}")
    return _apply_multi("Unpack", [value], {"num": int(num), "T": value.dtype, "axis": int(axis)}, name=name)


# -- Split and SplitV ------------------------------------------------------------------------------

Split = define_op("Split")


@Split.shape_fn
def _split_shape(op):
    axis_t, x = op.inputs
    n = op.get_attr("num_split")
    rank = x.shape.ndims
    axis = static_int(axis_t)
    if rank is None or axis is None:
        return [(x.dtype, unknown_shape(rank))] * n
    axis = _norm_axis(axis, rank, "Split axis")
    dims = x.shape.as_list()
    if dims[axis] is not None:
        if dims[axis] % n:
            raise ValueError(f"Dimension {axis} of {x.shape} (size {dims[axis]}) is not evenly divisible "
                             f"by num_split={n}")
        dims[axis] //= n
    return [(x.dtype, TensorShape(dims))] * n


@Split.kernel
def _split_kernel(op, device):
    n = op.get_attr("num_split")
    return _n_outputs(n, lambda axis, x: np.split(x, n, axis=int(axis)))


@Split.gradient
def _split_grad(op, *grads):
    return (None, concat(list(grads), op.inputs[0]))


SplitV = define_op("SplitV")


@SplitV.shape_fn
def _split_v_shape(op):
    x, sizes_t, axis_t = op.inputs
    n = op.get_attr("num_split")
    rank = x.shape.ndims
    axis = static_int(axis_t)
    sizes = partial_value(sizes_t)
    if rank is None or axis is None:
        return [(x.dtype, unknown_shape(rank))] * n
    axis = _norm_axis(axis, rank, "SplitV axis")
    dims = x.shape.as_list()
    if not isinstance(sizes, list):
        sizes = [None] * n
    if len(sizes) != n:
        raise ValueError(f"size_splits has {len(sizes)} entries but num_split={n}")
    if sizes.count(-1) > 1:
        raise ValueError(f"size_splits may hold at most one -1, got {sizes}")
    if -1 in sizes and dims[axis] is not None and None not in sizes:
        rest = sum(s for s in sizes if s != -1)
        if rest > dims[axis]:
            raise ValueError(f"size_splits {sizes} add up to more than dimension {axis} of {x.shape}")
        sizes = [dims[axis] - rest if s == -1 else s for s in sizes]
    if None not in sizes and -1 not in sizes and dims[axis] is not None and sum(sizes) != dims[axis]:
        raise ValueError(f"size_splits {sizes} must add up to dimension {axis} of {x.shape}")
    return [(x.dtype, TensorShape(dims[:axis] + [None if s == -1 else s] + dims[axis + 1:])) for s in sizes]


@SplitV.kernel
def _split_v_kernel(op, device):
    n = op.get_attr("num_split")

    def split_v(x, sizes, axis):
        axis = int(axis)
        sizes = [int(s) for s in np.reshape(sizes, -1)]
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.shape[axis] - sum(s for s in sizes if s != -1)
        if sum(sizes) != x.shape[axis] or min(sizes, default=0) < 0:
            raise ValueError(f"size_splits {sizes} do not split dimension {axis} of size {x.shape[axis]}")
        return np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    return _n_outputs(n, split_v)


@SplitV.gradient
def _split_v_grad(op, *grads):
    return (concat(list(grads), op.inputs[2]), None, None)


def split(value, num_or_size_splits, axis=0, num=None, name="split"):
    """`tf.split`: `value` cut along `axis` into `num_or_size_splits` equal pieces, or pieces of the
    given sizes (one size may be -1). Returns a list of tensors."""
    value = convert_to_tensor(value)
    axis_t = _int_tensor(axis)
    if isinstance(num_or_size_splits, (int, np.integer)) or (
            isinstance(num_or_size_splits, Tensor) and num_or_size_splits.shape.ndims == 0):
        n = static_int(num_or_size_splits) if isinstance(num_or_size_splits, Tensor) else int(num_or_size_splits)
        if n is None:
            raise ValueError("num_or_size_splits as a scalar tensor must be a constant")
        return _apply_multi("Split", [axis_t, value], {"num_split": n, "T": value.dtype}, name=name)
    sizes_t = _int_tensor(num_or_size_splits)
    if num is None:
        if sizes_t.shape.ndims != 1 or sizes_t.shape[0].value is None:
            raise ValueError(f"Cannot infer num from shape {sizes_t.shape}")
        num = sizes_t.shape[0].value
    return _apply_multi("SplitV", [value, sizes_t, axis_t], {"num_split": int(num), "T": value.dtype,
                                                             "Tlen": sizes_t.dtype}, name=name)


# -- Slice -----------------------------------------------------------------------------------------

Slice = define_op("Slice")


@Slice.shape_fn
def _slice_shape(op):
    x, begin_t, size_t = op.inputs
    rank = x.shape.ndims
    for t in (begin_t, size_t):
        if t.shape.ndims == 1 and t.shape[0].value is not None:
            if rank is not None and t.shape[0].value != rank:
                raise ValueError(f"Slice begin and size must have {rank} entries for input of shape {x.shape}")
            rank = t.shape[0].value
    if rank is None:
        return [(x.dtype, unknown_shape())]
    begin, sizes = partial_value(begin_t), partial_value(size_t)
    begin = begin if isinstance(begin, list) else [None] * rank
    sizes = sizes if isinstance(sizes, list) else [None] * rank
    dims = x.shape.as_list() if x.shape.ndims is not None else [None] * rank
    out = []
    for d, b, s in zip(dims, begin, sizes, strict=True):
        if b is not None and (b < 0 or (d is not None and b > d)):
            raise ValueError(f"Slice begin {begin} is out of bounds for shape {x.shape}")
        if s is not None and s != -1 and (s < 0 or (d is not None and b is not None and b + s > d)):
            raise ValueError(f"Slice size {sizes} with begin {begin} is out of bounds for shape {x.shape}")
        if s == -1:
            out.append(None if d is None or b is None else d - b)
        else:
            out.append(s)
    return [(x.dtype, TensorShape(out))]


@Slice.kernel
def _slice_kernel(op, device):
    def slice_values(x, begin, size):
        index = []
        for d, b, s in zip(x.shape, begin.tolist(), size.tolist(), strict=True):
            end = d if s == -1 else b + s
            if b < 0 or end > d or end < b:
                raise ValueError(f"Slice begin {begin.tolist()} and size {size.tolist()} are out of bounds "
                                 f"for shape {list(x.shape)}")
            index.append(builtins.slice(b, end))
        return x[tuple(index)]
    return slice_values


@Slice.gradient
def _slice_grad(op, grad):
    x, begin_t, _ = op.inputs
    out = op.outputs[0]
    begin = static_value(begin_t)
    if begin is not None and x.shape.is_fully_defined() and out.shape.is_fully_defined():
        before = [int(b) for b in begin]
        after = [d - b - s for d, b, s in zip(x.shape.as_list(), before, out.shape.as_list(), strict=True)]
        paddings = constant(list(zip(before, after, strict=True)), dtype=dtypes.int32)
    else:
        math_ops = _math()
        begin_t = cast(begin_t, dtypes.int32)
        column = stack([rank(x), 1])
        after = math_ops.subtract(math_ops.subtract(shape(x), shape(out)), begin_t)
        paddings = concat([reshape(begin_t, column), reshape(after, column)], 1)
    dx = pad(grad, paddings)
    dx.set_shape(x.shape)
    return (dx, None, None)


def slice(input_, begin, size, name=None):  # noqa: A001 - TF's name
    """`tf.slice`: the block of `input_` that starts at `begin` and has shape `size` (-1: to the end)."""
    input_ = convert_to_tensor(input_)
    begin_t, size_t = _int_tensor(begin), _int_tensor(size)
    if begin_t.dtype is not size_t.dtype:
        begin_t, size_t = cast(begin_t, dtypes.int64), cast(size_t, dtypes.int64)
    return apply_op("Slice", [input_, begin_t, size_t], {"T": input_.dtype, "Index": begin_t.dtype},
                    name=name or "Slice")


# -- StridedSlice and Tensor.__getitem__ -------------------------------------------------------------

_MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")


def _strided_index(begin, end, strides, begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_axis_mask):
    """The NumPy basic index equal to a StridedSlice spec (TF's masks map one to one onto it)."""
    index = []
    seen_ellipsis = False
    for i, (b, e, s) in enumerate(zip(np.reshape(begin, -1).tolist(), np.reshape(end, -1).tolist(),
                                      np.reshape(strides, -1).tolist(), strict=True)):
        bit = 1 << i
        if ellipsis_mask & bit:
            if seen_ellipsis:
                raise ValueError("Multiple ellipses in a slice spec are not allowed")
            seen_ellipsis = True
            index.append(Ellipsis)
        elif new_axis_mask & bit:
            index.append(None)
        elif shrink_axis_mask & bit:
            index.append(b)
        else:
            if s == 0:
                raise ValueError("strides must be non-zero")
            index.append(builtins.slice(None if begin_mask & bit else b, None if end_mask & bit else e, s))
    return tuple(index)


def _strided_slice_static_shape(in_shape, begin, end, strides, n, masks):
    """The static result shape of a StridedSlice; begin/end/strides are lists with None where unknown."""
    begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_mask = masks
    rank = in_shape.ndims
    if rank is None or n is None:
        return unknown_shape()
    dims = in_shape.as_list()
    kinds = []
    for i in range(n):
        bit = 1 << i
        kinds.append("..." if ellipsis_mask & bit else "new" if new_axis_mask & bit else
                     "int" if shrink_mask & bit else "slice")
    if kinds.count("...") > 1:
        raise ValueError("Multiple ellipses in a slice spec are not allowed")
    consumed = sum(k in ("int", "slice") for k in kinds)
    if consumed > rank:
        raise ValueError(f"Index out of range: slice spec of {consumed} dimensions for a tensor of shape "
                         f"{in_shape}")
    out, at = [], 0
    for i, kind in enumerate(kinds):
        if kind == "...":
            out.extend(dims[at:at + rank - consumed])
            at += rank - consumed
            continue
        if kind == "new":
            out.append(1)
            continue
        d = dims[at]
        at += 1
        b, e, s = begin[i], end[i], strides[i]
        if kind == "int":
            if b is not None and d is not None and not -d <= b < d:
                raise ValueError(f"slice index {b} of dimension {at - 1} out of bounds for shape {in_shape}")
            continue
        if s == 0:
            raise ValueError("strides must be non-zero")
        b_known = bool(begin_mask & (1 << i)) or b is not None
        e_known = bool(end_mask & (1 << i)) or e is not None
        b = None if begin_mask & (1 << i) else b
        e = None if end_mask & (1 << i) else e
        if s is not None and d is not None and b_known and e_known:
            out.append(len(range(*builtins.slice(b, e, s).indices(d))))
        elif s in (1, -1) and b is None and e is None and b_known and e_known:
            out.append(d)
        else:
            out.append(None)
    out.extend(dims[at:])
    return TensorShape(out)


def _spec_values(t):
    value = partial_value(t)
    n = t.shape[0].value if t.shape.ndims == 1 else None
    if isinstance(value, list):
        return value, len(value)
    return ([None] * n if n is not None else None), n


StridedSlice = define_op("StridedSlice")


@StridedSlice.shape_fn
def _strided_slice_shape(op):
    x, begin_t, end_t, strides_t = op.inputs
    (begin, n), (end, _), (strides, _) = (_spec_values(t) for t in (begin_t, end_t, strides_t))
    masks = [op.get_attr(m) for m in _MASKS]
    if n is None or end is None or strides is None:
        return [(x.dtype, unknown_shape())]
    return [(x.dtype, _strided_slice_static_shape(x.shape, begin, end, strides, n, masks))]


def _static_spec(op):
    """(begin, end, strides) Const arrays of a StridedSlice-like op, or None; the index built from them."""
    spec = tuple(static_value(t) for t in op.inputs[1:4])
    if any(v is None for v in spec):
        return None, None
    return spec, _strided_index(*spec, *(op.get_attr(m) for m in _MASKS))


def _as_array(value):
    return value if value.__class__ is np.ndarray else np.asarray(value)


@StridedSlice.kernel
def _strided_slice_kernel(op, device):
    masks = tuple(op.get_attr(m) for m in _MASKS)
    spec, static_index = _static_spec(op)

    def strided_slice_values(x, begin, end, strides):
        # A Const hands out the same array every run, so a precomputed index stays valid for it.
        if spec is not None and begin is spec[0] and end is spec[1] and strides is spec[2]:
            return _as_array(x[static_index])
        return _as_array(x[_strided_index(begin, end, strides, *masks)])
    return strided_slice_values


@StridedSlice.gradient
def _strided_slice_grad(op, grad):
    x, begin, end, strides = op.inputs
    x_shape = _shape_of(x) if begin.dtype is dtypes.int32 else shape(x, out_type=begin.dtype)
    attrs = {m: op.get_attr(m) for m in _MASKS}
    attrs.update(T=grad.dtype, Index=begin.dtype)
    dx = apply_op("StridedSliceGrad", [x_shape, begin, end, strides, grad], attrs, name="StridedSliceGrad")
    return (dx, None, None, None)


StridedSliceGrad = define_op("StridedSliceGrad")


@StridedSliceGrad.shape_fn
def _strided_slice_grad_shape(op):
    return [(op.inputs[4].dtype, constant_value_as_shape(op.inputs[0]))]


@StridedSliceGrad.kernel
def _strided_slice_grad_kernel(op, device):
    masks = tuple(op.get_attr(m) for m in _MASKS)
    spec, static_index = _static_spec(op)

    def scatter(x_shape, begin, end, strides, dy):
        if spec is not None and begin is spec[0] and end is spec[1] and strides is spec[2]:
            index = static_index
        else:
            index = _strided_index(begin, end, strides, *masks)
        out = np.zeros(tuple(x_shape), dtype=dy.dtype)
        out[index] = dy  # a strided slice touches each element at most once
        return out
    return scatter


@StridedSliceGrad.gradient
def _strided_slice_grad_grad(op, grad):
    _, begin, end, strides, _ = op.inputs
    masks = {m: op.get_attr(m) for m in _MASKS}
    return (None, None, None, None, strided_slice(grad, begin, end, strides, **masks))


def strided_slice(input_, begin, end, strides=None, begin_mask=0, end_mask=0, ellipsis_mask=0,
                  new_axis_mask=0, shrink_axis_mask=0, var=None, name=None):
    """`tf.strided_slice`: the NumPy-style slice `input_[begin:end:strides]`, per dimension.

    Bit i of a mask applies to entry i of the spec: `begin_mask`/`end_mask` ignore that begin/end
    (the widest range), `ellipsis_mask` marks `...`, `new_axis_mask` inserts a size-1 dimension,
    `shrink_axis_mask` takes index `begin[i]` and drops the dimension.
    """
    input_ = convert_to_tensor(input_)
    begin_t, end_t = _int_tensor(begin), _int_tensor(end)
    strides_t = _int_tensor(strides) if strides is not None else \
        ones_like(begin_t) if not begin_t.shape.is_fully_defined() else \
        constant(np.ones(begin_t.shape.as_list(), dtype=begin_t.dtype.as_numpy_dtype), dtype=begin_t.dtype)
    attrs = {"begin_mask": int(begin_mask), "end_mask": int(end_mask), "ellipsis_mask": int(ellipsis_mask),
             "new_axis_mask": int(new_axis_mask), "shrink_axis_mask": int(shrink_axis_mask),
             "T": input_.dtype, "Index": begin_t.dtype}
    return apply_op("StridedSlice", [input_, begin_t, end_t, strides_t], attrs, name=name or "StridedSlice")


def _index_value(value):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Booleans are not valid tensor indices, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, Tensor) and value.dtype in (dtypes.int32, dtypes.int64) and value.shape.ndims in (0, None):
        return value
    raise TypeError("Only integers, slices (`:`), ellipsis (`...`), tf.newaxis (`None`) and scalar "
                    f"tf.int32/tf.int64 tensors are valid indices, got {value!r}")


def _pack_spec(values, name):
    if not any(isinstance(v, Tensor) for v in values):
        return _int_tensor(values, name=name)
    dtype = next(v.dtype for v in values if isinstance(v, Tensor))
    parts = [cast(v, dtype) if isinstance(v, Tensor) else constant(v, dtype=dtype) for v in values]
    return stack(parts, name=name)


def _slice_helper(tensor, slice_spec, var=None):
    """`tensor[slice_spec]`: NumPy basic indexing (ints, slices with steps, `...`, `tf.newaxis`,
    scalar int tensors) as one StridedSlice op."""
    if not isinstance(slice_spec, tuple):
        slice_spec = (slice_spec,)
    begin, end, strides = [], [], []
    masks = dict.fromkeys(_MASKS, 0)
    for i, item in enumerate(slice_spec):
        bit = 1 << i
        if isinstance(item, builtins.slice):
            for part, values, mask in ((item.start, begin, "begin_mask"), (item.stop, end, "end_mask")):
                if part is None:
                    values.append(0)
                    masks[mask] |= bit
                else:
                    values.append(_index_value(part))
            step = 1 if item.step is None else _index_value(item.step)
            if isinstance(step, int) and step == 0:
                raise ValueError("slice step cannot be zero")
            strides.append(step)
        elif item is Ellipsis:
            if masks["ellipsis_mask"]:
                raise ValueError("Multiple ellipses in a slice spec are not allowed")
            begin.append(0), end.append(0), strides.append(1)
            masks["ellipsis_mask"] |= bit
        elif item is None:
            begin.append(0), end.append(0), strides.append(1)
            masks["new_axis_mask"] |= bit
        else:
            index = _index_value(item)
            begin.append(index)
            end.append(index + 1 if isinstance(index, int) else index)  # ignored for a shrunk axis
            strides.append(1)
            masks["shrink_axis_mask"] |= bit
    with name_scope(None, "strided_slice", [tensor]) as scope:
        begin_t, end_t, strides_t = (_pack_spec(v, n) for v, n in ((begin, "stack"), (end, "stack_1"),
                                                                   (strides, "stack_2")))
        dtype = begin_t.dtype
        if end_t.dtype is not dtype or strides_t.dtype is not dtype:
            begin_t, end_t, strides_t = (cast(t, dtypes.int64) for t in (begin_t, end_t, strides_t))
        return strided_slice(tensor, begin_t, end_t, strides_t, name=scope, **masks)


Tensor.__getitem__ = _slice_helper


# -- Gather, GatherNd, ScatterNd ---------------------------------------------------------------------

GatherV2 = define_op("GatherV2")


@GatherV2.shape_fn
def _gather_shape(op):
    params, indices, axis_t = op.inputs
    if op.get_attr("batch_dims"):
        raise ValueError("GatherV2 with batch_dims != 0 is not supported")
    if not indices.dtype.is_integer:
        raise TypeError(f"Gather indices must be int32 or int64, got {indices.dtype.name}")
    axis = static_int(axis_t)
    p_rank, i_rank = params.shape.ndims, indices.shape.ndims
    if p_rank == 0:
        raise ValueError("Gather params must be at least a vector")
    if axis is None or p_rank is None or i_rank is None:
        out_rank = None if p_rank is None or i_rank is None else p_rank + i_rank - 1
        return [(params.dtype, unknown_shape(out_rank))]
    axis = _norm_axis(axis, p_rank, "Gather axis")
    dims = params.shape.as_list()
    return [(params.dtype, TensorShape(dims[:axis] + indices.shape.as_list() + dims[axis + 1:]))]


def _check_indices(indices, limit, what):
    if indices.size:
        low, high = indices.min(), indices.max()
        if low < 0 or high >= limit:
            bad = low if low < 0 else high
            raise IndexError(f"{what} index {bad} is not in [0, {limit})")


@GatherV2.kernel
def _gather_kernel(op, device):
    def gather_values(params, indices, axis):
        axis = int(axis) % params.ndim
        _check_indices(indices, params.shape[axis], "Gather")
        return np.take(params, indices, axis=axis)
    return gather_values


@GatherV2.gradient
def _gather_grad(op, grad):
    """Axis 0: IndexedSlices (rows of params), as TF returns; other axes: a dense tensor."""
    params, indices, axis_t = op.inputs
    grad = convert_to_tensor(grad)
    axis = static_int(axis_t)
    p_rank = params.shape.ndims
    if axis is None or (p_rank is None and axis != 0):
        raise ValueError(f"The gradient of {op.name} needs a constant axis, and params of known rank "
                         "unless the axis is 0")
    axis = axis % p_rank if p_rank else 0
    params_shape = _shape_of(params)
    inner = params.shape[axis + 1:]
    inner_t = inner.as_list() if inner.is_fully_defined() else params_shape[axis + 1:]
    flat_indices = indices if indices.shape.ndims == 1 else reshape(indices, [-1])
    if axis == 0:
        if indices.shape.ndims == 1:
            values = grad
        else:
            n = indices.shape.num_elements()
            lead = [n] if n is not None else expand_dims(size(indices), 0)
            values = reshape(grad, _concat_dims([lead, inner_t]))
        return (IndexedSlices(values, flat_indices, params_shape), None, None)
    # Other axes: move the gathered axis to the front, sum rows by index, move it back.
    outer = params.shape[:axis]
    outer_t = outer.as_list() if outer.is_fully_defined() else params_shape[:axis]
    values = reshape(grad, _concat_dims([outer_t, [-1], inner_t]))
    perm = [axis] + list(range(axis)) + list(range(axis + 1, p_rank))
    n_rows = params.shape[axis].value
    moved = unsorted_segment_sum(transpose(values, perm), flat_indices,
                                 n_rows if n_rows is not None else params_shape[axis])
    return (transpose(moved, _inverse_permutation(perm)), None, None)


# `Gather` is GatherV2 at axis 0 without the axis input; TF1 graphs written before 1.3 hold it.
Gather = define_op("Gather")


@Gather.shape_fn
def _legacy_gather_shape(op):
    params, indices = op.inputs
    if params.shape.ndims is None or indices.shape.ndims is None:
        return [(params.dtype, unknown_shape())]
    if params.shape.ndims == 0:
        raise ValueError("Gather params must be at least a vector")
    return [(params.dtype, indices.shape.concatenate(params.shape[1:]))]


@Gather.kernel
def _legacy_gather_kernel(op, device):
    def gather_rows(params, indices):
        _check_indices(indices, params.shape[0], "Gather")
        return np.take(params, indices, axis=0)
    return gather_rows


@Gather.gradient
def _legacy_gather_grad(op, grad):
    params, indices = op.inputs
    inner = params.shape[1:]
    inner_t = inner.as_list() if inner.is_fully_defined() else _shape_of(params)[1:]
    if indices.shape.ndims != 1:
        n = indices.shape.num_elements()
        grad = reshape(grad, _concat_dims([[n] if n is not None else expand_dims(size(indices), 0), inner_t]))
        indices = reshape(indices, [-1])
    return (IndexedSlices(convert_to_tensor(grad), indices, _shape_of(params)), None)


def _concat_dims(parts):
    """A shape vector from parts that are Python int lists or int32 tensors."""
    if all(isinstance(p, list) for p in parts):
        return [d for p in parts for d in p]
    return concat([_int_tensor(p) if isinstance(p, list) else p for p in parts], 0)


def gather(params, indices, validate_indices=None, name=None, axis=0, batch_dims=0):
    """`tf.gather`: the slices of `params` along `axis` at `indices` (output shape
    params.shape[:axis] + indices.shape + params.shape[axis+1:])."""
    params = convert_to_tensor(params)
    indices = _int_tensor(indices) if not isinstance(indices, Tensor) else indices
    axis_t = _int_tensor(axis)
    return apply_op("GatherV2", [params, indices, axis_t],
                    {"batch_dims": int(batch_dims), "Tparams": params.dtype, "Tindices": indices.dtype,
                     "Taxis": axis_t.dtype}, name=name or "GatherV2")


GatherNd = define_op("GatherNd")


@GatherNd.shape_fn
def _gather_nd_shape(op):
    params, indices = op.inputs
    if indices.shape.ndims is None or params.shape.ndims is None:
        return [(params.dtype, unknown_shape())]
    if indices.shape.ndims == 0:
        raise ValueError("GatherNd indices must be at least a vector")
    k = indices.shape[-1].value
    if k is None:
        return [(params.dtype, unknown_shape())]
    if k > params.shape.ndims:
        raise ValueError(f"GatherNd index depth {k} exceeds the rank of params {params.shape}")
    return [(params.dtype, TensorShape(indices.shape.as_list()[:-1] + params.shape.as_list()[k:]))]


def _nd_index(indices, shape_prefix):
    for axis, limit in enumerate(shape_prefix):
        _check_indices(indices[..., axis], limit, "GatherNd/ScatterNd")
    return tuple(np.moveaxis(indices, -1, 0))


@GatherNd.kernel
def _gather_nd_kernel(op, device):
    def gather_nd_values(params, indices):
        k = indices.shape[-1]
        if k == 0:
            return np.broadcast_to(params, indices.shape[:-1] + params.shape).copy()
        return _as_array(params[_nd_index(indices, params.shape[:k])])
    return gather_nd_values


@GatherNd.gradient
def _gather_nd_grad(op, grad):
    params, indices = op.inputs
    return (scatter_nd(indices, grad, _shape_of(params)), None)


def gather_nd(params, indices, name=None, batch_dims=0):
    """`tf.gather_nd`: params[indices[..., :]], each innermost index vector addressing a slice of params."""
    if batch_dims:
        raise NotImplementedError("gather_nd with batch_dims is not supported")
    params = convert_to_tensor(params)
    indices = indices if isinstance(indices, Tensor) else _int_tensor(indices)
    return apply_op("GatherNd", [params, indices], {"Tparams": params.dtype, "Tindices": indices.dtype},
                    name=name or "GatherNd")


ScatterNd = define_op("ScatterNd")


@ScatterNd.shape_fn
def _scatter_nd_shape(op):
    indices, updates, shape_t = op.inputs
    return [(updates.dtype, constant_value_as_shape(shape_t))]


@ScatterNd.kernel
def _scatter_nd_kernel(op, device):
    def scatter_nd_values(indices, updates, out_shape):
        out_shape = tuple(int(d) for d in out_shape)
        out = np.zeros(out_shape, dtype=updates.dtype)
        k = indices.shape[-1]
        flat = indices.reshape(-1, k)
        np.add.at(out, _nd_index(flat, out_shape[:k]), updates.reshape((flat.shape[0],) + out_shape[k:]))
        return out
    return scatter_nd_values


@ScatterNd.gradient
def _scatter_nd_grad(op, grad):
    indices = op.inputs[0]
    return (None, gather_nd(grad, indices), None)


def scatter_nd(indices, updates, shape, name=None):  # noqa: F811 - TF's argument name
    """`tf.scatter_nd`: zeros of `shape` with `updates` added at `indices` (repeated indices add up)."""
    updates = convert_to_tensor(updates)
    indices = indices if isinstance(indices, Tensor) else _int_tensor(indices)
    shape_t = _dims_tensor(shape) if not isinstance(shape, Tensor) else shape
    return apply_op("ScatterNd", [indices, updates, shape_t], {"T": updates.dtype, "Tindices": indices.dtype},
                    name=name or "ScatterNd")


# -- Tile ------------------------------------------------------------------------------------------

Tile = define_op("Tile")


@Tile.shape_fn
def _tile_shape(op):
    x, multiples_t = op.inputs
    multiples = partial_value(multiples_t)
    rank = x.shape.ndims
    if rank is None:
        return [(x.dtype, unknown_shape(len(multiples) if isinstance(multiples, list) else None))]
    if not isinstance(multiples, list):
        return [(x.dtype, unknown_shape(rank))]
    if len(multiples) != rank:
        raise ValueError(f"Tile multiples {multiples} must have {rank} entries for input of shape {x.shape}")
    return [(x.dtype, TensorShape([None if d is None or m is None else d * m
                                   for d, m in zip(x.shape.as_list(), multiples, strict=True)]))]


@Tile.kernel
def _tile_kernel(op, device):
    def tile_values(x, multiples):
        if len(multiples) != x.ndim:
            raise ValueError(f"Tile multiples {multiples.tolist()} must have {x.ndim} entries")
        return np.tile(x, multiples)
    return tile_values


@Tile.gradient
def _tile_grad(op, grad):
    x, multiples = op.inputs
    m = static_value(multiples)
    if m is not None and x.shape.is_fully_defined():
        split_shape = [int(d) for pair in zip(np.reshape(m, -1).tolist(), x.shape.as_list(), strict=True)
                       for d in pair]
    else:
        split_shape = reshape(transpose(stack([cast(multiples, dtypes.int32), shape(x)])), [-1])
    if x.shape.ndims is not None:
        axes = list(range(0, 2 * x.shape.ndims, 2))
    else:
        axes = apply_op("Range", [constant(0), size(split_shape), constant(2)])
    dx = _math().reduce_sum(reshape(grad, split_shape), axis=axes)
    dx.set_shape(x.shape)
    return (dx, None)


def tile(input, multiples, name=None):  # noqa: A002
    """`tf.tile`: `input` repeated `multiples[i]` times along dimension i."""
    input = convert_to_tensor(input)
    multiples_t = _int_tensor(multiples)
    return apply_op("Tile", [input, multiples_t], {"T": input.dtype, "Tmultiples": multiples_t.dtype},
                    name=name or "Tile")


# -- Pad, PadV2, MirrorPad ---------------------------------------------------------------------------

def _pad_shape(op):
    x, paddings_t = op.inputs[:2]
    rank = x.shape.ndims
    if paddings_t.shape.ndims is not None:
        p_shape = paddings_t.shape.with_rank(2)
        if p_shape[1].value not in (None, 2):
            raise ValueError(f"paddings must have shape [n, 2], got {paddings_t.shape}")
        if rank is None:
            rank = p_shape[0].value
        elif p_shape[0].value not in (None, rank):
            raise ValueError(f"paddings of shape {paddings_t.shape} do not match input rank {rank}")
    paddings = static_value(paddings_t)
    if rank is None:
        return [(x.dtype, unknown_shape())]
    if paddings is None:
        return [(x.dtype, unknown_shape(rank))]
    paddings = np.asarray(paddings).reshape(rank, 2)
    if (paddings < 0).any():
        raise ValueError(f"paddings must be non-negative, got {paddings.tolist()}")
    dims = x.shape.as_list() if x.shape.ndims is not None else [None] * rank
    if op.type in ("MirrorPad", "MirrorPadGrad"):
        offset = 0 if op.get_attr("mode") == "REFLECT" else 1
        for d, (lo, hi) in zip(dims, paddings.tolist(), strict=True):
            if op.type == "MirrorPad" and d is not None and max(lo, hi) > d - 1 + offset:
                raise ValueError(f"paddings {paddings.tolist()} are too large for {op.get_attr('mode')} "
                                 f"mode and input shape {x.shape}")
        if op.type == "MirrorPadGrad":
            return [(x.dtype, TensorShape([None if d is None else d - lo - hi
                                           for d, (lo, hi) in zip(dims, paddings.tolist(), strict=True)]))]
    return [(x.dtype, TensorShape([None if d is None else d + lo + hi
                                   for d, (lo, hi) in zip(dims, paddings.tolist(), strict=True)]))]


def _check_paddings(x, paddings):
    paddings = np.asarray(paddings).reshape(-1, 2)
    if paddings.shape[0] != x.ndim or (paddings < 0).any():
        raise ValueError(f"paddings {paddings.tolist()} must be non-negative with one row per dimension "
                         f"of the input (shape {list(x.shape)})")
    return paddings.tolist()


def _pad_kernel(op, device):
    def pad_values(x, paddings, constant_values=0):
        paddings = _check_paddings(x, paddings)
        out = np.full([d + lo + hi for d, (lo, hi) in zip(x.shape, paddings, strict=True)],
                      constant_values, dtype=x.dtype)
        out[tuple(builtins.slice(lo, lo + d) for d, (lo, _) in zip(x.shape, paddings, strict=True))] = x
        return out
    return pad_values


def _pad_grad(op, grad):
    x, paddings = op.inputs[:2]
    value = static_value(paddings)
    if value is not None:
        begin = constant(np.asarray(value).reshape(-1, 2)[:, 0].astype(np.int32), dtype=dtypes.int32)
    else:
        begin = reshape(slice(cast(paddings, dtypes.int32), [0, 0], stack([rank(x), 1])), [-1])
    return (slice(grad, begin, _shape_of(x)),) + (None,) * (len(op.inputs) - 1)


Pad = define_op("Pad")
PadV2 = define_op("PadV2")
for _pad_def in (Pad, PadV2):
    _pad_def.shape_fn(_pad_shape)
    _pad_def.kernel(_pad_kernel)
    _pad_def.gradient(_pad_grad)


MirrorPad = define_op("MirrorPad")
MirrorPad.shape_fn(_pad_shape)


@MirrorPad.kernel
def _mirror_pad_kernel(op, device):
    mode = op.get_attr("mode")
    np_mode, offset = {"REFLECT": ("reflect", 0), "SYMMETRIC": ("symmetric", 1)}[mode]

    def mirror_pad_values(x, paddings):
        paddings = _check_paddings(x, paddings)
        for d, (lo, hi) in zip(x.shape, paddings, strict=True):
            if max(lo, hi) > d - 1 + offset:
                raise ValueError(f"paddings {paddings} are too large for {mode} mode and shape {list(x.shape)}")
        return np.pad(x, paddings, mode=np_mode)
    return mirror_pad_values


@MirrorPad.gradient
def _mirror_pad_grad(op, grad):
    x, paddings = op.inputs
    dx = apply_op("MirrorPadGrad", [convert_to_tensor(grad), paddings],
                  {"mode": op.get_attr("mode"), "T": grad.dtype, "Tpaddings": paddings.dtype}, name="MirrorPadGrad")
    return (dx, None)


MirrorPadGrad = define_op("MirrorPadGrad")
MirrorPadGrad.shape_fn(_pad_shape)


@MirrorPadGrad.kernel
def _mirror_pad_grad_kernel(op, device):
    offset = 0 if op.get_attr("mode") == "REFLECT" else 1

    def fold(g, paddings):
        """Adds each mirrored element of the padded gradient back onto the element it copies."""
        paddings = np.asarray(paddings).reshape(-1, 2).tolist()
        for axis, (lo, hi) in enumerate(paddings):
            n = g.shape[axis] - lo - hi
            g = np.moveaxis(g, axis, 0)
            out = g[lo:lo + n].copy()
            if lo:
                out[1 - offset:lo + 1 - offset] += g[lo - 1::-1] if lo else 0
            if hi:
                out[n - 1 - hi + offset:n - 1 + offset] += g[lo + n:lo + n + hi][::-1]
            g = np.moveaxis(out, 0, axis)
        return g
    return fold


@MirrorPadGrad.gradient
def _mirror_pad_grad_grad(op, grad):
    return (pad(grad, op.inputs[1], mode=op.get_attr("mode")), None)


def pad(tensor, paddings, mode="CONSTANT", name=None, constant_values=0):  # noqa: F811
    """`tf.pad`: `tensor` padded by paddings[i] = [before, after] along dimension i.

    mode CONSTANT fills with `constant_values`; REFLECT and SYMMETRIC mirror the edges
    (without and with the edge element).
    """
    tensor = convert_to_tensor(tensor)
    paddings_t = _int_tensor(paddings)
    mode = mode.upper()
    attrs = {"T": tensor.dtype, "Tpaddings": paddings_t.dtype}
    if mode == "CONSTANT":
        if not isinstance(constant_values, Tensor) and np.all(np.asarray(constant_values) == 0):
            return apply_op("Pad", [tensor, paddings_t], attrs, name=name or "Pad")
        value = convert_to_tensor_like(constant_values, tensor)
        return apply_op("PadV2", [tensor, paddings_t, value], attrs, name=name or "PadV2")
    if mode not in ("REFLECT", "SYMMETRIC"):
        raise ValueError(f"Unknown padding mode: {mode}")
    return apply_op("MirrorPad", [tensor, paddings_t], dict(attrs, mode=mode), name=name or "MirrorPad")


# -- OneHot ----------------------------------------------------------------------------------------

OneHot = define_op("OneHot", differentiable=False)


@OneHot.shape_fn
def _one_hot_shape(op):
    indices, depth_t, on_value, off_value = op.inputs
    if on_value.dtype is not off_value.dtype:
        raise TypeError(f"on_value ({on_value.dtype.name}) and off_value ({off_value.dtype.name}) "
                        "must have the same dtype")
    depth = static_int(depth_t)
    if depth is not None and depth < 0:
        raise ValueError(f"depth must be non-negative, got {depth}")
    axis = op.get_attr("axis")
    if indices.shape.ndims is None:
        return [(on_value.dtype, unknown_shape())]
    dims = indices.shape.as_list()
    if not -1 <= axis <= len(dims):
        raise ValueError(f"OneHot axis {axis} must be in [-1, {len(dims)}]")
    axis = len(dims) if axis == -1 else axis
    return [(on_value.dtype, TensorShape(dims[:axis] + [depth] + dims[axis:]))]


@OneHot.kernel
def _one_hot_kernel(op, device):
    axis = op.get_attr("axis")
    out_dtype = op.outputs[0].dtype.as_numpy_dtype

    def one_hot_values(indices, depth, on_value, off_value):
        hot = np.expand_dims(indices, -1) == np.arange(int(depth))
        out = np.where(hot, on_value, off_value).astype(out_dtype, copy=False)
        return out if axis in (-1, indices.ndim) else np.moveaxis(out, -1, axis)
    return one_hot_values


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    """`tf.one_hot`: `on_value` where the position along the new `axis` (default last) equals the
    index, else `off_value` (indices outside [0, depth) give all `off_value`)."""
    indices = convert_to_tensor(indices)
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
    else:
        known = next((v for v in (on_value, off_value) if v is not None), None)
        dtype = known.dtype if isinstance(known, Tensor) else \
            dtypes.dtype_of_value(known) if known is not None else dtypes.float32
    with name_scope(name, "one_hot", [indices]) as scope:
        on = convert_to_tensor(1 if on_value is None else on_value, dtype=dtype, name="on_value")
        off = convert_to_tensor(0 if off_value is None else off_value, dtype=dtype, name="off_value")
        depth_t = _int_tensor(depth, name="depth")
        return apply_op("OneHot", [indices, depth_t, on, off],
                        {"axis": -1 if axis is None else int(axis), "T": dtype, "TI": indices.dtype}, name=scope)


# -- Select, SelectV2, Where -----------------------------------------------------------------------

Select = define_op("Select")


@Select.shape_fn
def _select_shape(op):
    cond, x, y = op.inputs
    if cond.dtype is not dtypes.bool:
        raise TypeError(f"Select condition must be bool, got {cond.dtype.name}")
    if x.dtype is not y.dtype:
        raise TypeError(f"Select branches must share one dtype, got {x.dtype.name} and {y.dtype.name}")
    if not x.shape.is_compatible_with(y.shape):
        raise ValueError(f"Select branches must have the same shape, got {x.shape} and {y.shape}")
    out = x.shape.merge_with(y.shape)
    c_rank, rank = cond.shape.ndims, out.ndims
    if c_rank is not None and rank is not None:
        if c_rank == rank:
            out = out.merge_with(cond.shape)
        elif c_rank == 1 and rank > 1:
            if not cond.shape[0].is_compatible_with(out[0]):
                raise ValueError(f"Select condition of shape {cond.shape} must match the first dimension "
                                 f"of {out}")
            out = TensorShape([cond.shape[0].merge_with(out[0])] + out.as_list()[1:])
        else:
            raise ValueError(f"Select condition must be a vector or have the shape of the branches "
                             f"({out}), got {cond.shape}")
    return [(x.dtype, out)]


@Select.kernel
def _select_kernel(op, device):
    def select_values(cond, x, y):
        if x.shape != y.shape:
            raise ValueError(f"'then' and 'else' must have the same shape, got {x.shape} and {y.shape}")
        if cond.ndim == 1 and x.ndim > 1:
            if cond.shape[0] != x.shape[0]:
                raise ValueError(f"condition of shape {cond.shape} does not match the first dimension of "
                                 f"{x.shape}")
            cond = cond.reshape((-1,) + (1,) * (x.ndim - 1))
        elif cond.shape != x.shape:
            raise ValueError(f"condition of shape {cond.shape} must have the shape {x.shape} of the branches")
        return np.where(cond, x, y)
    return select_values


@Select.gradient
def _select_grad(op, grad):
    cond = op.inputs[0]
    zeros = zeros_like(grad)
    return (None, where(cond, grad, zeros), where(cond, zeros, grad))


SelectV2 = define_op("SelectV2")


@SelectV2.shape_fn
def _select_v2_shape(op):
    from tensorweave.ops.broadcast import broadcast_static_shape
    cond, x, y = op.inputs
    if cond.dtype is not dtypes.bool:
        raise TypeError(f"SelectV2 condition must be bool, got {cond.dtype.name}")
    if x.dtype is not y.dtype:
        raise TypeError(f"SelectV2 branches must share one dtype, got {x.dtype.name} and {y.dtype.name}")
    return [(x.dtype, broadcast_static_shape(cond.shape, broadcast_static_shape(x.shape, y.shape)))]


SelectV2.kernel(lambda op, device: np.where)


@SelectV2.gradient
def _select_v2_grad(op, grad):
    cond, x, y = op.inputs
    zeros = zeros_like(grad)
    math_ops = _math()
    return (None, math_ops.sum_to(where_v2(cond, grad, zeros), x), math_ops.sum_to(where_v2(cond, zeros, grad), y))


Where = define_op("Where", differentiable=False)


@Where.shape_fn
def _where_shape(op):
    return [(dtypes.int64, TensorShape([None, op.inputs[0].shape.ndims]))]


@Where.kernel
def _where_kernel(op, device):
    return lambda x: np.argwhere(x).astype(np.int64, copy=False)


def _select_branches(x, y):
    if isinstance(x, Tensor) or not isinstance(y, Tensor):
        x = convert_to_tensor(x)
        return x, convert_to_tensor_like(y, x)
    return convert_to_tensor_like(x, y), y


def where(condition, x=None, y=None, name=None):
    """`tf.where` (TF1): with `x` and `y`, elements of `x` where `condition` else `y` (`condition`
    has x's shape, or is a vector choosing whole rows); alone, the int64 coordinates [num_true, rank]
    of the true elements of `condition`."""
    condition = convert_to_tensor(condition)
    if x is None and y is None:
        return apply_op("Where", [condition], {"T": condition.dtype}, name=name or "Where")
    if x is None or y is None:
        raise ValueError("x and y must both be non-None or both be None.")
    x, y = _select_branches(x, y)
    return apply_op("Select", [condition, x, y], {"T": x.dtype}, name=name or "Select")


def where_v2(condition, x=None, y=None, name=None):
    """`tf.where` (v2): like `where`, with `condition`, `x` and `y` broadcast against each other."""
    condition = convert_to_tensor(condition)
    if x is None and y is None:
        return apply_op("Where", [condition], {"T": condition.dtype}, name=name or "Where")
    if x is None or y is None:
        raise ValueError("x and y must both be non-None or both be None.")
    x, y = _select_branches(x, y)
    return apply_op("SelectV2", [condition, x, y], {"T": x.dtype}, name=name or "SelectV2")


# -- UnsortedSegmentSum ------------------------------------------------------------------------------

UnsortedSegmentSum = define_op("UnsortedSegmentSum")


@UnsortedSegmentSum.shape_fn
def _unsorted_segment_sum_shape(op):
    data, ids, num_t = op.inputs
    if not ids.dtype.is_integer:
        raise TypeError(f"segment_ids must be int32 or int64, got {ids.dtype.name}")
    num = static_int(num_t)
    if data.shape.ndims is None or ids.shape.ndims is None:
        return [(data.dtype, unknown_shape())]
    k = ids.shape.ndims
    if not data.shape[:k].is_compatible_with(ids.shape):
        raise ValueError(f"segment_ids shape {ids.shape} must be a prefix of data shape {data.shape}")
    return [(data.dtype, TensorShape([num] + data.shape.as_list()[k:]))]


@UnsortedSegmentSum.kernel
def _unsorted_segment_sum_kernel(op, device):
    def segment_sum(data, ids, num_segments):
        num = int(num_segments)
        flat_ids = np.asarray(ids).reshape(-1)
        inner = data.shape[np.ndim(ids):]
        rows = data.reshape((flat_ids.size, -1) if flat_ids.size else (0, int(np.prod(inner))))
        if flat_ids.size:
            if flat_ids.min() < 0:  # negative ids are dropped, as in TF
                keep = flat_ids >= 0
                flat_ids, rows = flat_ids[keep], rows[keep]
            if flat_ids.size and flat_ids.max() >= num:
                raise ValueError(f"segment_ids value {flat_ids.max()} is out of range [0, {num})")
        out = np.zeros((num, rows.shape[1]), dtype=data.dtype)
        _add_rows(out, flat_ids, rows)
        return out.reshape((num,) + inner)
    return segment_sum


def _add_rows(out, ids, rows):
    """out[ids[j]] += rows[j] for every j, repeated ids adding up."""
    if rows.shape[1] == 1 or ids.size < 32:
        np.add.at(out, ids, rows)
        return
    # Sorting once and summing runs of equal ids is about twice as fast as np.add.at on wide rows.
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    unique, starts = np.unique(sorted_ids, return_index=True)
    out[unique] += np.add.reduceat(rows[order], starts, axis=0)


@UnsortedSegmentSum.gradient
def _unsorted_segment_sum_grad(op, grad):
    """The rows of `grad` at segment_ids; zeros where an id is negative (its data was dropped)."""
    _, ids, _ = op.inputs
    math_ops = _math()
    grad = convert_to_tensor(grad)
    gathered = gather(grad, math_ops.maximum(ids, zeros_like(ids)))
    is_kept = math_ops.greater_equal(ids, constant(0, dtype=ids.dtype))
    if gathered.shape.ndims is not None and ids.shape.ndims is not None:
        mask_shape = _concat_dims([_shape_of(ids) if not ids.shape.is_fully_defined() else ids.shape.as_list(),
                                   [1] * (gathered.shape.ndims - ids.shape.ndims)])
    else:
        extra = math_ops.subtract(rank(gathered), rank(ids))
        mask_shape = concat([shape(ids), fill(expand_dims(extra, 0), 1)], 0)
    return (where_v2(reshape(is_kept, mask_shape), gathered, zeros_like(gathered)), None, None)


def unsorted_segment_sum(data, segment_ids, num_segments, name=None):
    """`tf.unsorted_segment_sum`: output[i] = sum of data[j...] over j with segment_ids[j...] == i.

    Negative ids are dropped; output has shape [num_segments] + data.shape[rank(segment_ids):].
    """
    data = convert_to_tensor(data)
    segment_ids = segment_ids if isinstance(segment_ids, Tensor) else _int_tensor(segment_ids)
    num_t = _int_tensor(num_segments)
    return apply_op("UnsortedSegmentSum", [data, segment_ids, num_t],
                    {"T": data.dtype, "Tindices": segment_ids.dtype, "Tnumsegments": num_t.dtype},
                    name=name or "UnsortedSegmentSum")


# -- BroadcastTo, ReverseV2 --------------------------------------------------------------------------

BroadcastTo = define_op("BroadcastTo")


@BroadcastTo.shape_fn
def _broadcast_to_shape(op):
    x, shape_t = op.inputs
    target = constant_value_as_shape(shape_t)
    if target.ndims is None or x.shape.ndims is None:
        return [(x.dtype, target)]
    out, dims = target.as_list(), x.shape.as_list()
    if len(dims) > len(out):
        raise ValueError(f"Cannot broadcast a tensor of shape {x.shape} to the lower rank shape {target}")
    lead = len(out) - len(dims)
    for i, d in enumerate(dims):
        t = out[lead + i]
        if d is not None and d != 1:
            if t is not None and t != d:
                raise ValueError(f"Cannot broadcast a tensor of shape {x.shape} to shape {target}")
            out[lead + i] = d
    return [(x.dtype, TensorShape(out))]


@BroadcastTo.kernel
def _broadcast_to_kernel(op, device):
    return lambda x, target: np.broadcast_to(x, tuple(int(d) for d in target))


@BroadcastTo.gradient
def _broadcast_to_grad(op, grad):
    return (_math().sum_to(convert_to_tensor(grad), op.inputs[0]), None)


def broadcast_to(input, shape, name=None):  # noqa: A002,F811
    """`tf.broadcast_to`: `input` broadcast (NumPy rules) to `shape`."""
    input = convert_to_tensor(input)
    shape_t = shape if isinstance(shape, Tensor) else _dims_tensor(shape)
    return apply_op("BroadcastTo", [input, shape_t], {"T": input.dtype, "Tidx": shape_t.dtype},
                    name=name or "BroadcastTo")


ReverseV2 = define_op("ReverseV2")


@ReverseV2.shape_fn
def _reverse_shape(op):
    x, axis_t = op.inputs
    axes = static_value(axis_t)
    if axes is not None and x.shape.ndims is not None:
        normalized = [_norm_axis(int(a), x.shape.ndims, "ReverseV2 axis") for a in np.reshape(axes, -1)]
        if len(set(normalized)) != len(normalized):
            raise ValueError(f"ReverseV2 axis {np.reshape(axes, -1).tolist()} names a dimension twice")
    return [(x.dtype, x.shape)]


@ReverseV2.kernel
def _reverse_kernel(op, device):
    return lambda x, axes: np.flip(x, axis=tuple(int(a) for a in np.reshape(axes, -1)))


@ReverseV2.gradient
def _reverse_grad(op, grad):
    return (reverse(grad, op.inputs[1]), None)


def reverse(tensor, axis, name=None):
    """`tf.reverse`: `tensor` with the order of elements reversed along each dimension in `axis`."""
    tensor = convert_to_tensor(tensor)
    axis_t = _int_tensor([axis] if isinstance(axis, (int, np.integer)) else axis)
    return apply_op("ReverseV2", [tensor, axis_t], {"T": tensor.dtype, "Tidx": axis_t.dtype},
                    name=name or "ReverseV2")


reverse_v2 = reverse


# -- derived: boolean_mask, sequence_mask --------------------------------------------------------------

def boolean_mask(tensor, mask, name="boolean_mask", axis=None):
    """`tf.boolean_mask`: the entries of `tensor` where `mask` is true, flattened over the masked
    dimensions (mask's shape must match tensor.shape[axis:axis + rank(mask)])."""
    with name_scope(name, "boolean_mask", [tensor, mask]):
        tensor = convert_to_tensor(tensor, name="tensor")
        mask = convert_to_tensor(mask, name="mask")
        k = mask.shape.ndims
        if k is None:
            raise ValueError("Number of mask dimensions must be specified, even if some dimensions are None. "
                             "E.g. shape=[None] is ok, but shape=None is not.")
        if k == 0:
            raise ValueError("mask cannot be scalar.")
        axis = 0 if axis is None else int(axis)
        t_shape = tensor.shape
        if t_shape.ndims is not None:
            axis = _norm_axis(axis, t_shape.ndims)
            t_shape[axis:axis + k].assert_is_compatible_with(mask.shape)
        dims = t_shape.as_list() if t_shape.ndims is not None else None
        masked = dims[axis:axis + k] if dims is not None else [None]
        lead_size = int(np.prod(masked)) if None not in masked else -1
        if dims is not None and None not in dims[:axis] + dims[axis + k:]:
            flat_shape = dims[:axis] + [lead_size] + dims[axis + k:]
        else:
            full = shape(tensor)
            flat_shape = concat([full[:axis], [lead_size], full[axis + k:]], 0)
        flat = reshape(tensor, flat_shape)
        indices = squeeze(where(reshape(mask, [-1])), axis=[1])
        result = gather(flat, indices, axis=axis)
        if dims is not None:
            result.set_shape(dims[:axis] + [None] + dims[axis + k:])
        return result


def sequence_mask(lengths, maxlen=None, dtype=dtypes.bool, name=None):
    """`tf.sequence_mask`: mask[i..., j] = j < lengths[i...], with j in [0, maxlen)
    (maxlen defaults to max(lengths))."""
    math_ops = _math()
    with name_scope(name, "SequenceMask", [lengths, maxlen]):
        lengths = convert_to_tensor(lengths)
        if maxlen is None:
            maxlen = math_ops.reduce_max(lengths)
        else:
            maxlen = convert_to_tensor(maxlen)
            if maxlen.shape.ndims is not None and maxlen.shape.ndims != 0:
                raise ValueError(f"maxlen must be scalar for sequence_mask, got shape {maxlen.shape}")
        row = apply_op("Range", [constant(0, dtype=maxlen.dtype), maxlen, constant(1, dtype=maxlen.dtype)])
        matrix = cast(expand_dims(lengths, -1), maxlen.dtype)
        result = math_ops.less(row, matrix)
        dtype = dtypes.as_dtype(dtype)
        return result if dtype is dtypes.bool else cast(result, dtype)


# -- ShapeN, IdentityN ---------------------------------------------------------------------------------

ShapeN = define_op("ShapeN", differentiable=False)


@ShapeN.shape_fn
def _shape_n_shape(op):
    out_type = op.get_attr("out_type")
    return [(out_type, TensorShape([t.shape.ndims])) for t in op.inputs]


@ShapeN.kernel
def _shape_n_kernel(op, device):
    out_type = op.get_attr("out_type").as_numpy_dtype
    return _n_outputs(len(op.inputs), lambda *xs: [np.array(np.shape(x), dtype=out_type) for x in xs])


def shape_n(input, out_type=dtypes.int32, name=None):  # noqa: A002
    """`tf.shape_n`: the shapes of a list of tensors, as a list of 1-D int tensors."""
    inputs = [convert_to_tensor(t) for t in input]
    return _apply_multi("ShapeN", inputs, {"N": len(inputs), "T": inputs[0].dtype if inputs else None,
                                           "out_type": dtypes.as_dtype(out_type)}, name=name or "ShapeN")


IdentityN = define_op("IdentityN")


@IdentityN.shape_fn
def _identity_n_shape(op):
    return [(t.dtype, t.shape) for t in op.inputs]


@IdentityN.kernel
def _identity_n_kernel(op, device):
    return _n_outputs(len(op.inputs), lambda *xs: xs)


@IdentityN.gradient
def _identity_n_grad(op, *grads):
    return grads


def identity_n(input, name=None):  # noqa: A002
    """`tf.identity_n`: the same list of tensors, passed through one op."""
    inputs = [convert_to_tensor(t) for t in input]
    return _apply_multi("IdentityN", inputs, {"T": [t.dtype for t in inputs]}, name=name or "IdentityN")


__all__ = ["constant", "placeholder", "placeholder_with_default", "identity", "stop_gradient", "shape",
           "size", "rank", "reshape", "fill", "zeros", "ones", "zeros_like", "ones_like", "cast",
           "to_float", "to_int32", "to_int64", "to_double", "name_scope", "newaxis", "expand_dims", "squeeze",
           "transpose", "invert_permutation", "concat", "stack", "unstack", "split", "slice", "strided_slice",
           "gather", "gather_nd", "scatter_nd", "tile", "pad", "one_hot", "where", "where_v2", "boolean_mask",
           "unsorted_segment_sum", "broadcast_to", "reverse", "reverse_v2", "sequence_mask", "shape_n",
           "identity_n", "partial_value", "constant_value_as_shape", "static_value"]


def _indexed_slices_to_dense(slices, dtype, name):
    if slices.dense_shape is None:
        raise ValueError(f"Cannot convert IndexedSlices {slices.name} without dense_shape to a Tensor")
    rows = gather(slices.dense_shape, 0) if isinstance(slices.dense_shape, Tensor) else \
        int(list(slices.dense_shape)[0])
    return unsorted_segment_sum(slices.values, slices.indices, rows)


register_tensor_conversion_function(IndexedSlices, _indexed_slices_to_dense, priority=10)


batch_rules.set_rule(batch_rules.rows_of_first_input, Identity, Cast, StopGradient)
batch_rules.set_rule(batch_rules.reshape_keeping_rows, Reshape)
