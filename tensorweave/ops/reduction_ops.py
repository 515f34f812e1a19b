"""Reductions (`reduce_sum`, `reduce_mean`, ..., `reduce_logsumexp`, `count_nonzero`), `argmax` /
`argmin`, the scans `cumsum` / `cumprod`, and `range`.

`define_reduction` registers a reduction's shape rule and a kernel that fixes the axes when they
are known while building the graph. Gradients are built from these ops and the element-wise ops
of `math_ops` (the gradient of Prod from exclusive cumulative products, exact with zeros). Range
sits here because a reduction over every axis of a tensor of unknown rank takes its axes from it.
"""

import builtins

import numpy as np

from tensorweave.framework import batch_rules, dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops import array_ops, math_ops
from tensorweave.ops.math_ops import _BOOL, _FLOATS, _NUMERIC, _REAL, _check_dtype


# -- reductions ------------------------------------------------------------------------------------

def _axis_list(axis, rank):
    if axis is None:
        return None if rank is None else list(builtins.range(rank))
    axes = [int(a) for a in np.asarray(axis).reshape(-1)]
    if rank is not None:
        for a in axes:
            if not -rank <= a < rank:
                raise ValueError(f"Invalid reduction axis {a} for input of rank {rank}")
        axes = [a % rank for a in axes]
    return axes


def _static_axes(op):
    """The reduction axes of `op` as a sorted tuple, if they are known while building the graph."""
    axes = array_ops.static_value(op.inputs[1])
    rank = op.inputs[0].shape.ndims
    if axes is None or rank is None:
        return None
    return tuple(sorted(set(_axis_list(axes, rank))))


def _runtime_axes(axes):
    return tuple(int(a) for a in np.asarray(axes).reshape(-1))


def _reduction_shape_fn(allowed, out_dtype=None):
    def infer(op):
        x, axis_t = op.inputs
        _check_dtype(x.dtype, allowed, "input")
        if axis_t.dtype not in (dtypes.int32, dtypes.int64):
            raise TypeError(f"Reduction axes must be int32 or int64, got {axis_t.dtype.name}")
        keep = op.get_attr("keep_dims")
        dtype = out_dtype or x.dtype
        rank = x.shape.ndims
        axes = _static_axes(op)
        if axes is None:
            return [(dtype, TensorShape(None if not keep or rank is None else [None] * rank))]
        dims = x.shape.as_list()
        if keep:
            return [(dtype, TensorShape([1 if i in axes else d for i, d in enumerate(dims)]))]
        return [(dtype, TensorShape([d for i, d in enumerate(dims) if i not in axes]))]
    return infer


def define_reduction(type_name, np_fn, *, grad=None, differentiable=True, allowed=_NUMERIC, out_dtype=None,
                     pass_dtype=False):
    """Defines a reduction `np_fn(x, axis=tuple, keepdims=bool)` over the axes of input 1.

    `np_fn` must return the op's dtype; `pass_dtype` passes `dtype=` to it (NumPy sums small
    integers in the platform integer otherwise).
    """
    op_def = define_op(type_name, differentiable=differentiable)
    op_def.batch_rule = batch_rules.reduction_over_other_axes
    op_def.shape_fn(_reduction_shape_fn(allowed, out_dtype))

    @op_def.kernel
    def _kernel(op, device):
        keep = op.get_attr("keep_dims")
        kwargs = {"dtype": op.outputs[0].dtype.as_numpy_dtype} if pass_dtype else {}
        axes = _static_axes(op)
        if axes is not None:
            if kwargs:
                np_dtype = kwargs["dtype"]
                return lambda x, _: np_fn(x, axis=axes, keepdims=keep, dtype=np_dtype)
            return lambda x, _: np_fn(x, axis=axes, keepdims=keep)
        return lambda x, axes_value: np_fn(x, axis=_runtime_axes(axes_value), keepdims=keep, **kwargs)
    if grad is not None:
        op_def.gradient(grad)
    return op_def


