"""Neural-network ops (`tf.nn`): activations, softmax, cross entropies, convolution, pooling,
top-k, and the TF1 wrappers built on them.

Each op type carries TF's name and attrs, so graphs round-trip with TF1's. Convolution and
pooling work in NHWC (NCHW is transposed at the kernel's edge) and process the batch in chunks
whose scratch buffers stay under `_CHUNK_BYTES`: evaluating a whole test set in one feed costs
the activations, not an im2col buffer the size of the test set times the filter area.
"""

import collections
import numbers

import numpy as np
from numpy.lib.stride_tricks import as_strided

from tensorweave.framework import batch_rules, dtypes, errors
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, unknown_shape
from tensorweave.ops import array_ops, math_ops
from tensorweave.ops.broadcast import broadcast_static_shape

_CHUNK_BYTES = 64 << 20  # bound on the per-chunk scratch (im2col columns, padded inputs)


# -- helpers ----------------------------------------------------------------------------------------

def _same_shape(op):
    return [(op.inputs[0].dtype, op.inputs[0].shape)]


def _check_float(op, t, what="features"):
    if not (t.dtype.is_floating or t.dtype.is_complex):
        raise TypeError(f"{op.type} requires floating-point {what}, got {t.dtype.name}")


def _shape_tensor(t):
    """t's shape as an int32 tensor: a constant when the static shape is fully known."""
    if t.shape.is_fully_defined():
        return array_ops.constant(t.shape.as_list(), dtype=dtypes.int32)
    return array_ops.shape(t)


def _is_zeros(t):
    """True if `t` is known to be all zeros (as autodiff fills gradients of unused outputs)."""
    if t is None or t.op.type == "ZerosLike":
        return True
    if t.op.type == "Const":
        return not np.any(t.op.get_attr("value"))
    if t.op.type == "Fill":
        value = array_ops.static_value(t.op.inputs[1])
        return value is not None and not np.any(value)
    return False


def _batch_slices(n, bytes_per_item):
    """Slices of the batch axis, each needing at most ~_CHUNK_BYTES of scratch."""
    step = max(1, _CHUNK_BYTES // max(int(bytes_per_item), 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


# -- element-wise activations ----------------------------------------------------------------------

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _define_activation(type_name, forward, *, attrs=(), integers=False):
    """An element-wise activation op; `integers`: also defined on integer tensors (as TF's Relu)."""
    op_def = define_op(type_name)

    @op_def.shape_fn
    def _shape(op):
        if not (integers and op.inputs[0].dtype.is_integer):
            _check_float(op, op.inputs[0])
        return _same_shape(op)

    if attrs:
        op_def.kernel(lambda op, device: (lambda x: forward(x, *(op.get_attr(a) for a in attrs))))
    else:
        op_def.kernel(lambda op, device: forward)
    return op_def


def _define_activation_grad(type_name, backward, *, attrs=()):
    """A `<Act>Grad(gradients, features_or_outputs)` op, as TF's kernels compute them."""
    op_def = define_op(type_name)

    @op_def.shape_fn
    def _shape(op):
        g, f = op.inputs
        if g.dtype is not f.dtype:
            raise TypeError(f"{type_name} inputs must share one dtype, got {g.dtype.name} and {f.dtype.name}")
        return [(g.dtype, g.shape.merge_with(f.shape))]

    if attrs:
        op_def.kernel(lambda op, device: (lambda g, f: backward(g, f, *(op.get_attr(a) for a in attrs))))
    else:
        op_def.kernel(lambda op, device: backward)
    return op_def


Relu = _define_activation("Relu", lambda x: np.maximum(x, 0), integers=True)
# Masks multiply (as TF's kernels do): a product with a bool array is ~10x faster than np.where.
ReluGrad = _define_activation_grad("ReluGrad", lambda g, y: g * (y > 0))
Relu6 = _define_activation("Relu6", lambda x: np.minimum(np.maximum(x, 0), 6), integers=True)
Relu6Grad = _define_activation_grad("Relu6Grad", lambda g, y: g * ((y > 0) & (y < 6)))
Elu = _define_activation("Elu", lambda x: np.where(x < 0, np.expm1(np.minimum(x, 0)), x))
EluGrad = _define_activation_grad("EluGrad", lambda g, y: np.where(y < 0, g * (y + 1), g))
Selu = _define_activation(
    "Selu", lambda x: (_SELU_SCALE * np.where(x < 0, _SELU_ALPHA * np.expm1(np.minimum(x, 0)), x)).astype(x.dtype))
SeluGrad = _define_activation_grad(
    "SeluGrad", lambda g, y: np.where(y < 0, g * (y + _SELU_SCALE * _SELU_ALPHA), g * _SELU_SCALE).astype(g.dtype))
# max(x, 0) + log(1 + exp(-|x|)): exact for large |x|, never overflows.
Softplus = _define_activation("Softplus", lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))))
SoftplusGrad = _define_activation_grad("SoftplusGrad", lambda g, x: g * _sigmoid(x))
Softsign = _define_activation("Softsign", lambda x: x / (1 + np.abs(x)))
SoftsignGrad = _define_activation_grad("SoftsignGrad", lambda g, x: g / np.square(1 + np.abs(x)))
LeakyRelu = _define_activation("LeakyRelu", lambda x, alpha: np.where(x > 0, x, x * alpha).astype(x.dtype),
                               attrs=("alpha",))
