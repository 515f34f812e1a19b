"""The state behind queue and accumulator ops: resources a device's resource manager holds, keyed
by (container, shared name) like variables, so every graph (every worker) naming one shares it.

A request that cannot be met yet (a dequeue from an empty queue, an enqueue into a full one, a
take before enough gradients arrived) waits as a `_Waiter`: a callback the resource calls once
the request is met or fails, so the executor thread never blocks. A waiting request also listens
on its step's rendezvous: when the step is aborted (session closed, step deadline, a peer failed)
the waiter leaves the resource and fails with the step's error, so a value is never handed to a
step that has gone.

Requests may carry the replica (worker device) they come from. `fail_replica` fails the waiting
requests of one replica, or its next request if none waits: the chief ends its own blocked step
that way when its queue runner gives up, without touching the other workers' waits.
"""

import collections
import contextlib
import itertools
import threading
import time

import numpy as np

from tensorweave.framework import errors
from tensorweave.platform import tf_logging as logging

_listener_ids = itertools.count()


class _Waiter:
    """A pending request of one step. `done(value, error)` is called exactly once, outside the
    resource's lock; `release()` withdraws the step-abort listener once it is no longer needed."""

    __slots__ = ("_key", "_listening", "_rendezvous", "done", "items", "replica", "settled", "timer", "want")

    def __init__(self, want, items, done, step, device_name, op_name, replica=""):
        self.want = want      # elements a dequeue or take needs
        self.items = items    # elements an enqueue still has to put in
        self.done = done
        self.replica = replica
        self.timer = None     # a take's deadline, once armed
        self.settled = False  # set under the resource's lock once served or failed
        self._listening = False
        self._rendezvous = getattr(step, "rendezvous", None)
        # A key only this waiter uses, on this device: the rendezvous serves it locally, and its
        # receive fails when the step is aborted.
        self._key = (f"{device_name};{0:016x};{device_name};_abort_listener/{op_name}/"
                     f"{next(_listener_ids)};{getattr(step, 'step_id', 0)}")

    def listen(self, on_abort):
        """Calls `on_abort(self, error)` if the step is aborted before `release()`."""
        if self._rendezvous is not None:
            self._listening = True
            self._rendezvous.recv_async(self._key, lambda value, error: error is not None and on_abort(self, error))

    def release(self):
        if self._listening:
            # Sending fails once the step was aborted: then nothing listens any more.
            with contextlib.suppress(Exception):
                self._rendezvous.send(self._key, None)


class _WaitingResource:
    """A resource with waiting requests; subclasses define `_progress()` under `self._lock`,
    returning the (waiter, value, error) completions it made possible."""

    def __init__(self):
        self._lock = threading.Lock()
        self._replica_failures = {}  # replica -> error for its next request (fail_replica)

    def _failable(self):
        """The waiting requests that `fail_replica` may fail (dequeues, takes)."""
        return ()

    def fail_replica(self, replica, error):
        """Fails the waiting requests of `replica` with `error`; if none waits, its next one.
        `error` None withdraws such a pending failure."""
        completions = []
        with self._lock:
            if error is None:
                self._replica_failures.pop(replica, None)
                return
            for queue in self._failable():
                for waiter in [w for w in queue if w.replica == replica]:
                    queue.remove(waiter)
                    self._withdrawn(waiter)
                    self._settle(completions, waiter, error=error)
            if completions:
                completions += self._progress()
            else:
                self._replica_failures[replica] = error
        self._finish(completions)

    def _failure_for(self, replica):
        """The pending failure of `replica`'s next request, taken (under the lock)."""
        return self._replica_failures.pop(replica, None) if self._replica_failures else None

    @staticmethod
    def _settle(completions, waiter, value=None, error=None):
        waiter.settled = True
        completions.append((waiter, value, error))

    def _withdrawn(self, waiter):
        """Undoes what an aborted waiter had done (under the lock)."""

    def _finish(self, completions):
        for waiter, value, error in completions:
            waiter.release()
            waiter.done(value, error)

    def _wait(self, waiter, queue):
        """Queues `waiter` and serves what can be served now."""
        with self._lock:
            error = self._failure_for(waiter.replica) if waiter.want != 0 else None
            if error is None:
                queue.append(waiter)
                completions = self._progress()
        if error is not None:
            waiter.done(None, error)
            return
        self._finish(completions)
        if not waiter.settled:
            waiter.listen(lambda w, error: self._abort(w, queue, error))

    def _abort(self, waiter, queue, error):
        with self._lock:
            try:
                queue.remove(waiter)
            except ValueError:  # served or failed already
                return
            self._withdrawn(waiter)
            completions = self._progress()  # an aborted dequeue may let a later one go first
        waiter.done(None, error)
        self._finish(completions)


