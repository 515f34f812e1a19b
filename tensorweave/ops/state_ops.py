"""Variable ops: storage in the device's resource manager, reads, and assignments.

`VariableV2` outputs a reference to a `VariableCell`; a consumer reads the value when it runs
(so `control_dependencies([assign])` then `identity(v)` sees the new value, as in TF1).
Assignments take the reference itself. Stored arrays are never changed in place.
"""

import threading

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.op_builder import apply_op, convert_to_tensor
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor_shape import TensorShape


class VariableCell:
    """The storage of one variable. Its array is never written in place: an update stores a new
    array, so a value read earlier in a step stays as it was (and readers need no lock)."""

    __slots__ = ("value", "name", "op", "dtype", "lock")

    def __init__(self, name, op, dtype):
        self.value = None
        self.name = name
        self.op = op
        self.dtype = dtype
        self.lock = threading.Lock()

    def read(self):
        value = self.value
        if value is None:
            op = self.op
            raise errors.FailedPreconditionError(
                None, op, f"Attempting to use uninitialized value {self.name}. Run its initializer "
                f"(e.g. tf.global_variables_initializer()) first")
        return value

    def store(self, value):
        """Stores `value` (already a fresh array owned by the variable) as the new value."""
        if not isinstance(value, np.ndarray):  # NumPy returns scalars for 0-d results
            value = np.asarray(value)
        value.flags.writeable = False
        self.value = value

    def is_initialized(self):
        return self.value is not None


VariableV2 = define_op("VariableV2", stateful=True, ref_outputs=True)


@VariableV2.shape_fn
def _variable_shape(op):
    return [(op.get_attr("dtype"), op.get_attr("shape"))]


@VariableV2.kernel
def _variable_kernel(op, device):
    dtype = op.get_attr("dtype")
    shared_name = op.get_attr("shared_name") or op.name
    # Looked up again after `tf.Session.reset` cleared the container (then uninitialized).
    lookup = device.resources.cached(op.get_attr("container"), shared_name,
                                     lambda: VariableCell(op.name, op, dtype))

    def variable():
        cell = lookup()
        if cell.dtype is not dtype:  # another graph made it (graphs share variables by name)
            raise op.error(errors.InvalidArgumentError,
                           f"Trying to share variable {shared_name}, but specified dtype {dtype.name} "
                           f"and found dtype {cell.dtype.name}")
        return cell
    return variable


@VariableV2.gradient
def _variable_grad(op, grad):
    return ()


def variable_op(shape, dtype, name="Variable", container="", shared_name=""):
    return apply_op("VariableV2", [], {"shape": TensorShape(shape), "dtype": dtypes.as_dtype(dtype),
                                       "container": container, "shared_name": shared_name},
                    name=name)


def _ref_shape(op):
    ref, value = op.inputs[0], op.inputs[1]
    if ref.dtype is not value.dtype:
        raise TypeError(f"{op.type} of a {ref.dtype.name} variable ({ref.op.name}) needs a "
                        f"{ref.dtype.name} value, got {value.dtype.name}")
    if op.get_attr("validate_shape") and not ref.shape.is_compatible_with(value.shape):
        raise ValueError(f"Shapes must be equal: variable {ref.op.name} has shape {ref.shape}, the "
                         f"assigned value has shape {value.shape}")
    shape = value.shape if not op.get_attr("validate_shape") else ref.shape.merge_with(value.shape)
    return [(ref.dtype, shape)]


def _assign_like(type_name, update):
    op_def = define_op(type_name, stateful=True, differentiable=False, ref_inputs=(0,))
    op_def.shape_fn(_ref_shape)

    @op_def.kernel
    def _kernel(op, device):
        np_dtype = op.inputs[0].dtype.as_numpy_dtype
        validate = op.get_attr("validate_shape")
        static = op.inputs[0].shape

        def assign(cell, value):
            with cell.lock:
                old = cell.value
                # As TF: the value must fit the variable's static shape and, once it holds a value
                # (another graph sharing it by name may have set it), that value's shape too.
                if old is not None and (validate or type_name != "Assign") and np.shape(value) != old.shape:
                    raise op.error(errors.InvalidArgumentError,
                                   f"{type_name} requires shapes of both tensors to match. lhs shape= "
                                   f"{list(old.shape)} rhs shape= {list(np.shape(value))}")
                new = update(cell, value, np_dtype)
                if validate and not static.is_compatible_with(new.shape):
                    raise op.error(errors.InvalidArgumentError,
                                   f"{type_name} requires shapes of both tensors to match. lhs shape= "
                                   f"{static} rhs shape= {list(new.shape)}")
                cell.store(new)
            return new
        return assign
    return op_def


def _assign_update(cell, value, np_dtype):
    return np.array(value, dtype=np_dtype, copy=True)


def _add_update(cell, value, np_dtype):
    return np.add(cell.read(), value, dtype=np_dtype)


def _sub_update(cell, value, np_dtype):
    return np.subtract(cell.read(), value, dtype=np_dtype)


Assign = _assign_like("Assign", _assign_update)
AssignAdd = _assign_like("AssignAdd", _add_update)
AssignSub = _assign_like("AssignSub", _sub_update)


def _assign(op_type, ref, value, validate_shape, name):
    ref_t = _as_ref(ref)
    value = convert_to_tensor(value, dtype=ref_t.dtype)
    graph = ref_t.graph
    with graph.colocate_with(ref_t.op):
        return apply_op(op_type, [ref_t, value], {"validate_shape": validate_shape, "use_locking": False},
                        name=name or op_type)


def _as_ref(ref):
    ref_t = getattr(ref, "_ref", lambda: ref)()
    if not ref_t.op.op_def.ref_outputs:
        raise TypeError(f"Can only assign to a variable, got tensor {ref_t.name} of op type {ref_t.op.type}")
    return ref_t


def assign(ref, value, validate_shape=True, use_locking=None, name=None):
    """`tf.assign`: stores `value` in variable `ref`; returns the new value."""
    return _assign("Assign", ref, value, validate_shape, name)


def assign_add(ref, value, use_locking=None, name=None):
    """`tf.assign_add`: adds `value` to variable `ref`; returns the new value."""
    return _assign("AssignAdd", ref, value, True, name)


def assign_sub(ref, value, use_locking=None, name=None):
    """`tf.assign_sub`: subtracts `value` from variable `ref`; returns the new value."""
    return _assign("AssignSub", ref, value, True, name)


IsVariableInitialized = define_op("IsVariableInitialized", stateful=True, differentiable=False,
                                  ref_inputs=(0,))


@IsVariableInitialized.shape_fn
def _is_init_shape(op):
    return [(dtypes.bool, TensorShape([]))]


@IsVariableInitialized.kernel
def _is_init_kernel(op, device):
    return lambda cell: np.array(cell.is_initialized())


def is_variable_initialized(ref, name=None):
    """`tf.is_variable_initialized`: a bool scalar, True once `ref` holds a value."""
    return apply_op("IsVariableInitialized", [_as_ref(ref)], name=name or "IsVariableInitialized")

