"""Fused optimizer updates (`ApplyGradientDescent`, `ApplyAdam`, ...): each reads a variable and its
slots, computes the update with NumPy and stores fresh arrays (variables are never written in place).

The formulas are TF's (see each op). The kernels work on a few fresh output arrays with in-place
NumPy operations on those, so an update allocates little more than the new values it stores;
the stored inputs are read-only and never modified.
"""

import functools
import math

import numpy as np

from tensorweave.framework import errors
from tensorweave.framework.op_builder import apply_op, convert_to_tensor
from tensorweave.framework.op_def import define_op


def define_apply(type_name, num_refs, update, grad_index=-1, attrs=(), update_into_grad=None):
    """Defines an update op whose first `num_refs` inputs are variable references.

    `update(*values_of_refs, *other_inputs, **attrs)` returns the new values of the refs (same
    order); `attrs` names op attributes passed as keywords. Input `grad_index` is the gradient
    (shaped like the variable); the other non-ref inputs are scalars. The op outputs the
    variable's new value. `update_into_grad`, if given, computes the same while writing into
    the gradient's array, which the plan may donate (it is fresh and dies at this op).
    """
    op_def = define_op(type_name, stateful=True, differentiable=False, ref_inputs=tuple(range(num_refs)))

    @op_def.shape_fn
    def _shape(op):
        var = op.inputs[0]
        grad = op.inputs[grad_index]
        for i, t in enumerate(op.inputs):
            if t.dtype is not var.dtype:
                raise TypeError(f"{type_name} input {t.name} has dtype {t.dtype.name}, expected "
                                f"{var.dtype.name} like variable {var.op.name}")
            if 0 < i < num_refs and not var.shape.is_compatible_with(t.shape):
                raise ValueError(f"{type_name}: slot {t.op.name} has shape {t.shape}, but variable "
                                 f"{var.op.name} has shape {var.shape}")
            if i >= num_refs and t is not grad and t.shape.ndims not in (None, 0):
                raise ValueError(f"{type_name}: input {t.name} must be a scalar, got shape {t.shape}")
        if not var.shape.is_compatible_with(grad.shape):
            raise ValueError(f"{type_name}: variable {var.op.name} has shape {var.shape} but the "
                             f"gradient has shape {grad.shape}")
        return [(var.dtype, var.shape)]

    def make_kernel(update_fn):
        def factory(op, device):
            fn = functools.partial(update_fn, **{a: op.get_attr(a) for a in attrs}) if attrs else update_fn

            def apply(*args):
                cells, rest = args[:num_refs], args[num_refs:]
                new_values = fn(*[c.read() for c in cells], *rest)
                for cell, value in zip(cells, new_values, strict=True):
                    cell.store(value)
                return new_values[0]
            return apply
        return factory

    op_def.kernel(make_kernel(update))
    if update_into_grad is not None:
        if grad_index < 0:
            raise ValueError(f"{type_name}: an in-place update needs the gradient's input index")
        op_def.inplace(grad_index)(make_kernel(update_into_grad))
    return op_def


