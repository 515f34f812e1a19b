"""`Graph`: operations with unique names, collections, and the scopes that shape new ops.

The scopes (name, device, control dependencies, colocation, resource container) are small
stacks on the graph;
`create_op` applies them all when an op is born, as TF1 does.
"""

import contextlib
import re
import threading

from tensorweave.framework import device_spec, errors, op_def as op_def_lib
from tensorweave.framework import tensor_shape
from tensorweave.framework.operation import Operation, user_call_site
from tensorweave.framework.tensor import Tensor


class GraphKeys:
    """Standard collection names (TF1's `tf.GraphKeys`)."""

    GLOBAL_VARIABLES = "variables"
    VARIABLES = GLOBAL_VARIABLES
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    SUMMARIES = "summaries"
    QUEUE_RUNNERS = "queue_runners"
    TABLE_INITIALIZERS = "table_initializer"
    ASSET_FILEPATHS = "asset_filepaths"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    CONCATENATED_VARIABLES = "concatenated_variables"
    SAVERS = "savers"
    WEIGHTS = "weights"
    BIASES = "biases"
    ACTIVATIONS = "activations"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"
    SAVEABLE_OBJECTS = "saveable_objects"
    RESOURCES = "resources"
    LOCAL_RESOURCES = "local_resources"
    INIT_OP = "init_op"
    LOCAL_INIT_OP = "local_init_op"
    READY_OP = "ready_op"
    READY_FOR_LOCAL_INIT_OP = "ready_for_local_init_op"
    SUMMARY_OP = "summary_op"
    GLOBAL_STEP = "global_step"
    EVAL_STEP = "eval_step"
    TRAIN_OP = "train_op"
    COND_CONTEXT = "cond_context"
    WHILE_CONTEXT = "while_context"


