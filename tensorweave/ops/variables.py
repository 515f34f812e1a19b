"""`tf.Variable`: a `VariableV2` op, its initializer (`Assign`) and its snapshot (`read`), plus the
global initializers."""

from tensorboard.compat.proto import variable_pb2

from tensorweave.framework import dtypes
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.framework.op_builder import (colocate_with, convert_to_tensor, name_scope,
                                              register_tensor_conversion_function)
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, as_shape
from tensorweave.ops import array_ops, scatter_ops, state_ops


class Variable:
    """`tf.Variable(initial_value, trainable=True, collections=None, validate_shape=True, name=None,
    dtype=None)`: state that persists across `Session.run` calls."""

    def __init__(self, initial_value=None, trainable=True, collections=None, validate_shape=True,
                 caching_device=None, name=None, variable_def=None, dtype=None, expected_shape=None,
                 import_scope=None, constraint=None, use_resource=None, synchronization=None,
                 aggregation=None, shape=None):
        if variable_def is not None:
            self._init_from_proto(variable_def, import_scope)
            return
        if initial_value is None:
            raise ValueError("initial_value must be specified.")
        graph = get_default_graph()
        self._trainable = bool(trainable)
        self._constraint = constraint
        # As in TF1, a variable never depends on the control inputs around its creation: its
        # initializer must run alone (`global_variables_initializer` inside a training block).
        with graph.control_dependencies(None), \
                name_scope(name, "Variable", [] if callable(initial_value) else [initial_value]) as scope:
            with name_scope("Initializer"):
                value = initial_value() if callable(initial_value) else initial_value
                value = convert_to_tensor(value, dtype=dtype, name="initial_value")
            self._initial_value = value
            var_shape = value.shape if validate_shape else (as_shape(shape) if shape is not None
                                                            else TensorShape(None))
            if validate_shape and not var_shape.is_fully_defined():
                raise ValueError(f"initial_value must have a shape specified: {value}")
            self._variable = state_ops.variable_op(var_shape, value.dtype, name=scope)
            self._initializer_op = state_ops.assign(self._variable, value, validate_shape=validate_shape,
                                                    name="Assign").op
            with graph.colocate_with(self._variable.op):
                self._snapshot = array_ops.identity(self._variable, name="read")
        if collections is None:
            collections = [GraphKeys.GLOBAL_VARIABLES]
        if self._trainable and GraphKeys.TRAINABLE_VARIABLES not in collections:
            collections = list(collections) + [GraphKeys.TRAINABLE_VARIABLES]
        graph.add_to_collections(collections, self)
        self._save_slice_info = None

    def _init_from_proto(self, variable_def, import_scope):
        graph = get_default_graph()

        def element(name):
            if import_scope:
                name = f"{import_scope}/{name}"
            return graph.as_graph_element(name)
        self._variable = element(variable_def.variable_name)
        self._initializer_op = element(variable_def.initializer_name)
        self._snapshot = element(variable_def.snapshot_name)
        self._initial_value = element(variable_def.initial_value_name) \
            if variable_def.initial_value_name else None
        self._trainable = variable_def.trainable
        self._constraint = None
        self._save_slice_info = None

    # -- identity ----------------------------------------------------------------------------

    __array_priority__ = 100  # `np_array * variable` defers to the variable's operators

    @property
    def name(self):
        return self._variable.name

    @property
    def op(self):
        return self._variable.op

    @property
    def graph(self):
        return self._variable.graph

    @property
    def device(self):
        return self._variable.device

    @property
    def dtype(self):
        return self._variable.dtype

    @property
    def shape(self):
        return self._variable.shape

    def get_shape(self):
        return self._variable.shape

    @property
    def trainable(self):
        return self._trainable

    @property
    def initializer(self):
        return self._initializer_op

    @property
    def initial_value(self):
        return self._initial_value

    @property
    def constraint(self):
        return self._constraint

    def initialized_value(self):
        """The variable's initial value, for initializing other variables from it."""
        return self._initial_value

    def _ref(self):
        return self._variable

    def _as_graph_element(self):
        return self._variable

    def value(self):
        """The snapshot tensor (`<name>/read`)."""
        return self._snapshot

    def read_value(self):
        """A new read of the variable, taken when this op runs."""
        return array_ops.identity(self._variable, name="read")

    def eval(self, session=None):
        return self._variable.eval(session=session)

    def load(self, value, session=None):
        """Stores `value` into the variable through `session` (default session if None)."""
        from tensorweave.framework.graph import get_default_session
        session = session or get_default_session()
        session.run(self._initializer_op, {self._initializer_op.inputs[1]: value})

    def assign(self, value, use_locking=False, name=None, read_value=True):
        return state_ops.assign(self._variable, value, name=name)

    def assign_add(self, delta, use_locking=False, name=None, read_value=True):
        return state_ops.assign_add(self._variable, delta, name=name)

    def assign_sub(self, delta, use_locking=False, name=None, read_value=True):
        return state_ops.assign_sub(self._variable, delta, name=name)

    def scatter_update(self, sparse_delta, use_locking=False, name=None):
        """Sets the rows `sparse_delta.indices` to `sparse_delta.values` (an `IndexedSlices`)."""
        return scatter_ops.scatter_update(self._variable, sparse_delta.indices, sparse_delta.values,
                                          use_locking=use_locking, name=name)

    def scatter_add(self, sparse_delta, use_locking=False, name=None):
        """Adds `sparse_delta.values` (an `IndexedSlices`) to the rows `sparse_delta.indices`."""
        return scatter_ops.scatter_add(self._variable, sparse_delta.indices, sparse_delta.values,
                                       use_locking=use_locking, name=name)

    def scatter_sub(self, sparse_delta, use_locking=False, name=None):
        """Subtracts `sparse_delta.values` (an `IndexedSlices`) from the rows `sparse_delta.indices`."""
        return scatter_ops.scatter_sub(self._variable, sparse_delta.indices, sparse_delta.values,
                                       use_locking=use_locking, name=name)

    def set_shape(self, shape):
        self._variable.set_shape(shape)
        self._snapshot.set_shape(shape)

    def to_proto(self, export_scope=None):
        """This variable as a `VariableDef` (how meta graphs record variables)."""
        return variable_pb2.VariableDef(
            variable_name=self._variable.name, initializer_name=self._initializer_op.name,
            snapshot_name=self._snapshot.name, trainable=self._trainable,
            initial_value_name=self._initial_value.name if isinstance(self._initial_value, Tensor) else "")

    @staticmethod
    def from_proto(variable_def, import_scope=None):
        return Variable(variable_def=variable_def, import_scope=import_scope)

    def __repr__(self):
        return f"<tw.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}>"

    __hash__ = object.__hash__