def define_sparse_apply(type_name, num_refs, update, grad_index, attrs=()):
    """Defines the sparse form of an update: input `grad_index` holds the rows `indices` (input
    `grad_index + 1`, as TF orders them) of the variable's gradient, and only those rows of the
    variable and its slots change (repeated indices are summed first). `update` is the dense
    rule, applied to the selected rows; `attrs` as for `define_apply`."""
    op_def = define_op(type_name, stateful=True, differentiable=False, ref_inputs=tuple(range(num_refs)))
    indices_index = grad_index + 1

    @op_def.shape_fn
    def _shape(op):
        var, grad, indices = op.inputs[0], op.inputs[grad_index], op.inputs[indices_index]
        for i, t in enumerate(op.inputs):
            if i != indices_index and t.dtype is not var.dtype:
                raise TypeError(f"{type_name} input {t.name} has dtype {t.dtype.name}, expected "
                                f"{var.dtype.name} like variable {var.op.name}")
            if 0 < i < num_refs and not var.shape.is_compatible_with(t.shape):
                raise ValueError(f"{type_name}: slot {t.op.name} has shape {t.shape}, but variable "
                                 f"{var.op.name} has shape {var.shape}")
            if i >= num_refs and i not in (grad_index, indices_index) and t.shape.ndims not in (None, 0):
                raise ValueError(f"{type_name}: input {t.name} must be a scalar, got shape {t.shape}")
        if not indices.dtype.is_integer or indices.shape.ndims not in (None, 1):
            raise ValueError(f"{type_name}: indices must be a 1-D integer tensor, got {indices.dtype.name}"
                             f"{indices.shape}")
        if var.shape.ndims is not None and grad.shape.ndims is not None and (
                grad.shape.ndims != var.shape.ndims or not var.shape[1:].is_compatible_with(grad.shape[1:])):
            raise ValueError(f"{type_name}: variable {var.op.name} has shape {var.shape} but the "
                             f"gradient rows have shape {grad.shape}")
        return [(var.dtype, var.shape)]

    @op_def.kernel
    def _kernel(op, device):
        fn = functools.partial(update, **{a: op.get_attr(a) for a in attrs}) if attrs else update

        def apply(*args):
            cells, rest = args[:num_refs], list(args[num_refs:])
            indices = np.asarray(rest.pop(indices_index - num_refs)).astype(np.intp, copy=False)
            grad = rest[grad_index - num_refs]
            rows, inverse = np.unique(indices, return_inverse=True)
            if rows.size != indices.size:  # repeated rows: sum their gradients, as TF does first
                summed = np.zeros((rows.size,) + grad.shape[1:], dtype=grad.dtype)
                np.add.at(summed, inverse.reshape(-1), grad)
                rest[grad_index - num_refs] = summed
            olds = [c.read() for c in cells]
            if rows.size and (rows[0] < 0 or rows[-1] >= olds[0].shape[0]):
                raise op.error(errors.InvalidArgumentError,
                               f"indices {rows[0] if rows[0] < 0 else rows[-1]} out of range "
                               f"[0, {olds[0].shape[0]})")
            new_rows = fn(*[old[rows] for old in olds], *rest)
            new_values = []
            for old, value in zip(olds, new_rows, strict=True):
                new = old.copy()
                new[rows] = value
                new_values.append(new)
            for cell, value in zip(cells, new_values, strict=True):
                cell.store(value)
            return new_values[0]
        return apply
    return op_def


# -- update rules (TF's formulas, on fresh arrays updated in place) ------------------------------

def _new(var):
    """A fresh array for a result shaped like `var` (ufuncs on 0-d arrays would return scalars)."""
    return np.empty(var.shape, dtype=var.dtype)


def _gradient_descent(var, alpha, delta):
    """var -= alpha * delta"""
    step = np.multiply(delta, alpha, out=_new(var))
    return (np.subtract(var, step, out=step),)


def _momentum(var, accum, lr, grad, momentum, *, use_nesterov=False):
    """accum = accum * momentum + grad; var -= lr * accum, or with Nesterov
    var -= lr * grad + lr * momentum * accum."""
    lr, momentum = float(lr), float(momentum)
    accum_new = np.multiply(accum, momentum, out=_new(var))
    accum_new += grad
    if use_nesterov:
        step = np.multiply(accum_new, momentum, out=_new(var))
        step += grad
        step *= lr
    else:
        step = np.multiply(accum_new, lr, out=_new(var))
    return np.subtract(var, step, out=step), accum_new


def _adagrad(var, accum, lr, grad, *, update_slots=True):
    """accum += grad * grad; var -= lr * grad / sqrt(accum)"""
    if update_slots:
        accum_new = np.multiply(grad, grad, out=_new(var))
        accum_new += accum
    else:
        accum_new = accum
    step = np.sqrt(accum_new, out=_new(var))
    np.divide(grad, step, out=step)
    step *= float(lr)
    return np.subtract(var, step, out=step), accum_new


def _adam(var, m, v, beta1_power, beta2_power, lr, beta1, beta2, epsilon, grad, *, use_nesterov=False):
    """lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m = beta1 * m + (1 - beta1) * grad;
    v = beta2 * v + (1 - beta2) * grad^2; var -= lr_t * m / (sqrt(v) + epsilon), or with Nesterov
    var -= lr_t * (beta1 * m + (1 - beta1) * grad) / (sqrt(v) + epsilon)."""
    b1, b2 = float(beta1), float(beta2)
    alpha = float(lr) * math.sqrt(1.0 - float(beta2_power)) / (1.0 - float(beta1_power))
    m_new = np.subtract(grad, m, out=_new(var))  # m + (grad - m) * (1 - beta1), as TF's kernel
    m_new *= 1.0 - b1
    m_new += m
    v_new = np.multiply(grad, grad, out=_new(var))
    v_new -= v
    v_new *= 1.0 - b2
    v_new += v
    step = np.sqrt(v_new, out=_new(var))
    step += float(epsilon)
    if use_nesterov:
        num = np.subtract(m_new, grad, out=_new(var))
        num *= b1
        num += grad
        np.divide(num, step, out=step)
    else:
        np.divide(m_new, step, out=step)
    step *= alpha
    return np.subtract(var, step, out=step), m_new, v_new


