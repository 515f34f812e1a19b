"""Max and average pooling (`tf.nn.max_pool`, `tf.nn.avg_pool`) and their gradient ops
(MaxPoolGrad, MaxPoolGradGrad, AvgPoolGrad), computed over strided window views in NHWC, a batch
chunk at a time; NCHW is transposed at the kernel's edge.
"""

import numpy as np

from tensorweave.framework import batch_rules
from tensorweave.framework.op_builder import apply_op, convert_to_tensor
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops.nn_ops import _check_float, _run_error, _shape_tensor
from tensorweave.ops.reduction_ops import _lowest
from tensorweave.ops.sliding_window import (_batch_slices, _format, _from_nhwc, _hw, _int_list, _nhwc_kernel,
                                            _pad_nhwc, _padding, _sizes_shape, _static_out, _to_nhwc,
                                            _windows, window_geometry)


# -- pooling -------------------------------------------------------------------------------------

def _pool_attrs(op):
    fmt = op.get_attr("data_format")
    return (_hw(op.get_attr("ksize"), fmt), _hw(op.get_attr("strides"), fmt), op.get_attr("padding"), fmt)


def _pool_geometry(h, w, k, s, padding):
    oh, pt, pb = window_geometry(h, k[0], s[0], 1, padding)
    ow, pl, pr = window_geometry(w, k[1], s[1], 1, padding)
    return (oh, ow), ((pt, pb), (pl, pr))


def _pool_shape(op):
    x = op.inputs[0]
    k, s, padding, fmt = _pool_attrs(op)
    n, h, w, c = _to_nhwc(x.shape.with_rank(4).as_list(), fmt)
    oh = _static_out(h, k[0], s[0], 1, padding, op.name)
    ow = _static_out(w, k[1], s[1], 1, padding, op.name)
    return [(x.dtype, TensorShape(_from_nhwc([n, oh, ow, c], fmt)))]


def _pool_item_bytes(x):
    return x[:1].nbytes * 2 if len(x) else 1


def _max_pool_nhwc(op):
    k, s, padding, _ = _pool_attrs(op)

    def max_pool(x):
        n, h, w, c = x.shape
        out_hw, pads = _pool_geometry(h, w, k, s, padding)
        if min(out_hw) <= 0:
            raise _run_error(op, f"Computed output size would be negative: {out_hw} for input {x.shape}")
        out = np.empty((n,) + out_hw + (c,), dtype=x.dtype)
        for sl in _batch_slices(n, _pool_item_bytes(x)):
            xp, o = _pad_nhwc(x[sl], pads, _lowest(x.dtype)), out[sl]
            o[...] = _windows(xp, 0, 0, out_hw, s, (1, 1))
            for i in range(k[0]):
                for j in range(k[1]):
                    if i or j:
                        np.maximum(o, _windows(xp, i, j, out_hw, s, (1, 1)), out=o)
        return out
    return max_pool


def _max_pool_route(op, to_input):
    """MaxPoolGrad (to_input) or MaxPoolGradGrad: each output window's gradient goes to (or comes
    from) the first position holding the window's maximum, as TF's CPU kernels pick it."""
    k, s, padding, _ = _pool_attrs(op)

    def route(x, y, g):
        n, h, w, c = x.shape
        out_hw, pads = _pool_geometry(h, w, k, s, padding)
        (pt, _), (pl, _) = pads
        out = np.empty(x.shape, dtype=g.dtype) if to_input else np.zeros(y.shape, dtype=g.dtype)
        for sl in _batch_slices(n, _pool_item_bytes(x) * 2):
            xs, ys = x[sl], y[sl]
            xp = _pad_nhwc(xs, pads, _lowest(x.dtype))
            padded = xp is not xs
            hit = np.empty(ys.shape, dtype=bool)
            if to_input:
                # `left` is the gradient not yet routed: taking it where a window first hits its
                # maximum leaves exactly zero there, so later ties receive nothing.
                gp = np.empty(xp.shape, dtype=g.dtype) if padded else out[sl]
                tiled = k == s and (out_hw[0] * s[0], out_hw[1] * s[1]) == gp.shape[1:3]
                if not tiled:
                    gp.fill(0)  # tiled windows write every position exactly once
                left, part = g[sl].copy(), np.empty(ys.shape, dtype=g.dtype)
            else:
                gp, taken = _pad_nhwc(g[sl], pads), np.zeros(ys.shape, dtype=bool)
            for i in range(k[0]):
                for j in range(k[1]):
                    np.equal(_windows(xp, i, j, out_hw, s, (1, 1)), ys, out=hit)
                    if to_input:
                        np.multiply(left, hit, out=part)
                        view = _windows(gp, i, j, out_hw, s, (1, 1))
                        if tiled:
                            view[...] = part
                        else:
                            view += part
                        left -= part
                    else:
                        hit &= ~taken
                        taken |= hit
                        out[sl] += _windows(gp, i, j, out_hw, s, (1, 1)) * hit
            if to_input and padded:
                out[sl] = gp[:, pt:pt + h, pl:pl + w]
        return out
    return route