def _mean_values(x, axis, keepdims):
    out = np.mean(x, axis=axis, keepdims=keepdims)
    # Integer means are computed in float64; TF truncates toward zero, as astype does.
    return out if out.dtype == x.dtype else out.astype(x.dtype)


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype):
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


def _max_values(x, axis, keepdims):
    if x.size:
        return np.max(x, axis=axis, keepdims=keepdims)
    return np.max(x, axis=axis, keepdims=keepdims, initial=_lowest(x.dtype))  # TF: lowest value


def _min_values(x, axis, keepdims):
    if x.size:
        return np.min(x, axis=axis, keepdims=keepdims)
    return np.min(x, axis=axis, keepdims=keepdims, initial=_highest(x.dtype))


def _reduction_input(op_type, input_tensor, axis, keepdims, keep_dims, name, default_name,
                     reduction_indices=None):
    x = convert_to_tensor(input_tensor)
    keep = _keep_dims_arg(keepdims, keep_dims)
    axis = _axis_arg(axis, reduction_indices)
    if axis is None:
        rank = x.shape.ndims
        axis_t = array_ops.constant(list(builtins.range(rank)), dtype=dtypes.int32) if rank is not None else \
            _range_of_rank(x)
    elif isinstance(axis, Tensor):
        axis_t = axis
    else:
        axis_t = array_ops.constant(axis, dtype=dtypes.int32)
    return apply_op(op_type, [x, axis_t], {"keep_dims": keep}, name=name or default_name)


def _keep_dims_arg(keepdims, keep_dims):
    if keepdims is not None and keep_dims is not None:
        raise ValueError("Cannot specify both 'keepdims' and 'keep_dims'")
    return bool(keepdims if keepdims is not None else (keep_dims or False))


def _axis_arg(axis, reduction_indices):
    if axis is not None and reduction_indices is not None:
        raise ValueError("Cannot specify both 'axis' and 'reduction_indices'")
    return reduction_indices if axis is None else axis


def _range_of_rank(x):
    return apply_op("Range", [array_ops.constant(0), array_ops.rank(x), array_ops.constant(1)])


def _reduced_shape_keepdims(op):
    """Shape of the reduction output with kept dims, as a list (static) or tensor (dynamic)."""
    x, axis_t = op.inputs
    axes = _static_axes(op)
    if axes is not None:
        dims = x.shape.as_list()
        if all(d is not None for i, d in enumerate(dims) if i not in axes):
            return [1 if i in axes else d for i, d in enumerate(dims)]
    return apply_op("ReducedShape", [array_ops.shape(x), axis_t])


def _broadcast_back(op, grad):
    """The gradient of a reduction broadcast back to the input's shape."""
    x = op.inputs[0]
    if not op.get_attr("keep_dims"):
        grad = array_ops.reshape(grad, _reduced_shape_keepdims(op))
    if x.shape.is_fully_defined():
        return grad * array_ops.ones(x.shape, dtype=grad.dtype)
    return grad * array_ops.ones_like(x)


def _sum_grad(op, grad):
    return _broadcast_back(op, grad), None


def _mean_grad(op, grad):
    x, out = op.inputs[0], op.outputs[0]
    n_in, n_out = x.shape.num_elements(), out.shape.num_elements()
    if n_in is not None and n_out is not None:
        scale = array_ops.constant(n_out / builtins.max(n_in, 1), dtype=grad.dtype)
    else:
        scale = array_ops.cast(array_ops.size(out), grad.dtype) / array_ops.cast(array_ops.size(x), grad.dtype)
    return _broadcast_back(op, grad) * scale, None


def _min_or_max_grad(op, grad):
    """TF's rule: the gradient is split evenly among the elements equal to the extremum."""
    x, y = op.inputs[0], op.outputs[0]
    if not op.get_attr("keep_dims"):
        kept = _reduced_shape_keepdims(op)
        y = array_ops.reshape(y, kept)
        grad = array_ops.reshape(grad, kept)
    indicators = array_ops.cast(math_ops.equal(y, x), grad.dtype)
    num_selected = reduce_sum(indicators, axis=op.inputs[1], keepdims=True)
    return indicators / num_selected * grad, None


