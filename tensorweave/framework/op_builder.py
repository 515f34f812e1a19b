"""Building ops in the default graph: tensor conversion, `apply_op` and the module-level scopes."""

import contextlib

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.graph import Graph, get_default_graph
from tensorweave.framework.operation import Operation
from tensorweave.framework.tensor import Tensor

_CONVERSIONS = []  # (priority, base types, fn(value, dtype, name) -> Tensor)


def register_tensor_conversion_function(base_type, conversion_func, priority=100):
    """Teaches `convert_to_tensor` to turn values of `base_type` into Tensors."""
    _CONVERSIONS.append((priority, base_type, conversion_func))
    _CONVERSIONS.sort(key=lambda entry: entry[0])


def convert_to_tensor(value, dtype=None, name=None, preferred_dtype=None, dtype_hint=None):
    """Returns `value` as a Tensor: Tensors pass through (dtype checked), others become constants."""
    dtype = dtypes.as_dtype(dtype) if dtype is not None else None
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype is not dtype:
            raise errors.GraphConstructionError(
                None, None, f"Tensor conversion requested dtype {dtype.name} for Tensor "
                f"{value.name} with dtype {value.dtype.name}")
        return value
    for _, base, fn in _CONVERSIONS:
        if isinstance(value, base):
            return fn(value, dtype or preferred_dtype or dtype_hint, name)
    raise TypeError(f"Cannot convert {value!r} of type {type(value).__name__} to a Tensor.")


def convert_n_to_tensor(values, dtype=None, name=None):
    return [convert_to_tensor(v, dtype, name) for v in values]


def convert_to_tensor_like(value, other):
    """Converts a Python/NumPy value using `other`'s dtype (so `x * 2.0` keeps x's float32)."""
    if isinstance(value, Tensor):
        return value
    if dtype_compatible_scalar(value, other.dtype):
        return convert_to_tensor(value, dtype=other.dtype)
    return convert_to_tensor(value)


def dtype_compatible_scalar(value, dtype):
    if isinstance(value, (bool, np.bool_)):
        return dtype is dtypes.bool
    if isinstance(value, (int, np.integer)):
        return dtype.is_integer or dtype.is_floating or dtype.is_complex
    if isinstance(value, (float, np.floating)):
        return dtype.is_floating or dtype.is_complex
    if isinstance(value, (list, tuple, np.ndarray)):
        kind = np.asarray(value).dtype.kind
        return (kind in "iu" and (dtype.is_integer or dtype.is_floating)) or (kind == "f" and dtype.is_floating) \
            or (kind == "b" and dtype is dtypes.bool)
    return False


def graph_of(values):
    """The graph the given tensors/ops belong to (default graph if none are graph elements)."""
    graph = None
    for v in values:
        g = getattr(v, "graph", None)
        if isinstance(g, Graph):
            if graph is not None and g is not graph:
                raise ValueError(f"{v} must be from the same graph as the other inputs.")
            graph = g
    return graph or get_default_graph()


def apply_op(op_type, inputs=(), attrs=None, name=None):
    """Creates an op in the inputs' graph; returns its only output, the output list, or the op."""
    graph = graph_of(inputs)
    op = graph.create_op(op_type, inputs, attrs, name=name)
    outputs = op.outputs
    if len(outputs) == 1:
        return outputs[0]
    if not outputs:
        return op
    return list(outputs)


# -- module-level scopes, TF1 style -------------------------------------------------------------

@contextlib.contextmanager
def name_scope(name, default_name=None, values=None):
    """`tf.name_scope(name, default_name=None, values=None)`: yields the scope prefix ('a/b/')."""
    graph = graph_of(values or ())
    if name is None:
        name = default_name
    with graph.as_default(), graph.name_scope(name) as scope:
        yield scope


def device(device_name_or_function):
    """`tf.device(...)`: places ops created in the block (see `Graph.device`)."""
    return get_default_graph().device(device_name_or_function)


def container(container_name):
    """`tf.container(container_name)`: stateful ops created in the block keep their state in
    that resource container (see `Graph.container`)."""
    return get_default_graph().container(container_name)


def control_dependencies(control_inputs):
    """`tf.control_dependencies(...)`: ops created in the block run after `control_inputs`."""
    return get_default_graph().control_dependencies(control_inputs)


def colocate_with(op, ignore_existing=False):
    graph = op.graph if isinstance(op, (Tensor, Operation)) else get_default_graph()
    return graph.colocate_with(op, ignore_existing)


def get_collection(key, scope=None):
    return get_default_graph().get_collection(key, scope)


def get_collection_ref(key):
    return get_default_graph().get_collection_ref(key)


def add_to_collection(name, value):
    get_default_graph().add_to_collection(name, value)


def add_to_collections(names, value):
    get_default_graph().add_to_collections(names, value)


def set_random_seed(seed):
    """Sets the graph-level seed: ops created afterwards draw the same values in every run."""
    get_default_graph().seed = seed


def get_seed(op_seed):
    """TF1's seed rule: (graph seed, op seed) for a random op, or (None, None) for fresh entropy."""
    graph = get_default_graph()
    if graph.seed is not None:
        return graph.seed, op_seed if op_seed is not None else graph._next_op_seed()
    if op_seed is not None:
        return 87654321, op_seed  # TF1's default graph seed when only the op seed is set
    return None, None