LeakyReluGrad = _define_activation_grad(
    "LeakyReluGrad", lambda g, x, alpha: np.where(x > 0, g, g * alpha).astype(g.dtype), attrs=("alpha",))


def _grad_op(op_type, grad, features, **attrs):
    return apply_op(op_type, [grad, features], {"T": grad.dtype, **attrs})


@Relu.gradient
def _relu_grad(op, grad):
    return (_grad_op("ReluGrad", grad, op.outputs[0]),)


@ReluGrad.gradient
def _relu_grad_grad(op, grad):
    return _grad_op("ReluGrad", grad, op.inputs[1]), None


@Relu6.gradient
def _relu6_grad(op, grad):
    return (_grad_op("Relu6Grad", grad, op.outputs[0]),)


@Relu6Grad.gradient
def _relu6_grad_grad(op, grad):
    return _grad_op("Relu6Grad", grad, op.inputs[1]), None


@Elu.gradient
def _elu_grad(op, grad):
    return (_grad_op("EluGrad", grad, op.outputs[0]),)


@Selu.gradient
def _selu_grad(op, grad):
    return (_grad_op("SeluGrad", grad, op.outputs[0]),)


def _exp_branch_grad_grad(op, grad):
    # EluGrad/SeluGrad(dy, y) are dy * (y + c) on the exponential branch (y < 0), dy * s elsewhere.
    dy, y = op.inputs
    on_exp = math_ops.less(y, array_ops.zeros_like(y))
    return (_grad_op(op.type, grad, y),
            array_ops.where(on_exp, grad * dy, array_ops.zeros_like(y)))


EluGrad.gradient(_exp_branch_grad_grad)
SeluGrad.gradient(_exp_branch_grad_grad)


@Softplus.gradient
def _softplus_grad(op, grad):
    return (_grad_op("SoftplusGrad", grad, op.inputs[0]),)


@SoftplusGrad.gradient
def _softplus_grad_grad(op, grad):
    dy, x = op.inputs
    # d/dx sigmoid(x) = 1 / (exp(-x) + 2 + exp(x))
    return (_grad_op("SoftplusGrad", grad, x),
            grad * dy / (math_ops.exp(math_ops.negative(x)) + 2.0 + math_ops.exp(x)))


@Softsign.gradient
def _softsign_grad(op, grad):
    return (_grad_op("SoftsignGrad", grad, op.inputs[0]),)


@LeakyRelu.gradient
def _leaky_relu_grad(op, grad):
    return (_grad_op("LeakyReluGrad", grad, op.inputs[0], alpha=op.get_attr("alpha")),)


@LeakyReluGrad.gradient
def _leaky_relu_grad_grad(op, grad):
    return (_grad_op("LeakyReluGrad", grad, op.inputs[1], alpha=op.get_attr("alpha")),
            None)


def _activation(op_type, features, name, attrs=None):
    features = convert_to_tensor(features)
    return apply_op(op_type, [features], {"T": features.dtype, **(attrs or {})}, name=name or op_type)


def relu(features, name=None):
    """`tf.nn.relu`: max(features, 0)."""
    return _activation("Relu", features, name)


def relu6(features, name=None):
    """`tf.nn.relu6`: min(max(features, 0), 6)."""
    return _activation("Relu6", features, name)


def elu(features, name=None):
    """`tf.nn.elu`: exp(features) - 1 where features < 0, else features."""
    return _activation("Elu", features, name)


def selu(features, name=None):
    """`tf.nn.selu`: scale * (alpha * (exp(features) - 1) if < 0 else features)."""
    return _activation("Selu", features, name)


def softplus(features, name=None):
    """`tf.nn.softplus`: log(exp(features) + 1), computed without overflow."""
    return _activation("Softplus", features, name)


def softsign(features, name=None):
    """`tf.nn.softsign`: features / (abs(features) + 1)."""
    return _activation("Softsign", features, name)


def leaky_relu(features, alpha=0.2, name=None):
    """`tf.nn.leaky_relu`: features where positive, alpha * features elsewhere."""
    features = convert_to_tensor(features)
    if features.dtype.is_integer:
        features = array_ops.cast(features, dtypes.float32)
    return _activation("LeakyRelu", features, name, {"alpha": float(alpha)})


# -- softmax -----------------------------------------------------------------------------------

