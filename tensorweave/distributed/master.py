"""The master service of a cluster, independent of any transport (TF's `Master` + `MasterSession`).

A client hands the master its graph (`create_session`); each `run` signature (feed, fetch and
target names) is then pruned, placed across every device of the cluster, partitioned by device,
and registered with the workers owning those devices. A step runs every registered partition at
once (`Worker.run_graph`, one thread per task), all sharing the step's rendezvous.

- Workers are reached only through the worker interface (`get_status`, `register_graph`,
  `run_graph`, `cleanup_graph`, `deregister_graph`, `close_session`, `cleanup_all`), with GraphDefs and configs
  as serialized bytes and tensors as NumPy arrays, so in-process `Worker`s and gRPC stubs serve alike.
- One registration per task and signature: the partitions of a task's devices are merged into one
  GraphDef (their `_Send`/`_Recv`/feed nodes renamed per device so they cannot collide), and every
  node carries the full name of the device the master placed it on, so the worker never re-places.
- The rendezvous is a parameter (`rendezvous_factory`, called once per step): an in-process
  `LocalRendezvous` now, a remote one once tensors travel over the data channel.
- `extend_session` replaces the session's graph: every signature registered for it is
  deregistered and compiled again on first use (simple and correct; TF keeps those still valid).
- A session involves only the tasks its `ConfigProto.device_filters` match (all tasks without
  filters), as TF's DeviceFinder: only those are asked for their devices, run its steps and are
  told when it closes, so a dead task outside the filters does not stop it.
- Sessions whose client went away without closing them are released by `collect_idle`.
- `reset(containers)` (`tf.Session.reset`) closes every session, then tells every task to clear
  those resource containers (`Worker.cleanup_all`).
"""

import contextlib
import itertools
import logging
import secrets
import threading
import time

from tensorboard.compat.proto import graph_pb2, step_stats_pb2

from tensorweave.distributed import tensor_codec
from tensorweave.distributed.cluster import ClusterSpec
from tensorweave.framework import errors
from tensorweave.framework.device_spec import DeviceSpec
from tensorweave.framework.graph import Graph
from tensorweave.framework.graph_io import import_graph_def
from tensorweave.framework.operation import Operation
from tensorweave.runtime import config as config_lib
from tensorweave.runtime.partition import partition_graph
from tensorweave.runtime.partition_graphs import partition_graph_defs
from tensorweave.runtime.placement import place
from tensorweave.runtime.plan import prune
from tensorweave.runtime.rendezvous import LocalRendezvous
from tensorweave.runtime.session import step_timeout
from tensorweave.runtime.step_stats import tracing_requested
from tensorweave.runtime.threads import ReusableThreads

_log = logging.getLogger("tensorweave")

_STEP_ID_MASK = (1 << 63) - 1  # step ids travel in signed int64 fields
ABANDON_AFTER_FAILURE_SECONDS = 2.0
CLOSE_WAIT_SECONDS = 5.0
_STEP_THREADS = ReusableThreads("tensorweave-master-step")
SESSION_WAIT_SECONDS = 60.0  # how long a new session waits for its tasks to come up (TF: forever)
_SESSION_WAIT_LOG_SECONDS = 10.0


def _cleanup_quietly(worker, step_id):
    with contextlib.suppress(Exception):  # best effort: the step's own error is what is reported
        worker.cleanup_graph(step_id)


class _TaskPart:
    """A signature's registration on one task: its handle, the feeds it takes (partition feed
    name -> client tensor name) and the client tensor names it returns."""

    def __init__(self, task, handle, sends, fetch_names):
        self.task = task
        self.handle = handle
        self.sends = sends
        self.fetch_names = fetch_names


class _TaskRendezvous:
    """One task's view of the step's rendezvous: remembers which task aborted it first, so the
    step's error names the task where it arose, not a peer that merely stopped waiting."""

    def __init__(self, base, task, on_abort):
        self._base, self._task, self._on_abort = base, task, on_abort

    def send(self, key, value):
        return self._base.send(key, value)

    def recv_async(self, key, callback):
        return self._base.recv_async(key, callback)

    def recv(self, key, timeout=None):
        return self._base.recv(key, timeout)

    def abort(self, error):
        self._on_abort(self._task, error)
        self._base.abort(error)

    def pending_keys(self):
        return self._base.pending_keys()


