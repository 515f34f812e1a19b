"""Clipping and norms: `clip_by_value`, `clip_by_norm`, `global_norm`, `clip_by_global_norm`.

Built from element-wise ops and reductions, as in TF1, so they need no gradient of their own. An
IndexedSlices (a sparse gradient) is clipped on its values and keeps its indices.
"""

from tensorweave.framework.op_builder import convert_to_tensor, convert_to_tensor_like, name_scope
from tensorweave.framework.tensor import Tensor
from tensorweave.ops import array_ops, math_ops, reduction_ops


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """`tf.clip_by_value`: `t` with values below/above the bounds replaced by them.

    Built as maximum(minimum(t, max), min) as in TF, so the gradient reaches `t` where it lies
    within the bounds.
    """
    with name_scope(name, "clip_by_value", [t, clip_value_min, clip_value_max]) as scope:
        values = convert_to_tensor(t.values if _is_indexed_slices(t) else t, name="t")
        t_min = math_ops.minimum(values, clip_value_max)
        values.shape.merge_with(t_min.shape)
        t_max = math_ops.maximum(t_min, clip_value_min, name=scope)
        values.shape.merge_with(t_max.shape)
    if _is_indexed_slices(t):
        return type(t)(t_max, t.indices, t.dense_shape)
    return t_max


def _is_indexed_slices(t):
    # Duck-typed: IndexedSlices lives in the autodiff layer, above the ops.
    return not isinstance(t, Tensor) and hasattr(t, "indices") and hasattr(t, "values")


def clip_by_norm(t, clip_norm, axes=None, name=None):
    """`tf.clip_by_norm`: `t * clip_norm / max(l2norm(t), clip_norm)`, the norm taken over `axes`."""
    with name_scope(name, "clip_by_norm", [t, clip_norm]) as scope:
        values = convert_to_tensor(t.values if _is_indexed_slices(t) else t, name="t")
        l2sum = reduction_ops.reduce_sum(values * values, axes, keepdims=True)
        # sqrt has an infinite slope at 0: take the root of 1 there and zero it after (TF uses where).
        empty = array_ops.cast(math_ops.less_equal(l2sum, 0), l2sum.dtype)
        l2norm = math_ops.sqrt(l2sum + empty) * (1 - empty)
        clip_norm = convert_to_tensor_like(clip_norm, values)
        clipped = values * clip_norm / math_ops.maximum(l2norm, clip_norm)
        values.shape.merge_with(clipped.shape)
        clipped = array_ops.identity(clipped, name=scope)
    if _is_indexed_slices(t):
        return type(t)(clipped, t.indices, t.dense_shape)
    return clipped


def global_norm(t_list, name=None):
    """`tf.global_norm`: sqrt(sum of squared L2 norms of all tensors in `t_list`); None entries skip."""
    if not isinstance(t_list, (list, tuple)):
        raise TypeError("t_list should be a sequence")
    values = [t.values if _is_indexed_slices(t) else t for t in t_list if t is not None]
    with name_scope(name, "global_norm", values):
        squares = [reduction_ops.reduce_sum(math_ops.square(convert_to_tensor(v, name=f"t_{i}")))
                   for i, v in enumerate(values)]
        return math_ops.sqrt(math_ops.add_n(squares), name="global_norm")


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """`tf.clip_by_global_norm`: scales every tensor by clip_norm / max(global_norm, clip_norm).

    Returns (list_clipped, global_norm); None entries stay None.
    """
    if not isinstance(t_list, (list, tuple)):
        raise TypeError("t_list should be a sequence")
    t_list = list(t_list)
    if use_norm is None:
        use_norm = global_norm(t_list, name)
    with name_scope(name, "clip_by_global_norm", [t for t in t_list if t is not None]) as scope:
        use_norm = convert_to_tensor(use_norm)
        clip_norm = convert_to_tensor_like(clip_norm, use_norm)
        scale = clip_norm * math_ops.minimum(1.0 / use_norm, 1.0 / clip_norm)
        scale = scale + (use_norm - use_norm)  # NaN/inf norms make every output NaN, as in TF
        clipped = []
        for i, t in enumerate(t_list):
            if t is None:
                clipped.append(None)
                continue
            v = convert_to_tensor(t.values if _is_indexed_slices(t) else t, name=f"t_{i}")
            c = array_ops.identity(v * scale, name=f"{scope}_{i}")
            clipped.append(type(t)(c, t.indices, t.dense_shape) if _is_indexed_slices(t) else c)
    return clipped, use_norm