def _softmax_values(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= np.sum(shifted, axis=-1, keepdims=True)
    return shifted


def _log_softmax_values(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    shifted -= np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return shifted


def _softmax_shape(op):
    logits = op.inputs[0]
    logits.shape.with_rank_at_least(1)
    _check_float(op, logits, "logits")
    return [(logits.dtype, logits.shape)]


Softmax = define_op("Softmax")
Softmax.shape_fn(_softmax_shape)
Softmax.kernel(lambda op, device: _softmax_values)
LogSoftmax = define_op("LogSoftmax")
LogSoftmax.shape_fn(_softmax_shape)
LogSoftmax.kernel(lambda op, device: _log_softmax_values)


@Softmax.gradient
def _softmax_grad(op, grad):
    y = op.outputs[0]
    return ((grad - math_ops.reduce_sum(grad * y, axis=-1, keepdims=True)) * y,)


@LogSoftmax.gradient
def _log_softmax_grad(op, grad):
    return (grad - math_ops.reduce_sum(grad, axis=-1, keepdims=True) * math_ops.exp(op.outputs[0]),)


def _swap_last(x, axis):
    """Transposes `x` so `axis` and the last axis trade places (its own inverse)."""
    perm = list(range(x.shape.ndims))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    return array_ops.transpose(x, perm)


def _move_to_end(x, axis):
    """Transposes `x` so `axis` comes last, the others keeping their order."""
    rank = x.shape.ndims
    return array_ops.transpose(x, [d for d in range(rank) if d != axis] + [axis])


def _softmax_on_axis(op_type, logits, axis, name):
    logits = convert_to_tensor(logits)
    rank = logits.shape.ndims
    if axis is None or axis == -1 or (rank is not None and axis == rank - 1):
        return apply_op(op_type, [logits], {"T": logits.dtype}, name=name or op_type)
    if rank is None:
        raise ValueError(f"{op_type} over axis {axis} needs the rank of logits {logits.name} to be known")
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for logits of rank {rank}")
    with name_scope(name, op_type, [logits]):
        swapped = apply_op(op_type, [_swap_last(logits, axis % rank)], {"T": logits.dtype})
        return _swap_last(swapped, axis % rank)


def softmax(logits, axis=None, name=None, dim=None):
    """`tf.nn.softmax`: exp(logits) / reduce_sum(exp(logits), axis); `axis` defaults to the last."""
    return _softmax_on_axis("Softmax", logits, dim if axis is None else axis, name)


def log_softmax(logits, axis=None, name=None, dim=None):
    """`tf.nn.log_softmax`: logits - log(reduce_sum(exp(logits), axis)); default: the last axis."""
    return _softmax_on_axis("LogSoftmax", logits, dim if axis is None else axis, name)


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


# -- BiasAdd ----------------------------------------------------------------------------------

BiasAdd = define_op("BiasAdd")


@BiasAdd.shape_fn
def _bias_add_shape(op):
    value, bias = op.inputs
    if value.dtype is not bias.dtype:
        raise TypeError(f"BiasAdd: bias dtype {bias.dtype.name} does not match value dtype {value.dtype.name}")
    shape = value.shape.with_rank_at_least(2)
    bias.shape.with_rank(1)
    if shape.ndims is not None:
        axis = -1 if op.get_attr("data_format") == "NHWC" else 1
        dims = shape.as_list()
        dims[axis] = shape[axis].merge_with(bias.shape[0]).value
        shape = TensorShape(dims)
    return [(value.dtype, shape)]


@BiasAdd.kernel
def _bias_add_kernel(op, device):
    if op.get_attr("data_format") == "NHWC":
        return np.add

    def bias_add_nchw(value, bias):
        return value + bias.reshape((-1,) + (1,) * (value.ndim - 2))
    return bias_add_nchw


@BiasAdd.gradient
def _bias_add_grad(op, grad):
    return grad, apply_op("BiasAddGrad", [grad], {"T": grad.dtype, "data_format": op.get_attr("data_format")})


BiasAddGrad = define_op("BiasAddGrad")


@BiasAddGrad.shape_fn
def _bias_add_grad_shape(op):
    shape = op.inputs[0].shape.with_rank_at_least(2)
    axis = -1 if op.get_attr("data_format") == "NHWC" else 1
    return [(op.inputs[0].dtype, TensorShape([shape[axis]]))]


@BiasAddGrad.kernel
def _bias_add_grad_kernel(op, device):
    nhwc = op.get_attr("data_format") == "NHWC"

    def bias_add_grad(g):
        if nhwc:
            return g.reshape(-1, g.shape[-1]).sum(axis=0)
        return g.sum(axis=tuple(i for i in range(g.ndim) if i != 1))
    return bias_add_grad


@BiasAddGrad.gradient
def _bias_add_grad_grad(op, grad):
    x = op.inputs[0]
    rank = x.shape.ndims
    if rank is None:
        raise ValueError("The gradient of BiasAddGrad needs the rank of its input")
    axis = rank - 1 if op.get_attr("data_format") == "NHWC" else 1
    shape = [1] * rank
    shape[axis] = -1
    return (array_ops.reshape(grad, shape) * array_ops.ones_like(x),)


def bias_add(value, bias, data_format=None, name=None):
    """`tf.nn.bias_add`: adds the 1-D `bias` along the channel axis of `value`."""
    with name_scope(name, "BiasAdd", [value, bias]) as scope:
        value = convert_to_tensor(value)
        bias = convert_to_tensor(bias, dtype=value.dtype)
        return apply_op("BiasAdd", [value, bias], {"T": value.dtype, "data_format": _format(data_format)},
                        name=scope)


def xw_plus_b(x, weights, biases, name=None):
    """`tf.nn.xw_plus_b`: matmul(x, weights) + biases."""
    with name_scope(name, "xw_plus_b", [x, weights, biases]) as scope:
        mm = math_ops.matmul(x, weights)
        return apply_op("BiasAdd", [mm, convert_to_tensor(biases, dtype=mm.dtype)],
                        {"T": mm.dtype, "data_format": "NHWC"}, name=scope)


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


def _run_error(op, message):
    """The InvalidArgumentError a kernel raises for bad values, naming its op."""
    return op.error(errors.InvalidArgumentError, message)


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


def _sizes_shape(sizes_t):
    value = array_ops.static_value(sizes_t)
    if value is not None:
        return TensorShape([int(d) for d in np.asarray(value).reshape(-1)])
    sizes_t.shape.with_rank(1)
    return unknown_shape(4)


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


def _lowest(dtype):
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


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


# -- cross entropies -------------------------------------------------------------------------------

def _broadcast_mul(vec, mat):
    """vec[:, None] * mat for a [batch] vector and a [batch, classes] matrix."""
    return array_ops.reshape(vec, [-1, 1]) * mat


def _xent_grad_grad_term(grad_grad, logits):
    """The part of the logits gradient that flows through the backprop output (second order)."""
    if _is_zeros(grad_grad):
        return None
    sm = apply_op("Softmax", [logits], {"T": logits.dtype})
    return (grad_grad - math_ops.reduce_sum(grad_grad * sm, axis=-1, keepdims=True)) * sm


SoftmaxCrossEntropyWithLogits = define_op("SoftmaxCrossEntropyWithLogits")


@SoftmaxCrossEntropyWithLogits.shape_fn
def _xent_shape(op):
    logits, labels = op.inputs
    _check_float(op, logits, "logits")
    if labels.dtype is not logits.dtype:
        raise TypeError(f"SoftmaxCrossEntropyWithLogits: labels dtype {labels.dtype.name} does not match "
                        f"logits dtype {logits.dtype.name}")
    shape = broadcast_static_shape(logits.shape.with_rank(2), labels.shape.with_rank(2))
    return [(logits.dtype, shape[:1]), (logits.dtype, shape)]


@SoftmaxCrossEntropyWithLogits.kernel
def _xent_kernel(op, device):
    def softmax_cross_entropy(logits, labels):
        if logits.shape != labels.shape:
            try:
                logits, labels = np.broadcast_arrays(logits, labels)
            except ValueError:
                raise _run_error(op, f"logits and labels must be broadcastable: logits_size={list(logits.shape)} "
                                     f"labels_size={list(labels.shape)}") from None
        shifted = logits - np.max(logits, axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = np.sum(exp, axis=1, keepdims=True)
        loss = np.sum(labels * (np.log(total) - shifted), axis=1)
        exp /= total
        exp -= labels
        return loss, exp
    return softmax_cross_entropy


@SoftmaxCrossEntropyWithLogits.gradient
def _xent_grad(op, grad_loss, grad_grad):
    logits = op.inputs[0]
    grad = _broadcast_mul(grad_loss, op.outputs[1])
    extra = _xent_grad_grad_term(grad_grad, logits)
    if extra is not None:
        grad = grad + extra
    log_sm = apply_op("LogSoftmax", [logits], {"T": logits.dtype})
    return grad, _broadcast_mul(grad_loss, math_ops.negative(log_sm))


SparseSoftmaxCrossEntropyWithLogits = define_op("SparseSoftmaxCrossEntropyWithLogits")


@SparseSoftmaxCrossEntropyWithLogits.shape_fn
def _sparse_xent_shape(op):
    logits, labels = op.inputs
    _check_float(op, logits, "logits")
    if labels.dtype not in (dtypes.int32, dtypes.int64):
        raise TypeError(f"SparseSoftmaxCrossEntropyWithLogits labels must be int32 or int64, got {labels.dtype.name}")
    shape = logits.shape.with_rank(2)
    batch = shape[:1].merge_with(labels.shape.with_rank(1))
    return [(logits.dtype, batch), (logits.dtype, batch.concatenate(shape[1:]))]


@SparseSoftmaxCrossEntropyWithLogits.kernel
def _sparse_xent_kernel(op, device):
    def sparse_softmax_cross_entropy(logits, labels):
        n, k = logits.shape
        if labels.shape != (n,):
            raise _run_error(op, f"logits and labels must have the same first dimension, got logits shape "
                                 f"{list(logits.shape)} and labels shape {list(labels.shape)}")
        bad = (labels < 0) | (labels >= k)
        if np.any(bad):
            raise _run_error(op, f"Received a label value of {labels[bad][0]} which is outside the valid range "
                                 f"of [0, {k}).  Label values: {' '.join(str(v) for v in labels)}")
        rows = np.arange(n)
        shifted = logits - np.max(logits, axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = np.sum(exp, axis=1)
        loss = np.log(total) - shifted[rows, labels]
        exp /= total[:, None]
        exp[rows, labels] -= 1
        return loss.astype(logits.dtype, copy=False), exp
    return sparse_softmax_cross_entropy


@SparseSoftmaxCrossEntropyWithLogits.gradient
def _sparse_xent_grad(op, grad_loss, grad_grad):
    grad = _broadcast_mul(grad_loss, op.outputs[1])
    extra = _xent_grad_grad_term(grad_grad, op.inputs[0])
    return (grad if extra is None else grad + extra), None


def _require_named(fn_name, sentinel, labels, logits):
    if sentinel is not None:
        raise ValueError(f"Only call `{fn_name}` with named arguments (labels=..., logits=..., ...)")
    if labels is None or logits is None:
        raise ValueError(f"Both labels and logits must be provided to `{fn_name}`")


def _flatten_to_matrix(t):
    """t reshaped to [-1, last dimension] (TF's _flatten_outer_dims)."""
    last = t.shape[-1].value if t.shape.ndims is not None else None
    if last is not None:
        return array_ops.reshape(t, [-1, last])
    last = array_ops.reshape(array_ops.gather(array_ops.shape(t), array_ops.rank(t) - 1), [1])
    return array_ops.reshape(t, array_ops.concat([array_ops.constant([-1]), last], 0))


def _leading_shape(t):
    """t's shape without its last dimension: a list when static, else a tensor."""
    if t.shape.ndims is not None and t.shape[:-1].is_fully_defined():
        return t.shape[:-1].as_list()
    return array_ops.slice(array_ops.shape(t), [0], [array_ops.rank(t) - 1])


def softmax_cross_entropy_with_logits_v2(_sentinel=None, labels=None, logits=None, dim=-1, name=None,
                                         axis=None):
    """`tf.nn.softmax_cross_entropy_with_logits_v2`: -sum(labels * log(softmax(logits))) over `dim`.

    Gradients flow into both logits and labels. Call with named arguments only.
    """
    _require_named("softmax_cross_entropy_with_logits_v2", _sentinel, labels, logits)
    dim = dim if axis is None else axis
    with name_scope(name, "softmax_cross_entropy_with_logits", [logits, labels]) as scope:
        logits = convert_to_tensor(logits)
        labels = array_ops.cast(convert_to_tensor(labels), logits.dtype)
        rank = logits.shape.ndims
        if rank is None and dim != -1:
            raise ValueError("softmax_cross_entropy_with_logits over a non-last dim needs the rank of logits")
        if rank is not None and dim % rank != rank - 1:
            logits, labels = _move_to_end(logits, dim % rank), _move_to_end(labels, dim % rank)
        if rank == 2:
            return apply_op("SoftmaxCrossEntropyWithLogits", [logits, labels], {"T": logits.dtype},
                            name=scope)[0]
        out_shape = _leading_shape(logits)
        loss = apply_op("SoftmaxCrossEntropyWithLogits", [_flatten_to_matrix(logits), _flatten_to_matrix(labels)],
                        {"T": logits.dtype})[0]
        return array_ops.reshape(loss, out_shape, name=scope)


def softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, dim=-1, name=None, axis=None):
    """`tf.nn.softmax_cross_entropy_with_logits` (TF1): as the _v2 form, but no gradient flows
    into `labels`. Call with named arguments only."""
    _require_named("softmax_cross_entropy_with_logits", _sentinel, labels, logits)
    with name_scope(name, "softmax_cross_entropy_with_logits_sg", [logits, labels]) as scope:
        labels = array_ops.stop_gradient(convert_to_tensor(labels), name="labels_stop_gradient")
        return softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits, dim=dim if axis is None else axis,
                                                    name=scope)


def sparse_softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, name=None):
    """`tf.nn.sparse_softmax_cross_entropy_with_logits`: -log(softmax(logits)[labels]).

    `labels` (int32/int64) has the shape of `logits` without its last dimension; a label outside
    [0, num_classes) raises InvalidArgumentError when the op runs. Named arguments only.
    """
    _require_named("sparse_softmax_cross_entropy_with_logits", _sentinel, labels, logits)
    with name_scope(name, "SparseSoftmaxCrossEntropyWithLogits", [labels, logits]) as scope:
        labels = convert_to_tensor(labels)
        logits = convert_to_tensor(logits)
        if labels.dtype not in (dtypes.int32, dtypes.int64):
            raise TypeError(f"sparse_softmax_cross_entropy_with_logits labels must be int32 or int64, got "
                            f"{labels.dtype.name}")
        lr, gr = labels.shape.ndims, logits.shape.ndims
        if gr == 0:
            raise ValueError(f"Logits cannot be scalars - received shape {logits.shape}.")
        if lr is not None and gr is not None:
            if lr != gr - 1:
                raise ValueError(f"Rank mismatch: Rank of labels (received {lr}) should equal rank of logits minus 1 "
                                 f"(received {gr}).")
            if not labels.shape.is_compatible_with(logits.shape[:-1]):
                raise ValueError(f"Shape mismatch: The shape of labels (received {labels.shape}) should equal the "
                                 f"shape of logits except for the last dimension (received {logits.shape}).")
        if gr == 2:
            return apply_op("SparseSoftmaxCrossEntropyWithLogits", [logits, labels],
                            {"T": logits.dtype, "Tlabels": labels.dtype}, name=scope)[0]
        loss = apply_op("SparseSoftmaxCrossEntropyWithLogits",
                        [_flatten_to_matrix(logits), array_ops.reshape(labels, [-1])],
                        {"T": logits.dtype, "Tlabels": labels.dtype})[0]
        return array_ops.reshape(loss, _leading_shape(logits), name=scope)


def sigmoid_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, name=None):
    """`tf.nn.sigmoid_cross_entropy_with_logits`: the element-wise logistic loss
    -z * log(sigmoid(x)) - (1 - z) * log(1 - sigmoid(x)) for labels z and logits x.

    Computed as max(x, 0) - x * z + log(1 + exp(-|x|)), which neither overflows for large |x|
    nor loses a small loss to cancellation. Call with named arguments only.
    """
    _require_named("sigmoid_cross_entropy_with_logits", _sentinel, labels, logits)
    with name_scope(name, "logistic_loss", [logits, labels]) as scope:
        logits = convert_to_tensor(logits)
        labels = convert_to_tensor(labels, dtype=logits.dtype)
        if not logits.shape.is_compatible_with(labels.shape):
            raise ValueError(f"logits and labels must have the same shape ({logits.shape} vs {labels.shape})")
        zeros = array_ops.zeros_like(logits)
        positive = math_ops.greater_equal(logits, zeros)
        relu_logits = array_ops.where(positive, logits, zeros)
        neg_abs_logits = array_ops.where(positive, math_ops.negative(logits), logits)
        return math_ops.add(relu_logits - logits * labels, math_ops.log1p(math_ops.exp(neg_abs_logits)), name=scope)