class FIFOQueueState(_WaitingResource):
    """The elements of a `FIFOQueue` (tuples of arrays), its waiting enqueues and dequeues."""

    def __init__(self, name, component_types, shapes, capacity):
        super().__init__()
        self.name = name
        self.np_dtypes = tuple(t.as_numpy_dtype for t in component_types)
        self.shapes = tuple(shapes)
        self.capacity = capacity if capacity is not None and capacity >= 0 else None
        self._elements = collections.deque()
        self._enqueuers = collections.deque()
        self._dequeuers = collections.deque()
        self._closed = False

    def read(self):
        """The value of the handle when fetched: the queue's name."""
        return np.array(self.name.encode(), dtype=object)

    def size(self):
        with self._lock:
            return len(self._elements)

    def enqueue(self, elements, done, step, device_name, op_name):
        """Puts `elements` (a list of component tuples) in, waiting while the queue is full."""
        with self._lock:
            if self._closed:
                error = errors.CancelledError(None, None, f"Queue '{self.name}' is closed.")
            else:
                error = None
        if error is not None:
            done(None, error)
            return
        self._wait(_Waiter(0, collections.deque(elements), done, step, device_name, op_name), self._enqueuers)

    def dequeue(self, n, done, step, device_name, op_name, replica=""):
        """Takes `n` elements out (None: one, unbatched), waiting until there are enough."""
        self._wait(_Waiter(n, [], done, step, device_name, op_name, replica), self._dequeuers)

    def _failable(self):
        return (self._dequeuers,)

    def close(self, cancel_pending_enqueues):
        with self._lock:
            self._closed = True
            completions = []
            if cancel_pending_enqueues:
                for waiter in self._enqueuers:
                    self._settle(completions, waiter, error=errors.CancelledError(
                        None, None, f"Queue '{self.name}' is closed."))
                self._enqueuers.clear()
            completions += self._progress()
        self._finish(completions)

    def _progress(self):
        completions = []
        while True:
            moved = False
            while self._enqueuers and (self.capacity is None or len(self._elements) < self.capacity):
                waiter = self._enqueuers[0]
                if waiter.items:
                    self._elements.append(waiter.items.popleft())
                    moved = True
                if not waiter.items:
                    self._enqueuers.popleft()
                    self._settle(completions, waiter)
            if self._dequeuers:
                # The first dequeue takes elements as they come (so it may ask for more than the
                # capacity, as in TF); an aborted or failed one puts them back in front.
                waiter = self._dequeuers[0]
                want = 1 if waiter.want is None else waiter.want
                while len(waiter.items) < want and self._elements:
                    waiter.items.append(self._elements.popleft())
                    moved = True
                if len(waiter.items) == want:
                    self._dequeuers.popleft()
                    try:
                        self._settle(completions, waiter, self._batch(waiter.items, waiter.want))
                    except errors.OpError as e:
                        self._settle(completions, waiter, error=e)
                    moved = True
                elif self._closed and not any(w.items for w in self._enqueuers):
                    self._dequeuers.popleft()
                    self._withdrawn(waiter)
                    self._settle(completions, waiter, error=errors.OutOfRangeError(
                        None, None, f"FIFOQueue '{self.name}' is closed and has insufficient elements "
                        f"(requested {want}, current size {len(self._elements)})"))
                    moved = True
            if not moved:
                return completions

    def _withdrawn(self, waiter):
        if waiter.want != 0 and waiter.items:  # a dequeue: its elements go back in front
            self._elements.extendleft(reversed(waiter.items))
            waiter.items.clear()

    def _batch(self, taken, n):
        if n is None:
            return taken[0]
        out = []
        for i, np_dtype in enumerate(self.np_dtypes):
            parts = [e[i] for e in taken]
            if len({p.shape for p in parts}) > 1:
                raise errors.InvalidArgumentError(
                    None, None, f"Queue '{self.name}': dequeue_many needs elements of one shape, component "
                    f"{i} has shapes {sorted({p.shape for p in parts})}")
            shape = parts[0].shape if parts else (self.shapes[i] if self.shapes else ())
            out.append(np.stack(parts) if parts else np.zeros((0,) + tuple(shape), np_dtype))
        return tuple(out)