class Graph:
    """A dataflow graph. Use `with g.as_default():` to add ops to it."""

    def __init__(self):
        self._lock = threading.RLock()
        self._ops = []
        self._by_name = {}
        self._names_in_use = {}
        self._collections = {}
        self._finalized = False
        self.seed = None
        self._version = 0            # bumped on every new op
        self._mutation_version = 0   # bumped when an existing op changes; plans are then rebuilt
        self._name_stack = ""
        self._device_stack = []
        self._control_stack = []
        self._colocation_stack = []
        self._container = ""         # resource container of stateful ops created now ("": default)
        self._attr_scope = {}
        self._last_op_seed = 0

    # -- ops ---------------------------------------------------------------------------------

    def create_op(self, op_type, inputs=(), attrs=None, name=None, device=None, site=None):
        """Adds an op of registered type `op_type`; runs its shape rule; returns the Operation."""
        if self._finalized:
            raise RuntimeError("Graph is finalized and cannot be modified.")
        op_def = op_def_lib.get_op_def(op_type)
        inputs = list(inputs)
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"Input to {op_type} must be a Tensor, got {type(t).__name__}")
            if t.graph is not self:
                raise errors.GraphConstructionError(
                    None, None, f"Tensor {t.name} must be from the same graph as the {op_type} op being "
                    f"created (created at {user_call_site()})")
        with self._lock:
            name = name or op_type
            full_name = name[:-1] if name.endswith("/") else self.unique_name(name)
            op = Operation(self, op_def, full_name, inputs, dict(attrs or {}), "",
                           self._current_control_inputs(inputs), site or user_call_site())
            self._apply_colocation(op)
            self._apply_device(op, device)
            self._apply_container(op)
            if op_def.infer is None:
                raise LookupError(f"Op type {op_type} has no shape function (registered at {op_def.site})")
            try:
                specs = op_def.infer(op)
            except errors.OpError:
                raise
            except (ValueError, TypeError, IndexError) as e:
                # TF1 raises TypeError for dtype mismatches and ValueError for shapes; keep the kind.
                cls = errors.GraphConstructionTypeError if isinstance(e, TypeError) else \
                    errors.GraphConstructionError
                raise cls(
                    None, None, f"{e}\n\tbuilding op {full_name!r} of type {op_type} "
                    f"(created at {op._site}) from inputs "
                    f"{[f'{t.name}: {t.dtype.name}{t.shape}' for t in inputs]}") from None
            op._outputs = tuple(Tensor(op, i, dtype, tensor_shape.as_shape(shape))
                                for i, (dtype, shape) in enumerate(specs))
            op._id = len(self._ops)
            self._ops.append(op)
            self._by_name[full_name] = op
            self._version += 1
        return op

    def _mutated(self):
        self._mutation_version += 1

    def get_operations(self):
        return list(self._ops)

    def get_operation_by_name(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"The name {name!r} refers to an Operation not in the graph.") from None

    def get_tensor_by_name(self, name):
        op_name, sep, index = name.rpartition(":")
        if not sep or not index.isdigit():
            raise ValueError(f"The name {name!r} looks like an Operation name, not a Tensor name "
                             f"(Tensor names look like '<op_name>:<output_index>').")
        op = self.get_operation_by_name(op_name)
        if int(index) >= len(op.outputs):
            raise KeyError(f"The name {name!r} refers to a Tensor which does not exist: "
                           f"{op_name} has only {len(op.outputs)} outputs.")
        return op.outputs[int(index)]

    def as_graph_element(self, obj, allow_tensor=True, allow_operation=True):
        """The Tensor or Operation named or wrapped by `obj`, checked to belong to this graph."""
        conv = getattr(obj, "_as_graph_element", None)
        if conv is not None and not isinstance(obj, (Tensor, Operation)):
            obj = conv()
        if isinstance(obj, str):
            if ":" in obj and allow_tensor:
                return self.get_tensor_by_name(obj)
            if allow_operation:
                return self.get_operation_by_name(obj)
            raise ValueError(f"Name {obj!r} refers to an Operation, but a Tensor was expected.")
        if isinstance(obj, (Tensor, Operation)):
            if obj.graph is not self:
                raise ValueError(f"{obj} is not an element of this graph.")
            if isinstance(obj, Tensor) and not allow_tensor:
                raise TypeError(f"Can not convert a Tensor into an Operation: {obj.name}")
            if isinstance(obj, Operation) and not allow_operation:
                raise TypeError(f"Can not convert an Operation into a Tensor: {obj.name}")
            return obj
        raise TypeError(f"Can not convert a {type(obj).__name__} into a Tensor or Operation.")

    def finalize(self):
        """Makes the graph read-only: adding an op afterwards raises RuntimeError."""
        self._finalized = True

    @property
    def finalized(self):
        return self._finalized

    def _unsafe_unfinalize(self):
        self._finalized = False

    @property
    def version(self):
        return self._version

    @property
    def building_function(self):
        return False

    def as_graph_def(self, from_version=None, add_shapes=False):
        from tensorweave.framework.graph_io import graph_to_graph_def
        return graph_to_graph_def(self, add_shapes=add_shapes)

    @contextlib.contextmanager
    def as_default(self):
        """Makes this graph the default graph in the `with` block."""
        _graph_stack().append(self)
        try:
            yield self
        finally:
            _graph_stack().pop()

    # -- names ---------------------------------------------------------------------------------

    def unique_name(self, name, mark_as_used=True):
        """`name` under the current name scope, with a `_N` suffix if it is taken (case-insensitive)."""
        if self._name_stack:
            name = f"{self._name_stack}/{name}"
        key = name.lower()
        i = self._names_in_use.get(key, 0)
        if mark_as_used:
            self._names_in_use[key] = i + 1
        if i > 0:
            base = key
            while key in self._names_in_use:
                key = f"{base}_{i}"
                i += 1
            if mark_as_used:
                self._names_in_use[key] = 1
            name = f"{name}_{i - 1}"
        return name

    def get_name_scope(self):
        return self._name_stack

    @contextlib.contextmanager
    def name_scope(self, name):
        """Opens a name scope; yields the scope's prefix ending in '/'. '' or None resets to root."""
        old = self._name_stack
        if not name:
            new = ""
        elif name.endswith("/"):
            new = name[:-1]
        else:
            new = self.unique_name(name)
        self._name_stack = new
        try:
            yield f"{new}/" if new else ""
        finally:
            self._name_stack = old

    # -- devices ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def device(self, device_name_or_function):
        """Places ops created in the block: a device string (merged with outer scopes field by
        field), a function from Operation to device string, or None to clear outer scopes."""
        spec = device_name_or_function
        if isinstance(spec, device_spec.DeviceSpec):
            spec = spec.to_string()
        if isinstance(spec, str):
            device_spec.DeviceSpec.from_string(spec)  # fail here, at the scope, on a malformed name
        self._device_stack.append(spec)
        try:
            yield
        finally:
            self._device_stack.pop()

    def _apply_device(self, op, explicit):
        if explicit is not None:
            op._device = device_spec.canonical_name(explicit)
            return
        if op._device:  # colocated: the colocation target's device wins, as in TF
            return
        for spec in reversed(self._device_stack):
            if spec is None:
                break
            if callable(spec):
                op._device = device_spec.canonical_name(spec(op) or "")
            else:
                op._device = device_spec.merge_device(spec, op._device)

    # -- resource containers --------------------------------------------------------------------

    @contextlib.contextmanager
    def container(self, container_name):
        """`Graph.container(container_name)`: stateful ops created in the block (variables,
        queues, accumulators) keep their state in resource container `container_name`, unless
        they name a container themselves; `tf.Session.reset(target, [container_name])` then
        clears just those. The innermost scope wins; "" returns to the default container."""
        if not isinstance(container_name, str):
            raise TypeError(f"container_name must be a string, got {type(container_name).__name__}")
        saved, self._container = self._container, container_name
        try:
            yield container_name
        finally:
            self._container = saved

    def _apply_container(self, op):
        # As TF: only stateful ops with a `container` attr, and only where it is still empty.
        if self._container and op.op_def.stateful and op._attrs.get("container", None) == "":
            op._attrs["container"] = self._container

    # -- control dependencies ----------------------------------------------------------------------

    @contextlib.contextmanager
    def control_dependencies(self, control_inputs):
        """Ops created in the block run after `control_inputs` (ops or tensors); None clears outer ones."""
        if control_inputs is None:
            saved, self._control_stack = self._control_stack, []
            try:
                yield
            finally:
                self._control_stack = saved
            return
        ops = []
        for c in control_inputs:
            if not isinstance(c, (Tensor, Operation)) and hasattr(c, "_as_graph_element"):
                c = c._as_graph_element()
            if isinstance(c, Tensor):
                c = c.op
            if not isinstance(c, Operation):
                raise TypeError(f"Control input must be an Operation or Tensor: {c!r}")
            if c.graph is not self:
                raise ValueError(f"Control input {c.name} is not in this graph")
            ops.append(c)
        self._control_stack.append(ops)
        try:
            yield
        finally:
            self._control_stack.pop()

    def _current_control_inputs(self, inputs):
        if not self._control_stack:
            return []
        data_ops = {t.op for t in inputs}
        out = []
        for ops in self._control_stack:
            for op in ops:
                if op not in data_ops and op not in out:
                    out.append(op)
        return out

    # -- colocation --------------------------------------------------------------------------

    @contextlib.contextmanager
    def colocate_with(self, op, ignore_existing=False):
        """Ops created in the block share `op`'s colocation group and device."""
        if op is None:
            saved, self._colocation_stack = self._colocation_stack, []
            try:
                yield
            finally:
                self._colocation_stack = saved
            return
        if not isinstance(op, Operation):
            op = getattr(op, "op", None) or self.as_graph_element(op)
            op = op.op if isinstance(op, Tensor) else op
        saved = self._colocation_stack
        if ignore_existing:
            self._colocation_stack = []
        self._colocation_stack = self._colocation_stack + [op]
        # A colocated op ignores device scopes, as in TF.
        saved_devices, self._device_stack = self._device_stack, []
        try:
            yield
        finally:
            self._colocation_stack = saved
            self._device_stack = saved_devices

    def _apply_colocation(self, op):
        if not self._colocation_stack:
            return
        groups = []
        for target in self._colocation_stack:
            for g in target.colocation_groups():
                if g not in groups:
                    groups.append(g)
        op._attrs["_class"] = groups
        op._device = self._colocation_stack[-1].device

    # -- collections ---------------------------------------------------------------------------

    def add_to_collection(self, name, value):
        self._collections.setdefault(name, []).append(value)

    def add_to_collections(self, names, value):
        names = (names,) if isinstance(names, str) else set(names)
        for name in names:
            self.add_to_collection(name, value)

    def get_collection_ref(self, name):
        return self._collections.setdefault(name, [])

    def get_collection(self, name, scope=None):
        """A copy of collection `name`, optionally filtered to items whose name matches `scope`."""
        items = list(self._collections.get(name, []))
        if scope is None:
            return items
        pattern = re.compile(scope)
        return [i for i in items if hasattr(i, "name") and pattern.match(i.name)]

    def get_all_collection_keys(self):
        return [k for k, v in self._collections.items() if v]

    def clear_collection(self, name):
        self._collections.pop(name, None)

    @property
    def collections(self):
        return list(self._collections)

    def _next_op_seed(self):
        self._last_op_seed += 1
        return self._last_op_seed


