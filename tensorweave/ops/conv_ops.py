"""2-D convolution (`tf.nn.conv2d`) and its backprops, Conv2DBackpropInput and
Conv2DBackpropFilter: each of the three is differentiated in terms of the other two.

The forward pass and the filter gradient are im2col matmuls, a batch chunk at a time; the input
gradient is one matmul per filter tap. Kernels work in NHWC; NCHW is transposed at their edge.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from tensorweave.framework import batch_rules, dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops import array_ops
from tensorweave.ops.nn_ops import _check_float, _run_error, _shape_tensor
from tensorweave.ops.sliding_window import (_batch_slices, _format, _from_nhwc, _hw, _int_list, _nhwc_kernel,
                                            _pad_nhwc, _padding, _sizes_shape, _static_out, _to_nhwc,
                                            window_geometry)


# -- convolution ---------------------------------------------------------------------------------

def _conv_geometry(in_hw, k_hw, attrs):
    """Output size and padding for an NHWC conv with the op's strides/dilations/padding attrs."""
    (h, w), (kh, kw) = in_hw, k_hw
    fmt, padding = attrs["data_format"], attrs["padding"]
    (sh, sw), (dh, dw) = _hw(attrs["strides"], fmt), _hw(attrs["dilations"], fmt)
    oh, pt, pb = window_geometry(h, kh, sh, dh, padding)
    ow, pl, pr = window_geometry(w, kw, sw, dw, padding)
    return (oh, ow), ((pt, pb), (pl, pr)), (sh, sw), (dh, dw)


def _im2col(xp, k_hw, out_hw, strides, dilations):
    """Columns (n*oh*ow, kh*kw*c) of padded NHWC input `xp`, ordered to match an HWIO filter."""
    n, _, _, c = xp.shape
    (kh, kw), (oh, ow), (sh, sw), (dh, dw) = k_hw, out_hw, strides, dilations
    s0, s1, s2, s3 = xp.strides
    view = as_strided(xp, (n, oh, ow, kh, kw, c), (s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3), writeable=False)
    return view.reshape(n * oh * ow, kh * kw * c)


def _conv2d_nhwc(op, attrs):
    def conv2d(x, w):
        n, h, wd, c = x.shape
        kh, kw, ci, co = w.shape
        if ci != c:
            raise _run_error(op, f"input depth {c} does not match filter in_depth {ci}")
        out_hw, pads, strides, dils = _conv_geometry((h, wd), (kh, kw), attrs)
        if min(out_hw) <= 0:
            raise _run_error(op, f"Computed output size would be negative: {out_hw} for input {x.shape}")
        dtype = np.result_type(x, w)
        out = np.empty((n,) + out_hw + (co,), dtype=dtype)
        w2 = w.reshape(kh * kw * c, co)
        per_item = out_hw[0] * out_hw[1] * kh * kw * c * x.itemsize
        for sl in _batch_slices(n, per_item):
            cols = _im2col(_pad_nhwc(x[sl], pads), (kh, kw), out_hw, strides, dils)
            np.matmul(cols, w2, out=out[sl].reshape(-1, co))
        return out
    return conv2d


def _conv2d_filter_nhwc(op, attrs):
    def conv2d_backprop_filter(x, filter_sizes, dy):
        kh, kw, c, co = (int(d) for d in filter_sizes)
        n, h, wd, _ = x.shape
        out_hw, pads, strides, dils = _conv_geometry((h, wd), (kh, kw), attrs)
        if dy.shape != (n,) + out_hw + (co,):
            raise _run_error(op, f"out_backprop shape {dy.shape} does not match the forward output "
                                 f"{(n,) + out_hw + (co,)}")
        dw = None
        per_item = out_hw[0] * out_hw[1] * kh * kw * c * x.itemsize
        for sl in _batch_slices(n, per_item):
            cols = _im2col(_pad_nhwc(x[sl], pads), (kh, kw), out_hw, strides, dils)
            part = np.matmul(cols.T, dy[sl].reshape(-1, co))
            dw = part if dw is None else np.add(dw, part, out=dw)
        if dw is None:
            dw = np.zeros((kh * kw * c, co), dtype=np.result_type(x, dy))
        return dw.reshape(kh, kw, c, co)
    return conv2d_backprop_filter


