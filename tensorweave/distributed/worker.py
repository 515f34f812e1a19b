"""The worker service of one task, independent of any transport (TF's `Worker` + `GraphMgr`).

A master registers each partition of a session's graph with the task that owns its devices
and gets back a handle; a step then runs every registered partition at once
(`run_graph(handle, step_id, ...)`), the partitions exchanging tensors through the step's
rendezvous. The gRPC servicer wraps this class; tests drive it directly.

- Devices live as long as the worker, so variables persist across graphs and sessions of this
  task, as in TF's per-task resource managers. The incarnation (random, 63 bits) changes when the
  task restarts, so a master holding graphs built for an older incarnation fails fast.
- A registered graph is the master's partition for one signature: already pruned, so each step
  runs all of it. Its sinks (`_Send` ops, and ops nothing in the graph reads, such as a training
  op) always run; feeds cut their producers. Plans are compiled lazily, one per device present,
  per (feeds, fetches) signature.
- `cleanup_all(containers)` (a master's `reset`) drops the resources of those containers on
  every device: variables there are uninitialized again, even for graphs still registered.
- Graphs are released by `deregister_graph`, by `close_session` (all of a session's graphs) and
  by `collect_idle` (sessions none of whose graphs a step used for a while; the server calls it
  periodically), so a worker never keeps every graph a client ever registered.
"""

import dataclasses
import itertools
import secrets
import threading
import time

from google.protobuf import message as _message
from tensorboard.compat.proto import graph_pb2

from tensorweave.distributed import tensor_codec
from tensorweave.framework import errors
from tensorweave.framework.device_spec import DeviceSpec
from tensorweave.framework.graph import Graph
from tensorweave.framework.graph_io import import_graph_def
from tensorweave.runtime import config as config_lib
from tensorweave.runtime.device import Device
from tensorweave.runtime.executor import StepContext, run_partitions
from tensorweave.runtime.plan import compile_plan
from tensorweave.runtime.session import step_timeout
from tensorweave.runtime.step_stats import StepStatsCollector

DEFAULT_MAX_GRAPH_DEF_BYTES = 1 << 30  # protobuf's own parse limit is 2 GiB


@dataclasses.dataclass(frozen=True)
class WorkerStatus:
    """What `get_status` reports: the task's name, its devices and its incarnation (and, from a
    server, the port of its data channel; 0 when it has none)."""

    task_name: str
    device_names: tuple
    device_types: tuple
    incarnation: int
    data_channel_port: int = 0


class _Signature:
    """One (feeds, fetches) signature of a graph: a plan per device that has work in it."""

    def __init__(self, plans):
        self.plans = plans  # [(device name, plan, feed names, fetch names)]


class _RegisteredGraph:
    def __init__(self, handle, session_handle, graph, ops_by_device, config, now):
        self.handle = handle
        self.session_handle = session_handle
        self.graph = graph
        self.ops_by_device = ops_by_device
        self.config = config
        self.signatures = {}
        self.lock = threading.Lock()
        self.last_used = now
        self.running = 0


