"""Indexing by integer tensors and by conditions: gather (GatherV2 and TF1's Gather), gather_nd,
scatter_nd, unsorted_segment_sum, where (Select, SelectV2, Where) and boolean_mask. Gather's
gradient is IndexedSlices; their conversion to a dense tensor is registered here."""

import numpy as np

from tensorweave.framework import dtypes
from tensorweave.framework.indexed_slices import IndexedSlices
from tensorweave.framework.op_builder import (apply_op, convert_to_tensor, convert_to_tensor_like, name_scope,
                                              register_tensor_conversion_function)
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, unknown_shape
from tensorweave.ops.array_ops import (_as_array, _dims_tensor, _int_tensor, _inverse_permutation, _math, _norm_axis,
                                       _shape_of, fill, rank, reshape, shape, size, transpose, zeros_like)
from tensorweave.ops.concat_ops import concat, expand_dims, squeeze
from tensorweave.ops.constant_op import constant, constant_value_as_shape, static_int


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
    if axis == 0:
        return (_rows_gradient(params, indices, grad), None, None)
    params_shape = _shape_of(params)
    inner = params.shape[axis + 1:]
    inner_t = inner.as_list() if inner.is_fully_defined() else params_shape[axis + 1:]
    flat_indices = indices if indices.shape.ndims == 1 else reshape(indices, [-1])
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
    return (_rows_gradient(params, indices, convert_to_tensor(grad)), None)


def _rows_gradient(params, indices, grad):
    """The gradient of gathering rows `indices` of `params`: those rows of `grad`, sparse."""
    params_shape = _shape_of(params)
    if indices.shape.ndims == 1:
        return IndexedSlices(grad, indices, params_shape)
    inner = params.shape[1:]
    inner_t = inner.as_list() if inner.is_fully_defined() else params_shape[1:]
    n = indices.shape.num_elements()
    lead = [n] if n is not None else expand_dims(size(indices), 0)
    return IndexedSlices(reshape(grad, _concat_dims([lead, inner_t])), reshape(indices, [-1]), params_shape)


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


# -- derived: boolean_mask -------------------------------------------------------------------------

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


__all__ = ["gather", "gather_nd", "scatter_nd", "unsorted_segment_sum", "where", "where_v2", "boolean_mask"]


def _indexed_slices_to_dense(slices, dtype, name):
    if slices.dense_shape is None:
        raise ValueError(f"Cannot convert IndexedSlices {slices.name} without dense_shape to a Tensor")
    rows = gather(slices.dense_shape, 0) if isinstance(slices.dense_shape, Tensor) else \
        int(list(slices.dense_shape)[0])
    return unsorted_segment_sum(slices.values, slices.indices, rows)


register_tensor_conversion_function(IndexedSlices, _indexed_slices_to_dense, priority=10)
