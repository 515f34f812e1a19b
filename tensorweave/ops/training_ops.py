"""Fused optimizer updates (`ApplyGradientDescent`, ...): each reads a variable and its slots,
computes the update with NumPy and stores fresh arrays (variables are never written in place)."""

import numpy as np

from tensorweave.framework.op_builder import apply_op
from tensorweave.framework.op_def import define_op


def define_apply(type_name, num_refs, update):
    """Defines an update op whose first `num_refs` inputs are variable references.

    `update(values_of_refs, *other_inputs)` returns the new values of the refs (same order).
    The op outputs the variable's new value.
    """
    op_def = define_op(type_name, stateful=True, differentiable=False, ref_inputs=tuple(range(num_refs)))

    @op_def.shape_fn
    def _shape(op):
        var = op.inputs[0]
        for t in op.inputs[num_refs:]:
            if t.dtype is not var.dtype:
                raise TypeError(f"{type_name} input {t.name} has dtype {t.dtype.name}, expected "
                                f"{var.dtype.name} like variable {var.op.name}")
        grad = op.inputs[-1]
        if not var.shape.is_compatible_with(grad.shape):
            raise ValueError(f"{type_name}: variable {var.op.name} has shape {var.shape} but the "
                             f"gradient has shape {grad.shape}")
        return [(var.dtype, var.shape)]

    @op_def.kernel
    def _kernel(op, device):
        def apply(*args):
            cells, rest = args[:num_refs], args[num_refs:]
            new_values = update(*[c.read() for c in cells], *rest)
            for cell, value in zip(cells, new_values, strict=True):
                cell.store(value)
            return new_values[0]
        return apply
    return op_def


def _gradient_descent(var, alpha, delta):
    step = np.multiply(delta, alpha, dtype=var.dtype)
    return (np.subtract(var, step, out=step),)


ApplyGradientDescent = define_apply("ApplyGradientDescent", 1, _gradient_descent)


def apply_gradient_descent(var, alpha, delta, use_locking=False, name=None):
    return apply_op("ApplyGradientDescent", [var, alpha, delta], {"use_locking": use_locking},
                    name=name or "ApplyGradientDescent")