def _decayed_square(ms, grad, rho):
    """rho * ms + (1 - rho) * grad^2, computed as ms + (grad^2 - ms) * (1 - rho) like TF."""
    ms_new = np.multiply(grad, grad, out=_new(ms))
    ms_new -= ms
    ms_new *= 1.0 - rho
    ms_new += ms
    return ms_new


def _rms_prop(var, ms, mom, lr, rho, momentum, epsilon, grad):
    """ms = rho * ms + (1 - rho) * grad^2; mom = momentum * mom + lr * grad / sqrt(ms + epsilon);
    var -= mom"""
    ms_new = _decayed_square(ms, grad, float(rho))
    step = np.add(ms_new, float(epsilon), out=_new(var))
    np.sqrt(step, out=step)
    np.divide(grad, step, out=step)
    step *= float(lr)
    mom_new = np.multiply(mom, float(momentum), out=_new(var))
    mom_new += step
    return np.subtract(var, mom_new, out=step), ms_new, mom_new


def _centered_rms_prop(var, mg, ms, mom, lr, rho, momentum, epsilon, grad):
    """mg = rho * mg + (1 - rho) * grad; ms = rho * ms + (1 - rho) * grad^2;
    mom = momentum * mom + lr * grad / sqrt(ms - mg^2 + epsilon); var -= mom"""
    rho = float(rho)
    mg_new = np.subtract(grad, mg, out=_new(var))
    mg_new *= 1.0 - rho
    mg_new += mg
    ms_new = _decayed_square(ms, grad, rho)
    step = np.multiply(mg_new, mg_new, out=_new(var))
    np.subtract(ms_new, step, out=step)
    step += float(epsilon)
    np.sqrt(step, out=step)
    np.divide(grad, step, out=step)
    step *= float(lr)
    mom_new = np.multiply(mom, float(momentum), out=_new(var))
    mom_new += step
    return np.subtract(var, mom_new, out=step), mg_new, ms_new, mom_new


def _gradient_descent_into_delta(var, alpha, delta):
    if delta.__class__ is not np.ndarray or delta.shape != var.shape or delta.dtype != var.dtype:
        return _gradient_descent(var, alpha, delta)
    np.multiply(delta, alpha, out=delta)
    return (np.subtract(var, delta, out=delta),)


ApplyGradientDescent = define_apply("ApplyGradientDescent", 1, _gradient_descent, grad_index=2,
                                    update_into_grad=_gradient_descent_into_delta)
ApplyMomentum = define_apply("ApplyMomentum", 2, _momentum, grad_index=3, attrs=("use_nesterov",))
ApplyAdagrad = define_apply("ApplyAdagrad", 2, _adagrad, attrs=("update_slots",))
ApplyAdam = define_apply("ApplyAdam", 3, _adam, attrs=("use_nesterov",))
ApplyRMSProp = define_apply("ApplyRMSProp", 3, _rms_prop)
ApplyCenteredRMSProp = define_apply("ApplyCenteredRMSProp", 4, _centered_rms_prop)

# Sparse forms change only the rows of the gradient; where a zero gradient row would still move
# the dense update (momentum, RMSProp's decays), they differ from densifying the gradient, as in TF.
SparseApplyMomentum = define_sparse_apply("SparseApplyMomentum", 2, _momentum, grad_index=3,
                                          attrs=("use_nesterov",))
SparseApplyAdagrad = define_sparse_apply("SparseApplyAdagrad", 2, _adagrad, grad_index=3,
                                         attrs=("update_slots",))
SparseApplyRMSProp = define_sparse_apply("SparseApplyRMSProp", 3, _rms_prop, grad_index=7)
SparseApplyCenteredRMSProp = define_sparse_apply("SparseApplyCenteredRMSProp", 4, _centered_rms_prop,
                                                 grad_index=8)


# -- Python wrappers -------------------------------------------------------------------------------

def _ref(var):
    """The reference tensor of a `tf.Variable` (or the ref tensor itself)."""
    return var._ref() if hasattr(var, "_ref") else var


def _apply(op_type, refs, others, attrs, name):
    refs = [_ref(r) for r in refs]
    others = [convert_to_tensor(t, dtype=refs[0].dtype) for t in others]
    return apply_op(op_type, refs + others, attrs, name=name or op_type)