class AccumulatorState(_WaitingResource):
    """A `ConditionalAccumulator`: gradients of the current global step, and waiting takes.

    A gradient computed at a `local_step` older than the global step is dropped and counted in
    `dropped`. A take of `num_required` waits for that many gradients and returns the mean (or
    sum) of exactly the first `num_required` that arrived; any beyond them were computed from the
    same, now superseded, step, so they are dropped and counted too (TF averages every gradient
    that arrived before the take, which makes a synchronous update depend on timing).

    Each gradient may name its replica: `contributors()` lists those of the current step and
    `known_replicas` every replica seen so far. A take with a timeout fails with
    `DeadlineExceededError` naming the missing replicas once that many seconds have passed since
    the step's first gradient without `num_required` of them.
    """

    def __init__(self, name, dtype, shape, reduction_type):
        super().__init__()
        self.name = name
        self.np_dtype = dtype.as_numpy_dtype
        self.shape = shape
        self.reduction_type = reduction_type
        self.global_step = 0
        self.dropped = 0
        self.known_replicas = {}   # replica -> None, in the order first seen (an ordered set)
        self._grads = []
        self._replicas = []        # the replica of each gradient in `_grads`
        self._stale_replicas = {}  # replicas whose gradient for this step came too late
        self._first_arrival = None  # time.monotonic() of the step's first gradient
        self._takers = collections.deque()

    def read(self):
        return np.array(self.name.encode(), dtype=object)

    def num_accumulated(self):
        with self._lock:
            return len(self._grads)

    def contributors(self):
        """The replicas of the gradients accumulated for the current step, in arrival order."""
        with self._lock:
            return list(self._replicas)

    def set_global_step(self, step):
        with self._lock:
            if step < self.global_step:
                logging.warning("ConditionalAccumulator %s: new global step %d is below the current %d",
                                self.name, step, self.global_step)
            self.global_step = int(step)

    def _check(self, grad):
        """`grad` as stored, after checking it against the accumulator's shape and the step's
        earlier gradients (under the lock)."""
        grad = np.array(grad, dtype=self.np_dtype)
        if not self.shape.is_compatible_with(grad.shape) or (self._grads and self._grads[0].shape != grad.shape):
            expected = self._grads[0].shape if self._grads else self.shape
            raise errors.InvalidArgumentError(
                None, None, f"Shape mismatch: accumulator {self.name} expects {expected}, got {grad.shape}")
        return grad

    def _reduce(self, grads):
        """The mean (or sum) of `grads`, the first `num_required` of a step."""
        total = grads[0].copy()
        for g in grads[1:]:
            total += g
        if self.reduction_type == "MEAN":
            total = (total / len(grads)).astype(self.np_dtype, copy=False)
        return total

    def apply(self, local_step, grad, replica=""):
        with self._lock:
            grad = self._check(grad)
            if replica:
                self.known_replicas.setdefault(replica, None)
            if local_step < self.global_step:
                self.dropped += 1
                if replica:
                    self._stale_replicas.setdefault(replica, None)
                logging.debug("ConditionalAccumulator %s dropped a stale gradient (local step %d < %d)",
                              self.name, local_step, self.global_step)
                return
            self._grads.append(grad)
            self._replicas.append(replica)
            if self._first_arrival is None:
                self._first_arrival = time.monotonic()
                if self._takers:
                    self._arm(self._takers[0])
            completions = self._progress()
        self._finish(completions)

    def take(self, num_required, done, step, device_name, op_name, replica="", timeout_secs=None):
        if num_required < 1:
            done(None, errors.InvalidArgumentError(
                None, None, f"Argument num_required must be positive, but was {num_required}"))
            return
        waiter = _Waiter(num_required, None, done, step, device_name, op_name, replica)
        waiter.timer = timeout_secs  # armed (replaced by a Timer) once the step has a gradient
        self._wait(waiter, self._takers)
        with self._lock:
            if not waiter.settled and self._takers and self._takers[0] is waiter and \
                    self._first_arrival is not None:
                self._arm(waiter)

    def _arm(self, waiter):
        """Starts the deadline of the first waiting take, if it has a timeout (under the lock)."""
        if not isinstance(waiter.timer, (int, float)):
            return
        delay = max(waiter.timer - (time.monotonic() - self._first_arrival), 0.0)
        timer = threading.Timer(delay, self._expire, args=(waiter, waiter.timer))
        timer.daemon = True
        waiter.timer = timer
        timer.start()

    def _expire(self, waiter, timeout_secs):
        with self._lock:
            if waiter.settled or waiter not in self._takers:
                return
            self._takers.remove(waiter)
            contributed = list(dict.fromkeys(r for r in self._replicas if r))
            missing = [r for r in self.known_replicas if r not in contributed]
            message = (f"ConditionalAccumulator {self.name}: gave up aggregating the gradients of step "
                       f"{self.global_step} after {timeout_secs:g} s: {len(self._grads)} of {waiter.want} "
                       f"gradients arrived, from replicas [{', '.join(contributed)}]; missing known replicas "
                       f"[{', '.join(missing)}]")
            if self._stale_replicas:
                message += f"; stale gradients from [{', '.join(self._stale_replicas)}]"
            completions = []
            self._settle(completions, waiter, error=errors.DeadlineExceededError(None, None, message))
            completions += self._progress()
        self._finish(completions)

    def _failable(self):
        return (self._takers,)

    def _withdrawn(self, waiter):
        if isinstance(waiter.timer, threading.Timer):
            waiter.timer.cancel()

    def _progress(self):
        if not self._takers or len(self._grads) < self._takers[0].want:
            return []
        waiter = self._takers.popleft()
        self._withdrawn(waiter)
        n = waiter.want
        total = self._reduce(self._grads[:n])
        self.dropped += len(self._grads) - n
        self._grads = []
        self._replicas = []
        self._stale_replicas = {}
        self._first_arrival = None
        self.global_step += 1
        completions = []
        self._settle(completions, waiter, total)
        return completions


