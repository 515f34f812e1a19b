"""`tf.variable_scope` and `tf.get_variable`, with TF1's semantics.

Each graph holds a variable store (variables made by `get_variable`, keyed by full name) and a
variable-scope store (the current `VariableScope` and how often each scope name was opened, for
`default_name` uniqueness). Variable names depend only on the variable scope; op names on the
name scope that `variable_scope` also opens, so re-entering a scope object puts new ops under
'foo_1/' while its variables stay 'foo/...'.
"""

import enum
import functools
import inspect
import weakref

from tensorweave.framework import dtypes
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.framework.op_builder import convert_to_tensor, graph_of
from tensorweave.framework.tensor_shape import as_shape, unknown_shape
from tensorweave.ops import init_ops, variables


class _ReuseMode(enum.Enum):
    """The `reuse` values beyond True/False/None."""

    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE
AUTO_REUSE.__doc__ = "`reuse=tf.AUTO_REUSE`: get_variable creates a variable if absent, else returns it."


class VariableScope:
    """A variable scope: a name prefix plus defaults (reuse, initializer, regularizer, dtype,
    custom getter, constraint) for `get_variable` calls made inside it."""

    def __init__(self, reuse, name="", initializer=None, regularizer=None, caching_device=None,
                 partitioner=None, custom_getter=None, name_scope="", dtype=dtypes.float32,
                 use_resource=None, constraint=None):
        self._name = name
        self._initializer = initializer
        self._regularizer = regularizer
        self._reuse = reuse
        self._caching_device = caching_device
        self._partitioner = partitioner
        self._custom_getter = custom_getter
        self._name_scope = name_scope
        self._dtype = dtypes.as_dtype(dtype) if dtype is not None else None
        self._use_resource = use_resource
        self._constraint = constraint

    @property
    def name(self):
        return self._name

    @property
    def original_name_scope(self):
        """The name scope opened when this scope was first entered (e.g. 'foo/')."""
        return self._name_scope

    @property
    def reuse(self):
        return self._reuse

    @property
    def initializer(self):
        return self._initializer

    @property
    def dtype(self):
        return self._dtype

    @property
    def use_resource(self):
        return self._use_resource

    @property
    def regularizer(self):
        return self._regularizer

    @property
    def caching_device(self):
        return self._caching_device

    @property
    def partitioner(self):
        return self._partitioner

    @property
    def custom_getter(self):
        return self._custom_getter

    @property
    def constraint(self):
        return self._constraint

    def reuse_variables(self):
        """Makes `get_variable` in this scope (and scopes opened inside it) reuse variables."""
        self._reuse = True

    def set_initializer(self, initializer):
        self._initializer = initializer

    def set_dtype(self, dtype):
        self._dtype = dtypes.as_dtype(dtype)

    def set_use_resource(self, use_resource):
        self._use_resource = use_resource

    def set_regularizer(self, regularizer):
        self._regularizer = regularizer

    def set_caching_device(self, caching_device):
        self._caching_device = caching_device

    def set_partitioner(self, partitioner):
        self._partitioner = partitioner

    def set_custom_getter(self, custom_getter):
        self._custom_getter = custom_getter

    def get_collection(self, name):
        """Items of collection `name` whose names lie in this scope."""
        scope = self._name + "/" if self._name else ""
        return get_default_graph().get_collection(name, scope)

    def trainable_variables(self):
        return self.get_collection(GraphKeys.TRAINABLE_VARIABLES)

    def global_variables(self):
        return self.get_collection(GraphKeys.GLOBAL_VARIABLES)

    def local_variables(self):
        return self.get_collection(GraphKeys.LOCAL_VARIABLES)

    def get_variable(self, var_store, name, shape=None, dtype=None, initializer=None, regularizer=None,
                     reuse=None, trainable=None, collections=None, caching_device=None, partitioner=None,
                     validate_shape=True, use_resource=None, custom_getter=None, constraint=None):
        """`get_variable` with this scope's defaults filled in; the name is prefixed by the scope."""
        if regularizer is None:
            regularizer = self._regularizer
        if caching_device is None:
            caching_device = self._caching_device
        if partitioner is None:
            partitioner = self._partitioner
        if custom_getter is None:
            custom_getter = self._custom_getter
        if reuse is None:
            reuse = self._reuse
        if use_resource is None:
            use_resource = self._use_resource
        full_name = f"{self._name}/{name}" if self._name else name
        graph = get_default_graph()
        # Variable names depend only on the variable scope: create them outside any name scope.
        with graph.name_scope(None):
            if dtype is not None and initializer is not None and not callable(initializer):
                init_dtype = convert_to_tensor(initializer).dtype.base_dtype
                if init_dtype is not dtypes.as_dtype(dtype):
                    raise ValueError(f"Initializer type '{init_dtype!r}' and explicit dtype "
                                     f"'{dtypes.as_dtype(dtype)!r}' don't match.")
            if initializer is None:
                initializer = self._initializer
            if constraint is None:
                constraint = self._constraint
            if dtype is None:
                dtype = self._dtype
            return var_store.get_variable(
                full_name, shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                reuse=reuse, trainable=trainable, collections=collections, caching_device=caching_device,
                partitioner=partitioner, validate_shape=validate_shape, use_resource=use_resource,
                custom_getter=custom_getter, constraint=constraint)

    def __repr__(self):
        return f"<tw.VariableScope '{self._name}' reuse={self._reuse}>"