def _tap_span(out, size, stride, offset, before):
    """For one filter tap: the output positions [first, last) whose input position
    o * stride + offset - before falls inside [0, size), and the first such input position."""
    first = max(0, -((offset - before) // stride))
    last = min(out, (size - 1 - offset + before) // stride + 1)
    return first, last, first * stride + offset - before


def _conv2d_input_nhwc(op, attrs):
    # One matmul per filter tap, each added straight into the input positions it touched: the
    # per-tap products stay in cache, where a col2im buffer would be re-read kh*kw times, and
    # no padded copy of the gradient is made.
    def conv2d_backprop_input(input_sizes, w, dy):
        n, h, wd, c = (int(d) for d in input_sizes)
        kh, kw, _, co = w.shape
        out_hw, pads, (sh, sw), (dh, dw) = _conv_geometry((h, wd), (kh, kw), attrs)
        if dy.shape != (n,) + out_hw + (co,):
            raise _run_error(op, f"out_backprop shape {dy.shape} does not match the forward output "
                                 f"{(n,) + out_hw + (co,)}")
        (pt, _), (pl, _) = pads
        dtype = np.result_type(w, dy)
        dx = np.zeros((n, h, wd, c), dtype=dtype)
        w_t = np.ascontiguousarray(w.transpose(0, 1, 3, 2))  # (kh, kw, out, in)
        spans = [(i, j, _tap_span(out_hw[0], h, sh, i * dh, pt), _tap_span(out_hw[1], wd, sw, j * dw, pl))
                 for i in range(kh) for j in range(kw)]
        for sl in _batch_slices(n, out_hw[0] * out_hw[1] * (co + c) * dx.itemsize):
            dy2 = dy[sl].reshape(-1, co)
            tap = np.empty((sl.stop - sl.start,) + out_hw + (c,), dtype=dtype)
            dxs = dx[sl]
            for i, j, (a0, a1, r0), (b0, b1, q0) in spans:
                if a1 <= a0 or b1 <= b0:
                    continue  # this tap only ever saw padding
                np.matmul(dy2, w_t[i, j], out=tap.reshape(-1, c))
                dxs[:, r0:r0 + (a1 - a0 - 1) * sh + 1:sh, q0:q0 + (b1 - b0 - 1) * sw + 1:sw] += tap[:, a0:a1, b0:b1]
        return dx
    return conv2d_backprop_input


def _conv_attrs(op):
    return {name: op.get_attr(name) for name in ("strides", "padding", "data_format", "dilations")}


def _conv_attr_dict(strides, padding, data_format, dilations, dtype, use_cudnn_on_gpu=True):
    data_format = _format(data_format)
    return {"T": dtype, "strides": _int_list(strides, "strides", data_format),
            "padding": _padding(padding), "data_format": data_format,
            "dilations": _int_list(dilations, "dilations", data_format, default=[1, 1, 1, 1]),
            "use_cudnn_on_gpu": bool(use_cudnn_on_gpu), "explicit_paddings": []}


def _conv_out_shape(op, x_shape, f_shape):
    attrs = _conv_attrs(op)
    fmt = attrs["data_format"]
    x_shape = x_shape.with_rank(4)
    f_shape = f_shape.with_rank(4)
    n, h, w, c = _to_nhwc(x_shape.as_list(), fmt)
    kh, kw, ci, co = f_shape.as_list()
    if c is not None and ci is not None and c != ci:
        raise ValueError(f"Depth of input ({c}) does not match input depth of filter ({ci}) for {op.type}")
    (sh, sw), (dh, dw) = _hw(attrs["strides"], fmt), _hw(attrs["dilations"], fmt)
    oh = _static_out(h, kh, sh, dh, attrs["padding"], op.name)
    ow = _static_out(w, kw, sw, dw, attrs["padding"], op.name)
    return TensorShape(_from_nhwc([n, oh, ow, co], fmt))


Conv2D = define_op("Conv2D")


@Conv2D.shape_fn
def _conv2d_shape(op):
    x, f = op.inputs
    _check_float(op, x, "input")
    if x.dtype is not f.dtype:
        raise TypeError(f"Conv2D: filter dtype {f.dtype.name} does not match input dtype {x.dtype.name}")
    return [(x.dtype, _conv_out_shape(op, x.shape, f.shape))]


@Conv2D.kernel
def _conv2d_kernel(op, device):
    attrs = _conv_attrs(op)
    return _nhwc_kernel(_conv2d_nhwc(op, attrs), attrs["data_format"])


@Conv2D.gradient
def _conv2d_grad(op, grad):
    x, f = op.inputs
    attrs = {k: v for k, v in op.attrs.items() if not k.startswith("_")}
    return (apply_op("Conv2DBackpropInput", [_shape_tensor(x), f, grad], attrs),
            apply_op("Conv2DBackpropFilter", [x, _shape_tensor(f), grad], attrs))


Conv2DBackpropInput = define_op("Conv2DBackpropInput")


@Conv2DBackpropInput.shape_fn
def _conv2d_input_shape(op):
    sizes, f, dy = op.inputs
    shape = _sizes_shape(sizes).with_rank(4)
    fmt = op.get_attr("data_format")
    dims = _to_nhwc(shape.as_list(), fmt)
    dims[0] = TensorShape([dims[0]]).merge_with(dy.shape.with_rank(4)[:1])[0].value
    dims[3] = TensorShape([dims[3]]).merge_with(f.shape.with_rank(4)[2:3])[0].value
    return [(f.dtype, TensorShape(_from_nhwc(dims, fmt)))]


@Conv2DBackpropInput.kernel
def _conv2d_input_kernel(op, device):
    attrs = _conv_attrs(op)
    return _nhwc_kernel(_conv2d_input_nhwc(op, attrs), attrs["data_format"], in_positions=(2,),
                        shape_positions=(0,))


@Conv2DBackpropInput.gradient
def _conv2d_input_grad(op, grad):
    sizes, f, dy = op.inputs
    attrs = {k: v for k, v in op.attrs.items() if not k.startswith("_")}
    return (None,
            apply_op("Conv2DBackpropFilter", [grad, _shape_tensor(f), dy], attrs),
            apply_op("Conv2D", [grad, f], attrs))


Conv2DBackpropFilter = define_op("Conv2DBackpropFilter")


@Conv2DBackpropFilter.shape_fn
def _conv2d_filter_shape(op):
    x, sizes, dy = op.inputs
    shape = _sizes_shape(sizes).with_rank(4)
    fmt = op.get_attr("data_format")
    dims = shape.as_list()
    dims[2] = TensorShape([dims[2]]).merge_with([_to_nhwc(x.shape.with_rank(4).as_list(), fmt)[3]])[0].value
    dims[3] = TensorShape([dims[3]]).merge_with([_to_nhwc(dy.shape.with_rank(4).as_list(), fmt)[3]])[0].value
    return [(x.dtype, TensorShape(dims))]


@Conv2DBackpropFilter.kernel
def _conv2d_filter_kernel(op, device):
    attrs = _conv_attrs(op)
    return _nhwc_kernel(_conv2d_filter_nhwc(op, attrs), attrs["data_format"], in_positions=(0, 2),
                        out_nchw=False)


@Conv2DBackpropFilter.gradient
def _conv2d_filter_grad(op, grad):
    x, sizes, dy = op.inputs
    attrs = {k: v for k, v in op.attrs.items() if not k.startswith("_")}
    return (apply_op("Conv2DBackpropInput", [_shape_tensor(x), grad, dy], attrs),
            None,
            apply_op("Conv2D", [x, grad], attrs))


def conv2d(input, filter=None, strides=None, padding=None, use_cudnn_on_gpu=True,  # noqa: A002 - TF's names
           data_format="NHWC", dilations=(1, 1, 1, 1), name=None, filters=None):
    """`tf.nn.conv2d`: 2-D convolution of `input` [batch, h, w, in] with `filter` [kh, kw, in, out].

    `strides`/`dilations`: 4 ints (batch and depth entries 1); `padding`: 'SAME' or 'VALID'.
    """
    filter = filters if filter is None else filter
    if filter is None:
        raise ValueError("conv2d needs a filter")
    input = convert_to_tensor(input)
    filter = convert_to_tensor(filter, dtype=input.dtype)
    attrs = _conv_attr_dict(strides, padding, data_format, dilations, input.dtype, use_cudnn_on_gpu)
    return apply_op("Conv2D", [input, filter], attrs, name=name or "Conv2D")


def _sizes_tensor(sizes):
    if isinstance(sizes, Tensor):
        return sizes
    return array_ops.constant([int(d) for d in np.asarray(sizes).reshape(-1)], dtype=dtypes.int32)


def conv2d_backprop_input(input_sizes, filter=None, out_backprop=None, strides=None,  # noqa: A002
                          padding=None, use_cudnn_on_gpu=True, data_format="NHWC",
                          dilations=(1, 1, 1, 1), name=None, filters=None):
    """`tf.nn.conv2d_backprop_input`: the gradient of conv2d with respect to its input."""
    filter = filters if filter is None else filter
    filter = convert_to_tensor(filter)
    out_backprop = convert_to_tensor(out_backprop, dtype=filter.dtype)
    attrs = _conv_attr_dict(strides, padding, data_format, dilations, filter.dtype, use_cudnn_on_gpu)
    return apply_op("Conv2DBackpropInput", [_sizes_tensor(input_sizes), filter, out_backprop], attrs,
                    name=name or "Conv2DBackpropInput")


def conv2d_backprop_filter(input, filter_sizes, out_backprop, strides, padding,  # noqa: A002
                           use_cudnn_on_gpu=True, data_format="NHWC", dilations=(1, 1, 1, 1), name=None):
    """`tf.nn.conv2d_backprop_filter`: the gradient of conv2d with respect to its filter."""
    input = convert_to_tensor(input)
    out_backprop = convert_to_tensor(out_backprop, dtype=input.dtype)
    attrs = _conv_attr_dict(strides, padding, data_format, dilations, input.dtype, use_cudnn_on_gpu)
    return apply_op("Conv2DBackpropFilter", [input, _sizes_tensor(filter_sizes), out_backprop], attrs,
                    name=name or "Conv2DBackpropFilter")


# The batch axis is 0 in NHWC and NCHW alike; the filter is used whole.
batch_rules.set_rule(batch_rules.rows_of_first_input, Conv2D)

__all__ = ["conv2d", "conv2d_backprop_input", "conv2d_backprop_filter"]
