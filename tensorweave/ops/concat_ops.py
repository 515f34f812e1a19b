"""Joining tensors along an axis and splitting them apart: concat and split, stack and unstack; with
expand_dims and squeeze, which add and drop an axis of size 1."""

import numpy as np

from tensorweave.framework import dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, convert_to_tensor_like, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, unknown_shape
from tensorweave.ops.array_ops import (_apply_multi, _int_tensor, _n_outputs, _norm_axis, _shape_of, cast, identity,
                                       reshape, shape)
from tensorweave.ops.constant_op import _contains_tensor, constant, partial_value, static_int


def _convert_like_first(values):
    """Converts a list of values; Python values take the dtype of the first Tensor among them."""
    first = next((v for v in values if isinstance(v, Tensor)), None)
    if first is None:
        return [convert_to_tensor(v) for v in values]
    return [convert_to_tensor_like(v, first) for v in values]


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
    # slicing_ops imports this module, so slice is imported where this gradient needs it.
    from tensorweave.ops import slicing_ops
    return tuple(slicing_ops.slice(grad, o, s) for o, s in zip(offsets, shapes, strict=True)) + (None,)


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


__all__ = ["expand_dims", "squeeze", "concat", "stack", "unstack", "split"]
