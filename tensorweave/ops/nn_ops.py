"""Neural-network ops (`tf.nn`): activations, softmax, losses, convolution and pooling."""

import numpy as np

from tensorweave.framework.op_builder import apply_op, convert_to_tensor
from tensorweave.framework.op_def import define_op
from tensorweave.ops import math_ops


def _softmax_values(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= np.sum(shifted, axis=-1, keepdims=True)
    return shifted


Softmax = define_op("Softmax")


@Softmax.shape_fn
def _softmax_shape(op):
    logits = op.inputs[0]
    logits.shape.with_rank_at_least(1)
    return [(logits.dtype, logits.shape)]


@Softmax.kernel
def _softmax_kernel(op, device):
    return _softmax_values


@Softmax.gradient
def _softmax_grad(op, grad):
    y = op.outputs[0]
    return ((grad - math_ops.reduce_sum(grad * y, axis=-1, keepdims=True)) * y,)


def softmax(logits, axis=None, name=None, dim=None):
    """`tf.nn.softmax`: exp(logits) normalized over the last axis."""
    logits = convert_to_tensor(logits)
    axis = dim if axis is None else axis
    if axis not in (None, -1) and axis != logits.shape.ndims - 1:
        raise ValueError("softmax over an axis other than the last is not supported yet")
    return apply_op("Softmax", [logits], name=name or "Softmax")