class MasterSession:
    """One client session: its graph, its config, and the signatures registered for it."""

    def __init__(self, master, handle, graph, config, tasks, devices, incarnations, now):
        self.master = master
        self.handle = handle
        self.graph = graph
        self.config = config
        self.tasks = tasks                # the task names this session involves
        self.devices = devices            # {full device name: task name}
        self.incarnations = incarnations  # {full device name: incarnation}
        self._signatures = {}
        self._lock = threading.Lock()
        self.last_used = now              # master clock time of the last step or extend
        self.running = 0                  # steps in flight; guarded by the master's lock
        self.step_ids = set()             # their ids, so closing the session can cancel them

    def run(self, feeds, fetches, targets=(), options=None):
        """Runs one step: `feeds` maps tensor names to arrays; returns `{fetch name: array}`."""
        return self.master.run(self.handle, feeds, fetches, targets, options)

    def extend(self, graph_def_bytes):
        """Replaces the session's graph with a larger one (the client added ops)."""
        self.master.extend_session(self.handle, graph_def_bytes)

    def close(self):
        """Releases every graph of this session on every worker."""
        self.master.close_session(self.handle)


class Master:
    """The master of `cluster_spec`, reaching each task through `workers`.

    workers: `{task prefix ("/job:worker/replica:0/task:1"): object with the Worker interface}`;
        every task of the cluster needs one.
    default_task: (job, index) of the client's task; ops that request no device go to its CPU:0.
    config: the default ConfigProto of sessions (soft placement, device filters, timeouts).
    rendezvous_factory: makes the rendezvous of one step (LocalRendezvous: all tasks in-process).
    clock: seconds, monotonic (tests pass a fake one for `collect_idle`).
    """

    def __init__(self, cluster_spec, workers, default_task=("worker", 0), config=None, *,
                 rendezvous_factory=LocalRendezvous, clock=time.monotonic):
        self.cluster_spec = cluster_spec if isinstance(cluster_spec, ClusterSpec) else ClusterSpec(cluster_spec)
        self.workers = {_task_name(name): w for name, w in workers.items()}
        missing = [t for t in self.cluster_spec.task_devices() if t not in self.workers]
        if missing:
            raise ValueError(f"No worker given for tasks {missing} of the cluster")
        job, index = default_task
        self.default_device = self.cluster_spec.device_name(job, index)
        self._own_task = _task_name(self.default_device)
        self.config = config_lib.as_config(config)
        self._rendezvous_factory = rendezvous_factory
        self._clock = clock
        self._sessions = {}
        self._lock = threading.Lock()
        self._prefix = f"{secrets.randbits(48):012x}"
        self._session_ids = itertools.count(1)
        self._step_base = secrets.randbits(62)
        self._step_ids = itertools.count(1)

    # -- sessions ----------------------------------------------------------------------------

    def create_session(self, graph_def_bytes, config=None):
        """Imports the client's graph (a serialized GraphDef) and returns a session handle. Asks
        each task the session involves (those matching `config.device_filters`; every task
        without filters) for its devices and incarnation now, so a later restart fails fast."""
        config = tensor_codec.config_from_wire(config) if config is not None else self.config
        tasks = self._filtered_tasks(config.device_filters)
        devices, incarnations = {}, {}
        wait = config.operation_timeout_in_ms / 1000 if config.operation_timeout_in_ms > 0 else SESSION_WAIT_SECONDS
        deadline = time.monotonic() + wait
        for task in tasks:
            status = self._status_once_up(task, deadline, wait)
            if _task_name(status.task_name) != task:
                raise errors.InvalidArgumentError(
                    None, None, f"The worker registered for task {task} reports task {status.task_name}")
            for name in status.device_names:
                devices[name] = task
                incarnations[name] = status.incarnation
        graph = _import(graph_def_bytes)
        handle = f"{self._prefix}-{next(self._session_ids)}"
        with self._lock:
            self._sessions[handle] = MasterSession(self, handle, graph, config, tasks, devices, incarnations,
                                                   self._clock())
        return handle

    def _status_once_up(self, task, deadline, wait):
        """The task's status; a task not up yet (UnavailableError) is asked again until
        `deadline`, as TF's master waits for the workers of a new session. Every cluster task
        starts at about the same time, so a worker's first session often comes before the PS."""
        delay, next_log = 0.05, time.monotonic() + _SESSION_WAIT_LOG_SECONDS
        while True:
            try:
                return self.workers[task].get_status()
            except errors.UnavailableError as e:
                now = time.monotonic()
                if now + delay > deadline:
                    raise errors.UnavailableError(
                        None, None, f"{e.message} (the session waited {wait:g} s for task {task} to come up; "
                        "ConfigProto.operation_timeout_in_ms sets how long)") from e
                if now >= next_log:
                    _log.info("CreateSession still waiting for task %s: %s", task, e.message)
                    next_log = now + _SESSION_WAIT_LOG_SECONDS
            time.sleep(delay)
            delay = min(2 * delay, 0.5)

    def _filtered_tasks(self, device_filters):
        """The tasks with a device that may match one of `device_filters` (all tasks without
        filters): a filter's job, replica and task fields, where set, must match the task's."""
        if not device_filters:
            return list(self.workers)
        try:
            filters = [DeviceSpec.from_string(f) for f in device_filters]
        except ValueError as e:
            raise errors.InvalidArgumentError(None, None, f"Malformed ConfigProto.device_filters "
                                              f"{list(device_filters)}: {e}") from None
        tasks = []
        for task in self.workers:
            spec = DeviceSpec.from_string(task)
            if any(all(getattr(f, field) is None or getattr(f, field) == getattr(spec, field)
                       for field in ("job", "replica", "task")) for f in filters):
                tasks.append(task)
        if not tasks:
            raise errors.InvalidArgumentError(None, None, f"ConfigProto.device_filters {list(device_filters)} "
                                              f"match no task of the cluster {list(self.workers)}")
        return tasks

    def session(self, handle):
        """The session object of `handle`; AbortedError if it is closed or unknown."""
        with self._lock:
            session = self._sessions.get(handle)
        if session is None:
            raise _session_not_found(handle)
        return session

    def extend_session(self, handle, graph_def_bytes):
        """Replaces the session's graph; every registered signature is deregistered and rebuilt on
        its next run. Variables live on the workers' devices, so they keep their values."""
        session = self.session(handle)
        graph = _import(graph_def_bytes)
        with session._lock:
            stale, session._signatures = session._signatures, {}
            session.graph = graph
        with self._lock:
            session.last_used = self._clock()
        self._deregister(stale.values())

    def close_session(self, handle):
        """Releases every graph of the session on each task it involves (`Worker.close_session`).
        A task that is gone (dead, restarted, or silent for `CLOSE_WAIT_SECONDS`) is only logged;
        another error of a task is raised once the others were told."""
        with self._lock:
            session = self._sessions.pop(handle, None)
        if session is None:
            return
        first_error = self._release([session]).get(handle)
        if first_error is not None:
            raise first_error

    def collect_idle(self, max_idle_seconds):
        """Closes, as `close_session` does, the sessions with no step or extend for
        `max_idle_seconds` and none running (their client went away without closing them);
        returns their handles. Errors of their tasks are logged, not raised."""
        now = self._clock()
        with self._lock:
            idle = [s for s in self._sessions.values()
                    if not s.running and now - s.last_used >= max_idle_seconds]
            for session in idle:
                del self._sessions[session.handle]
        for handle, error in self._release(idle).items():
            _log.warning("Collecting idle session %s: %s", handle, error)
        return [session.handle for session in idle]

    def reset(self, containers=None, device_filters=()):
        """`tf.Session.reset` on this master: closes every session (as `close_session`; their
        clients' next step raises AbortedError), then clears resource containers `containers`
        ("" is the default one; all when None or empty) on every task matching
        `device_filters` (all tasks without filters), each task at once. A task that is gone or
        silent for `CLOSE_WAIT_SECONDS` is only logged (a dead task holds no resources; a
        silent one clears them when the call arrives); another task's error is raised once
        every task was told. Returns the handles of the sessions closed."""
        tasks = self._filtered_tasks(list(device_filters))
        containers = list(containers or [])
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        first_errors = list(self._release(sessions).values())
        errors_by_task = self._on_each_task(
            tasks, lambda task: {task: self.workers[task].cleanup_all(containers)}, "Resetting containers on")
        error = next(iter(first_errors + list(errors_by_task.values())), None)
        if error is not None:
            raise error
        return [session.handle for session in sessions]

    def _on_each_task(self, tasks, call, what):
        """Runs `call(task)` for each of `tasks`, all at once (a silent task must not hold the
        rest), waiting at most `CLOSE_WAIT_SECONDS`. `call` returns {key: error or None} for the
        parts of its work; returns {key: error} for errors that are not the task being gone
        (those, and silence, are logged with `what`)."""
        outcomes = {}  # task -> {key: error or None}, or the exception `call` raised
        done = threading.Condition()

        def run_on(task):
            try:
                outcome = call(task)
            except Exception as e:  # noqa: BLE001 - the other tasks are told anyway
                outcome = e
            with done:
                outcomes[task] = outcome
                done.notify_all()

        for task in tasks:
            threading.Thread(target=run_on, args=(task,), daemon=True, name=f"tensorweave-master-{task}").start()
        with done:
            done.wait_for(lambda: len(outcomes) == len(tasks), CLOSE_WAIT_SECONDS)
            outcomes = dict(outcomes)
        failed = {}
        for task in tasks:
            outcome = outcomes.get(task, errors.DeadlineExceededError(
                None, None, f"no answer within {CLOSE_WAIT_SECONDS} s"))
            parts = {task: outcome} if isinstance(outcome, Exception) else outcome
            for key, error in parts.items():
                if isinstance(error, (errors.UnavailableError, errors.AbortedError,
                                      errors.DeadlineExceededError)):
                    # A task that died or restarted holds nothing of this any more; one that does
                    # not answer does the work when its own call ends.
                    _log.warning("%s %s: task %s is gone (%s)", what, key, task, error.message)
                elif error is not None:
                    failed.setdefault(key, error)
        return failed

    def _release(self, sessions):
        """Tells each task of `sessions` to release their graphs, every task at once and, on one
        task, one session after another. Returns {session handle: first error that is not the
        task being gone}."""
        by_task = {}
        for session in sessions:
            session._signatures.clear()
            for task in session.tasks:
                by_task.setdefault(task, []).append(session.handle)
        with self._lock:
            running = {session.handle: sorted(session.step_ids) for session in sessions}

        def close_on(task):
            outcome = {}
            for handle in by_task[task]:
                try:
                    for step_id in running[handle]:  # a step still waiting there (a dequeue) ends now
                        with contextlib.suppress(Exception):
                            self.workers[task].cleanup_graph(step_id)
                    self.workers[task].close_session(handle)
                    outcome[handle] = None
                except Exception as e:  # noqa: BLE001 - release the task's other sessions anyway
                    outcome[handle] = e
            return outcome

        return self._on_each_task(list(by_task), close_on, "Closing session")

    def list_devices(self, handle=None):
        """The full names of every device of every task, as the workers report them; with a
        session `handle`, the devices of the tasks that session involves (known since it began)."""
        if handle is not None:
            return list(self.session(handle).devices)
        return [name for worker in self.workers.values() for name in worker.get_status().device_names]

    # -- steps -------------------------------------------------------------------------------

    def run(self, handle, feeds, fetches, targets=(), options=None, run_metadata=None):
        """Runs one step of session `handle`: `feeds` maps tensor names to arrays, `fetches` are
        tensor names, `targets` op names. Returns `{fetch name: array}`; a failing op on any
        task fails the step with that op's error, naming the task. With
        `options.trace_level` above NO_TRACE and a `run_metadata` (TF RunMetadata), every op each
        task ran and the cross-task transfers (`tensor_codec.transfer_step_stats`) are merged into
        its step_stats, one `dev_stats` per device."""
        session = self._begin_step(handle)
        step_id = None
        try:
            feeds = dict(feeds)
            fetches, targets = list(fetches), list(targets)
            parts = self._signature(session, tuple(feeds), tuple(fetches), tuple(targets))
            step_id = (self._step_base + next(self._step_ids)) & _STEP_ID_MASK
            with self._lock:
                session.step_ids.add(step_id)
            stats = step_stats_pb2.StepStats() if tracing_requested(options, run_metadata) else None
            results = self._run_step(session, parts, step_id, feeds, step_timeout(options, session.config),
                                     stats)
        finally:
            with self._lock:
                session.running -= 1
                session.step_ids.discard(step_id)
                session.last_used = self._clock()
        if stats is not None:
            tensor_codec.merge_step_stats(run_metadata.step_stats, stats)
        out = {}
        for name in fetches:
            out[name] = feeds[name] if name in feeds else results[name]  # a fetched feed: the fed value
        return out

    def _begin_step(self, handle):
        # Under the master's lock, so `collect_idle` never closes a session whose step began.
        with self._lock:
            session = self._sessions.get(handle)
            if session is not None:
                session.running += 1
                session.last_used = self._clock()
        if session is None:
            raise _session_not_found(handle)
        return session

    def _run_step(self, session, parts, step_id, feeds, timeout, step_stats=None):
        rendezvous = self._rendezvous_factory()
        lock = threading.Lock()
        first = []   # (task, error) of the first abort: where the step failed
        failures = []
        results = {}

        def record(task, error):
            with lock:
                if not first:
                    first.append((task, error))

        def call(part):
            worker = self.workers[part.task]
            view = _TaskRendezvous(rendezvous, part.task, record)
            sends = {name: feeds[client] for name, client in part.sends.items()}
            try:
                stats = step_stats_pb2.StepStats() if step_stats is not None else None
                out = worker.run_graph(part.handle, step_id, sends, part.fetch_names, view, timeout=timeout,
                                       step_stats=stats)
                with lock:
                    results.update(out)
                    if step_stats is not None:
                        tensor_codec.merge_step_stats(step_stats, stats)
            except BaseException as e:  # noqa: BLE001 - reported below, after the peers finished
                view.abort(e)  # so the peers fail instead of waiting for this task's tensors
                with lock:
                    failures.append((part.task, e))
                with done:
                    done.notify_all()

        done = threading.Condition()
        finished = []

        def call_and_count(part):
            try:
                call(part)
            finally:
                with done:
                    finished.append(part.task)
                    done.notify_all()

        # Every part of a multi-task step runs on its own thread, so this one can give up on a task
        # that stopped answering once another failed; a one-task step runs here.
        inline = parts[:1] if len(parts) == 1 else []
        for part in parts[len(inline):]:
            _STEP_THREADS.submit(call_and_count, part)
        for part in inline:
            call_and_count(part)
        with done:
            done.wait_for(lambda: len(finished) == len(parts) or failures)
            # Once a task failed, the others are told to stop (CleanupGraph); a task that cannot
            # answer (hung, or cut off) is not waited for beyond the grace period: its call ends
            # on its own when its connection's keepalive gives up.
            done.wait_for(lambda: len(finished) == len(parts), ABANDON_AFTER_FAILURE_SECONDS)
        if not failures:
            return results
        for part in parts:  # a peer may still hold the step (a remote worker's receive)
            threading.Thread(target=_cleanup_quietly, args=(self.workers[part.task], step_id), daemon=True,
                             name=f"tensorweave-cleanup-{part.task}").start()
        task, error = first[0] if first else failures[0]
        raise self._step_error(session, step_id, task, error)

    @staticmethod
    def _step_error(session, step_id, task, error):
        if not isinstance(error, errors.OpError):
            return errors.InternalError(None, None, f"Step {step_id} failed on task {task}: "
                                        f"{type(error).__name__}: {error}")
        out = type(error)(error.node_def, None, f"{error.message}\n\t(step {step_id} failed on task {task})")
        if error.op is not None:  # the worker's op; the client knows the op of its own graph
            try:
                out.op = session.graph.get_operation_by_name(error.op.name)
            except (KeyError, ValueError):
                pass
        out.__cause__ = error
        return out

    # -- signatures --------------------------------------------------------------------------

    def _signature(self, session, feeds, fetches, targets):
        key = (feeds, fetches, targets)
        parts = session._signatures.get(key)
        if parts is None:
            with session._lock:
                parts = session._signatures.get(key)
                if parts is None:
                    parts = session._signatures[key] = self._register(session, feeds, fetches, targets)
        return parts

    def _register(self, session, feed_names, fetch_names, target_names):
        graph, config = session.graph, session.config
        feeds = [_element(graph, n, "fed", tensor=True) for n in feed_names]
        fetches = [_element(graph, n, "fetched", tensor=True) for n in fetch_names]
        targets = [_element(graph, n, "run as a target", tensor=False) for n in target_names]
        ops = prune(feeds, fetches, targets)
        placement = place(ops, list(session.devices), default_device=self.default_device,
                          allow_soft_placement=config.allow_soft_placement,
                          device_filters=list(config.device_filters) or None)
        specs = partition_graph(ops, placement, fetches=fetches + targets, feeds=feeds)
        defs = partition_graph_defs(specs, session.incarnations)
        by_task = {}
        for device, spec in specs.items():
            by_task.setdefault(session.devices[device], []).append((device, spec, defs[device]))
        config_bytes = tensor_codec.config_to_wire(config)  # carries transfer_encoding too
        parts = []
        try:
            for task, members in by_task.items():
                graph_def, sends, fetched = _merge_task(members)
                handle = self.workers[task].register_graph(session.handle, graph_def.SerializeToString(),
                                                           config_bytes)
                parts.append(_TaskPart(task, handle, sends, fetched))
        except BaseException:
            self._deregister([parts])
            raise
        # The master's own task last: its part starts at once, while a remote part waits for an
        # RPC, and its partition would hold the interpreter lock while that call is being made.
        return sorted(parts, key=lambda part: part.task == self._own_task)

    def _deregister(self, signatures):
        for parts in signatures:
            for part in parts:
                try:
                    self.workers[part.task].deregister_graph(part.handle)
                except errors.NotFoundError:
                    pass  # already gone (collected as idle, or the worker restarted)


