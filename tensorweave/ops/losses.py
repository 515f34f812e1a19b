"""`tf.losses` (TF1): loss functions that weight, reduce, and record their result in the
`LOSSES` collection, plus the collection helpers (`add_loss`, `get_total_loss`, ...).

Every loss is computed in float32 and reduced by `compute_weighted_loss`; the default reduction
is TF1's `SUM_BY_NONZERO_WEIGHTS`: the weighted sum divided by the number of non-zero weights
(broadcast to the losses' shape).
"""

from tensorweave.framework import dtypes
from tensorweave.framework.graph import GraphKeys
from tensorweave.framework.op_builder import (add_to_collection, convert_to_tensor, get_collection,
                                              name_scope)
from tensorweave.ops import array_ops, classification_ops, concat_ops, constant_op, gather_ops, math_ops, reduction_ops


class Reduction:
    """How `compute_weighted_loss` reduces the weighted losses (TF1's `tf.losses.Reduction`)."""

    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls):
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE, cls.SUM_OVER_NONZERO_WEIGHTS,
                cls.SUM_BY_NONZERO_WEIGHTS)

    @classmethod
    def validate(cls, key):
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key {key}.")


def _safe_div(numerator, denominator, name="value"):
    """numerator / denominator, or 0 where the denominator is 0 (TF's div_no_nan)."""
    zero = math_ops.equal(denominator, 0.0)
    safe = gather_ops.where(zero, array_ops.ones_like(denominator), denominator)
    return gather_ops.where(zero, array_ops.zeros_like(numerator), math_ops.truediv(numerator, safe), name=name)


def _check_broadcastable(weights, losses):
    """Static version of TF's assert_broadcastable: weights are a scalar or match losses' rank
    with each dimension 1 or equal."""
    ws, ls = weights.shape, losses.shape
    if ws.ndims is None or ls.ndims is None or ws.ndims == 0:
        return
    if ws.ndims != ls.ndims:
        raise ValueError(f"weights can not be broadcast to values. values.rank={ls.ndims}. weights.rank={ws.ndims}. "
                         f"values.shape={ls}. weights.shape={ws}.")
    for w, v in zip(ws.as_list(), ls.as_list(), strict=True):
        if w is not None and v is not None and w not in (1, v):
            raise ValueError(f"weights can not be broadcast to values. values.shape={ls}. weights.shape={ws}.")


def _num_present(losses, weights):
    """The number of losses whose (broadcast) weight is non-zero."""
    if isinstance(weights, float) and weights != 0.0:
        return _num_elements(losses)
    with name_scope(None, "num_present", [losses, weights]) as scope:
        present = array_ops.cast(math_ops.not_equal(weights, 0.0), dtypes.float32)
        present = present * array_ops.ones_like(losses)
        return reduction_ops.reduce_sum(present, name=scope)


def _num_elements(losses):
    with name_scope(None, "num_elements", [losses]) as scope:
        return array_ops.cast(array_ops.size(losses, name=scope), losses.dtype)