def apply_gradient_descent(var, alpha, delta, use_locking=False, name=None):
    """var -= alpha * delta; returns the new value of var."""
    return _apply("ApplyGradientDescent", [var], [alpha, delta], {"use_locking": use_locking}, name)


def apply_momentum(var, accum, lr, grad, momentum, use_locking=False, use_nesterov=False, name=None):
    """accum = accum * momentum + grad; var -= lr * accum (Nesterov: var -= lr * grad +
    lr * momentum * accum); returns the new value of var."""
    return _apply("ApplyMomentum", [var, accum], [lr, grad, momentum],
                  {"use_locking": use_locking, "use_nesterov": use_nesterov}, name)


def apply_adagrad(var, accum, lr, grad, use_locking=False, update_slots=True, name=None):
    """accum += grad^2; var -= lr * grad / sqrt(accum); returns the new value of var."""
    return _apply("ApplyAdagrad", [var, accum], [lr, grad],
                  {"use_locking": use_locking, "update_slots": update_slots}, name)


def apply_adam(var, m, v, beta1_power, beta2_power, lr, beta1, beta2, epsilon, grad, use_locking=False,
               use_nesterov=False, name=None):
    """Adam's update of var, m and v (see `_adam`); returns the new value of var."""
    return _apply("ApplyAdam", [var, m, v], [beta1_power, beta2_power, lr, beta1, beta2, epsilon, grad],
                  {"use_locking": use_locking, "use_nesterov": use_nesterov}, name)


def apply_rms_prop(var, ms, mom, lr, rho, momentum, epsilon, grad, use_locking=False, name=None):
    """RMSProp's update of var, ms and mom (see `_rms_prop`); returns the new value of var."""
    return _apply("ApplyRMSProp", [var, ms, mom], [lr, rho, momentum, epsilon, grad],
                  {"use_locking": use_locking}, name)


def apply_centered_rms_prop(var, mg, ms, mom, lr, rho, momentum, epsilon, grad, use_locking=False,
                            name=None):
    """Centered RMSProp's update of var, mg, ms and mom (see `_centered_rms_prop`)."""
    return _apply("ApplyCenteredRMSProp", [var, mg, ms, mom], [lr, rho, momentum, epsilon, grad],
                  {"use_locking": use_locking}, name)


def _apply_sparse(op_type, refs, others, indices, attrs, name):
    refs = [_ref(r) for r in refs]
    others = [convert_to_tensor(t, dtype=refs[0].dtype) for t in others]
    return apply_op(op_type, refs + others + [convert_to_tensor(indices)], attrs, name=name or op_type)


def sparse_apply_momentum(var, accum, lr, grad, indices, momentum, use_locking=False, use_nesterov=False,
                          name=None):
    """`apply_momentum` on the rows `indices` of var and accum only (`grad` holds those rows)."""
    refs = [_ref(var), _ref(accum)]
    lr, grad = (convert_to_tensor(t, dtype=refs[0].dtype) for t in (lr, grad))
    return apply_op("SparseApplyMomentum", refs + [lr, grad, convert_to_tensor(indices),
                                                    convert_to_tensor(momentum, dtype=refs[0].dtype)],
                    {"use_locking": use_locking, "use_nesterov": use_nesterov}, name=name or "SparseApplyMomentum")


def sparse_apply_adagrad(var, accum, lr, grad, indices, use_locking=False, update_slots=True, name=None):
    """`apply_adagrad` on the rows `indices` of var and accum only (`grad` holds those rows)."""
    return _apply_sparse("SparseApplyAdagrad", [var, accum], [lr, grad], indices,
                         {"use_locking": use_locking, "update_slots": update_slots}, name)


def sparse_apply_rms_prop(var, ms, mom, lr, rho, momentum, epsilon, grad, indices, use_locking=False,
                          name=None):
    """`apply_rms_prop` on the rows `indices` of var, ms and mom only (`grad` holds those rows)."""
    return _apply_sparse("SparseApplyRMSProp", [var, ms, mom], [lr, rho, momentum, epsilon, grad], indices,
                         {"use_locking": use_locking}, name)


def sparse_apply_centered_rms_prop(var, mg, ms, mom, lr, rho, momentum, epsilon, grad, indices,
                                   use_locking=False, name=None):
    """`apply_centered_rms_prop` on the rows `indices` only (`grad` holds those rows)."""
    return _apply_sparse("SparseApplyCenteredRMSProp", [var, mg, ms, mom], [lr, rho, momentum, epsilon, grad],
                         indices, {"use_locking": use_locking}, name)