def _exclusive_product(y, axis):
    """For each element along `axis`, the product of all the others (exact with zeros)."""
    return cumprod(y, axis, exclusive=True) * cumprod(y, axis, exclusive=True, reverse=True)


def _prod_grad(op, grad):
    x = op.inputs[0]
    g = _broadcast_back(op, grad)
    axes = _static_axes(op)
    if axes is None:  # dynamic axes: the simple rule, which needs x free of zeros
        y = op.outputs[0]
        if not op.get_attr("keep_dims"):
            y = array_ops.reshape(y, _reduced_shape_keepdims(op))
        return g * y / x, None
    # The product of the other elements of a reduced group factors axis by axis:
    # others(x) = excl_{a_k}(x) * excl_{a_k-1}(prod_{a_k} x) * ... (no transposes, exact with zeros).
    others, partial = None, x
    for axis in reversed(axes):
        factor = _exclusive_product(partial, axis)
        others = factor if others is None else others * factor
        partial = reduce_prod(partial, axis=axis, keepdims=True)
    return (g if others is None else g * others), None


Sum = define_reduction("Sum", np.sum, grad=_sum_grad, pass_dtype=True)
Mean = define_reduction("Mean", _mean_values, grad=_mean_grad)
Prod = define_reduction("Prod", np.prod, grad=_prod_grad, pass_dtype=True)
Max = define_reduction("Max", _max_values, grad=_min_or_max_grad, allowed=_REAL)
Min = define_reduction("Min", _min_values, grad=_min_or_max_grad, allowed=_REAL)
Any = define_reduction("Any", np.any, differentiable=False, allowed=_BOOL, out_dtype=dtypes.bool)
All = define_reduction("All", np.all, differentiable=False, allowed=_BOOL, out_dtype=dtypes.bool)

ReducedShape = define_op("ReducedShape", differentiable=False)


@ReducedShape.shape_fn
def _reduced_shape_shape(op):
    return [(dtypes.int32, op.inputs[0].shape)]


@ReducedShape.kernel
def _reduced_shape_kernel(op, device):
    def reduced(shape, axes):
        out = np.array(shape, dtype=np.int32)
        out[np.asarray(axes, dtype=np.int64).reshape(-1) % builtins.max(len(out), 1)] = 1
        return out
    return reduced


# -- ArgMax / ArgMin -------------------------------------------------------------------------------

def _arg_reduce_shape(op):
    x, dim = op.inputs
    _check_dtype(x.dtype, _REAL | _BOOL, "input")
    _check_dtype(dim.dtype, frozenset((dtypes.int32, dtypes.int64)), "dimension")
    out = op.get_attr("output_type")
    _check_dtype(out, frozenset((dtypes.int32, dtypes.int64)), "output_type")
    rank = x.shape.ndims
    axis = array_ops.static_value(dim)
    if rank is None:
        return [(out, TensorShape(None))]
    if rank == 0:
        raise ValueError(f"{op.type} needs an input of rank at least 1, got a scalar")
    if axis is None:
        return [(out, TensorShape([None] * (rank - 1)))]
    axis = int(np.asarray(axis).reshape(()))
    if not -rank <= axis < rank:
        raise ValueError(f"Expected dimension in the range [{-rank}, {rank}), but got {axis}")
    dims = x.shape.as_list()
    del dims[axis % rank]
    return [(out, TensorShape(dims))]


def _arg_reduce_kernel(np_fn):
    def make(op, device):
        out = op.get_attr("output_type").as_numpy_dtype
        axis = array_ops.static_value(op.inputs[1])
        if axis is not None:
            axis = int(np.asarray(axis).reshape(()))
            return lambda x, _: np_fn(x, axis=axis).astype(out, copy=False)
        return lambda x, dim: np_fn(x, axis=int(dim)).astype(out, copy=False)
    return make