class _VariableStore:
    """The variables made by `get_variable` in one graph, keyed by full name."""

    def __init__(self):
        self._vars = {}

    def get_variable(self, name, shape=None, dtype=dtypes.float32, initializer=None, regularizer=None,
                     reuse=None, trainable=None, collections=None, caching_device=None, partitioner=None,
                     validate_shape=True, use_resource=None, custom_getter=None, constraint=None):
        if custom_getter is not None and not callable(custom_getter):
            raise ValueError(f"Passed a custom_getter which is not callable: {custom_getter}")
        dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.float32
        if trainable is None:
            trainable = True

        def true_getter(name, shape=None, dtype=dtypes.float32, initializer=None, regularizer=None,
                        reuse=None, trainable=None, collections=None, caching_device=None,
                        partitioner=None, validate_shape=True, use_resource=None, constraint=None, **_):
            is_scalar = shape is not None and isinstance(shape, (list, tuple)) and not shape
            if partitioner is not None and not is_scalar:
                raise NotImplementedError(f"Partitioned variables are not supported (variable {name} "
                                          "was given a partitioner)")
            return self._get_single_variable(
                name, shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                reuse=reuse, trainable=trainable, collections=collections,
                caching_device=caching_device, validate_shape=validate_shape, constraint=constraint)

        kwargs = dict(name=name, shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                      reuse=reuse, trainable=trainable, collections=collections,
                      caching_device=caching_device, partitioner=partitioner,
                      validate_shape=validate_shape, use_resource=use_resource)
        if custom_getter is None:
            return true_getter(constraint=constraint, **kwargs)
        if _accepts(custom_getter, "constraint"):
            kwargs["constraint"] = constraint
        return custom_getter(getter=true_getter, **kwargs)

    def _get_single_variable(self, name, shape=None, dtype=dtypes.float32, initializer=None,
                             regularizer=None, reuse=None, trainable=True, collections=None,
                             caching_device=None, validate_shape=True, constraint=None):
        from_value = initializer is not None and not callable(initializer)
        if shape is not None and from_value:
            raise ValueError("If initializer is a constant, do not specify shape.")
        dtype = dtypes.as_dtype(dtype)
        shape = unknown_shape() if shape is None else as_shape(shape)

        if name in self._vars:
            found = self._vars[name]
            if reuse is False:
                raise ValueError(f"Variable {name} already exists, disallowed. Did you mean to set "
                                 f"reuse=True or reuse=tf.AUTO_REUSE in VarScope? Originally defined "
                                 f"at:\n\n  {found.op.creation_site}")
            if not shape.is_compatible_with(found.get_shape()):
                raise ValueError(f"Trying to share variable {name}, but specified shape {shape} and "
                                 f"found shape {found.get_shape()}.")
            if not dtype.is_compatible_with(found.dtype):
                raise ValueError(f"Trying to share variable {name}, but specified dtype {dtype.name} "
                                 f"and found dtype {found.dtype.name}.")
            return found

        if reuse is True:
            raise ValueError(f"Variable {name} does not exist, or was not created with "
                             "tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")

        if initializer is None:
            initializer = _default_initializer(name, dtype)
        if from_value:
            init_val, variable_dtype = initializer, None
        else:
            if inspect.isclass(initializer):
                initializer = initializer()
            if shape.is_fully_defined():
                dims = shape.as_list()
                init_val = functools.partial(_call_initializer, initializer, dims, dtype)
                variable_dtype = dtype
            elif _takes_no_arguments(initializer):
                init_val, variable_dtype = initializer, None
            else:
                raise ValueError("The initializer passed is not valid. It should be a callable with no "
                                 "arguments and the shape should not be provided or an instance of "
                                 "`tf.keras.initializers.*' and `shape` should be fully defined.")

        graph = get_default_graph()
        # Like TF's init_scope: a variable never depends on the control inputs around its creation.
        with graph.control_dependencies(None):
            var = variables.Variable(initial_value=init_val, name=name, trainable=trainable,
                                     collections=collections, caching_device=caching_device,
                                     dtype=variable_dtype, validate_shape=validate_shape,
                                     constraint=constraint)
        self._vars[name] = var

        if regularizer:
            with graph.colocate_with(var.op), graph.name_scope(f"{name}/Regularizer/"):
                loss = regularizer(var)
            if loss is not None:
                graph.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
        return var