def _session_not_found(handle):
    return errors.AbortedError(None, None, f"Session {handle!r} is not found (closed, collected as idle, or "
                               "this master restarted)")


def _merge_task(members):
    """One GraphDef for the partitions of one task's devices. Nodes the partitioner made
    (`_feed_i`, `_recv_i`, `_send_i`) are renamed per device when a task has several; every node
    is pinned to its placed device. Returns (GraphDef, {feed name: client tensor name},
    [client tensor names fetched])."""
    out = graph_pb2.GraphDef()
    sends, fetched = {}, []
    several = len(members) > 1
    for index, (device, spec, graph_def) in enumerate(members):
        own = {op.name for op in spec.ops}
        renamed = {n.name: (f"{n.name}_d{index}" if several else n.name)
                   for n in graph_def.node if n.name not in own}
        for node in graph_def.node:
            new = out.node.add()
            new.CopyFrom(node)
            new.name = renamed.get(node.name, node.name)
            new.device = device
            del new.input[:]
            new.input.extend(_rename_input(i, renamed) for i in node.input)
        for i, t in enumerate(spec.feeds):
            sends[f"{renamed[f'_feed_{i}']}:0"] = t.name
        fetched.extend(f.name for f in spec.fetches if not isinstance(f, Operation))
    if members:
        out.versions.CopyFrom(members[0][2].versions)
    return out, sends, fetched