def _pool_grad_shape(op):
    return [(op.inputs[-1].dtype, op.inputs[0].shape)]


MaxPool = define_op("MaxPool")
MaxPool.shape_fn(_pool_shape)
MaxPool.kernel(lambda op, device: _nhwc_kernel(_max_pool_nhwc(op), op.get_attr("data_format")))

MaxPoolGrad = define_op("MaxPoolGrad")
MaxPoolGrad.shape_fn(_pool_grad_shape)
MaxPoolGrad.kernel(lambda op, device: _nhwc_kernel(_max_pool_route(op, True), op.get_attr("data_format"),
                                                   in_positions=(0, 1, 2)))

MaxPoolGradGrad = define_op("MaxPoolGradGrad")


@MaxPoolGradGrad.shape_fn
def _max_pool_grad_grad_shape(op):
    return [(op.inputs[2].dtype, op.inputs[1].shape)]


MaxPoolGradGrad.kernel(lambda op, device: _nhwc_kernel(_max_pool_route(op, False), op.get_attr("data_format"),
                                                       in_positions=(0, 1, 2)))


def _pool_attr_copy(op):
    return {k: v for k, v in op.attrs.items() if not k.startswith("_")}


@MaxPool.gradient
def _max_pool_grad(op, grad):
    return (apply_op("MaxPoolGrad", [op.inputs[0], op.outputs[0], grad], _pool_attr_copy(op)),)


@MaxPoolGrad.gradient
def _max_pool_grad_grad(op, grad):
    x, y, _ = op.inputs
    return None, None, apply_op("MaxPoolGradGrad", [x, y, grad], _pool_attr_copy(op))


@MaxPoolGradGrad.gradient
def _max_pool_grad_grad_grad(op, grad):
    x, y, _ = op.inputs
    return None, None, apply_op("MaxPoolGrad", [x, y, grad], _pool_attr_copy(op))


def _avg_counts(h, w, out_hw, k, s, pads):
    """How many real (unpadded) inputs each output window averages, shape (oh, ow, 1)."""
    def counts(size, out, k, s, before):
        start = np.arange(out) * s - before
        return np.minimum(start + k, size) - np.maximum(start, 0)
    ch = counts(h, out_hw[0], k[0], s[0], pads[0][0])
    cw = counts(w, out_hw[1], k[1], s[1], pads[1][0])
    return (ch[:, None] * cw[None, :])[:, :, None]


def _avg_pool_nhwc(op):
    k, s, padding, _ = _pool_attrs(op)

    def avg_pool(x):
        n, h, w, c = x.shape
        out_hw, pads = _pool_geometry(h, w, k, s, padding)
        if min(out_hw) <= 0:
            raise _run_error(op, f"Computed output size would be negative: {out_hw} for input {x.shape}")
        out = np.empty((n,) + out_hw + (c,), dtype=x.dtype)
        counts = _avg_counts(h, w, out_hw, k, s, pads).astype(x.dtype)
        for sl in _batch_slices(n, _pool_item_bytes(x)):
            xp, o = _pad_nhwc(x[sl], pads), out[sl]
            o[...] = _windows(xp, 0, 0, out_hw, s, (1, 1))
            for i in range(k[0]):
                for j in range(k[1]):
                    if i or j:
                        o += _windows(xp, i, j, out_hw, s, (1, 1))
            o /= counts
        return out
    return avg_pool