def _call_initializer(initializer, dims, dtype):
    return initializer(dims, dtype=dtype, partition_info=None)


def _default_initializer(name, dtype):
    """glorot_uniform for floats, zeros for integers, bools and strings (as TF1)."""
    if dtype.is_floating:
        return init_ops.glorot_uniform_initializer()
    if dtype.is_integer or dtype.is_unsigned or dtype.is_bool or dtype is dtypes.string:
        return init_ops.zeros_initializer()
    raise ValueError(f"An initializer for variable {name} of {dtype!r} is required")


def _parameters(fn):
    try:
        return inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None


def _accepts(fn, arg):
    params = _parameters(fn)
    return params is None or any(p.name == arg or p.kind is p.VAR_KEYWORD for p in params)


def _takes_no_arguments(fn):
    params = _parameters(fn)
    return params is not None and all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


# -- per-graph stores ------------------------------------------------------------------------------

class _VariableScopeStore:
    """The current variable scope of a graph and how often each scope name has been opened."""

    def __init__(self):
        self.current_scope = VariableScope(False)
        self.variable_scopes_count = {}

    def open_variable_scope(self, scope_name):
        self.variable_scopes_count[scope_name] = self.variable_scopes_count.get(scope_name, 0) + 1

    def close_variable_subscopes(self, scope_name):
        for k in list(self.variable_scopes_count):
            if scope_name is None or k.startswith(scope_name + "/"):
                self.variable_scopes_count[k] = 0

    def variable_scope_count(self, scope_name):
        return self.variable_scopes_count.get(scope_name, 0)


_VAR_STORES = weakref.WeakKeyDictionary()
_SCOPE_STORES = weakref.WeakKeyDictionary()


def _get_default_variable_store():
    graph = get_default_graph()
    store = _VAR_STORES.get(graph)
    if store is None:
        store = _VAR_STORES[graph] = _VariableStore()
    return store


def get_variable_scope_store():
    graph = get_default_graph()
    store = _SCOPE_STORES.get(graph)
    if store is None:
        store = _SCOPE_STORES[graph] = _VariableScopeStore()
    return store


def get_variable_scope():
    """`tf.get_variable_scope()`: the current `VariableScope`."""
    return get_variable_scope_store().current_scope