for _type, _fn in (("ArgMax", np.argmax), ("ArgMin", np.argmin)):
    _arg_def = define_op(_type, differentiable=False)
    _arg_def.shape_fn(_arg_reduce_shape)
    _arg_def.kernel(_arg_reduce_kernel(_fn))
    _arg_def.batch_rule = batch_rules.reduction_over_other_axes
del _type, _fn, _arg_def

# -- scans: Cumsum, Cumprod ------------------------------------------------------------------------


def _scan_shape(op):
    x, axis = op.inputs
    _check_dtype(x.dtype, _NUMERIC)
    _check_dtype(axis.dtype, frozenset((dtypes.int32, dtypes.int64)), "axis")
    rank = x.shape.ndims
    value = array_ops.static_value(axis)
    if rank is not None and value is not None:
        a = int(np.asarray(value).reshape(()))
        if rank == 0 or not -rank <= a < rank:
            raise ValueError(f"{op.type} axis {a} is out of range for input of rank {rank}")
    return [(x.dtype, x.shape)]


def _scan_kernel(np_scan, identity):
    def make(op, device):
        exclusive, reverse = op.get_attr("exclusive"), op.get_attr("reverse")
        dtype = op.outputs[0].dtype.as_numpy_dtype
        static = array_ops.static_value(op.inputs[1])
        static = None if static is None else int(np.asarray(static).reshape(()))
        if not exclusive and not reverse and static is not None:
            return lambda x, _: np_scan(x, axis=static, dtype=dtype)

        def scan(x, axis):
            axis = (static if static is not None else int(axis)) % x.ndim
            if reverse:
                x = np.flip(x, axis)
            out = np_scan(x, axis=axis, dtype=dtype)
            if exclusive:
                shifted = np.empty_like(out)
                head = (slice(None),) * axis
                shifted[head + (slice(0, 1),)] = identity
                shifted[head + (slice(1, None),)] = out[head + (slice(0, -1),)]
                out = shifted
            return np.flip(out, axis) if reverse else out
        return scan
    return make


def _define_scan(type_name, np_scan, identity):
    op_def = define_op(type_name)
    op_def.shape_fn(_scan_shape)
    op_def.kernel(_scan_kernel(np_scan, identity))
    return op_def


@_define_scan("Cumsum", np.cumsum, 0).gradient
def _cumsum_grad(op, grad):
    return cumsum(grad, op.inputs[1], exclusive=op.get_attr("exclusive"),
                  reverse=not op.get_attr("reverse")), None


@_define_scan("Cumprod", np.cumprod, 1).gradient
def _cumprod_grad(op, grad):
    # TF's rule; like TF's it needs x free of zeros.
    x, axis = op.inputs
    exclusive, reverse = op.get_attr("exclusive"), op.get_attr("reverse")
    prod = cumprod(x, axis, exclusive=exclusive, reverse=reverse)
    out = cumsum(prod * grad, axis, exclusive=exclusive, reverse=not reverse)
    return out / x, None


# -- Range -------------------------------------------------------------------------------------

_RANGE_DTYPES = (dtypes.int32, dtypes.int64, dtypes.float32, dtypes.float64)

Range = define_op("Range", differentiable=False)


def _range_length(start, limit, delta, is_int):
    if delta == 0:
        raise ValueError("Requires delta != 0")
    if (delta > 0 and start > limit) or (delta < 0 and start < limit):
        raise ValueError(f"Requires start <= limit when delta > 0 (start >= limit when delta < 0): "
                         f"start={start}, limit={limit}, delta={delta}")
    if is_int:
        return len(builtins.range(int(start), int(limit), int(delta)))
    return int(np.ceil(builtins.abs((float(limit) - float(start)) / float(delta))))


