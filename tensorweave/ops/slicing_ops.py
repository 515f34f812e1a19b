"""Slicing: Slice (`tf.slice`), StridedSlice (`tf.strided_slice`) and `Tensor.__getitem__`, which
turns NumPy basic indexing into one StridedSlice op."""

import builtins

import numpy as np

from tensorweave.framework import dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, unknown_shape
from tensorweave.ops.array_ops import _as_array, _int_tensor, _math, _shape_of, cast, ones_like, rank, reshape, shape
from tensorweave.ops.concat_ops import concat, stack
from tensorweave.ops.constant_op import constant, constant_value_as_shape, partial_value, static_value

newaxis = None  # `tf.newaxis`: inserts a dimension of size 1 in `t[...]`


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
    # padding_ops imports this module, so pad is imported where this gradient needs it.
    from tensorweave.ops import padding_ops
    dx = padding_ops.pad(grad, paddings)
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


__all__ = ["newaxis", "slice", "strided_slice"]