# -- L2 loss and normalization -------------------------------------------------------------------

L2Loss = define_op("L2Loss")


@L2Loss.shape_fn
def _l2_loss_shape(op):
    _check_float(op, op.inputs[0], "t")
    return [(op.inputs[0].dtype, TensorShape([]))]


@L2Loss.kernel
def _l2_loss_kernel(op, device):
    def l2_loss(t):
        flat = t.reshape(-1)
        return np.asarray(np.dot(flat, flat) / 2, dtype=t.dtype)
    return l2_loss


@L2Loss.gradient
def _l2_loss_grad(op, grad):
    return (op.inputs[0] * grad,)


def l2_loss(t, name=None):
    """`tf.nn.l2_loss`: sum(t ** 2) / 2."""
    t = convert_to_tensor(t)
    return apply_op("L2Loss", [t], {"T": t.dtype}, name=name or "L2Loss")


def l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    """`tf.nn.l2_normalize`: x / sqrt(max(sum(x ** 2, axis), epsilon))."""
    axis = dim if axis is None else axis
    with name_scope(name, "l2_normalize", [x]) as scope:
        x = convert_to_tensor(x)
        square_sum = math_ops.reduce_sum(x * x, axis, keepdims=True)
        inv_norm = math_ops.rsqrt(math_ops.maximum(square_sum, epsilon))
        return math_ops.multiply(x, inv_norm, name=scope)