def _rename_input(name, renamed):
    control = name.startswith("^")
    base, sep, port = name.lstrip("^").partition(":")
    base = renamed.get(base, base)
    return ("^" if control else "") + base + sep + port


def _element(graph, name, what, tensor):
    try:
        if tensor:
            return graph.get_tensor_by_name(name)
        return graph.get_operation_by_name(name.lstrip("^"))
    except (KeyError, ValueError, TypeError):
        kind = "Tensor" if tensor else "Operation"
        raise errors.InvalidArgumentError(None, None, f"{kind} {name!r} {what} is not in the session's graph "
                                          "(extend the session after adding ops)") from None


def _import(graph_def_bytes):
    graph_def = graph_def_bytes
    if not isinstance(graph_def, graph_pb2.GraphDef):
        graph_def = graph_pb2.GraphDef()
        try:
            graph_def.ParseFromString(bytes(graph_def_bytes))
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
            raise errors.InvalidArgumentError(None, None, f"Cannot parse the session's GraphDef: {e}") from None
    graph = Graph()
    with graph.as_default():
        import_graph_def(graph_def, name="")
    return graph


def _task_name(name):
    spec = DeviceSpec.from_string(name)
    return DeviceSpec(spec.job, spec.replica if spec.replica is not None else 0, spec.task).to_string()