def _avg_pool_grad_nhwc(op):
    k, s, padding, _ = _pool_attrs(op)

    def avg_pool_grad(orig_input_shape, g):
        n, h, w, c = (int(d) for d in orig_input_shape)
        out_hw, pads = _pool_geometry(h, w, k, s, padding)
        (pt, pb), (pl, pr) = pads
        scaled = g / _avg_counts(h, w, out_hw, k, s, pads).astype(g.dtype)
        dx = np.empty((n, h, w, c), dtype=g.dtype)
        for sl in _batch_slices(n, (h + pt + pb) * (w + pl + pr) * c * g.itemsize):
            gp = np.zeros((sl.stop - sl.start, h + pt + pb, w + pl + pr, c), dtype=g.dtype)
            for i in range(k[0]):
                for j in range(k[1]):
                    _windows(gp, i, j, out_hw, s, (1, 1))[...] += scaled[sl]
            dx[sl] = gp[:, pt:pt + h, pl:pl + w]
        return dx
    return avg_pool_grad


AvgPool = define_op("AvgPool")


@AvgPool.shape_fn
def _avg_pool_shape(op):
    _check_float(op, op.inputs[0], "value")
    return _pool_shape(op)


AvgPool.kernel(lambda op, device: _nhwc_kernel(_avg_pool_nhwc(op), op.get_attr("data_format")))

AvgPoolGrad = define_op("AvgPoolGrad")


@AvgPoolGrad.shape_fn
def _avg_pool_grad_shape(op):
    sizes, g = op.inputs
    return [(g.dtype, _sizes_shape(sizes).with_rank(4))]


AvgPoolGrad.kernel(lambda op, device: _nhwc_kernel(_avg_pool_grad_nhwc(op), op.get_attr("data_format"),
                                                   in_positions=(1,), shape_positions=(0,)))


@AvgPool.gradient
def _avg_pool_grad(op, grad):
    return (apply_op("AvgPoolGrad", [_shape_tensor(op.inputs[0]), grad], _pool_attr_copy(op)),)


@AvgPoolGrad.gradient
def _avg_pool_grad_grad(op, grad):
    return None, apply_op("AvgPool", [grad], _pool_attr_copy(op))


def _pool(op_type, value, ksize, strides, padding, data_format, name):
    value = convert_to_tensor(value)
    data_format = _format(data_format)
    attrs = {"T": value.dtype, "ksize": _int_list(ksize, "ksize", data_format),
             "strides": _int_list(strides, "strides", data_format), "padding": _padding(padding),
             "data_format": data_format}
    return apply_op(op_type, [value], attrs, name=name or op_type)


def max_pool(value, ksize, strides, padding, data_format="NHWC", name=None, input=None):  # noqa: A002
    """`tf.nn.max_pool`: the maximum over each `ksize` window of `value`, moved by `strides`."""
    return _pool("MaxPool", value if input is None else input, ksize, strides, padding, data_format, name)


def avg_pool(value, ksize, strides, padding, data_format="NHWC", name=None, input=None):  # noqa: A002
    """`tf.nn.avg_pool`: the mean over each window (padding excluded from the count under SAME)."""
    return _pool("AvgPool", value if input is None else input, ksize, strides, padding, data_format, name)


# The batch axis is 0 in NHWC and NCHW alike.
batch_rules.set_rule(batch_rules.rows_of_first_input, MaxPool, AvgPool)
batch_rules.set_rule(batch_rules.rows_of_all_inputs, MaxPoolGrad)

__all__ = ["max_pool", "avg_pool"]