class SparseAccumulatorState(AccumulatorState):
    """A `SparseConditionalAccumulator`: as `AccumulatorState`, for gradients that are rows of a
    tensor (`IndexedSlices`: indices, values, dense shape). A take returns the rows any of its
    gradients touched; under MEAN each row is divided by the number of times it arrived, as TF's
    sparse accumulator does (a row only one worker's batch reached is not halved)."""

    def _check(self, grad):
        indices, values, dense_shape = grad
        indices = np.asarray(indices).astype(np.int64, copy=False).reshape(-1)
        values = np.array(values, dtype=self.np_dtype)
        if values.ndim == 0 or values.shape[0] != indices.size:
            raise errors.InvalidArgumentError(
                None, None, f"Accumulator {self.name}: {indices.size} indices for values of shape {list(values.shape)}")
        rows = self.shape.as_list()[0] if self.shape.ndims else None
        if dense_shape is not None:
            dense_shape = [int(d) for d in np.asarray(dense_shape).reshape(-1)]
            if not self.shape.is_compatible_with(dense_shape) or dense_shape[1:] != list(values.shape[1:]):
                raise errors.InvalidArgumentError(
                    None, None, f"Shape mismatch: accumulator {self.name} expects {self.shape}, got a gradient of "
                    f"shape {dense_shape} with rows of shape {list(values.shape[1:])}")
            rows = dense_shape[0]
        row_shape = self.shape[1:] if self.shape.ndims else None
        if (row_shape is not None and not row_shape.is_compatible_with(values.shape[1:])) or (
                self._grads and self._grads[0][1].shape[1:] != values.shape[1:]):
            expected = self._grads[0][1].shape[1:] if self._grads else row_shape
            raise errors.InvalidArgumentError(
                None, None, f"Shape mismatch: accumulator {self.name} expects rows of shape {expected}, got "
                f"{list(values.shape[1:])}")
        if indices.size and (indices.min() < 0 or (rows is not None and indices.max() >= rows)):
            bad = indices.min() if indices.min() < 0 else indices.max()
            raise errors.InvalidArgumentError(
                None, None, f"Accumulator {self.name}: gradient index {bad} is outside [0, {rows})")
        return indices, values, dense_shape

    def _reduce(self, grads):
        indices = np.concatenate([g[0] for g in grads])
        values = np.concatenate([g[1] for g in grads])
        rows, inverse = np.unique(indices, return_inverse=True)
        total = np.zeros((rows.size,) + values.shape[1:], dtype=self.np_dtype)
        np.add.at(total, inverse.reshape(-1), values)
        if self.reduction_type == "MEAN":
            counts = np.bincount(inverse.reshape(-1), minlength=rows.size)
            total = (total / counts.reshape((-1,) + (1,) * (values.ndim - 1))).astype(self.np_dtype, copy=False)
        dense_shape = next((g[2] for g in grads if g[2] is not None), None)
        if dense_shape is None:
            dense_shape = [d if d is not None else -1 for d in self.shape.as_list()] if self.shape.ndims else [-1]
        return rows.astype(np.int64), total, np.asarray(dense_shape, dtype=np.int64)