_OPERATORS = ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "floordiv", "rfloordiv",
              "mod", "rmod", "pow", "rpow", "matmul", "rmatmul", "neg", "abs", "lt", "le", "gt", "ge",
              "getitem", "and", "rand", "or", "ror", "xor", "rxor", "invert")


def _forward_to_snapshot(name):
    # Looked up when called, so operators installed on Tensor later are forwarded too.
    return lambda self, *args: getattr(self._snapshot, name)(*args)


for _name in _OPERATORS:
    setattr(Variable, f"__{_name}__", _forward_to_snapshot(f"__{_name}__"))


def _variable_conversion(var, dtype, name):
    # Inside control_dependencies a fresh read is made, ordered after the dependencies: TF1 gets
    # the same effect by aliasing the variable's buffer (`with deps: tf.identity(v)` sees updates).
    value = var._snapshot if not var.graph._control_stack else array_ops.identity(var._variable, name="read")
    if dtype is not None and dtypes.as_dtype(dtype) is not value.dtype:
        raise ValueError(f"Incompatible type conversion requested to type {dtypes.as_dtype(dtype).name} "
                         f"for variable {var.name} of type {value.dtype.name}")
    return value


register_tensor_conversion_function(Variable, _variable_conversion, priority=10)


def global_variables(scope=None):
    return get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


all_variables = global_variables


def trainable_variables(scope=None):
    return get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def local_variables(scope=None):
    return get_default_graph().get_collection(GraphKeys.LOCAL_VARIABLES, scope)


def model_variables(scope=None):
    return get_default_graph().get_collection(GraphKeys.MODEL_VARIABLES, scope)


def moving_average_variables(scope=None):
    return get_default_graph().get_collection(GraphKeys.MOVING_AVERAGE_VARIABLES, scope)


def variables_initializer(var_list, name="init"):
    """An op running the initializers of `var_list`."""
    from tensorweave.ops import control_ops
    return control_ops.group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer():
    """`tf.global_variables_initializer()`: an op initializing every global variable."""
    return variables_initializer(global_variables())


initialize_all_variables = global_variables_initializer


def local_variables_initializer():
    return variables_initializer(local_variables(), name="init_1")


initialize_local_variables = local_variables_initializer


def variables_are_initialized(var_list):
    return [state_ops.is_variable_initialized(v) for v in var_list]


def report_uninitialized_variables(var_list=None, name="report_uninitialized_variables"):
    """A string vector naming the variables in `var_list` (default: all) that hold no value yet.

    Built as TF1 builds it: one `IsVariableInitialized` beside each variable (so with variables
    on several tasks only a bool crosses the wire per variable), stacked, and a `boolean_mask`
    over the constant names.
    """
    from tensorweave.ops import concat_ops, constant_op, gather_ops, math_ops  # they import this module
    if var_list is None:
        var_list = global_variables() + local_variables()
    with name_scope(name):
        if not var_list:
            return constant_op.constant([], dtype=dtypes.string)
        refs = [v._ref() if isinstance(v, Variable) else v for v in var_list]
        flags = []
        for ref in refs:
            with colocate_with(ref.op):
                flags.append(state_ops.is_variable_initialized(ref))
        uninitialized = math_ops.logical_not(concat_ops.stack(flags))
        names = constant_op.constant([r.op.name.encode() for r in refs], dtype=dtypes.string)
        return gather_ops.boolean_mask(names, uninitialized)