class MasterRuntime:
    """The client side of a master session, with the `LocalRuntime` interface, so `Session` can
    run on a master (through the session-factory registry). `graph`: the client's graph; when
    given, ops added to it since the last step extend the session before the next."""

    def __init__(self, master, session_handle, graph=None):
        self.master = master
        self.handle = session_handle
        self.graph = graph
        self._extended_at = _graph_size(graph)
        self._closed = False

    def run(self, feeds, feed_values, fetches, targets, options, run_metadata):
        if self.graph is not None and _graph_size(self.graph) != self._extended_at:
            self._extended_at = _graph_size(self.graph)
            self.master.extend_session(self.handle, self.graph.as_graph_def().SerializeToString())
        feed_map = {t.name: v for t, v in zip(feeds, feed_values, strict=True)}
        out = self.master.run(self.handle, feed_map, [t.name for t in fetches], [op.name for op in targets],
                              options, run_metadata)
        return [out[t.name] for t in fetches]

    def list_devices(self):
        return self.master.list_devices(self.handle)

    def close(self, timeout=None):  # `timeout` unused: the master bounds its own waits
        if not self._closed:
            self._closed = True
            self.master.close_session(self.handle)


def _graph_size(graph):
    if graph is None:
        return None
    return (len(graph.get_operations()), graph._mutation_version)

