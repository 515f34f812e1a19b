"""Ops over class scores: the softmax, sparse softmax and sigmoid cross entropies with logits,
`top_k` and `in_top_k`.

The fused cross-entropy ops return the loss and its backprop, as TF's do; their gradients add the
second-order term when the backprop output is itself differentiated.
"""

import collections

import numpy as np

from tensorweave.framework import batch_rules, dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops import array_ops, concat_ops, gather_ops, math_ops, reduction_ops, slicing_ops
from tensorweave.ops.broadcast import broadcast_static_shape
from tensorweave.ops.nn_ops import _check_float, _move_to_end, _rows_of_matrix, _run_error


# -- cross entropies -------------------------------------------------------------------------------

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


def _broadcast_mul(vec, mat):
    """vec[:, None] * mat for a [batch] vector and a [batch, classes] matrix."""
    return array_ops.reshape(vec, [-1, 1]) * mat


def _xent_grad_grad_term(grad_grad, logits):
    """The part of the logits gradient that flows through the backprop output (second order)."""
    if _is_zeros(grad_grad):
        return None
    sm = apply_op("Softmax", [logits], {"T": logits.dtype})
    return (grad_grad - reduction_ops.reduce_sum(grad_grad * sm, axis=-1, keepdims=True)) * sm


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
    last = array_ops.reshape(gather_ops.gather(array_ops.shape(t), array_ops.rank(t) - 1), [1])
    return array_ops.reshape(t, concat_ops.concat([array_ops.constant([-1]), last], 0))


def _leading_shape(t):
    """t's shape without its last dimension: a list when static, else a tensor."""
    if t.shape.ndims is not None and t.shape[:-1].is_fully_defined():
        return t.shape[:-1].as_list()
    return slicing_ops.slice(array_ops.shape(t), [0], [array_ops.rank(t) - 1])


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
        relu_logits = gather_ops.where(positive, logits, zeros)
        neg_abs_logits = gather_ops.where(positive, math_ops.negative(logits), logits)
        return math_ops.add(relu_logits - logits * labels, math_ops.log1p(math_ops.exp(neg_abs_logits)), name=scope)


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
    n = gather_ops.gather(in_shape, array_ops.size(in_shape) - 1)
    k = gather_ops.gather(array_ops.shape(indices), array_ops.size(in_shape) - 1)
    flat_indices = array_ops.reshape(indices, [-1, k])
    rows = array_ops.size(flat_indices) // k
    offsets = array_ops.reshape(reduction_ops.range(rows) * n, [-1, 1])
    flat = array_ops.reshape(flat_indices + offsets, [-1])
    dense = gather_ops.unsorted_segment_sum(array_ops.reshape(grad_values, [-1]), flat, rows * n)
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


# -- which ops may run on chunks of rows (a large feed evaluated a few hundred rows at a time) --------

def _rows_of_predictions_and_targets(op, batched):
    return bool(batched[0] and batched[1] and not batched[2])


batch_rules.set_rule(_rows_of_matrix, TopKV2)
batch_rules.set_rule(batch_rules.rows_of_all_inputs, SoftmaxCrossEntropyWithLogits, SparseSoftmaxCrossEntropyWithLogits)
batch_rules.set_rule(_rows_of_predictions_and_targets, InTopKV2)

__all__ = ["softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
           "sparse_softmax_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits", "in_top_k", "top_k"]