def compute_weighted_loss(losses, weights=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
                          reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """`tf.losses.compute_weighted_loss`: `losses * weights`, reduced by `reduction`, added to
    `loss_collection`. Returns a scalar (or the weighted losses for `Reduction.NONE`)."""
    Reduction.validate(reduction)
    with name_scope(scope, "weighted_loss", [losses, weights]):
        losses = convert_to_tensor(losses)
        input_dtype = losses.dtype
        losses = array_ops.cast(losses, dtypes.float32)
        weights_t = array_ops.cast(convert_to_tensor(weights), dtypes.float32)
        _check_broadcastable(weights_t, losses)
        weighted = math_ops.multiply(losses, weights_t)
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            loss = reduction_ops.reduce_sum(weighted)
            if reduction == Reduction.MEAN:
                loss = _safe_div(loss, reduction_ops.reduce_sum(array_ops.ones_like(losses) * weights_t))
            elif reduction == Reduction.SUM_BY_NONZERO_WEIGHTS:
                loss = _safe_div(loss, _num_present(losses, weights if isinstance(weights, float) else weights_t))
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                loss = _safe_div(loss, _num_elements(losses))
        loss = array_ops.cast(loss, input_dtype)
        add_loss(loss, loss_collection)
        return loss


def _float_pair(labels, predictions):
    predictions = array_ops.cast(convert_to_tensor(predictions), dtypes.float32)
    labels = array_ops.cast(convert_to_tensor(labels), dtypes.float32)
    predictions.shape.assert_is_compatible_with(labels.shape)
    return labels, predictions


def _require(**values):
    for name, value in values.items():
        if value is None:
            raise ValueError(f"{name} must not be None.")


def absolute_difference(labels, predictions, weights=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
                        reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """`tf.losses.absolute_difference`: weighted |predictions - labels|."""
    _require(labels=labels, predictions=predictions)
    with name_scope(scope, "absolute_difference", [predictions, labels, weights]) as scope:
        labels, predictions = _float_pair(labels, predictions)
        losses = math_ops.abs(math_ops.subtract(predictions, labels))
        return compute_weighted_loss(losses, weights, scope, loss_collection, reduction=reduction)


def mean_squared_error(labels, predictions, weights=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
                       reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """`tf.losses.mean_squared_error`: weighted (predictions - labels) ** 2."""
    _require(labels=labels, predictions=predictions)
    with name_scope(scope, "mean_squared_error", [predictions, labels, weights]) as scope:
        labels, predictions = _float_pair(labels, predictions)
        losses = math_ops.squared_difference(predictions, labels)
        return compute_weighted_loss(losses, weights, scope, loss_collection, reduction=reduction)


def huber_loss(labels, predictions, weights=1.0, delta=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
               reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """`tf.losses.huber_loss`: 0.5 * e**2 where |e| <= delta, else delta * (|e| - 0.5 * delta)."""
    _require(labels=labels, predictions=predictions)
    with name_scope(scope, "huber_loss", [predictions, labels, weights]) as scope:
        labels, predictions = _float_pair(labels, predictions)
        abs_error = math_ops.abs(math_ops.subtract(predictions, labels))
        quadratic = math_ops.minimum(abs_error, delta)
        # The linear part is |e| - min(|e|, delta), not a select, so the gradient is continuous.
        linear = math_ops.subtract(abs_error, quadratic)
        losses = math_ops.add(0.5 * (quadratic * quadratic), delta * linear)
        return compute_weighted_loss(losses, weights, scope, loss_collection, reduction=reduction)


def log_loss(labels, predictions, weights=1.0, epsilon=1e-7, scope=None, loss_collection=GraphKeys.LOSSES,
             reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """`tf.losses.log_loss`: -labels * log(p + eps) - (1 - labels) * log(1 - p + eps)."""
    _require(labels=labels, predictions=predictions)
    with name_scope(scope, "log_loss", [predictions, labels, weights]) as scope:
        labels, predictions = _float_pair(labels, predictions)
        losses = math_ops.negative(labels * math_ops.log(predictions + epsilon)) - \
            (1.0 - labels) * math_ops.log(1.0 - predictions + epsilon)
        return compute_weighted_loss(losses, weights, scope, loss_collection, reduction=reduction)


def sigmoid_cross_entropy(multi_class_labels, logits, weights=1.0, label_smoothing=0, scope=None,
                          loss_collection=GraphKeys.LOSSES, reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """`tf.losses.sigmoid_cross_entropy`: weighted `tf.nn.sigmoid_cross_entropy_with_logits`;
    label_smoothing moves labels towards 1/2."""
    _require(multi_class_labels=multi_class_labels, logits=logits)
    with name_scope(scope, "sigmoid_cross_entropy_loss", [logits, multi_class_labels, weights]) as scope:
        logits = convert_to_tensor(logits)
        labels = array_ops.cast(convert_to_tensor(multi_class_labels), logits.dtype)
        logits.shape.assert_is_compatible_with(labels.shape)
        if label_smoothing > 0:
            labels = labels * (1 - label_smoothing) + 0.5 * label_smoothing
        losses = classification_ops.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits, name="xentropy")
        return compute_weighted_loss(losses, weights, scope, loss_collection, reduction=reduction)


def softmax_cross_entropy(onehot_labels, logits, weights=1.0, label_smoothing=0, scope=None,
                          loss_collection=GraphKeys.LOSSES, reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """`tf.losses.softmax_cross_entropy`: weighted softmax cross entropy of [batch, classes]
    logits against one-hot (or soft) labels; label_smoothing mixes labels with uniform 1/classes.
    No gradient flows into the labels."""
    _require(onehot_labels=onehot_labels, logits=logits)
    with name_scope(scope, "softmax_cross_entropy_loss", [logits, onehot_labels, weights]) as scope:
        logits = convert_to_tensor(logits)
        labels = array_ops.cast(convert_to_tensor(onehot_labels), logits.dtype)
        logits.shape.assert_is_compatible_with(labels.shape)
        if label_smoothing > 0:
            last = labels.shape[-1].value if labels.shape.ndims else None
            num_classes = array_ops.cast(array_ops.shape(labels)[-1], logits.dtype) if last is None else float(last)
            labels = labels * (1.0 - label_smoothing) + label_smoothing / num_classes
        labels = array_ops.stop_gradient(labels, name="labels_stop_gradient")
        losses = classification_ops.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits, name="xentropy")
        return compute_weighted_loss(losses, weights, scope, loss_collection, reduction=reduction)


def _squeeze_labels(labels, logits):
    """Labels of logits' rank lose their (size-1) last dimension, as TF1's
    _remove_squeezable_dimensions does for sparse labels."""
    lr, gr = labels.shape.ndims, logits.shape.ndims
    if lr is not None and gr is not None and lr == gr:
        last = labels.shape[-1].value
        if last not in (None, 1):
            raise ValueError(f"labels of shape {labels.shape} must have a last dimension of 1 to match "
                             f"logits {logits.shape}")
        return concat_ops.squeeze(labels, [-1])
    return labels


def sparse_softmax_cross_entropy(labels, logits, weights=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
                                 reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """`tf.losses.sparse_softmax_cross_entropy`: weighted softmax cross entropy of logits
    [batch, classes] against int class ids [batch]."""
    _require(labels=labels, logits=logits)
    with name_scope(scope, "sparse_softmax_cross_entropy_loss", [logits, labels, weights]) as scope:
        logits = convert_to_tensor(logits)
        labels = _squeeze_labels(convert_to_tensor(labels), logits)
        weights = convert_to_tensor(weights)
        if weights.shape.ndims is not None and labels.shape.ndims is not None and \
                weights.shape.ndims == labels.shape.ndims + 1:
            weights = concat_ops.squeeze(weights, [-1])
        losses = classification_ops.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits,
                                                                             name="xentropy")
        return compute_weighted_loss(losses, weights, scope, loss_collection, reduction=reduction)


# -- the LOSSES collection ---------------------------------------------------------------------

def add_loss(loss, loss_collection=GraphKeys.LOSSES):
    """`tf.losses.add_loss`: records `loss` in `loss_collection` (nothing if it is None)."""
    if loss_collection:
        add_to_collection(loss_collection, loss)


def get_losses(scope=None, loss_collection=GraphKeys.LOSSES):
    """`tf.losses.get_losses`: the losses in `loss_collection` (whose names match `scope`)."""
    return get_collection(loss_collection, scope)


def get_regularization_losses(scope=None):
    """`tf.losses.get_regularization_losses`: the REGULARIZATION_LOSSES collection."""
    return get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope=None, name="total_regularization_loss"):
    """`tf.losses.get_regularization_loss`: the sum of the regularization losses (0.0 if none)."""
    losses = get_regularization_losses(scope)
    if losses:
        return math_ops.add_n(losses, name=name)
    return constant_op.constant(0.0, dtype=dtypes.float32, name=name)


def get_total_loss(add_regularization_losses=True, name="total_loss", scope=None):
    """`tf.losses.get_total_loss`: the sum of `get_losses()` (and the regularization losses).

    Raises ValueError if there are no losses at all, as TF1 does.
    """
    losses = get_losses(scope=scope)
    if add_regularization_losses:
        losses = losses + get_regularization_losses(scope)
    if not losses:
        raise ValueError("No losses found in the LOSSES or REGULARIZATION_LOSSES collections.")
    return math_ops.add_n(losses, name=name)


__all__ = ["Reduction", "compute_weighted_loss", "absolute_difference", "mean_squared_error", "huber_loss",
           "log_loss", "sigmoid_cross_entropy", "softmax_cross_entropy", "sparse_softmax_cross_entropy",
           "add_loss", "get_losses", "get_regularization_losses", "get_regularization_loss", "get_total_loss"]
