"""Array ops: constants, placeholders, shapes, reshaping, casting."""

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.op_builder import (apply_op, convert_to_tensor, name_scope,
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


Reshape = define_op("Reshape")


@Reshape.shape_fn
def _reshape_shape(op):
    x, shape_t = op.inputs
    target = static_value(shape_t)
    if target is None:
        n = shape_t.shape.as_list()[0] if shape_t.shape.ndims == 1 else None
        return [(x.dtype, unknown_shape(n))]
    target = [int(d) for d in np.asarray(target).reshape(-1)]
    if target.count(-1) > 1:
        raise ValueError(f"Reshape can infer at most one dimension (-1), got {target}")
    known = x.shape.num_elements()
    if -1 in target:
        rest = int(np.prod([d for d in target if d != -1]))
        if known is not None:
            if rest == 0 or known % rest:
                raise ValueError(f"Cannot reshape a tensor with {known} elements to shape {target}")
            target = [known // rest if d == -1 else d for d in target]
        else:
            target = [None if d == -1 else d for d in target]
    elif known is not None and known != int(np.prod(target)):
        raise ValueError(f"Cannot reshape a tensor with {known} elements to shape {target} "
                         f"({int(np.prod(target))} elements)")
    return [(x.dtype, TensorShape(target))]


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
    shape_t = shape if isinstance(shape, Tensor) else constant(
        [int(d) if d is not None else -1 for d in (shape.as_list() if isinstance(shape, TensorShape) else
                                                   np.asarray(shape).reshape(-1).tolist())],
        dtype=dtypes.int32)
    return apply_op("Reshape", [tensor, shape_t], name=name or "Reshape")


# -- Filling -----------------------------------------------------------------------------------

Fill = define_op("Fill")


@Fill.shape_fn
def _fill_shape(op):
    dims, value = op.inputs
    static = static_value(dims)
    if static is not None:
        return [(value.dtype, TensorShape([int(d) for d in np.asarray(static).reshape(-1)]))]
    n = dims.shape.as_list()[0] if dims.shape.ndims == 1 else None
    return [(value.dtype, unknown_shape(n))]


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


__all__ = ["constant", "placeholder", "placeholder_with_default", "identity", "stop_gradient", "shape",
           "size", "rank", "reshape", "fill", "zeros", "ones", "zeros_like", "ones_like", "cast",
           "to_float", "to_int32", "to_int64", "name_scope"]
