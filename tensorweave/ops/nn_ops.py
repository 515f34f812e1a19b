"""Neural-network ops (`tf.nn`): activations, softmax and log-softmax, bias_add and xw_plus_b,
l2_loss, l2_normalize, moments, dropout and embedding_lookup; and the helpers that the other
`tf.nn` op modules share.

Each op type carries TF's name and attrs, so graphs round-trip with TF1's. Convolution lives in
`conv_ops`, pooling in `pooling_ops`, the cross entropies and top-k in `classification_ops`.
"""

import numbers

import numpy as np

from tensorweave.framework import batch_rules, dtypes, errors
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops import array_ops, clip_ops, concat_ops, gather_ops, math_ops, reduction_ops
from tensorweave.ops.sliding_window import _format


# -- helpers, shared with conv_ops, pooling_ops and classification_ops ------------------------------

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


def _run_error(op, message):
    """The InvalidArgumentError a kernel raises for bad values, naming its op."""
    return op.error(errors.InvalidArgumentError, message)


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
Relu.fresh_outputs = ReluGrad.fresh_outputs = True
Relu.inplace(0)(lambda op, device: lambda x: np.maximum(x, 0, out=x) if x.__class__ is np.ndarray
                else np.maximum(x, 0))
ReluGrad.inplace(0)(lambda op, device: lambda g, y: np.multiply(g, y > 0, out=g)
                    if g.__class__ is np.ndarray and g.shape == y.shape else g * (y > 0))
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
            gather_ops.where(on_exp, grad * dy, array_ops.zeros_like(y)))


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


@SoftsignGrad.gradient
def _softsign_grad_grad(op, grad):
    dy, x = op.inputs
    # d/dx (1 + |x|)^-2 = -2 sign(x) (1 + |x|)^-3
    denom = 1.0 + math_ops.abs(x)
    return (_grad_op("SoftsignGrad", grad, x),
            grad * dy * -2.0 * math_ops.sign(x) / (denom * denom * denom))


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
    return ((grad - reduction_ops.reduce_sum(grad * y, axis=-1, keepdims=True)) * y,)


@LogSoftmax.gradient
def _log_softmax_grad(op, grad):
    return (grad - reduction_ops.reduce_sum(grad, axis=-1, keepdims=True) * math_ops.exp(op.outputs[0]),)


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
        square_sum = reduction_ops.reduce_sum(x * x, axis, keepdims=True)
        inv_norm = math_ops.rsqrt(math_ops.maximum(square_sum, epsilon))
        return math_ops.multiply(x, inv_norm, name=scope)


def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """`tf.nn.moments`: (mean, variance) of `x` over `axes`."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name, "moments", [x, axes]):
        x = convert_to_tensor(x)
        y = array_ops.cast(x, dtypes.float32) if x.dtype is dtypes.float16 else x
        mean = reduction_ops.reduce_mean(y, axes, keepdims=True, name="mean")
        deviation = y - array_ops.stop_gradient(mean)
        variance = reduction_ops.reduce_mean(deviation * deviation, axes, keepdims=True, name="variance")
        if not keep:
            mean = concat_ops.squeeze(mean, axes)
            variance = concat_ops.squeeze(variance, axes)
        if x.dtype is dtypes.float16:
            return array_ops.cast(mean, dtypes.float16), array_ops.cast(variance, dtypes.float16)
        return mean, variance


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
            result = gather_ops.gather(shards[0], ids, name=scope if max_norm is None else None)
        else:
            result = _sharded_lookup(shards, ids, partition_strategy, scope if max_norm is None else None)
        if max_norm is not None:
            rank = result.shape.ndims
            axes = list(range(ids.shape.ndims, rank)) if rank is not None and ids.shape.ndims is not None else None
            result = clip_ops.clip_by_norm(result, max_norm, axes=axes, name=scope)
        return result


def _sharded_lookup(shards, ids, strategy, name):
    sizes = [p.shape[0].value if p.shape.ndims else None for p in shards]
    if any(s is None for s in sizes):
        raise ValueError("embedding_lookup over several shards needs each shard's row count to be known")
    table = concat_ops.concat(shards, 0)
    if strategy == "div":
        return gather_ops.gather(table, ids, name=name)
    # 'mod': row i is row i // n of shard i % n; its row in the concatenated table is
    # offset[i % n] + i // n.
    offsets = array_ops.constant(np.cumsum([0] + sizes[:-1]), dtype=ids.dtype)
    n = len(shards)
    rows = gather_ops.gather(offsets, math_ops.floormod(ids, n)) + math_ops.floordiv(ids, n)
    return gather_ops.gather(table, rows, name=name)


# -- which ops may run on chunks of rows (a large feed evaluated a few hundred rows at a time) --------

def _rows_of_matrix(op, batched):
    """Row-wise along axis 0 only when there is a further axis (softmax of a vector is not)."""
    return batch_rules.rows_of_first_input(op, batched) and (op.inputs[0].shape.ndims or 0) >= 2


batch_rules.set_rule(batch_rules.elementwise, Relu, Relu6, Elu, Selu, Softplus, Softsign, LeakyRelu,
                     ReluGrad, Relu6Grad, EluGrad, SeluGrad, SoftplusGrad, SoftsignGrad, LeakyReluGrad)
batch_rules.set_rule(_rows_of_matrix, Softmax, LogSoftmax)
batch_rules.set_rule(batch_rules.rows_of_first_input, BiasAdd)

__all__ = ["relu", "relu6", "elu", "selu", "softplus", "softsign", "leaky_relu", "softmax", "log_softmax",
           "bias_add", "xw_plus_b", "l2_loss", "dropout", "l2_normalize", "moments", "embedding_lookup"]