def _get_unique_variable_scope(prefix):
    store = get_variable_scope_store()
    current = store.current_scope
    name = f"{current.name}/{prefix}" if current.name else prefix
    if store.variable_scope_count(name) == 0:
        return prefix
    idx = 1
    while store.variable_scope_count(f"{name}_{idx}") > 0:
        idx += 1
    return f"{prefix}_{idx}"


# -- get_variable --------------------------------------------------------------------------------

def get_variable(name, shape=None, dtype=None, initializer=None, regularizer=None, trainable=None,
                 collections=None, caching_device=None, partitioner=None, validate_shape=True,
                 use_resource=None, custom_getter=None, constraint=None, synchronization=None,
                 aggregation=None):
    """`tf.get_variable`: the variable `<scope>/<name>`, created (with `initializer`, default
    glorot_uniform for floats and zeros otherwise) unless the scope reuses variables.

    With reuse=False (the default) an existing name raises; with reuse=True a missing one
    raises; with reuse=tf.AUTO_REUSE it is created if missing and returned if present.
    `initializer` may be an initializer (then `shape` is needed), or a tensor or NumPy value
    (then `shape` must not be given).
    """
    return get_variable_scope().get_variable(
        _get_default_variable_store(), name, shape=shape, dtype=dtype, initializer=initializer,
        regularizer=regularizer, trainable=trainable, collections=collections,
        caching_device=caching_device, partitioner=partitioner, validate_shape=validate_shape,
        use_resource=use_resource, custom_getter=custom_getter, constraint=constraint)


def get_local_variable(name, shape=None, dtype=None, initializer=None, regularizer=None, trainable=False,
                       collections=None, caching_device=None, partitioner=None, validate_shape=True,
                       use_resource=None, custom_getter=None, constraint=None, synchronization=None,
                       aggregation=None):
    """`tf.get_local_variable`: like `get_variable`, but non-trainable and in LOCAL_VARIABLES."""
    collections = list(collections or []) + [GraphKeys.LOCAL_VARIABLES]
    return get_variable(name, shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                        trainable=False, collections=collections, caching_device=caching_device,
                        partitioner=partitioner, validate_shape=validate_shape, use_resource=use_resource,
                        custom_getter=custom_getter, constraint=constraint)


# -- scopes ----------------------------------------------------------------------------------------

def _wrap_custom_getter(custom_getter, old_getter):
    """Nested custom getters: the inner one receives the outer one (bound to the true getter)."""
    if old_getter is None:
        return custom_getter
    if custom_getter is None:
        return old_getter

    def wrapped_custom_getter(getter, *args, **kwargs):
        return custom_getter(functools.partial(old_getter, getter), *args, **kwargs)
    return wrapped_custom_getter


