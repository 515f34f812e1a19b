"""`Session`: runs parts of a graph. The target picks the runtime through a factory registry
(TF's SessionFactory pattern): '' is the in-process runtime here; the distributed layer
registers 'grpc://' when it loads, so this module never imports the layer above it."""

import itertools
import sys
import threading
import weakref

from tensorweave.framework import device_spec, errors
from tensorweave.framework.graph import _graph_stack, _session_stack, get_default_graph
from tensorweave.framework.operation import Operation
from tensorweave.runtime import config as config_lib
from tensorweave.runtime import threads
from tensorweave.runtime.device import Device
from tensorweave.runtime.executor import StepContext, run_plan
from tensorweave.runtime.fetches import feed_value, fetch_result, flatten_fetches
from tensorweave.runtime.plan import compile_plan
from tensorweave.runtime.rendezvous import LocalRendezvous
from tensorweave.runtime.step_stats import StepStatsCollector, tracing_requested

_FACTORIES = {}
_RESETS = {}
_step_ids = itertools.count(1)

LOCAL_DEVICE = "/job:localhost/replica:0/task:0/device:CPU:0"


class DeviceAttributes:
    """A device as `Session.list_devices()` reports it (TF's `_DeviceAttributes`): its full
    name, type ("CPU", "GPU"), memory limit in bytes (0: unknown) and incarnation (the random
    number of its task's current start; 0: unknown)."""

    __slots__ = ("device_type", "incarnation", "memory_limit_bytes", "name")

    def __init__(self, name, device_type, memory_limit_bytes=0, incarnation=0):
        self.name = name
        self.device_type = device_type
        self.memory_limit_bytes = memory_limit_bytes
        self.incarnation = incarnation

    @classmethod
    def from_name(cls, name):
        """The attributes of a device known only by its full name (its type is in the name)."""
        return cls(name, device_spec.DeviceSpec.from_string(name).device_type or "")

    def __repr__(self):
        return (f"_DeviceAttributes({self.name}, {self.device_type}, {self.memory_limit_bytes}, "
                f"{self.incarnation})")


def register_session_factory(prefix, factory, reset=None):
    """Registers `factory(target, graph, config) -> runtime` for targets starting with `prefix`,
    and `reset(target, containers, config)`, what `Session.reset` does for such targets."""
    if prefix in _FACTORIES:
        raise KeyError(f"A session factory for {prefix!r} is already registered")
    _FACTORIES[prefix] = factory
    if reset is not None:
        _RESETS[prefix] = reset


def _prefix_for(target):
    if target.startswith("grpc://") and "grpc://" not in _FACTORIES:
        import tensorweave.distributed  # noqa: F401 - registers the grpc:// factory once it exists
    for prefix in sorted(_FACTORIES, key=len, reverse=True):
        if target.startswith(prefix) and (prefix or not target):
            return prefix
    raise errors.NotFoundError(None, None, f"No session factory registered for target {target!r} "
                               f"(known: {sorted(p + '...' if p else repr('') for p in _FACTORIES)})")


def _runtime_for(target, graph, config):
    return _FACTORIES[_prefix_for(target)](target, graph, config)


