"""Reverse-mode automatic differentiation over the graph: `tf.gradients(ys, xs, grad_ys)`.

Gradient ops are added to the graph under `gradients/<op>_grad/` name scopes. Each op type's
gradient comes from its `OpDef`; an op without one that is not declared non-differentiable
raises `LookupError` naming it. With `colocate_gradients_with_ops`, each op's gradient ops are
colocated with the op (its device and colocation group), so in a model split over tasks the
backward pass of each part runs where its forward pass runs.
"""

import contextlib

from tensorweave.framework import dtypes
from tensorweave.framework.indexed_slices import IndexedSlices
from tensorweave.framework.op_builder import convert_to_tensor, graph_of, name_scope
from tensorweave.ops import array_ops, concat_ops, math_ops


def _differentiable_dtype(dtype):
    return dtype.is_floating or dtype.is_complex


def _between_ops(ys, xs, stop_ops):
    """Ops on some path from an x to a y (not passing through a stop op), by decreasing id."""
    reached = set()
    stack = [x.op for x in xs]
    while stack:
        op = stack.pop()
        if op in reached or op in stop_ops:
            continue
        reached.add(op)
        for t in op.outputs:
            stack.extend(t._consumers)
    between = set()
    stack = [y.op for y in ys]
    while stack:
        op = stack.pop()
        if op in between or op not in reached:
            continue
        between.add(op)
        stack.extend(t.op for t in op.inputs)
    return sorted(between, key=lambda op: op._id, reverse=True)


def _aggregate(grads):
    grads = [g for g in grads if g is not None]
    if not grads:
        return None
    if len(grads) == 1:
        return grads[0]
    if all(isinstance(g, IndexedSlices) for g in grads):
        indices = [g.indices for g in grads]
        if len({i.dtype for i in indices}) > 1:
            indices = [array_ops.cast(i, dtypes.int64) for i in indices]
        return IndexedSlices(concat_ops.concat([g.values for g in grads], 0),
                             concat_ops.concat(indices, 0), grads[0].dense_shape)
    return math_ops.add_n([convert_to_tensor(g) if isinstance(g, IndexedSlices) else g for g in grads])


def _colocated_with(op, enabled):
    # As TF1: the gradient joins the forward op's colocation group, ignoring enclosing device and
    # colocation scopes (those would otherwise pull every gradient to where gradients() is called).
    return op.graph.colocate_with(op, ignore_existing=True) if enabled else contextlib.nullcontext()


def gradients(ys, xs, grad_ys=None, name="gradients", colocate_gradients_with_ops=False,
              gate_gradients=False, aggregation_method=None, stop_gradients=None,
              unconnected_gradients="none"):
    """The symbolic derivatives of sum(ys) with respect to each tensor in `xs`.

    `grad_ys` weights each y (default: ones). `stop_gradients` are treated as constants.
    Returns one entry per x: a Tensor, an `IndexedSlices` (sparse, from gathers), or None when
    x does not affect ys (zeros with `unconnected_gradients='zero'`).
    `colocate_gradients_with_ops`: build the gradient ops of each op on that op's device (in its
    colocation group) instead of under the device scope active where `gradients` is called.
    """
    ys = [convert_to_tensor(y) for y in (ys if isinstance(ys, (list, tuple)) else [ys])]
    xs_list = xs if isinstance(xs, (list, tuple)) else [xs]
    xs = [x._ref() if hasattr(x, "_ref") else convert_to_tensor(x) for x in xs_list]
    if grad_ys is not None and not isinstance(grad_ys, (list, tuple)):
        grad_ys = [grad_ys]
    stop = [convert_to_tensor(s) for s in (stop_gradients or [])]
    graph = graph_of(ys + xs)
    with graph.as_default(), name_scope(name, "gradients", ys + xs):
        grads = {}  # tensor -> list of gradient contributions
        for i, y in enumerate(ys):
            g = grad_ys[i] if grad_ys is not None and grad_ys[i] is not None else None
            if g is None:
                if not _differentiable_dtype(y.dtype):
                    raise TypeError(f"Cannot differentiate integer/bool tensor {y.name} ({y.dtype.name}); "
                                    "cast it to a float first")
                with name_scope(f"grad_ys_{i}"):
                    g = array_ops.ones(y.shape, dtype=y.dtype) if y.shape.is_fully_defined() \
                        else array_ops.ones_like(y)
            else:
                g = convert_to_tensor(g, dtype=y.dtype)
            grads.setdefault(y, []).append(g)
        stop_ops = {s.op for s in stop}
        x_set = set(xs)
        between = _between_ops(ys, xs, stop_ops)
        between_set = set(between)
        for op in between:
            with _colocated_with(op, colocate_gradients_with_ops):
                _backprop_op(op, grads, x_set, between_set)
        result = []
        for x in xs:
            g = _aggregate(grads.get(x, []))
            if g is None and unconnected_gradients == "zero":
                g = array_ops.zeros_like(x)
            result.append(g)
    return result


def _backprop_op(op, grads, x_set, between_set):
    """Adds the gradient ops of `op`: aggregates the gradients of its outputs, calls its gradient
    function and records one contribution per differentiable input in `grads`."""
    out_grads = [_aggregate(grads.get(t, [])) for t in op.outputs]
    for t, g in zip(op.outputs, out_grads, strict=True):
        if g is not None:
            grads[t] = [g]
    if all(g is None for g in out_grads):
        return
    if not any(_differentiable_dtype(t.dtype) and (t in x_set or t.op in between_set)
               for t in op.inputs):
        return
    op_def = op.op_def
    if not op_def.differentiable:
        return
    if op_def.grad is None:
        raise LookupError(f"No gradient defined for operation '{op.name}' (op type: {op.type}), "
                          f"created at {op.creation_site}")
    out_grads = [g if g is not None or not _differentiable_dtype(t.dtype) else array_ops.zeros_like(t)
                 for t, g in zip(op.outputs, out_grads, strict=True)]
    with name_scope(f"{op.name}_grad"):
        in_grads = op_def.grad(op, *out_grads)
    in_grads = tuple(in_grads) if isinstance(in_grads, (list, tuple)) else (in_grads,)
    if len(in_grads) != len(op.inputs):
        raise ValueError(f"Gradient function of {op.type} returned {len(in_grads)} gradients for "
                         f"{len(op.inputs)} inputs (op {op.name})")
    for t, g in zip(op.inputs, in_grads, strict=True):
        if g is not None and _differentiable_dtype(t.dtype):
            grads.setdefault(t, []).append(g)
