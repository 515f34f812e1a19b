"""Learning-rate schedules of the global step (`tf.train.exponential_decay`, ...), as TF1 builds
them: small graphs of math ops, evaluated at each run."""

from tensorweave.framework import dtypes
from tensorweave.framework.op_builder import convert_n_to_tensor, convert_to_tensor, name_scope
from tensorweave.ops import array_ops, constant_op, math_ops


def _require_step(global_step, fn_name):
    if global_step is None:
        raise ValueError(f"global_step is required for {fn_name}.")


def _decay_progress(learning_rate, global_step, decay_steps, staircase):
    """(learning_rate tensor, global_step / decay_steps in its dtype, floored if `staircase`)."""
    learning_rate = convert_to_tensor(learning_rate, name="learning_rate")
    dtype = learning_rate.dtype
    step = array_ops.cast(global_step, dtype)
    p = step / array_ops.cast(decay_steps, dtype)
    if staircase:
        p = math_ops.floor(p)
    return learning_rate, p


def exponential_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None):
    """`tf.train.exponential_decay`: learning_rate * decay_rate ^ (global_step / decay_steps),
    the exponent floored if `staircase`."""
    _require_step(global_step, "exponential_decay")
    with name_scope(name, "ExponentialDecay", [learning_rate, global_step, decay_steps, decay_rate]) as scope:
        learning_rate, p = _decay_progress(learning_rate, global_step, decay_steps, staircase)
        decay_rate = array_ops.cast(decay_rate, learning_rate.dtype)
        return math_ops.multiply(learning_rate, math_ops.pow(decay_rate, p), name=scope)


def natural_exp_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None):
    """`tf.train.natural_exp_decay`: learning_rate * exp(-decay_rate * global_step / decay_steps)."""
    _require_step(global_step, "natural_exp_decay")
    with name_scope(name, "NaturalExpDecay", [learning_rate, global_step, decay_rate]) as scope:
        learning_rate, p = _decay_progress(learning_rate, global_step, decay_steps, staircase)
        decay_rate = array_ops.cast(decay_rate, learning_rate.dtype)
        exponent = math_ops.exp(math_ops.multiply(math_ops.negative(decay_rate), p))
        return math_ops.multiply(learning_rate, exponent, name=scope)


def inverse_time_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None):
    """`tf.train.inverse_time_decay`: learning_rate / (1 + decay_rate * global_step / decay_steps)."""
    _require_step(global_step, "inverse_time_decay")
    with name_scope(name, "InverseTimeDecay", [learning_rate, global_step, decay_rate]) as scope:
        learning_rate, p = _decay_progress(learning_rate, global_step, decay_steps, staircase)
        decay_rate = array_ops.cast(decay_rate, learning_rate.dtype)
        denom = math_ops.add(constant_op.constant(1.0, dtype=learning_rate.dtype), math_ops.multiply(decay_rate, p))
        return math_ops.truediv(learning_rate, denom, name=scope)


def polynomial_decay(learning_rate, global_step, decay_steps, end_learning_rate=0.0001, power=1.0,
                     cycle=False, name=None):
    """`tf.train.polynomial_decay`: (learning_rate - end_learning_rate) * (1 - step / decay_steps)
    ^ power + end_learning_rate, with step = min(global_step, decay_steps); with `cycle`,
    decay_steps grows to the first multiple of itself not below global_step instead."""
    _require_step(global_step, "polynomial_decay")
    with name_scope(name, "PolynomialDecay",
                    [learning_rate, global_step, decay_steps, end_learning_rate, power]) as scope:
        learning_rate = convert_to_tensor(learning_rate, name="learning_rate")
        dtype = learning_rate.dtype
        end_learning_rate = array_ops.cast(end_learning_rate, dtype)
        power = array_ops.cast(power, dtype)
        step = array_ops.cast(global_step, dtype)
        steps = array_ops.cast(decay_steps, dtype)
        if cycle:
            # ceil(step / steps), taken as 1 at step 0.
            multiplier = math_ops.maximum(math_ops.ceil(step / steps), constant_op.constant(1.0, dtype=dtype))
            steps = math_ops.multiply(steps, multiplier)
        else:
            step = math_ops.minimum(step, steps)
        p = math_ops.truediv(step, steps)
        one = constant_op.constant(1.0, dtype=dtype)
        return math_ops.add(math_ops.multiply(learning_rate - end_learning_rate,
                                              math_ops.pow(one - p, power)),
                            end_learning_rate, name=scope)


def piecewise_constant(x, boundaries, values, name=None):
    """`tf.train.piecewise_constant(x, boundaries, values)`: values[0] while x <= boundaries[0],
    values[i] while boundaries[i-1] < x <= boundaries[i], values[-1] once x > boundaries[-1]."""
    if len(boundaries) != len(values) - 1:
        raise ValueError("The length of boundaries should be 1 less than the length of values")
    with name_scope(name, "PiecewiseConstant", [x]) as scope:
        x = convert_to_tensor(x)
        boundaries = convert_n_to_tensor(boundaries)
        values = convert_n_to_tensor(values)
        for i, b in enumerate(boundaries):
            if b.dtype is not x.dtype:
                # int32 boundaries (Python ints) widen to an int64 step losslessly; others must match.
                if b.dtype is dtypes.int32 and x.dtype is dtypes.int64:
                    boundaries[i] = array_ops.cast(b, dtypes.int64)
                else:
                    raise ValueError(f"Boundaries ({b.dtype!r}) must have the same dtype as x ({x.dtype!r}).")
        for v in values[1:]:
            if v.dtype is not values[0].dtype:
                raise ValueError(f"Values must have elements all with the same dtype ({values[0].dtype!r} "
                                 f"vs {v.dtype!r}).")
        preds = [math_ops.less_equal(x, boundaries[0])]
        for low, high in zip(boundaries[:-1], boundaries[1:], strict=True):
            preds.append(math_ops.logical_and(math_ops.greater(x, low), math_ops.less_equal(x, high)))
        preds.append(math_ops.greater(x, boundaries[-1]))
        # Exactly one predicate holds, so the sum of value * indicator is that value, exactly.
        terms = [math_ops.multiply(v, array_ops.cast(p, v.dtype)) for p, v in zip(preds, values, strict=True)]
        return math_ops.add_n(terms, name=scope) if len(terms) > 1 else array_ops.identity(terms[0], name=scope)


__all__ = ["exponential_decay", "natural_exp_decay", "inverse_time_decay", "polynomial_decay",
           "piecewise_constant"]