class LocalRuntime:
    """The in-process runtime: one CPU device, its variables, and the plans compiled for it."""

    def __init__(self, target, graph, config):
        self.graph = graph
        self.config = config
        self.device = Device(LOCAL_DEVICE)
        self._plans = {}
        self._plans_version = graph._mutation_version
        self._lock = threading.Lock()
        self._running = set()  # rendezvous of steps in flight, aborted by close()
        self._closed = False
        _local_runtimes.add(self)

    def plan(self, feeds, fetches, targets):
        graph = self.graph
        key = (tuple(feeds), tuple(fetches), tuple(targets))
        if graph._mutation_version != self._plans_version:
            with self._lock:
                self._plans.clear()
                self._plans_version = graph._mutation_version
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._plans.get(key)
                if plan is None:
                    plan = compile_plan(feeds, fetches, targets, self.device)
                    check_local_placement(plan.ops, self.config.allow_soft_placement)
                    if self.config.log_device_placement:
                        for op in plan.ops:
                            print(f"{op.name}: ({op.type}): {self.device.name}", file=sys.stderr)
                    self._plans[key] = plan
        return plan

    def run(self, feeds, feed_values, fetches, targets, options, run_metadata):
        if self._closed:  # closed by `Session.reset("")`, as TF's DirectSession
            raise errors.CancelledError(None, None, "Session has been closed.")
        plan = self.plan(feeds, fetches, targets)
        # A plan with receives (a graph sending to itself) gets a rendezvous for the step.
        rendezvous = LocalRendezvous() if plan.dataflow is not None else None
        stats = StepStatsCollector() if tracing_requested(options, run_metadata) else None
        step = StepContext(next(_step_ids), options, rendezvous, stats)
        if rendezvous is None:
            out = run_plan(plan, feed_values, step, timeout=step_timeout(options, self.config))
        else:
            # A failed step aborts its rendezvous, and so withdraws what its asynchronous ops
            # still wait for (a dequeue must not take an element for a step that has gone).
            with self._lock:
                self._running.add(rendezvous)
            try:
                out = run_plan(plan, feed_values, step, timeout=step_timeout(options, self.config))
            except BaseException as e:
                rendezvous.abort(e)
                raise
            finally:
                with self._lock:
                    self._running.discard(rendezvous)
        if stats is not None:
            stats.fill(run_metadata.step_stats)
        return out

    def list_devices(self):
        return [DeviceAttributes(self.device.name, self.device.device_type)]

    def close(self):
        with self._lock:
            self._closed = True
            running, self._running = list(self._running), set()
        for rendezvous in running:
            rendezvous.abort(errors.CancelledError(None, None, "Session has been closed."))
        self._plans.clear()
        self.device.resources.clear()
        _local_runtimes.discard(self)

    @staticmethod
    def reset(target, containers, config):
        """`Session.reset("")`, as TF's DirectSessionFactory: clears `containers` (all when
        empty) of every in-process session of this process, then closes those sessions (each
        session owns its variables here, so closing drops the rest too)."""
        runtimes = list(_local_runtimes)
        for runtime in runtimes:
            runtime.device.resources.clear_containers(containers)
        for runtime in runtimes:
            runtime.close()


_local_runtimes = weakref.WeakSet()  # the open in-process runtimes, for `Session.reset("")`


def step_timeout(options, config):
    """A step's deadline in seconds: RunOptions.timeout_in_ms, else operation_timeout_in_ms."""
    ms = (options.timeout_in_ms if options is not None else 0) or config.operation_timeout_in_ms
    return ms / 1000.0 if ms > 0 else None


def check_local_placement(ops, allow_soft_placement):
    """Checks that every op's requested device exists in this process (CPU only here)."""
    for op in ops:
        if not op.device:
            continue
        spec = device_spec.DeviceSpec.from_string(op.device)
        ok = (spec.job in (None, "localhost") and spec.replica in (None, 0) and spec.task in (None, 0)
              and spec.device_type in (None, "CPU") and spec.device_index in (None, 0))
        if not ok and not allow_soft_placement:
            raise op.error(errors.InvalidArgumentError,
                           f"Cannot assign a device for operation {op.name}: could not satisfy explicit "
                           f"device specification '{op.device}' because no device matching it exists in "
                           f"this process (available: {LOCAL_DEVICE}). Pass "
                           "tf.ConfigProto(allow_soft_placement=True) to fall back to the CPU")


register_session_factory("", LocalRuntime, reset=LocalRuntime.reset)


