"""TF1's adaptive optimizers: `MomentumOptimizer`, `AdagradOptimizer`, `AdamOptimizer`,
`RMSPropOptimizer`.

Each creates its slots ("momentum"; "accumulator"; "m" and "v"; "rms", "momentum" and for the
centered variant "mg") as non-trainable variables named `<var>/<OptName>`, `<var>/<OptName>_1`,
..., and applies one fused update op per variable (`tensorweave.ops.training_ops`).
Hyper-parameters may be Python numbers, tensors (e.g. `tf.train.exponential_decay`) or
callables returning either. Sparse gradients (`IndexedSlices`, from gathers) update only their
rows with Momentum, Adagrad and RMSProp, as TF's SparseApply ops do; Adam's sparse update in
TF1 is not lazy, so it densifies the gradient.
"""

from tensorweave.framework.op_builder import control_dependencies, convert_to_tensor
from tensorweave.ops import array_ops, constant_op, control_ops, training_ops, variables
from tensorweave.train.optimizer import Optimizer


def _call_if_callable(value):
    return value() if callable(value) else value


class _HyperParams(Optimizer):
    """Optimizer helpers: hyper-parameter tensors and slots with a non-zero initial value."""

    def _tensor(self, value, name):
        return self._lr(_call_if_callable(value), name=name)

    @staticmethod
    def _cast(tensor, var):
        return array_ops.cast(tensor, var.dtype.base_dtype)

    def _filled_slot(self, var, fill_value, slot_name, op_name):
        """A slot like `_zeros_slot`, but filled with `fill_value`."""
        slots = self._slots.setdefault(slot_name, {})
        if var not in slots:
            graph = var.graph
            shape, dtype = var.shape, var.dtype

            def initial_value():
                if shape.is_fully_defined():
                    return array_ops.fill(shape.as_list(), constant_op.constant(fill_value, dtype=dtype))
                return array_ops.fill(array_ops.shape(var.initialized_value()),
                                      constant_op.constant(fill_value, dtype=dtype))
            with graph.name_scope(None), graph.name_scope(f"{var.op.name}/"), graph.colocate_with(var.op):
                slots[var] = variables.Variable(initial_value, trainable=False, name=op_name)
        return slots[var]


class MomentumOptimizer(_HyperParams):
    """`tf.train.MomentumOptimizer(learning_rate, momentum, use_locking=False, name='Momentum',
    use_nesterov=False)`: accum = momentum * accum + grad; var -= learning_rate * accum
    (with Nesterov: var -= learning_rate * (grad + momentum * accum))."""

    def __init__(self, learning_rate, momentum, use_locking=False, name="Momentum", use_nesterov=False):
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._momentum = momentum
        self._use_nesterov = use_nesterov

    def _create_slots(self, var_list):
        for v in var_list:
            self._zeros_slot(v, "momentum", self._name)

    def _prepare(self):
        self._learning_rate_tensor = self._tensor(self._learning_rate, "learning_rate")
        self._momentum_tensor = self._tensor(self._momentum, "momentum")

    def _apply_dense(self, grad, var):
        return training_ops.apply_momentum(
            var, self.get_slot(var, "momentum"), self._cast(self._learning_rate_tensor, var), grad,
            self._cast(self._momentum_tensor, var), use_locking=self._use_locking,
            use_nesterov=self._use_nesterov).op

    def _apply_sparse(self, grad, var):
        """Only the gradient's rows move (their accumulators too), as TF's SparseApplyMomentum."""
        return training_ops.sparse_apply_momentum(
            var, self.get_slot(var, "momentum"), self._cast(self._learning_rate_tensor, var), grad.values,
            grad.indices, self._cast(self._momentum_tensor, var), use_locking=self._use_locking,
            use_nesterov=self._use_nesterov).op