@Range.shape_fn
def _range_shape(op):
    dtype = op.inputs[0].dtype
    for t, param in zip(op.inputs, ("start", "limit", "delta"), strict=True):
        if t.dtype is not dtype:
            raise TypeError(f"Range inputs must share one dtype: '{param}' is {t.dtype.name}, "
                            f"'start' is {dtype.name}")
        _check_dtype(t.dtype, _REAL, param)
        if t.shape.ndims not in (None, 0):
            raise ValueError(f"Range '{param}' must be a scalar, got shape {t.shape}")
    start, limit, delta = (array_ops.static_value(t) for t in op.inputs)
    if start is not None and limit is not None and delta is not None:
        return [(dtype, TensorShape([_range_length(start.item(), limit.item(), delta.item(), dtype.is_integer)]))]
    return [(dtype, TensorShape([None]))]


@Range.kernel
def _range_kernel(op, device):
    dtype = op.outputs[0].dtype.as_numpy_dtype
    is_int = op.outputs[0].dtype.is_integer

    def arange(start, limit, delta):
        n = _range_length(start.item(), limit.item(), delta.item(), is_int)
        return (start + np.arange(n, dtype=dtype) * delta).astype(dtype, copy=False)
    return arange


# -- reduction wrappers ----------------------------------------------------------------------------

def _reduction_wrapper(op_type, tf_name, what):
    def fn(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None):
        return _reduction_input(op_type, input_tensor, axis, keepdims, keep_dims, name, op_type,
                                reduction_indices)
    fn.__name__ = tf_name
    fn.__qualname__ = tf_name
    fn.__doc__ = (f"`tf.{tf_name}(input_tensor, axis=None, keepdims=None, name=None)`: {what} over `axis` "
                  "(all axes if None; negative axes count from the end). `keep_dims` and "
                  "`reduction_indices` are TF1's older spellings.")
    return fn


reduce_sum = _reduction_wrapper("Sum", "reduce_sum", "the sum")
reduce_mean = _reduction_wrapper("Mean", "reduce_mean", "the mean")
reduce_prod = _reduction_wrapper("Prod", "reduce_prod", "the product")
reduce_max = _reduction_wrapper("Max", "reduce_max", "the maximum")
reduce_min = _reduction_wrapper("Min", "reduce_min", "the minimum")
reduce_any = _reduction_wrapper("Any", "reduce_any", "the logical OR")
reduce_all = _reduction_wrapper("All", "reduce_all", "the logical AND")


def _shape_tensor_of(t):
    return t.shape.as_list() if t.shape.is_fully_defined() else array_ops.shape(t)


def reduce_logsumexp(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None):
    """`tf.reduce_logsumexp`: log(sum(exp(x))) over `axis`, computed without overflow."""
    keep = _keep_dims_arg(keepdims, keep_dims)
    axis = _axis_arg(axis, reduction_indices)
    with name_scope(name, "ReduceLogSumExp", [input_tensor]) as scope:
        x = convert_to_tensor(input_tensor)
        if x.dtype not in _FLOATS:
            raise TypeError(f"reduce_logsumexp needs a floating-point input, got {x.dtype.name}")
        raw_max = reduce_max(x, axis, keepdims=True)
        # Clamping to the finite range replaces TF's where(is_finite(max), max, 0): rows of -inf
        # give -inf, rows holding +inf give +inf, and neither makes NaN.
        finfo = np.finfo(x.dtype.as_numpy_dtype)
        shift = array_ops.stop_gradient(math_ops.minimum(math_ops.maximum(raw_max, finfo.min), finfo.max))
        result = math_ops.log(reduce_sum(math_ops.exp(x - shift), axis, keepdims=keep))
        if not keep:
            shift = array_ops.reshape(shift, _shape_tensor_of(result))
        return math_ops.add(result, shift, name=scope)