class _PureVariableScope:
    """Enters a variable scope without touching name scopes."""

    def __init__(self, name_or_scope, reuse=None, initializer=None, regularizer=None, caching_device=None,
                 partitioner=None, custom_getter=None, old_name_scope=None, dtype=dtypes.float32,
                 use_resource=None, constraint=None):
        self._name_or_scope = name_or_scope
        self._reuse = reuse
        self._initializer = initializer
        self._regularizer = regularizer
        self._caching_device = caching_device
        self._partitioner = partitioner
        self._custom_getter = custom_getter
        self._old_name_scope = old_name_scope
        self._dtype = dtype
        self._use_resource = use_resource
        self._constraint = constraint
        self._store = get_variable_scope_store()
        self._last_scope = None
        self._new_name = None
        self._cached_scope = None
        if isinstance(name_or_scope, VariableScope):
            # Jumping into a shared scope: a copy of it, with what the caller asked changed.
            self._new_name = name_or_scope.name
            self._cached_scope = VariableScope(
                name_or_scope.reuse if not reuse else reuse, name=self._new_name,
                initializer=name_or_scope.initializer, regularizer=name_or_scope.regularizer,
                caching_device=name_or_scope.caching_device, partitioner=name_or_scope.partitioner,
                dtype=name_or_scope.dtype, custom_getter=name_or_scope.custom_getter,
                name_scope=name_or_scope.original_name_scope, use_resource=name_or_scope.use_resource,
                constraint=name_or_scope.constraint)
            self._apply_overrides(self._cached_scope, name_or_scope.custom_getter)

    def _apply_overrides(self, scope, old_getter):
        if self._initializer is not None:
            scope.set_initializer(self._initializer)
        if self._regularizer is not None:
            scope.set_regularizer(self._regularizer)
        if self._caching_device is not None:
            scope.set_caching_device(self._caching_device)
        if self._partitioner is not None:
            scope.set_partitioner(self._partitioner)
        if self._custom_getter is not None:
            scope.set_custom_getter(_wrap_custom_getter(self._custom_getter, old_getter))
        if self._dtype is not None:
            scope.set_dtype(self._dtype)
        if self._use_resource is not None:
            scope.set_use_resource(self._use_resource)
        if self._constraint is not None:
            scope._constraint = self._constraint

    def __enter__(self):
        store = self._store
        self._old = store.current_scope
        if isinstance(self._name_or_scope, VariableScope):
            store.open_variable_scope(self._new_name)
            self._old_subscopes = dict(store.variable_scopes_count)
            scope = self._cached_scope
        else:
            old = self._old
            self._new_name = f"{old.name}/{self._name_or_scope}" if old.name else self._name_or_scope
            reuse = self._reuse or old.reuse  # reuse is inherited by sub-scopes
            name_scope = self._name_or_scope if self._old_name_scope is None else self._old_name_scope
            scope = VariableScope(reuse, name=self._new_name, initializer=old.initializer,
                                  regularizer=old.regularizer, caching_device=old.caching_device,
                                  partitioner=old.partitioner, dtype=old.dtype,
                                  use_resource=old.use_resource, custom_getter=old.custom_getter,
                                  name_scope=name_scope, constraint=old.constraint)
            self._apply_overrides(scope, old.custom_getter)
            store.open_variable_scope(self._new_name)
        store.current_scope = scope
        self._last_scope = scope
        return scope

    def __exit__(self, *exc):
        store = self._store
        if store.current_scope is not self._last_scope:
            raise RuntimeError("Improper nesting of variable_scope.")
        if isinstance(self._name_or_scope, VariableScope):
            store.variable_scopes_count = self._old_subscopes
        else:
            store.close_variable_subscopes(self._new_name)
        store.current_scope = self._old


