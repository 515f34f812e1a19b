"""`tf.train.ExponentialMovingAverage` and `assign_moving_average`, as in TF1.

Each averaged variable gets a shadow variable `<var>/<name>` (not trainable) colocated with it, so
on a cluster the averages live on the variable's PS and an update moves no tensor between tasks.
`apply()` returns the op that moves every shadow toward its variable:
`shadow -= (1 - decay) * (shadow - value)`, with `decay = min(decay, (1 + n) / (10 + n))` when
`num_updates` (n, usually the global step) is given. `SyncReplicasOptimizer(variable_averages=...)`
runs that op on the chief once per global step. `variables_to_restore()` maps the shadows'
names to the variables, so a `Saver` built from it loads the averages into the model (for eval).
"""

import contextlib

from tensorweave.framework import dtypes
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.framework.op_builder import control_dependencies, convert_to_tensor, name_scope
from tensorweave.ops import array_ops, control_ops, init_ops, math_ops, state_ops, variables
from tensorweave.ops import variable_scope as vs

_FLOATS = (dtypes.float16, dtypes.float32, dtypes.float64)


def assign_moving_average(variable, value, decay, zero_debias=True, name=None):
    """`variable -= (1 - decay) * (variable - value)`; returns the updated reference.

    With `zero_debias` (for an average that starts at zero), the update instead keeps a biased
    average and a step count beside `variable` and sets it to `biased / (1 - decay ** steps)`,
    which is an average of the values seen from the first step on (TF's `_zero_debias`)."""
    with name_scope(name, "AssignMovingAvg", [variable, value, decay]) as scope:
        graph = variable.graph
        with graph.colocate_with(variable.op):
            one_minus_decay = 1.0 - convert_to_tensor(decay, name="decay")
            if one_minus_decay.dtype != variable.dtype.base_dtype:
                one_minus_decay = array_ops.cast(one_minus_decay, variable.dtype.base_dtype)
            if zero_debias:
                delta = _zero_debias(variable, value, one_minus_decay)
            else:
                delta = (variable - value) * one_minus_decay
            return state_ops.assign_sub(variable, delta, name=scope)


def _zero_debias(unbiased, value, one_minus_decay):
    """The step that takes `unbiased` to the debiased average (the biased one divided by
    `1 - decay ** steps`), after updating the biased average and the step count it keeps."""
    graph = unbiased.graph
    with vs.variable_scope(unbiased.op.name, values=[unbiased, value, one_minus_decay]) as scope, \
            graph.colocate_with(unbiased.op):
        biased = vs.get_variable("biased", unbiased.shape, unbiased.dtype.base_dtype,
                                 initializer=init_ops.zeros_initializer(), trainable=False)
        local_step = vs.get_variable("local_step", [], unbiased.dtype.base_dtype,
                                     initializer=init_ops.zeros_initializer(), trainable=False)
        update_biased = state_ops.assign_sub(biased, (biased - value) * one_minus_decay, name=scope.name)
        update_step = state_ops.assign_add(local_step, array_ops.ones([], unbiased.dtype.base_dtype))
        with control_dependencies([update_biased, update_step]):
            return unbiased - biased.read_value() / (1 - math_ops.pow(1.0 - one_minus_decay,
                                                                     local_step.read_value()))


class ExponentialMovingAverage:
    """`tf.train.ExponentialMovingAverage(decay, num_updates=None, zero_debias=False,
    name="ExponentialMovingAverage")`: keeps moving averages of variables (or tensors)."""

    def __init__(self, decay, num_updates=None, zero_debias=False, name="ExponentialMovingAverage"):
        self._decay = decay
        self._num_updates = num_updates
        self._zero_debias = zero_debias
        self._name = name
        self._averages = {}

    @property
    def name(self):
        return self._name

    def apply(self, var_list=None):
        """Creates the shadows of `var_list` (default: the trainable variables) that do not have
        one yet and returns the op updating all of them. A variable's shadow starts at its initial
        value; a tensor's at zero (debiased if `zero_debias`)."""
        if var_list is None:
            var_list = variables.trainable_variables()
        var_list = list(var_list)
        debiased = set()
        for var in var_list:
            if var.dtype.base_dtype not in _FLOATS:
                raise TypeError(f"The variables must be half, float, or double: {var.name}")
            if var not in self._averages:
                self._averages[var] = self._shadow(var)
                if not isinstance(var, variables.Variable) and self._zero_debias:
                    debiased.add(self._averages[var])
        with name_scope(self._name) as scope:
            decay = convert_to_tensor(self._decay, name="decay")
            if self._num_updates is not None:
                n = array_ops.cast(self._num_updates, dtypes.float32, name="num_updates")
                decay = math_ops.minimum(decay, (1.0 + n) / (10.0 + n))
            updates = [assign_moving_average(self._averages[var], var, decay,
                                             zero_debias=self._averages[var] in debiased)
                       for var in var_list]
            return control_ops.group(*updates, name=scope)

    def _shadow(self, var):
        graph = var.graph
        is_variable = isinstance(var, variables.Variable)
        with graph.control_dependencies(None), graph.name_scope(None), graph.name_scope(f"{var.op.name}/"):
            # Kept with the variable (on its PS), as TF does; a tensor's average goes wherever
            # the device functions put it, unless the tensor is a variable's reference.
            colocate = is_variable or var.op.type in ("VariableV2", "Variable")
            with graph.colocate_with(var.op) if colocate else contextlib.nullcontext():
                if is_variable:
                    initial = var.initialized_value()
                elif var.shape.is_fully_defined():
                    initial = array_ops.zeros(var.shape.as_list(), var.dtype.base_dtype)
                else:
                    initial = array_ops.zeros(array_ops.shape(var), var.dtype.base_dtype)
                shadow = variables.Variable(initial, trainable=False, name=self._name,
                                            validate_shape=initial.shape.is_fully_defined())
        if is_variable:
            graph.add_to_collection(GraphKeys.MOVING_AVERAGE_VARIABLES, var)
        return shadow

    def average(self, var):
        """The shadow variable of `var`, or None if `apply` has not averaged it."""
        return self._averages.get(var)

    def average_name(self, var):
        """The name `var`'s shadow has (or would have): `<var op name>/<name>`."""
        if var in self._averages:
            return self._averages[var].op.name
        return get_default_graph().unique_name(f"{var.op.name}/{self._name}", mark_as_used=False)

    def variables_to_restore(self, moving_avg_variables=None):
        """{checkpoint name: variable} for a `Saver` that loads each averaged variable from its
        shadow's name, and every other global variable from its own."""
        if moving_avg_variables is None:
            moving_avg_variables = variables.trainable_variables() + variables.moving_average_variables()
        averaged = set(moving_avg_variables)
        name_map = {self.average_name(v): v for v in averaged}
        for v in variables.global_variables():
            if v not in averaged and v.op.name not in name_map:
                name_map[v.op.name] = v
        return name_map
