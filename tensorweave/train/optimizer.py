"""`Optimizer`: `minimize` = `compute_gradients` + `apply_gradients`; subclasses create slots and
build the per-variable update (`_apply_dense`, optionally `_apply_sparse`)."""

from tensorweave.autodiff.gradients import gradients
from tensorweave.framework.indexed_slices import IndexedSlices
from tensorweave.framework import dtypes
from tensorweave.framework.graph import GraphKeys
from tensorweave.framework.op_builder import control_dependencies, convert_to_tensor, name_scope
from tensorweave.ops import array_ops, constant_op, control_ops, state_ops, variables


class Optimizer:
    """Base class of the `tf.train.*Optimizer` classes."""

    GATE_NONE = 0
    GATE_OP = 1
    GATE_GRAPH = 2

    def __init__(self, use_locking, name):
        if not name:
            raise ValueError("Must specify the optimizer name")
        self._use_locking = use_locking
        self._name = name
        self._slots = {}       # slot name -> {variable: slot variable}
        self._non_slots = {}   # name -> variable

    def get_name(self):
        return self._name

    def minimize(self, loss, global_step=None, var_list=None, gate_gradients=GATE_OP,
                 aggregation_method=None, colocate_gradients_with_ops=False, name=None, grad_loss=None):
        """Adds ops that update `var_list` (default: trainable variables) to minimize `loss`,
        and increment `global_step` if given."""
        grads_and_vars = self.compute_gradients(loss, var_list=var_list, gate_gradients=gate_gradients,
                                                aggregation_method=aggregation_method,
                                                colocate_gradients_with_ops=colocate_gradients_with_ops,
                                                grad_loss=grad_loss)
        if not [v for g, v in grads_and_vars if g is not None]:
            raise ValueError(f"No gradients provided for any variable, check your graph for ops that do "
                             f"not support gradients, between variables "
                             f"{[v.name for _, v in grads_and_vars]} and loss {loss}.")
        return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def compute_gradients(self, loss, var_list=None, gate_gradients=GATE_OP, aggregation_method=None,
                          colocate_gradients_with_ops=False, grad_loss=None):
        """A list of (gradient, variable) pairs; the gradient is None where loss does not depend on it."""
        loss = convert_to_tensor(loss)
        if var_list is None:
            var_list = loss.graph.get_collection(GraphKeys.TRAINABLE_VARIABLES)
        var_list = list(var_list)
        if not var_list:
            raise ValueError("No variables to optimize.")
        for v in var_list:
            if not v.dtype.is_floating:
                raise ValueError(f"Invalid type {v.dtype.name} for {v.name}, expected a float type")
        grads = gradients(loss, var_list, grad_ys=None if grad_loss is None else [grad_loss],
                          colocate_gradients_with_ops=colocate_gradients_with_ops)
        if gate_gradients == Optimizer.GATE_GRAPH:
            grads = control_ops.tuple(grads)
        return list(zip(grads, var_list, strict=True))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """An op applying the gradients; it also increments `global_step` when given."""
        grads_and_vars = [(g, v) for g, v in grads_and_vars]
        if not grads_and_vars:
            raise ValueError("No variables provided.")
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            raise ValueError(f"No gradients provided for any variable: {[v.name for _, v in grads_and_vars]}")
        var_list = [v for _, v in pairs]
        with control_dependencies(None):
            self._create_slots(var_list)
        update_ops = []
        with name_scope(name, self._name) as scope:
            self._prepare()
            for grad, var in pairs:
                with name_scope(f"update_{var.op.name}"), var.graph.colocate_with(var.op):
                    if isinstance(grad, IndexedSlices):
                        update_ops.append(self._apply_sparse(grad, var))
                    else:
                        update_ops.append(self._apply_dense(convert_to_tensor(grad), var))
            if global_step is None:
                return self._finish(update_ops, scope)
            with control_dependencies([self._finish(update_ops, "update")]):
                with global_step.graph.colocate_with(global_step.op):
                    return state_ops.assign_add(global_step, constant_op.constant(1, dtype=global_step.dtype),
                                                name=scope or None).op

    # -- subclass hooks ------------------------------------------------------------------------

    def _create_slots(self, var_list):
        pass

    def _prepare(self):
        pass

    def _apply_dense(self, grad, var):
        raise NotImplementedError(f"{type(self).__name__} must implement _apply_dense")

    def _apply_sparse(self, grad, var):
        """Default sparse update: densify the gradient and apply it densely."""
        return self._apply_dense(convert_to_tensor(grad), var)

    def _finish(self, update_ops, name_scope_name):
        return control_ops.group(*update_ops, name=name_scope_name)

    # -- slots ---------------------------------------------------------------------------------

    def _zeros_slot(self, var, slot_name, op_name):
        slots = self._slots.setdefault(slot_name, {})
        if var not in slots:
            graph = var.graph
            with graph.name_scope(None), graph.name_scope(f"{var.op.name}/"), graph.colocate_with(var.op):
                slots[var] = variables.Variable(
                    array_ops.zeros(var.shape, dtype=var.dtype), trainable=False, name=op_name)
        return slots[var]

    def _create_non_slot_variable(self, initial_value, name, colocate_with):
        if name not in self._non_slots:
            graph = colocate_with.graph
            with graph.name_scope(None), graph.colocate_with(colocate_with.op):
                self._non_slots[name] = variables.Variable(initial_value, trainable=False, name=name)
        return self._non_slots[name]

    def _get_non_slot_variable(self, name):
        return self._non_slots.get(name)

    def get_slot(self, var, name):
        return self._slots.get(name, {}).get(var)

    def get_slot_names(self):
        return sorted(self._slots)

    def variables(self):
        """The optimizer's own variables (slots and non-slot variables such as Adam's beta powers)."""
        out = list(self._non_slots.values())
        for slots in self._slots.values():
            out.extend(slots.values())
        return out

    def _lr(self, value, name="learning_rate"):
        return convert_to_tensor(value, dtype=dtypes.float32, name=name) \
            if not hasattr(value, "dtype") else convert_to_tensor(value)


class GradientDescentOptimizer(Optimizer):
    """`tf.train.GradientDescentOptimizer(learning_rate)`: var -= learning_rate * grad."""

    def __init__(self, learning_rate, use_locking=False, name="GradientDescent"):
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate

    def _prepare(self):
        self._lr_t = self._lr(self._learning_rate)

    def _apply_dense(self, grad, var):
        from tensorweave.ops import training_ops
        lr = self._lr_t if self._lr_t.dtype is var.dtype else array_ops.cast(self._lr_t, var.dtype)
        return training_ops.apply_gradient_descent(var._ref(), lr, grad, use_locking=self._use_locking).op

    def _apply_sparse(self, grad, var):
        """Only the gradient's rows change (and travel to the variable's PS), as TF's scatter_sub."""
        from tensorweave.ops import scatter_ops
        lr = self._lr_t if self._lr_t.dtype is var.dtype else array_ops.cast(self._lr_t, var.dtype)
        return scatter_ops.scatter_sub(var._ref(), grad.indices, grad.values * lr, use_locking=self._use_locking).op
