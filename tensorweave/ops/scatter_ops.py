"""`tf.scatter_update` and its kin: change the rows `indices` of a variable.

`ScatterUpdate`, `ScatterAdd`, `ScatterSub`, `ScatterMul`, `ScatterDiv`, `ScatterMin` and
`ScatterMax` take the variable's reference, `indices` (any integer shape) and `updates` of shape
`indices.shape + ref.shape[1:]` (or a scalar, applied to every selected row). A row named twice
takes both updates (`ScatterAdd` adds both; `ScatterUpdate` keeps one of them, as in TF, where
the order is undefined). Like every update here, the kernel stores a fresh array: a value read
earlier in a step stays as it was. The op outputs the variable's new value. These ops are how a
sparse gradient (`IndexedSlices`, e.g. of an embedding lookup) reaches its variable on a PS:
only the looked-up rows travel.
"""

import numpy as np

from tensorweave.framework import errors
from tensorweave.framework.op_builder import apply_op, convert_to_tensor
from tensorweave.framework.op_def import define_op
from tensorweave.ops.state_ops import _as_ref


def _int_divide_at(new, rows, updates):
    # TF divides integers truncating toward zero; numpy's ufunc.at would floor.
    updates = np.broadcast_to(updates, rows.shape + new.shape[1:])
    for row, update in zip(rows, updates, strict=True):
        new[row] = np.trunc(np.true_divide(new[row], update)).astype(new.dtype)


def _update_at(new, rows, updates):
    new[rows] = updates


_APPLY = {"ScatterUpdate": _update_at, "ScatterAdd": np.add.at, "ScatterSub": np.subtract.at,
          "ScatterMul": np.multiply.at, "ScatterDiv": np.divide.at, "ScatterMin": np.minimum.at,
          "ScatterMax": np.maximum.at}


def _define(type_name):
    op_def = define_op(type_name, stateful=True, differentiable=False, ref_inputs=(0,))
    apply_at = _APPLY[type_name]

    @op_def.shape_fn
    def _shape(op):
        ref, indices, updates = op.inputs
        if updates.dtype is not ref.dtype:
            raise TypeError(f"{type_name} of a {ref.dtype.name} variable ({ref.op.name}) needs {ref.dtype.name} "
                            f"updates, got {updates.dtype.name}")
        if not indices.dtype.is_integer:
            raise TypeError(f"{type_name}: indices must be integers, got {indices.dtype.name}")
        if ref.shape.ndims == 0:
            raise ValueError(f"{type_name}: variable {ref.op.name} is a scalar; it has no rows to scatter into")
        if updates.shape.ndims != 0 and indices.shape.ndims is not None and ref.shape.ndims is not None:
            expected = indices.shape.concatenate(ref.shape[1:])
            if not updates.shape.is_compatible_with(expected):
                raise ValueError(f"{type_name}: updates for variable {ref.op.name} must have shape "
                                 f"indices.shape + variable.shape[1:] = {expected} (or be a scalar), got "
                                 f"{updates.shape}")
        return [(ref.dtype, ref.shape)]

    @op_def.kernel
    def _kernel(op, device):
        np_dtype = op.inputs[0].dtype.as_numpy_dtype
        divide_ints = type_name == "ScatterDiv" and np.issubdtype(np_dtype, np.integer)

        def scatter(cell, indices, updates):
            rows = np.asarray(indices)
            updates = np.asarray(updates, dtype=np_dtype)
            with cell.lock:
                old = cell.read()
                if old.ndim == 0:
                    raise op.error(errors.InvalidArgumentError, "the variable holds a scalar: no rows to scatter into")
                if rows.size:
                    bad = np.flatnonzero((rows < 0) | (rows >= old.shape[0]))
                    if bad.size:
                        raise op.error(errors.InvalidArgumentError,
                                       f"indices[{bad[0]}] = {rows.reshape(-1)[bad[0]]} is not in [0, {old.shape[0]})")
                if updates.ndim and updates.shape != rows.shape + old.shape[1:]:
                    raise op.error(errors.InvalidArgumentError,
                                   f"updates must have shape indices.shape + variable.shape[1:] = "
                                   f"{list(rows.shape + old.shape[1:])} (or be a scalar), got {list(updates.shape)}")
                flat = rows.reshape(-1).astype(np.intp, copy=False)
                flat_updates = updates.reshape((flat.size,) + old.shape[1:]) if updates.ndim else updates
                new = old.copy()
                with np.errstate(divide="ignore", invalid="ignore"):  # x / 0 is inf or nan, as in TF
                    (_int_divide_at if divide_ints else apply_at)(new, flat, flat_updates)
                cell.store(new)
            return new
        return scatter
    return op_def


for _name in _APPLY:
    _define(_name)


def _scatter(type_name, ref, indices, updates, use_locking, name):
    ref_t = _as_ref(ref)
    with ref_t.graph.colocate_with(ref_t.op):
        indices = convert_to_tensor(indices)
        updates = convert_to_tensor(updates, dtype=ref_t.dtype)
        # use_locking is kept for TF's schema: every update here stores a fresh array under the
        # variable's lock anyway.
        return apply_op(type_name, [ref_t, indices, updates], {"use_locking": bool(use_locking)},
                        name=name or type_name)


def _public(type_name, name, doc, locking=False):
    def scatter(ref, indices, updates, use_locking=locking, name=None):
        return _scatter(type_name, ref, indices, updates, use_locking, name)
    scatter.__name__ = scatter.__qualname__ = name
    scatter.__doc__ = doc
    return scatter


scatter_update = _public("ScatterUpdate", "scatter_update", "`tf.scatter_update`: `ref[indices] = updates`; "
                         "returns the variable's new value.", locking=True)
scatter_add = _public("ScatterAdd", "scatter_add", "`tf.scatter_add`: `ref[indices] += updates` (a repeated "
                      "index adds each of its updates).")
scatter_sub = _public("ScatterSub", "scatter_sub", "`tf.scatter_sub`: `ref[indices] -= updates` (a repeated "
                      "index subtracts each).")
scatter_mul = _public("ScatterMul", "scatter_mul", "`tf.scatter_mul`: `ref[indices] *= updates`.")
scatter_div = _public("ScatterDiv", "scatter_div", "`tf.scatter_div`: `ref[indices] /= updates` (integers "
                      "truncate toward zero, as in TF).")
scatter_min = _public("ScatterMin", "scatter_min", "`tf.scatter_min`: `ref[indices] = minimum(ref[indices], "
                      "updates)`.")
scatter_max = _public("ScatterMax", "scatter_max", "`tf.scatter_max`: `ref[indices] = maximum(ref[indices], "
                      "updates)`.")