def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """`tf.nn.moments`: (mean, variance) of `x` over `axes`."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name, "moments", [x, axes]):
        x = convert_to_tensor(x)
        y = array_ops.cast(x, dtypes.float32) if x.dtype is dtypes.float16 else x
        mean = math_ops.reduce_mean(y, axes, keepdims=True, name="mean")
        deviation = y - array_ops.stop_gradient(mean)
        variance = math_ops.reduce_mean(deviation * deviation, axes, keepdims=True, name="variance")
        if not keep:
            mean = array_ops.squeeze(mean, axes)
            variance = array_ops.squeeze(variance, axes)
        if x.dtype is dtypes.float16:
            return array_ops.cast(mean, dtypes.float16), array_ops.cast(variance, dtypes.float16)
        return mean, variance


# -- top-k -----------------------------------------------------------------------------------------

def _top_k_indices(x, k):
    """Indices of the k largest entries along the last axis, larger first, lower index on ties."""
    keys = -(x.astype(np.int64) if x.dtype.kind in "ub" else x)  # ascending keys = descending x
    if 0 < k < x.shape[-1] // 8:
        part = np.argpartition(keys, k - 1, axis=-1)[..., :k]
        part_keys = np.take_along_axis(keys, part, axis=-1)
        kth = part_keys.max(axis=-1, keepdims=True)
        # argpartition splits ties at the boundary arbitrarily; use it only where none cross it.
        if np.all(np.sum(keys <= kth, axis=-1) == k):
            order = np.lexsort((part, part_keys), axis=-1)
            return np.take_along_axis(part, order, axis=-1)
    return np.argsort(keys, axis=-1, kind="stable")[..., :k]


TopKV2 = define_op("TopKV2")


@TopKV2.shape_fn
def _top_k_shape(op):
    x, k_t = op.inputs
    shape = x.shape.with_rank_at_least(1)
    k = array_ops.static_value(k_t)
    if k is not None:
        k = int(k)
        last = shape[-1].value if shape.ndims is not None else None
        if k < 0 or (last is not None and last < k):
            raise ValueError(f"input must have at least k={k} columns, got shape {shape}")
    out = TensorShape(None) if shape.ndims is None else shape[:-1].concatenate([k])
    return [(x.dtype, out), (dtypes.int32, out)]


@TopKV2.kernel
def _top_k_kernel(op, device):
    def top_k(x, k):
        k = int(k)
        if k < 0 or x.ndim < 1 or x.shape[-1] < k:
            raise _run_error(op, f"input must have at least k={k} columns, got shape {list(x.shape)}")
        idx = _top_k_indices(x, k)
        return np.take_along_axis(x, idx, axis=-1), idx.astype(np.int32)
    return top_k


@TopKV2.gradient
def _top_k_grad(op, grad_values, grad_indices):
    x, indices = op.inputs[0], op.outputs[1]
    in_shape = array_ops.shape(x)
    n = array_ops.gather(in_shape, array_ops.size(in_shape) - 1)
    k = array_ops.gather(array_ops.shape(indices), array_ops.size(in_shape) - 1)
    flat_indices = array_ops.reshape(indices, [-1, k])
    rows = array_ops.size(flat_indices) // k
    offsets = array_ops.reshape(math_ops.range(rows) * n, [-1, 1])
    flat = array_ops.reshape(flat_indices + offsets, [-1])
    dense = array_ops.unsorted_segment_sum(array_ops.reshape(grad_values, [-1]), flat, rows * n)
    return array_ops.reshape(dense, in_shape), None


_TopKResult = collections.namedtuple("TopKV2", ["values", "indices"])


def top_k(input, k=1, sorted=True, name=None):  # noqa: A002 - TF's names
    """`tf.nn.top_k`: (values, indices) of the `k` largest entries along the last axis."""
    input = convert_to_tensor(input)
    k = k if isinstance(k, Tensor) else array_ops.constant(int(k), dtype=dtypes.int32)
    values, indices = apply_op("TopKV2", [input, k], {"T": input.dtype, "sorted": bool(sorted)},
                               name=name or "TopKV2")
    return _TopKResult(values, indices)


InTopKV2 = define_op("InTopKV2", differentiable=False)


@InTopKV2.shape_fn
def _in_top_k_shape(op):
    predictions, targets, k = op.inputs
    if targets.dtype not in (dtypes.int32, dtypes.int64) or k.dtype is not targets.dtype:
        raise TypeError(f"InTopKV2 targets and k must share an int32/int64 dtype, got {targets.dtype.name} "
                        f"and {k.dtype.name}")
    batch = predictions.shape.with_rank(2)[:1].merge_with(targets.shape.with_rank(1))
    k.shape.with_rank(0)
    return [(dtypes.bool, batch)]


@InTopKV2.kernel
def _in_top_k_kernel(op, device):
    def in_top_k(predictions, targets, k):
        n, classes = predictions.shape
        if targets.shape != (n,):
            raise _run_error(op, f"targets must have shape [{n}], got {list(targets.shape)}")
        valid = (targets >= 0) & (targets < classes)
        target_values = predictions[np.arange(n), np.where(valid, targets, 0)]
        more_probable = np.sum(predictions > target_values[:, None], axis=1)
        usable = valid & np.all(np.isfinite(predictions), axis=1)
        return usable & (more_probable < k)
    return in_top_k


def in_top_k(predictions, targets, k, name=None):
    """`tf.nn.in_top_k`: whether each target is among the top `k` predictions of its row.

    Ties count in the target's favour; out-of-range targets and rows with a non-finite
    prediction give False.
    """
    predictions = convert_to_tensor(predictions)
    targets = convert_to_tensor(targets)
    if targets.dtype not in (dtypes.int32, dtypes.int64):
        targets = array_ops.cast(targets, dtypes.int32)
    k = k if isinstance(k, Tensor) else array_ops.constant(int(k), dtype=targets.dtype)
    return apply_op("InTopKV2", [predictions, targets, k], {"T": targets.dtype}, name=name or "in_top_k")


# -- dropout and embeddings ------------------------------------------------------------------------

def dropout(x, keep_prob=None, noise_shape=None, seed=None, name=None, rate=None):
    """`tf.nn.dropout`: keeps each element with probability `keep_prob` (scaled by 1 / keep_prob),
    zeroes the others. `keep_prob` may be a tensor (e.g. a fed placeholder); `rate` = 1 - keep_prob.
    """
    if keep_prob is not None and rate is not None:
        raise ValueError("Cannot specify both keep_prob and rate")
    if keep_prob is None:
        if rate is None:
            raise ValueError("dropout needs keep_prob (or rate)")
        keep_prob = 1 - rate
    from tensorweave.ops import random_ops  # random ops sit beside this module; loaded on first use
    with name_scope(name, "dropout", [x]) as scope:
        x = convert_to_tensor(x)
        if not x.dtype.is_floating:
            raise ValueError(f"x has to be a floating point tensor since it's going to be scaled. Got a "
                             f"{x.dtype.name} tensor instead.")
        if isinstance(keep_prob, numbers.Real) and not 0 < keep_prob <= 1:
            raise ValueError(f"keep_prob must be a scalar tensor or a float in the range (0, 1], got {keep_prob}")
        if isinstance(keep_prob, numbers.Real) and keep_prob == 1:
            return x
        keep_prob = convert_to_tensor(keep_prob, dtype=x.dtype, name="keep_prob")
        keep_prob.shape.assert_is_compatible_with(TensorShape([]))
        if noise_shape is None:
            noise_shape = _shape_tensor(x)
        uniform = random_ops.random_uniform(noise_shape, seed=seed, dtype=x.dtype)
        # floor(keep_prob + U[0, 1)) is 1 with probability keep_prob, else 0.
        keep = math_ops.floor(keep_prob + uniform)
        out = math_ops.multiply(math_ops.truediv(x, keep_prob), keep, name=scope)
        out.set_shape(x.shape)
        return out


def embedding_lookup(params, ids, partition_strategy="mod", name=None, validate_indices=True, max_norm=None):
    """`tf.nn.embedding_lookup`: the rows `ids` of `params` (its gradient is sparse, IndexedSlices).

    `params` may be a list of shards of one table, split by `partition_strategy` ('mod': row i
    lives in shard i % n; 'div': contiguous blocks); their row counts must be known.
    """
    if partition_strategy not in ("mod", "div"):
        raise ValueError(f"Unrecognized partition strategy: {partition_strategy}")
    shards = list(params) if isinstance(params, (list, tuple)) else [params]
    if not shards:
        raise ValueError("Need at least one param")
    with name_scope(name, "embedding_lookup", shards + [ids]) as scope:
        shards = [convert_to_tensor(p) for p in shards]
        ids = convert_to_tensor(ids)
        if len(shards) == 1:
            result = array_ops.gather(shards[0], ids, name=scope if max_norm is None else None)
        else:
            result = _sharded_lookup(shards, ids, partition_strategy, scope if max_norm is None else None)
        if max_norm is not None:
            rank = result.shape.ndims
            axes = list(range(ids.shape.ndims, rank)) if rank is not None and ids.shape.ndims is not None else None
            result = math_ops.clip_by_norm(result, max_norm, axes=axes, name=scope)
        return result


def _sharded_lookup(shards, ids, strategy, name):
    sizes = [p.shape[0].value if p.shape.ndims else None for p in shards]
    if any(s is None for s in sizes):
        raise ValueError("embedding_lookup over several shards needs each shard's row count to be known")
    table = array_ops.concat(shards, 0)
    if strategy == "div":
        return array_ops.gather(table, ids, name=name)
    # 'mod': row i is row i // n of shard i % n; its row in the concatenated table is
    # offset[i % n] + i // n.
    offsets = array_ops.constant(np.cumsum([0] + sizes[:-1]), dtype=ids.dtype)
    n = len(shards)
    rows = array_ops.gather(offsets, math_ops.floormod(ids, n)) + math_ops.floordiv(ids, n)
    return array_ops.gather(table, rows, name=name)


# -- which ops may run on chunks of rows (a large feed evaluated a few hundred rows at a time) --------

def _rows_of_matrix(op, batched):
    """Row-wise along axis 0 only when there is a further axis (softmax of a vector is not)."""
    return batch_rules.rows_of_first_input(op, batched) and (op.inputs[0].shape.ndims or 0) >= 2


def _rows_of_predictions_and_targets(op, batched):
    return bool(batched[0] and batched[1] and not batched[2])


batch_rules.set_rule(batch_rules.elementwise, Relu, Relu6, Elu, Selu, Softplus, Softsign, LeakyRelu,
                     ReluGrad, Relu6Grad, EluGrad, SeluGrad, SoftplusGrad, SoftsignGrad, LeakyReluGrad)
batch_rules.set_rule(_rows_of_matrix, Softmax, LogSoftmax, TopKV2)
# Conv2D and the pools: the batch axis is 0 in NHWC and NCHW alike; the filter is used whole.
batch_rules.set_rule(batch_rules.rows_of_first_input, BiasAdd, Conv2D, MaxPool, AvgPool)
batch_rules.set_rule(batch_rules.rows_of_all_inputs, MaxPoolGrad, SoftmaxCrossEntropyWithLogits,
                     SparseSoftmaxCrossEntropyWithLogits)
batch_rules.set_rule(_rows_of_predictions_and_targets, InTopKV2)

__all__ = ["relu", "relu6", "elu", "selu", "softplus", "softsign", "leaky_relu", "softmax", "log_softmax",
           "bias_add", "xw_plus_b", "l2_loss", "dropout", "conv2d", "conv2d_backprop_input",
           "conv2d_backprop_filter", "max_pool", "avg_pool", "in_top_k", "top_k",
           "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
           "sparse_softmax_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits", "l2_normalize",
           "moments", "embedding_lookup", "window_geometry"]