class BaseSession:
    """Runs fetches (any nesting of tensors, ops and names) with optional feeds."""

    def __init__(self, target="", graph=None, config=None):
        self._graph = graph if graph is not None else get_default_graph()
        self._config = config_lib.as_config(config)
        threads.apply_intra_op_threads(self._config)
        self._target = target.decode() if isinstance(target, bytes) else target
        self._runtime = _runtime_for(self._target, self._graph, self._config)
        self._closed = False
        self._context_stack = []

    @property
    def graph(self):
        return self._graph

    @property
    def graph_def(self):
        return self._graph.as_graph_def()

    @property
    def sess_str(self):
        return self._target

    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """Runs the graph to compute `fetches`; returns values in the same structure as `fetches`."""
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        graph = self._graph
        elements, rebuild = flatten_fetches(graph, fetches)
        feeds, feed_values = [], []
        if feed_dict:
            for key, value in feed_dict.items():
                tensor = graph.as_graph_element(key, allow_operation=False) if not _is_tensor_of(key, graph) \
                    else key
                feeds.append(tensor)
                feed_values.append(feed_value(tensor, value))
        fetch_tensors, targets = [], []
        for e in elements:
            (targets if isinstance(e, Operation) else fetch_tensors).append(e)
        values = self._runtime.run(feeds, feed_values, fetch_tensors, targets, options, run_metadata)
        results = []
        it = iter(values)
        for e in elements:
            results.append(None if isinstance(e, Operation) else fetch_result(next(it)))
        return rebuild(results)

    def make_callable(self, fetches, feed_list=None, accept_options=False):
        """A function running `fetches` with positional feeds for `feed_list`, as in TF1."""
        feed_list = list(feed_list or [])

        def call(*args, **kwargs):
            return self.run(fetches, dict(zip(feed_list, args, strict=True)), **kwargs)
        return call

    def list_devices(self):
        """The devices this session can use, as `DeviceAttributes` (`.name`, `.device_type`,
        `.memory_limit_bytes`, `.incarnation`): the process's CPU in-process; every device of
        the cluster the session may use (its `device_filters`) on a server."""
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        return [d if isinstance(d, DeviceAttributes) else DeviceAttributes.from_name(d)
                for d in self._runtime.list_devices()]

    def close(self):
        if not self._closed:
            self._closed = True
            self._runtime.close()

    def as_default(self):
        """Makes this session the default one (for `Tensor.eval` and `Operation.run`) in a block."""
        from tensorweave.framework.graph import default_session
        return default_session(self)

    def __enter__(self):
        graph_ctx = self._graph.as_default()
        session_ctx = self.as_default()
        graph_ctx.__enter__()
        session_ctx.__enter__()
        self._context_stack.append((graph_ctx, session_ctx))
        return self

    def __exit__(self, exc_type, exc, tb):
        graph_ctx, session_ctx = self._context_stack.pop()
        session_ctx.__exit__(exc_type, exc, tb)
        graph_ctx.__exit__(exc_type, exc, tb)
        self.close()

    def __del__(self):
        if sys.is_finalizing():
            return  # no thread can start now; the distributed layer closed its sessions at exit
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _is_tensor_of(key, graph):
    from tensorweave.framework.tensor import Tensor
    if isinstance(key, Tensor):
        if key.graph is not graph:
            raise ValueError(f"Cannot feed {key.name}: it is not an element of this session's graph.")
        return True
    return False


class Session(BaseSession):
    """`tf.Session(target='', graph=None, config=None)`: '' runs in-process, 'grpc://host:port' on a
    TensorWeave server."""

    @staticmethod
    def reset(target, containers=None, config=None):
        """`tf.Session.reset(target, containers=None, config=None)`: clears resource containers
        on `target` and closes all sessions of its master, as in TF1.

        On a server ("grpc://host:port") the containers are cleared on every task of its
        cluster (those `config.device_filters` match, if any), so variables there lose their
        values and must be initialized again; every session that server's master holds is
        closed (their next run raises AbortedError), other masters' sessions stay open.
        containers: names of containers (`tf.container`; "" is the default one), or None or
        empty for all of them. config: carries the cluster token and TLS files for the call.
        On "" (a TensorWeave extension; TF1 documents reset for distributed sessions only)
        every in-process session of this process is cleared and closed, as TF's direct
        sessions are. Raises an `OpError` subclass if a task refuses or fails the reset.
        """
        target = target.decode() if isinstance(target, bytes) else (target or "")
        containers = [c.decode() if isinstance(c, bytes) else c for c in (containers or [])]
        prefix = _prefix_for(target)
        reset = _RESETS.get(prefix)
        if reset is None:
            raise errors.UnimplementedError(None, None, f"Session.reset is not supported for target {target!r}")
        reset(target, containers, config_lib.as_config(config))


class InteractiveSession(BaseSession):
    """A session that installs itself as the default session (and its graph as default) at once."""

    def __init__(self, target="", graph=None, config=None):
        super().__init__(target, graph, config)
        _session_stack().append(self)
        _graph_stack().append(self._graph)
        self._installed = True

    def close(self):
        if getattr(self, "_installed", False):
            self._installed = False
            _remove_last(_session_stack(), self)
            _remove_last(_graph_stack(), self._graph)
        super().close()


def _remove_last(stack, item):
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is item:
            del stack[i]
            return
