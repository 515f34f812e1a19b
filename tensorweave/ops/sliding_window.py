"""Sliding-window geometry shared by convolution and pooling: data formats, window attrs
(strides, ksize, dilations), output sizes and padding as TF computes them, and the NHWC kernel
plumbing (NCHW transposed at the kernel's edge, padding, strided window views).

Kernels process the batch in chunks whose scratch buffers stay under `_CHUNK_BYTES`: evaluating
a whole test set in one feed costs the activations, not an im2col buffer the size of the test set
times the filter area.
"""

import numpy as np

from tensorweave.framework.tensor_shape import TensorShape, unknown_shape
from tensorweave.ops import array_ops

_CHUNK_BYTES = 64 << 20  # bound on the per-chunk scratch (im2col columns, padded inputs)


def _batch_slices(n, bytes_per_item):
    """Slices of the batch axis, each needing at most ~_CHUNK_BYTES of scratch."""
    step = max(1, _CHUNK_BYTES // max(int(bytes_per_item), 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


# -- data formats and window geometry ----------------------------------------------------------------

def _format(data_format):
    data_format = (data_format or "NHWC").decode() if isinstance(data_format, bytes) else (data_format or "NHWC")
    if data_format not in ("NHWC", "NCHW"):
        raise ValueError(f"data_format must be NHWC or NCHW, got {data_format!r}")
    return data_format


def _padding(padding):
    padding = padding.decode() if isinstance(padding, bytes) else padding
    if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return padding.upper()


def _int_list(value, name, data_format, default=None):
    """A 4-element window attr (strides, ksize, dilations) from an int, 2 or 4 ints."""
    if value is None:
        if default is None:
            raise ValueError(f"{name} must be given")
        value = default
    vals = [int(v) for v in (np.asarray(value).reshape(-1))]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) == 2:
        vals = [1, vals[0], vals[1], 1] if data_format == "NHWC" else [1, 1, vals[0], vals[1]]
    if len(vals) != 4:
        raise ValueError(f"{name} must have 1, 2 or 4 elements, got {value!r}")
    c_axis = 3 if data_format == "NHWC" else 1
    if vals[0] != 1 or vals[c_axis] != 1:
        raise ValueError(f"{name} in the batch and depth dimensions must be 1, got {vals}")
    if min(vals) < 1:
        raise ValueError(f"{name} must be positive, got {vals}")
    return vals


def _hw(vals, data_format):
    return (vals[1], vals[2]) if data_format == "NHWC" else (vals[2], vals[3])


def _to_nhwc(dims, data_format):
    return list(dims) if data_format == "NHWC" else [dims[0], dims[2], dims[3], dims[1]]


def _from_nhwc(dims, data_format):
    return list(dims) if data_format == "NHWC" else [dims[0], dims[3], dims[1], dims[2]]


def window_geometry(size, k, stride, dilation, padding):
    """(output size, padding before, padding after) along one spatial axis, as TF computes them.

    VALID: out = ceil((size - k_eff + 1) / stride), no padding. SAME: out = ceil(size / stride),
    padded by max((out - 1) * stride + k_eff - size, 0) with the odd element after (bottom/right).
    """
    eff = (k - 1) * dilation + 1
    if padding == "VALID":
        return (size - eff + stride) // stride, 0, 0
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2, total - total // 2


def _static_out(size, k, stride, dilation, padding, what):
    if size is None or k is None:
        return None
    out = window_geometry(size, k, stride, dilation, padding)[0]
    if out <= 0:
        raise ValueError(f"Computed output size would be negative: {out} [input size: {size}, "
                         f"effective window size: {(k - 1) * dilation + 1}, stride: {stride}] in {what}")
    return out


def _nhwc_kernel(fn, data_format, *, in_positions=(0,), shape_positions=(), out_nchw=True):
    """Wraps an NHWC kernel for NCHW data: transposes the tensor inputs and the output."""
    if data_format == "NHWC":
        return fn

    def nchw(*args):
        args = list(args)
        for p in in_positions:
            args[p] = np.ascontiguousarray(args[p].transpose(0, 2, 3, 1))
        for p in shape_positions:
            args[p] = np.asarray(_to_nhwc(list(args[p]), "NCHW"))
        out = fn(*args)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2)) if out_nchw else out
    return nchw


def _pad_nhwc(x, pads, value=0):
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    n, h, w, c = x.shape
    out = np.empty((n, h + pt + pb, w + pl + pr, c), dtype=x.dtype)
    if pt:
        out[:, :pt] = value
    if pb:
        out[:, h + pt:] = value
    if pl:
        out[:, :, :pl] = value
    if pr:
        out[:, :, w + pl:] = value
    out[:, pt:pt + h, pl:pl + w] = x
    return out


def _windows(xp, i, j, out_hw, strides, dilations):
    """The view of padded input `xp` seen by window offset (i, j) at every output position."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, strides, dilations
    return xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]


def _sizes_shape(sizes_t):
    """The static shape a 1-D sizes input gives (Conv2DBackpropInput's input_sizes, AvgPoolGrad's
    orig_input_shape); a rank-4 shape of unknown dimensions until its value is known."""
    value = array_ops.static_value(sizes_t)
    if value is not None:
        return TensorShape([int(d) for d in np.asarray(value).reshape(-1)])
    sizes_t.shape.with_rank(1)
    return unknown_shape(4)


__all__ = ["window_geometry"]
