"""Core array ops, which every other op family builds on: placeholders, identity, shapes and
reshape, fill/zeros/ones, cast and transpose; and the helpers that the other array op modules
(concat_ops, slicing_ops, gather_ops, padding_ops) share. Constants are in constant_op."""

import numpy as np

from tensorweave.framework import batch_rules, dtypes, errors
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, as_shape, unknown_shape
from tensorweave.ops.constant_op import (_contains_tensor, constant, constant_value_as_shape, partial_value,
                                         static_value)


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
    from tensorweave.ops import reduction_ops
    return (None, reduction_ops.reduce_sum(grad))


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


# -- helpers shared by the array op modules --------------------------------------------------

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



def _math():
    # math_ops imports this module, so it is imported where gradients and derived ops need it.
    from tensorweave.ops import math_ops
    return math_ops


def _inverse_permutation(perm):
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return inverse


def _as_array(value):
    return value if value.__class__ is np.ndarray else np.asarray(value)


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


__all__ = ["placeholder", "placeholder_with_default", "identity", "stop_gradient", "shape", "size", "rank",
           "reshape", "fill", "zeros", "ones", "zeros_like", "ones_like", "cast", "to_float", "to_int32",
           "to_int64", "to_double", "name_scope", "transpose", "invert_permutation", "shape_n", "identity_n"]


batch_rules.set_rule(batch_rules.rows_of_first_input, Identity, Cast, StopGradient)
batch_rules.set_rule(batch_rules.reshape_keeping_rows, Reshape)
