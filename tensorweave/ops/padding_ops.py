"""Ops that grow or rearrange a tensor: pad (constant, REFLECT or SYMMETRIC edges), tile,
broadcast_to and reverse; and one_hot and sequence_mask, which spread indices and lengths along a
new axis."""

import builtins

import numpy as np

from tensorweave.framework import dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, convert_to_tensor_like, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, unknown_shape
from tensorweave.ops.array_ops import (_dims_tensor, _int_tensor, _math, _norm_axis, _shape_of, cast, rank, reshape,
                                       shape, size, transpose)
from tensorweave.ops.concat_ops import expand_dims, stack
from tensorweave.ops.constant_op import constant, constant_value_as_shape, partial_value, static_int, static_value
from tensorweave.ops.slicing_ops import slice


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
    from tensorweave.ops import reduction_ops  # it imports the array op modules
    dx = reduction_ops.reduce_sum(reshape(grad, split_shape), axis=axes)
    dx.set_shape(x.shape)
    return (dx, None)


def tile(input, multiples, name=None):  # noqa: A002
    """`tf.tile`: `input` repeated `multiples[i]` times along dimension i."""
    input = convert_to_tensor(input)
    multiples_t = _int_tensor(multiples)
    return apply_op("Tile", [input, multiples_t], {"T": input.dtype, "Tmultiples": multiples_t.dtype},
                    name=name or "Tile")


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


# -- derived: sequence_mask ------------------------------------------------------------------------

def sequence_mask(lengths, maxlen=None, dtype=dtypes.bool, name=None):
    """`tf.sequence_mask`: mask[i..., j] = j < lengths[i...], with j in [0, maxlen)
    (maxlen defaults to max(lengths))."""
    math_ops = _math()
    with name_scope(name, "SequenceMask", [lengths, maxlen]):
        lengths = convert_to_tensor(lengths)
        if maxlen is None:
            from tensorweave.ops import reduction_ops  # it imports the array op modules
            maxlen = reduction_ops.reduce_max(lengths)
        else:
            maxlen = convert_to_tensor(maxlen)
            if maxlen.shape.ndims is not None and maxlen.shape.ndims != 0:
                raise ValueError(f"maxlen must be scalar for sequence_mask, got shape {maxlen.shape}")
        row = apply_op("Range", [constant(0, dtype=maxlen.dtype), maxlen, constant(1, dtype=maxlen.dtype)])
        matrix = cast(expand_dims(lengths, -1), maxlen.dtype)
        result = math_ops.less(row, matrix)
        dtype = dtypes.as_dtype(dtype)
        return result if dtype is dtypes.bool else cast(result, dtype)


__all__ = ["pad", "tile", "broadcast_to", "reverse", "reverse_v2", "one_hot", "sequence_mask"]