class AdagradOptimizer(_HyperParams):
    """`tf.train.AdagradOptimizer(learning_rate, initial_accumulator_value=0.1, use_locking=False,
    name='Adagrad')`: accum += grad^2; var -= learning_rate * grad / sqrt(accum)."""

    def __init__(self, learning_rate, initial_accumulator_value=0.1, use_locking=False, name="Adagrad"):
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive: {initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._initial_accumulator_value = initial_accumulator_value

    def _create_slots(self, var_list):
        for v in var_list:
            self._filled_slot(v, self._initial_accumulator_value, "accumulator", self._name)

    def _prepare(self):
        self._learning_rate_tensor = self._tensor(self._learning_rate, "learning_rate")

    def _apply_dense(self, grad, var):
        return training_ops.apply_adagrad(
            var, self.get_slot(var, "accumulator"), self._cast(self._learning_rate_tensor, var), grad,
            use_locking=self._use_locking).op

    def _apply_sparse(self, grad, var):
        return training_ops.sparse_apply_adagrad(
            var, self.get_slot(var, "accumulator"), self._cast(self._learning_rate_tensor, var), grad.values,
            grad.indices, use_locking=self._use_locking).op


class AdamOptimizer(_HyperParams):
    """`tf.train.AdamOptimizer(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-08,
    use_locking=False, name='Adam')` (Kingma & Ba, section 2, as TF1):

        lr_t = learning_rate * sqrt(1 - beta2^t) / (1 - beta1^t)
        m = beta1 * m + (1 - beta1) * grad;  v = beta2 * v + (1 - beta2) * grad^2
        var -= lr_t * m / (sqrt(v) + epsilon)

    beta1^t and beta2^t live in the non-slot variables "beta1_power" and "beta2_power",
    colocated with the first variable (by name), and advance once per `apply_gradients` step.
    """

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-08, use_locking=False,
                 name="Adam"):
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._beta1 = beta1
        self._beta2 = beta2
        self._epsilon = epsilon

    def _get_beta_accumulators(self):
        return self._get_non_slot_variable("beta1_power"), self._get_non_slot_variable("beta2_power")

    def _create_slots(self, var_list):
        # On the device of the first variable by name, so every worker agrees where they live.
        first_var = min(var_list, key=lambda v: v.name)
        self._create_non_slot_variable(_call_if_callable(self._beta1), "beta1_power", first_var)
        self._create_non_slot_variable(_call_if_callable(self._beta2), "beta2_power", first_var)
        for v in var_list:
            self._zeros_slot(v, "m", self._name)
            self._zeros_slot(v, "v", self._name)

    def _prepare(self):
        self._lr_t = self._tensor(self._learning_rate, "learning_rate")
        self._beta1_t = self._tensor(self._beta1, "beta1")
        self._beta2_t = self._tensor(self._beta2, "beta2")
        self._epsilon_t = self._tensor(self._epsilon, "epsilon")

    def _apply_dense(self, grad, var):
        beta1_power, beta2_power = self._get_beta_accumulators()
        cast = self._cast
        return training_ops.apply_adam(
            var, self.get_slot(var, "m"), self.get_slot(var, "v"),
            cast(convert_to_tensor(beta1_power), var), cast(convert_to_tensor(beta2_power), var),
            cast(self._lr_t, var), cast(self._beta1_t, var), cast(self._beta2_t, var),
            cast(self._epsilon_t, var), grad, use_locking=self._use_locking).op

    def _finish(self, update_ops, name_scope_name):
        with control_dependencies(update_ops):
            beta1_power, beta2_power = self._get_beta_accumulators()
            with beta1_power.graph.colocate_with(beta1_power.op):
                update_beta1 = beta1_power.assign(beta1_power * self._beta1_t, use_locking=self._use_locking)
                update_beta2 = beta2_power.assign(beta2_power * self._beta2_t, use_locking=self._use_locking)
        return control_ops.group(*update_ops, update_beta1, update_beta2, name=name_scope_name)


class RMSPropOptimizer(_HyperParams):
    """`tf.train.RMSPropOptimizer(learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10,
    use_locking=False, centered=False, name='RMSProp')`:

        ms = decay * ms + (1 - decay) * grad^2     (slot "rms", starting at ones, as TF1)
        mom = momentum * mom + learning_rate * grad / sqrt(ms + epsilon)
        var -= mom

    With centered=True the denominator is sqrt(ms - mg^2 + epsilon), mg being the decayed
    mean of the gradients (slot "mg").
    """

    def __init__(self, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10, use_locking=False,
                 centered=False, name="RMSProp"):
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._decay = decay
        self._momentum = momentum
        self._epsilon = epsilon
        self._centered = centered

    def _create_slots(self, var_list):
        for v in var_list:
            self._filled_slot(v, 1, "rms", self._name)
            if self._centered:
                self._zeros_slot(v, "mg", self._name)
            self._zeros_slot(v, "momentum", self._name)

    def _prepare(self):
        self._learning_rate_tensor = self._tensor(self._learning_rate, "learning_rate")
        self._decay_tensor = self._tensor(self._decay, "decay")
        self._momentum_tensor = self._tensor(self._momentum, "momentum")
        self._epsilon_tensor = self._tensor(self._epsilon, "epsilon")

    def _hyper(self, var):
        cast = self._cast
        return [cast(self._learning_rate_tensor, var), cast(self._decay_tensor, var),
                cast(self._momentum_tensor, var), cast(self._epsilon_tensor, var)]

    def _apply_dense(self, grad, var):
        rms, mom = self.get_slot(var, "rms"), self.get_slot(var, "momentum")
        if self._centered:
            return training_ops.apply_centered_rms_prop(var, self.get_slot(var, "mg"), rms, mom, *self._hyper(var),
                                                        grad, use_locking=self._use_locking).op
        return training_ops.apply_rms_prop(var, rms, mom, *self._hyper(var), grad,
                                           use_locking=self._use_locking).op

    def _apply_sparse(self, grad, var):
        """Only the gradient's rows (and their slots) change, as TF's SparseApplyRMSProp."""
        rms, mom = self.get_slot(var, "rms"), self.get_slot(var, "momentum")
        if self._centered:
            return training_ops.sparse_apply_centered_rms_prop(
                var, self.get_slot(var, "mg"), rms, mom, *self._hyper(var), grad.values, grad.indices,
                use_locking=self._use_locking).op
        return training_ops.sparse_apply_rms_prop(var, rms, mom, *self._hyper(var), grad.values, grad.indices,
                                                  use_locking=self._use_locking).op


__all__ = ["MomentumOptimizer", "AdagradOptimizer", "AdamOptimizer", "RMSPropOptimizer"]