def count_nonzero(input_tensor=None, axis=None, keepdims=None, dtype=dtypes.int64, name=None,
                  reduction_indices=None, keep_dims=None, input=None):  # noqa: A002
    """`tf.count_nonzero`: the number of non-zero (or True) elements over `axis`."""
    if input_tensor is None:
        input_tensor = input
    keep = _keep_dims_arg(keepdims, keep_dims)
    axis = _axis_arg(axis, reduction_indices)
    with name_scope(name, "count_nonzero", [input_tensor]):
        x = convert_to_tensor(input_tensor)
        zero = array_ops.zeros([], dtype=x.dtype)
        counts = reduce_sum(array_ops.cast(math_ops.not_equal(x, zero), dtypes.int64), axis=axis, keepdims=keep)
        return array_ops.cast(counts, dtype)


# -- argmax, scans, range ------------------------------------------------------------------------

def _arg_wrapper(op_type, tf_name):
    def fn(input, axis=None, name=None, dimension=None, output_type=dtypes.int64):  # noqa: A002
        if axis is not None and dimension is not None:
            raise ValueError("Cannot specify both 'axis' and 'dimension'")
        axis = dimension if axis is None else axis
        axis = 0 if axis is None else axis
        axis_t = axis if isinstance(axis, Tensor) else array_ops.constant(axis, dtype=dtypes.int32)
        return apply_op(op_type, [convert_to_tensor(input), axis_t],
                        {"output_type": dtypes.as_dtype(output_type)}, name=name or op_type)
    fn.__name__ = tf_name
    fn.__qualname__ = tf_name
    fn.__doc__ = (f"`tf.{tf_name}(input, axis=None, name=None, dimension=None, output_type=tf.int64)`: "
                  "the index of the extreme value along `axis` (default 0), first index on ties.")
    return fn


argmax = _arg_wrapper("ArgMax", "argmax")
argmin = _arg_wrapper("ArgMin", "argmin")


def _scan(op_type, x, axis, exclusive, reverse, name):
    x = convert_to_tensor(x)
    axis_t = axis if isinstance(axis, Tensor) else array_ops.constant(axis, dtype=dtypes.int32)
    return apply_op(op_type, [x, axis_t], {"exclusive": bool(exclusive), "reverse": bool(reverse)},
                    name=name or op_type)


def cumsum(x, axis=0, exclusive=False, reverse=False, name=None):
    """`tf.cumsum`: running sums along `axis`; `exclusive` leaves out the current element,
    `reverse` runs from the end."""
    return _scan("Cumsum", x, axis, exclusive, reverse, name)


def cumprod(x, axis=0, exclusive=False, reverse=False, name=None):
    """`tf.cumprod`: running products along `axis` (see `cumsum` for `exclusive` and `reverse`)."""
    return _scan("Cumprod", x, axis, exclusive, reverse, name)


def range(start, limit=None, delta=1, dtype=None, name="range"):  # noqa: A001 - TF's public name
    """`tf.range(start, limit=None, delta=1, dtype=None)`: [start, start+delta, ...) up to `limit`.

    With one argument it counts from 0. The dtype is the widest of the arguments' (int32 <
    int64 < float32 < float64) unless given.
    """
    if limit is None:
        start, limit = 0, start
    with name_scope(name, "Range", [start, limit, delta]) as scope:
        values = (start, limit, delta)
        names = ("start", "limit", "delta")
        if dtype is not None:
            args = [convert_to_tensor(v, dtype=dtype, name=n) for v, n in zip(values, names, strict=True)]
        else:
            kinds = [v.dtype if isinstance(v, Tensor) else dtypes.dtype_of_value(v) for v in values]
            for kind in kinds:
                if kind not in _RANGE_DTYPES:
                    raise TypeError(f"tf.range arguments must be one of "
                                    f"{[d.name for d in _RANGE_DTYPES]}, got {kind.name}")
            widest = builtins.max(kinds, key=_RANGE_DTYPES.index)
            # Python values become constants of the widest dtype directly: the length stays static.
            args = [array_ops.cast(v, widest) if isinstance(v, Tensor) else
                    convert_to_tensor(v, dtype=widest, name=n) for v, n in zip(values, names, strict=True)]
        return apply_op("Range", args, name=scope)
