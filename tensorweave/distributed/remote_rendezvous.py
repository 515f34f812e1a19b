"""A worker's rendezvous for one step when the step's partitions run on several tasks.

Each task owns the rendezvous of its steps (TF's `RemoteRendezvous` / `RendezvousMgr`): values
its partitions send stay in a `LocalRendezvous` here; a receive whose key names a source device
of another task is fetched from that task (`fetch_remote`, e.g. the Worker.RecvTensor RPC), which
waits on the producer's rendezvous for the key. A producer never blocks; a consumer never blocks
either: the fetch runs asynchronously and calls back.

`StepRendezvousTable` keeps one `RemoteRendezvous` per step of a worker. An entry lives while a
partition of the step runs, while a value sent in it waits for its consumer, or (aborted or
stale) until `max_age` seconds passed, so a late RecvTensor for a failed step fails at once
instead of waiting for a value that will never come.
"""

import threading
import time

from tensorweave.framework import errors
from tensorweave.framework.device_spec import DeviceSpec
from tensorweave.runtime.rendezvous import LocalRendezvous, blocking_recv

DEFAULT_MAX_AGE_SECONDS = 300.0


def source_task(key):
    """The task ("/job:ps/replica:0/task:0") of the source device named by a rendezvous key."""
    spec = DeviceSpec.from_string(key.split(";", 1)[0])
    return DeviceSpec(spec.job, spec.replica if spec.replica is not None else 0, spec.task).to_string()


class RemoteRendezvous:
    """The rendezvous of one step on one task.

    task_name: this task's name; keys whose source device is on it are served locally.
    fetch_remote: `fetch_remote(task, key, step_id, deliver, encoding) -> cancel`, which must call
        `deliver(value, error, wire_bytes=None, wire_encoding=None)` once (with the payload size
        and encoding of a fetched tensor, which the rendezvous records in `transfers` with the
        fetch's start and end times) and make
        `cancel(error)` end a fetch in flight.

    `transfer_encoding` (set by the worker from the session's config before the step runs) is the
    encoding asked of the producer for float32 tensors (`compression.ENCODINGS`).
    """

    def __init__(self, task_name, step_id, fetch_remote):
        self.task_name = task_name
        self.step_id = step_id
        self._local = LocalRendezvous()
        self._fetch_remote = fetch_remote
        self._lock = threading.Lock()
        self._in_flight = {}   # key -> cancel function of a remote fetch
        self._takers = {}      # key -> waiter of a remote consumer (`take_local`)
        self._error = None
        self.transfer_encoding = "none"
        self._transfers = []   # (key, payload bytes, encoding, start ns, end ns) of each tensor fetched from a peer

    @property
    def error(self):
        """The error this rendezvous was aborted with, or None."""
        return self._error

    def send(self, key, value):
        """Stores a value produced on this task for its consumer (local or remote); never blocks."""
        self._local.send(key, value)

    def recv_async(self, key, callback):
        """Calls `callback(value, error)` once the value of `key` is here or was fetched."""
        task = source_task(key)
        if task == self.task_name:
            self._local.recv_async(key, callback)
            return
        once = threading.Lock()
        started = time.time_ns()  # wall clock, as step stats record it

        def deliver(value, error, wire_bytes=None, wire_encoding=None):
            if not once.acquire(blocking=False):
                return
            with self._lock:
                self._in_flight.pop(key, None)
                if error is None and wire_bytes is not None:
                    self._transfers.append((key, int(wire_bytes), wire_encoding or "none", started, time.time_ns()))
            callback(value, error)

        with self._lock:
            error = self._error
            if error is None and key in self._in_flight:
                error = errors.InternalError(None, None, f"Rendezvous key {key!r} was received twice")
            if error is None:
                self._in_flight[key] = None
        if error is not None:
            deliver(None, error)
            return
        cancel = self._fetch_remote(task, key, self.step_id, deliver, self.transfer_encoding)
        with self._lock:
            aborted = self._error
            if key in self._in_flight:
                self._in_flight[key] = cancel
        if aborted is not None:
            cancel(aborted)

    def recv(self, key, timeout=None):
        """Blocks for the value of `key`; DeadlineExceededError after `timeout` seconds."""
        return blocking_recv(self, key, timeout)

    def transfers(self):
        """[(key, payload bytes, encoding, start ns, end ns)] of the tensors fetched from other
        tasks so far: the fetch began at `start` and its value arrived at `end` (wall clock)."""
        with self._lock:
            return list(self._transfers)

    def take_local(self, key, callback):
        """Hands a value produced on this task to a remote consumer (the RecvTensor handler), now
        or once it is sent. Returns `withdraw()`, which takes the waiter back if the consumer gave
        up before the value came (True if it was still waiting).

        A key has one consumer, so a newer take of a key replaces a waiting one: the consumer
        retried (its earlier call timed out or its connection broke, maybe before this task
        noticed) and the earlier waiter gets CancelledError instead of the value."""
        def deliver(value, error):
            with self._lock:
                if self._takers.get(key) is deliver:
                    del self._takers[key]
            callback(value, error)

        with self._lock:
            previous = self._takers.get(key)
            self._takers[key] = deliver
        replaced = previous is not None and self._local.cancel(key, previous)
        self._local.recv_async(key, deliver)
        if replaced:  # after the new waiter is in: telling the old one may release an empty step
            previous(None, errors.CancelledError(None, None, f"Receive of {key!r} was replaced by a newer "
                                                 "receive of the same key"))

        def withdraw():
            if not self._local.cancel(key, deliver):
                return False
            with self._lock:
                if self._takers.get(key) is deliver:
                    del self._takers[key]
            return True
        return withdraw

    def abort(self, error):
        """Fails every pending receive, local and remote, and every later one, with `error`."""
        with self._lock:
            if self._error is not None:
                return
            self._error = error
            cancels = [c for c in self._in_flight.values() if c is not None]
        self._local.abort(error)
        for cancel in cancels:
            cancel(error)

    def pending_keys(self):
        """(values sent here and not taken, keys awaited here), for diagnostics and release."""
        sent, awaited = self._local.pending_keys()
        with self._lock:
            return sent, sorted(set(awaited) | set(self._in_flight))