class Worker:
    """The worker service of the task named by `task_device_prefix` ("/job:worker/replica:0/task:1").

    devices: full names of the task's devices (default: its CPU:0); each must belong to the task.
    incarnation: this start's incarnation number (default: random, non-zero, 63 bits: `_Send`
        nodes carry it in a signed int64 attr, so it stays below 2**63).
    max_graph_def_bytes: the largest serialized GraphDef `register_graph` accepts.
    clock: seconds, monotonic (tests pass a fake one for `collect_idle`).
    """

    def __init__(self, task_device_prefix, devices=None, incarnation=None, *,
                 max_graph_def_bytes=DEFAULT_MAX_GRAPH_DEF_BYTES, clock=time.monotonic):
        task = DeviceSpec.from_string(task_device_prefix)
        if task.job is None or task.task is None or task.device_type is not None:
            raise ValueError(f"task_device_prefix must name a task (\"/job:J/replica:R/task:T\"), "
                             f"got {task_device_prefix!r}")
        self._task = DeviceSpec(task.job, task.replica if task.replica is not None else 0, task.task)
        self.task_name = self._task.to_string()
        names = list(devices) if devices is not None else [f"{self.task_name}/device:CPU:0"]
        if not names:
            raise ValueError("A worker needs at least one device")
        self.devices = {}
        for name in names:
            spec = DeviceSpec.from_string(name)
            if spec.device_type is None or spec.device_index is None or not self._owns(spec):
                raise ValueError(f"Device {name!r} is not a full device name of task {self.task_name}")
            canonical = self._canonical(spec)
            if canonical in self.devices:
                raise ValueError(f"Device {name!r} is listed twice")
            self.devices[canonical] = Device(canonical, spec.device_type)
        if incarnation is None:
            incarnation = secrets.randbits(63) or 1
        if isinstance(incarnation, bool) or not isinstance(incarnation, int) or not 0 < incarnation < 1 << 63:
            raise ValueError(f"incarnation must be an integer in [1, 2**63), got {incarnation!r}")
        self.incarnation = incarnation
        self._max_graph_def_bytes = max_graph_def_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._graphs = {}
        self._steps = {}  # step_id -> {id(rendezvous): rendezvous} of steps in flight
        self._handles = itertools.count(1)
        self._handle_prefix = f"{self.incarnation:016x}"

    # -- status ------------------------------------------------------------------------------

    def get_status(self):
        """The task's name, device names and types, and incarnation (the master's first call)."""
        return WorkerStatus(self.task_name, tuple(self.devices),
                            tuple(d.device_type for d in self.devices.values()), self.incarnation)

    # -- registration ------------------------------------------------------------------------

    def register_graph(self, session_handle, graph_def_bytes, config=None):
        """Registers this task's partition of a session's graph; returns its graph handle.

        `graph_def_bytes`: a serialized GraphDef (or a GraphDef message) whose nodes are all
        placed on devices of this task; cross-device edges must already be `_Send`/`_Recv`
        pairs. `config`: the session's ConfigProto (message, serialized bytes, or None); its
        `operation_timeout_in_ms` bounds steps that name no timeout.
        Raises InvalidArgumentError naming the node for a malformed or misplaced graph.
        """
        config = self._parse_config(config)
        graph_def = self._parse_graph_def(graph_def_bytes)
        requests = {node.name: self._node_request(node) for node in graph_def.node}
        graph = Graph()
        try:
            with graph.as_default():
                import_graph_def(graph_def, name="")
        except errors.OpError as e:
            raise errors.InvalidArgumentError(None, None, f"Cannot register graph: {e.message}") from None
        except (ValueError, TypeError) as e:
            raise errors.InvalidArgumentError(None, None, f"Cannot register graph: {e}") from None
        ops_by_device = {}
        for ops in _connected_components(graph.get_operations()):
            device = self._component_device(ops, requests)
            ops_by_device.setdefault(device, []).extend(ops)
        for op in graph.get_operations():
            self._check_send_incarnation(op)
        with self._lock:
            handle = f"{self._handle_prefix}-{next(self._handles)}"
            self._graphs[handle] = _RegisteredGraph(handle, session_handle, graph, ops_by_device, config,
                                                    self._clock())
        return handle

    def deregister_graph(self, graph_handle):
        """Releases a registered graph; steps already running on it finish. NotFoundError if unknown."""
        with self._lock:
            if self._graphs.pop(graph_handle, None) is None:
                raise self._not_found(graph_handle)

    def close_session(self, session_handle):
        """Releases every graph registered under `session_handle`; returns how many there were."""
        with self._lock:
            handles = [h for h, g in self._graphs.items() if g.session_handle == session_handle]
            for h in handles:
                del self._graphs[h]
        return len(handles)

    def collect_idle(self, max_idle_seconds):
        """Releases the graphs of each session none of whose graphs a step used (or was
        registered) for `max_idle_seconds`, none running: its master went away without closing
        it. Returns the handles released. A session's graphs go together, so a live session's
        rarely run signature is not lost while its other graphs run."""
        now = self._clock()
        with self._lock:
            busy = {g.session_handle for g in self._graphs.values()
                    if g.running or now - g.last_used < max_idle_seconds}
            idle = sorted(h for h, g in self._graphs.items() if g.session_handle not in busy)
            for h in idle:
                del self._graphs[h]
        return idle

    def cleanup_all(self, containers=None):
        """Clears resource containers `containers` ("" is the default one; all of them when
        None or empty) on every device of this task (TF's `Worker::CleanupAll`, sent by a
        master's `reset`). Graphs stay registered; their variables read as uninitialized."""
        for device in self.devices.values():
            device.resources.clear_containers(list(containers or []))

    def graph_handles(self):
        """The handles of the graphs registered now (for diagnostics and tests)."""
        with self._lock:
            return sorted(self._graphs)

    # -- steps -------------------------------------------------------------------------------

    def run_graph(self, graph_handle, step_id, sends, recv_keys, rendezvous, timeout=None, step_stats=None):
        """Runs one step of a registered graph; returns `{name: array}` for each of `recv_keys`.

        sends: `{tensor name: array}` fed into the graph ("_feed_0:0"). recv_keys: tensor names
        to return. rendezvous: the step's rendezvous, shared with the other partitions of the
        step (on this task and others); `step_id` is part of every key. A failing device aborts
        the rendezvous so the step's other partitions fail instead of waiting. `timeout`
        (seconds) bounds waits for received tensors; None takes the session's
        `operation_timeout_in_ms`, if any. NotFoundError for an unknown handle; AbortedError
        for one registered with an earlier incarnation of this task (it restarted).
        The session's `transfer_encoding` is handed to a rendezvous that fetches from other tasks
        (one with a `transfer_encoding` attribute); `step_stats` (a TF StepStats message, when the
        step is traced) receives every op the step ran on this task's devices (`step_stats`
        module of the runtime) and the tensors it fetched (`tensor_codec.transfer_step_stats`).
        """
        with self._lock:
            graph = self._graphs.get(graph_handle)
            if graph is None:
                raise self._unknown_for_step(graph_handle)
            graph.running += 1
            graph.last_used = self._clock()
            self._steps.setdefault(step_id, {})[id(rendezvous)] = rendezvous
        try:
            if timeout is None:
                timeout = step_timeout(None, graph.config)
            if hasattr(rendezvous, "transfer_encoding"):
                rendezvous.transfer_encoding = graph.config.transfer_encoding
            feeds = dict(sends)
            signature = self._signature(graph, tuple(feeds), tuple(recv_keys))
            collector = StepStatsCollector() if step_stats is not None else None
            out = self._run(signature, feeds, recv_keys, StepContext(step_id, None, rendezvous, collector), timeout)
            if collector is not None:
                collector.fill(step_stats)
                if hasattr(rendezvous, "transfers"):
                    tensor_codec.transfer_step_stats(rendezvous.transfers(), step_stats)
            return out
        finally:
            with self._lock:
                graph.running -= 1
                graph.last_used = self._clock()
                in_flight = self._steps.get(step_id)
                if in_flight is not None:
                    in_flight.pop(id(rendezvous), None)
                    if not in_flight:
                        del self._steps[step_id]

    def cleanup_graph(self, step_id):
        """Ends what is left of step `step_id` on this task: any partition still waiting in it is
        cancelled (its rendezvous aborted). Sent after every step, successful or not."""
        with self._lock:
            rendezvous = list(self._steps.pop(step_id, {}).values())
        for r in rendezvous:
            r.abort(errors.CancelledError(None, None, f"Step {step_id} was cleaned up on {self.task_name}"))

    def _run(self, signature, feeds, recv_keys, step, timeout):
        values = run_partitions([(plan, [feeds[n] for n in feed_names])
                                 for _, plan, feed_names, _ in signature.plans], step, timeout)
        results = {}
        for (_, _, _, fetch_names), fetched in zip(signature.plans, values, strict=True):
            results.update(zip(fetch_names, fetched, strict=True))
        out = {}
        for name in recv_keys:
            out[name] = feeds[name] if name in feeds else results[name]  # a fetched feed: the fed value
        return out

    def _signature(self, graph, feed_names, fetch_names):
        key = (feed_names, fetch_names)
        signature = graph.signatures.get(key)
        if signature is None:
            with graph.lock:
                signature = graph.signatures.get(key)
                if signature is None:
                    signature = graph.signatures[key] = self._compile(graph, feed_names, fetch_names)
        return signature

    def _compile(self, graph, feed_names, fetch_names):
        feeds = [self._tensor(graph, name, "fed") for name in feed_names]
        fetches = [self._tensor(graph, name, "fetched") for name in fetch_names if name not in feed_names]
        fed = set(feeds)
        plans = []
        for device, ops in graph.ops_by_device.items():
            ops = set(ops)
            read = {t.op for op in ops for t in op.inputs} | {c for op in ops for c in op.control_inputs}
            # Sinks always run; an op whose outputs are all fed is replaced by its feeds.
            targets = [op for op in graph.ops_by_device[device] if op not in read and not (op.outputs and all(t in fed for t in op.outputs))]
            dev_feeds = [t for t in feeds if t.op in ops]
            dev_fetches = [t for t in fetches if t.op in ops]
            if not targets and not dev_fetches:
                continue
            plan = compile_plan(dev_feeds, dev_fetches, targets, self.devices[device])
            plans.append((device, plan, [t.name for t in dev_feeds], [t.name for t in dev_fetches]))
        return _Signature(plans)

    # -- checks ------------------------------------------------------------------------------

    def _tensor(self, graph, name, what):
        try:
            return graph.graph.get_tensor_by_name(name)
        except (KeyError, ValueError, TypeError):
            raise errors.InvalidArgumentError(
                None, None, f"Tensor {name!r} {what} in a step of graph {graph.handle} is not in the graph") from None

    def _parse_graph_def(self, data):
        if isinstance(data, graph_pb2.GraphDef):
            return data
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"graph_def_bytes must be bytes, got {type(data).__name__}")
        if len(data) > self._max_graph_def_bytes:
            raise errors.InvalidArgumentError(None, None, f"GraphDef of {len(data)} bytes exceeds the limit of "
                                              f"{self._max_graph_def_bytes} bytes")
        graph_def = graph_pb2.GraphDef()
        try:
            graph_def.ParseFromString(bytes(data))
        except (_message.DecodeError, ValueError, RuntimeError) as e:
            raise errors.InvalidArgumentError(None, None, f"Cannot parse GraphDef ({len(data)} bytes): {e}") from None
        return graph_def

    @staticmethod
    def _parse_config(config):
        if isinstance(config, (bytes, bytearray, memoryview)):
            proto = config_lib.config_pb2.ConfigProto()
            try:
                proto.ParseFromString(bytes(config))
            except (_message.DecodeError, ValueError, RuntimeError) as e:
                raise errors.InvalidArgumentError(None, None, f"Cannot parse ConfigProto: {e}") from None
            config = proto
        try:
            return tensor_codec.config_from_wire(config)
        except (TypeError, ValueError) as e:
            raise errors.InvalidArgumentError(None, None, str(e)) from None

    def _node_request(self, node):
        """The node's device request, checked against this task (partitions keep the user's
        partial requests, such as "/job:worker/task:1"; only `_Send`/`_Recv`/feeds are full)."""
        where = f"node {node.name!r} (op type {node.op})"
        try:
            spec = DeviceSpec.from_string(node.device)
        except ValueError as e:
            raise errors.InvalidArgumentError(None, None, f"Cannot register graph: {where}: bad device: {e}") from None
        if (spec.job not in (None, self._task.job) or spec.task not in (None, self._task.task)
                or spec.replica not in (None, self._task.replica) or not self._matching(spec)):
            raise errors.InvalidArgumentError(
                None, None, f"Cannot register graph: {where} is placed on {node.device!r}, "
                f"not on a device of task {self.task_name} {list(self.devices)}")
        return spec

    def _matching(self, spec):
        return [name for name, d in self.devices.items()
                if spec.device_type in (None, d.device_type)
                and (spec.device_index is None or self._canonical(spec) == name)]

    def _component_device(self, ops, requests):
        """The device of ops joined by edges (edges never cross devices inside a partition):
        the one every member's request matches, the first such in the worker's device order."""
        candidates = list(self.devices)
        for op in ops:
            matching = set(self._matching(requests[op.name]))
            narrowed = [d for d in candidates if d in matching]
            if not narrowed:
                raise errors.InvalidArgumentError(
                    None, None, f"Cannot register graph: node {op.name!r} on {op.device!r} is connected to "
                    f"ops on another device ({candidates}); cross-device edges must be _Send/_Recv pairs")
            candidates = narrowed
        return candidates[0]

    def _check_send_incarnation(self, op):
        # 0 means "not stamped"; any other value must be this start's, or the graph was built
        # for an earlier incarnation of this task and its peers would wait on keys never sent.
        if op.type == "_Send":
            stamped = op.get_attr("send_device_incarnation")
            if stamped and stamped != self.incarnation:
                raise errors.AbortedError(
                    None, None, f"Cannot register graph: _Send {op.name!r} carries incarnation {stamped:#x}, "
                    f"but task {self.task_name} is now incarnation {self.incarnation:#x} (it restarted)")

    def _owns(self, spec):
        return (spec.job == self._task.job and spec.task == self._task.task
                and spec.replica in (None, self._task.replica))

    def _canonical(self, spec):
        return DeviceSpec(self._task.job, self._task.replica, self._task.task, spec.device_type,
                          spec.device_index).to_string()

    def _unknown_for_step(self, handle):
        # Handles begin with the incarnation that registered them: one of an earlier incarnation
        # means this task restarted and lost the graph (and its variables), so the step is
        # ABORTED as in TF and the client starts over; an unknown handle of this one is NOT_FOUND.
        prefix, sep, number = handle.partition("-")
        if sep and number.isdigit() and len(prefix) == 16 and prefix != self._handle_prefix:
            try:
                incarnation = int(prefix, 16)
            except ValueError:
                incarnation = 0
            if incarnation:
                return errors.AbortedError(
                    None, None, f"Graph handle {handle!r} was registered with incarnation {incarnation:#x} of task "
                    f"{self.task_name}, which restarted (now incarnation {self.incarnation:#x}) and lost it")
        return self._not_found(handle)

    def _not_found(self, handle):
        return errors.NotFoundError(None, None, f"Graph handle {handle!r} is not registered with task "
                                    f"{self.task_name} (deregistered, collected as idle, or the task restarted)")


def _connected_components(ops):
    """`ops` grouped by data and control edges (union-find), each group in graph order."""
    parent = {op: op for op in ops}

    def root(op):
        while parent[op] is not op:
            parent[op] = parent[parent[op]]
            op = parent[op]
        return op

    for op in ops:
        for source in [t.op for t in op.inputs] + list(op.control_inputs):
            a, b = root(op), root(source)
            if a is not b:
                parent[a] = b
    groups = {}
    for op in ops:
        groups.setdefault(root(op), []).append(op)
    return list(groups.values())