class variable_scope:  # noqa: N801 - TF's public name
    """`tf.variable_scope(name_or_scope, default_name=None, values=None, initializer=None, ...,
    reuse=None, dtype=None, ...)`: a context manager opening a variable scope (prefixing the
    names of variables made by `get_variable`) and a name scope (prefixing op names).

    `name_or_scope` is a name or a `VariableScope` to re-enter; with None, `default_name` is
    made unique ('dense', 'dense_1', ...). reuse=True or tf.AUTO_REUSE is inherited by nested
    scopes; reuse=False/None inherits the enclosing scope's reuse.
    """

    def __init__(self, name_or_scope, default_name=None, values=None, initializer=None, regularizer=None,
                 caching_device=None, partitioner=None, custom_getter=None, reuse=None, dtype=None,
                 use_resource=None, constraint=None, auxiliary_name_scope=True):
        self._name_or_scope = name_or_scope
        self._default_name = default_name
        self._values = values
        self._initializer = initializer
        self._regularizer = regularizer
        self._caching_device = caching_device
        self._partitioner = partitioner
        self._custom_getter = custom_getter
        self._reuse = reuse
        self._dtype = dtype
        self._use_resource = use_resource
        self._constraint = constraint
        if default_name is None and name_or_scope is None:
            raise TypeError("If default_name is None then name_or_scope is required")
        if self._reuse is False:
            self._reuse = None  # False means "inherit", like None
        if not (self._reuse is True or self._reuse is None or self._reuse is AUTO_REUSE):
            raise ValueError("The reuse parameter must be True or False or None.")
        if not isinstance(auxiliary_name_scope, bool):
            raise TypeError(f"The value of auxiliary_name_scope must be a bool, got {auxiliary_name_scope!r}")
        self._auxiliary_name_scope = auxiliary_name_scope
        self._graph = graph_of(values or ())
        self._cached_pure_scope = None
        self._name_scope_cm = None
        self._graph_cm = None

    def _pure_scope(self, name_or_scope, old_name_scope):
        return _PureVariableScope(
            name_or_scope, reuse=self._reuse, initializer=self._initializer, regularizer=self._regularizer,
            caching_device=self._caching_device, partitioner=self._partitioner,
            custom_getter=self._custom_getter, old_name_scope=old_name_scope, dtype=self._dtype,
            use_resource=self._use_resource, constraint=self._constraint)

    def __enter__(self):
        self._graph_cm = self._graph.as_default()
        self._graph_cm.__enter__()
        try:
            if self._cached_pure_scope is not None:  # re-entering this same object
                if self._name_scope_cm is not None:
                    self._name_scope_cm = self._reenter_name_scope()
                return self._cached_pure_scope.__enter__()
            return self._enter_uncached()
        except BaseException:
            self._graph_cm.__exit__(None, None, None)
            raise

    def _reenter_name_scope(self):
        cm = self._graph.name_scope(self._scope_for_name_scope)
        cm.__enter__()
        return cm

    def _enter_uncached(self):
        graph = self._graph
        if self._auxiliary_name_scope:
            name_scope_name = None
        else:
            current = graph.get_name_scope()
            name_scope_name = f"{current}/" if current else ""
        name_or_scope = self._name_or_scope
        if name_or_scope is not None:
            if not isinstance(name_or_scope, (VariableScope, str)):
                raise TypeError("VariableScope: name_or_scope must be a string or VariableScope.")
            if name_scope_name is None:
                name_scope_name = name_or_scope if isinstance(name_or_scope, str) \
                    else name_or_scope.name.split("/")[-1]
                if not name_scope_name:
                    name_scope_name = None
            if name_scope_name is not None:
                self._scope_for_name_scope = name_scope_name
                cm = graph.name_scope(name_scope_name)
                entered_name = cm.__enter__()
                self._name_scope_cm = cm
                old_name_scope = entered_name if isinstance(name_or_scope, str) \
                    else name_or_scope.original_name_scope
            else:  # entering the root variable scope: no name scope
                self._name_scope_cm = None
                old_name_scope = None
            pure = self._pure_scope(name_or_scope, old_name_scope)
        else:
            if self._reuse:
                raise ValueError("reuse=True cannot be used without a name_or_scope")
            if name_scope_name is None:
                name_scope_name = self._default_name
            self._scope_for_name_scope = name_scope_name
            cm = graph.name_scope(name_scope_name)
            entered_name = cm.__enter__()
            self._name_scope_cm = cm
            pure = self._pure_scope(_get_unique_variable_scope(self._default_name), entered_name)
        try:
            scope = pure.__enter__()
        except BaseException:
            if self._name_scope_cm is not None:
                self._name_scope_cm.__exit__(None, None, None)
            raise
        self._cached_pure_scope = pure
        return scope

    def __exit__(self, exc_type, exc, tb):
        try:
            self._cached_pure_scope.__exit__(exc_type, exc, tb)
        finally:
            try:
                if self._name_scope_cm is not None:
                    self._name_scope_cm.__exit__(exc_type, exc, tb)
            finally:
                self._graph_cm.__exit__(exc_type, exc, tb)
        return False


def variable_op_scope(values, name_or_scope, default_name=None, initializer=None, regularizer=None,
                      caching_device=None, partitioner=None, custom_getter=None, reuse=None, dtype=None,
                      use_resource=None, constraint=None):
    """Deprecated TF1 spelling of `variable_scope(name_or_scope, default_name, values, ...)`."""
    return variable_scope(name_or_scope, default_name=default_name, values=values, initializer=initializer,
                          regularizer=regularizer, caching_device=caching_device, partitioner=partitioner,
                          custom_getter=custom_getter, reuse=reuse, dtype=dtype, use_resource=use_resource,
                          constraint=constraint)


__all__ = ["AUTO_REUSE", "VariableScope", "get_variable", "get_local_variable", "get_variable_scope",
           "variable_scope", "variable_op_scope"]