class _Entry:
    def __init__(self, rendezvous, now):
        self.rendezvous = rendezvous
        self.running = 0
        self.created = now


class StepRendezvousTable:
    """The step rendezvous of one worker, by step id (TF's `RendezvousMgr`)."""

    def __init__(self, task_name, fetch_remote, max_age=DEFAULT_MAX_AGE_SECONDS, clock=time.monotonic):
        self.task_name = task_name
        self._fetch_remote = fetch_remote
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = {}

    def _find_or_create(self, step_id):
        now = self._clock()
        stale = [s for s, e in self._entries.items() if e.running == 0 and now - e.created > self._max_age]
        for s in stale:
            del self._entries[s]
        entry = self._entries.get(step_id)
        if entry is None:
            entry = self._entries[step_id] = _Entry(
                RemoteRendezvous(self.task_name, step_id, self._fetch_remote), now)
        return entry

    def begin_step(self, step_id):
        """The step's rendezvous, held until the matching `end_step`."""
        with self._lock:
            entry = self._find_or_create(step_id)
            entry.running += 1
            return entry.rendezvous

    def end_step(self, step_id):
        """Releases a partition's hold; the entry goes once nothing waits in it."""
        with self._lock:
            entry = self._entries.get(step_id)
            if entry is not None:
                entry.running -= 1
                self._release_if_done(step_id, entry)

    def take(self, step_id, key, callback):
        """Hands the value of `key` (sent on this task in step `step_id`) to `callback(value, error)`,
        waiting for it if the step has not sent it yet. Returns `withdraw()`: a caller that gives
        up (its RPC was cancelled) takes its waiter back, so a later take of the key can wait."""
        with self._lock:
            entry = self._find_or_create(step_id)

        def release():
            with self._lock:
                if self._entries.get(step_id) is entry:
                    self._release_if_done(step_id, entry)

        def deliver(value, error):
            callback(value, error)
            release()

        withdraw_waiter = entry.rendezvous.take_local(key, deliver)

        def withdraw():
            if withdraw_waiter():
                release()
        return withdraw

    def cleanup(self, step_id, error=None):
        """Aborts step `step_id` here (kept as a tombstone until it is old, so late receives fail)."""
        error = error or errors.CancelledError(None, None, f"Step {step_id} was cleaned up on {self.task_name}")
        with self._lock:
            entry = self._find_or_create(step_id)
        entry.rendezvous.abort(error)

    def abort_all(self, error):
        """Aborts every step (the server stops)."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            entry.rendezvous.abort(error)

    def steps(self):
        """The step ids with an entry now (for tests)."""
        with self._lock:
            return sorted(self._entries)

    def _release_if_done(self, step_id, entry):
        if entry.running or entry.rendezvous.error is not None:
            return
        sent, awaited = entry.rendezvous.pending_keys()
        if not sent and not awaited:
            del self._entries[step_id]