_default_graph = Graph()
_local = threading.local()


def _graph_stack():
    stack = getattr(_local, "graphs", None)
    if stack is None:
        stack = _local.graphs = []
    return stack


def get_default_graph():
    """The innermost graph made default with `as_default()`, else the global default graph."""
    stack = _graph_stack()
    return stack[-1] if stack else _default_graph


def reset_default_graph():
    """Replaces the global default graph with a new, empty one."""
    global _default_graph
    if _graph_stack():
        raise AssertionError("Do not use tf.reset_default_graph() inside a `with graph.as_default()` block.")
    _default_graph = Graph()


# -- default session -----------------------------------------------------------------------------

def _session_stack():
    stack = getattr(_local, "sessions", None)
    if stack is None:
        stack = _local.sessions = []
    return stack


def get_default_session():
    stack = _session_stack()
    return stack[-1] if stack else None


@contextlib.contextmanager
def default_session(session):
    _session_stack().append(session)
    try:
        yield session
    finally:
        _session_stack().pop()


def run_in_session(element, feed_dict, session):
    session = session or get_default_session()
    if session is None:
        raise ValueError(f"Cannot evaluate {element.name}: no default session is registered. Use "
                         "`with sess.as_default()` or pass an explicit session to eval()/run().")
    if session.graph is not element.graph:
        raise ValueError(f"Cannot use the given session to evaluate {element.name}: its graph is "
                         "different from the session's graph.")
    return session.run(element, feed_dict)
