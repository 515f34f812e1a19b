"""The state behind queue and accumulator ops: resources a device's resource manager holds, keyed
by (container, shared name) like variables, so every graph (every worker) naming one shares it.

A request that cannot be met yet (a dequeue from an empty queue, an enqueue into a full one, a
take before enough gradients arrived) waits as a `_Waiter`: a callback the resource calls once
the request is met or fails, so the executor thread never blocks. A waiting request also listens
on its step's rendezvous: when the step is aborted (session closed, step deadline, a peer failed)
the waiter leaves the resource and fails with the step's error, so a value is never handed to a
step that has gone.
"""

import collections
import contextlib
import itertools
import threading

import numpy as np

from tensorweave.framework import errors
from tensorweave.platform import tf_logging as logging

_listener_ids = itertools.count()


class _Waiter:
    """A pending request of one step. `done(value, error)` is called exactly once, outside the
    resource's lock; `release()` withdraws the step-abort listener once it is no longer needed."""

    __slots__ = ("_key", "_listening", "_rendezvous", "done", "items", "settled", "want")

    def __init__(self, want, items, done, step, device_name, op_name):
        self.want = want      # elements a dequeue or take needs
        self.items = items    # elements an enqueue still has to put in
        self.done = done
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
            queue.append(waiter)
            completions = self._progress()
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

    def dequeue(self, n, done, step, device_name, op_name):
        """Takes `n` elements out (None: one, unbatched), waiting until there are enough."""
        self._wait(_Waiter(n, [], done, step, device_name, op_name), self._dequeuers)

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
    """

    def __init__(self, name, dtype, shape, reduction_type):
        super().__init__()
        self.name = name
        self.np_dtype = dtype.as_numpy_dtype
        self.shape = shape
        self.reduction_type = reduction_type
        self.global_step = 0
        self.dropped = 0
        self._grads = []
        self._takers = collections.deque()

    def read(self):
        return np.array(self.name.encode(), dtype=object)

    def num_accumulated(self):
        with self._lock:
            return len(self._grads)

    def set_global_step(self, step):
        with self._lock:
            if step < self.global_step:
                logging.warning("ConditionalAccumulator %s: new global step %d is below the current %d",
                                self.name, step, self.global_step)
            self.global_step = int(step)

    def apply(self, local_step, grad):
        grad = np.array(grad, dtype=self.np_dtype)
        with self._lock:
            if not self.shape.is_compatible_with(grad.shape) or (
                    self._grads and self._grads[0].shape != grad.shape):
                expected = self._grads[0].shape if self._grads else self.shape
                raise errors.InvalidArgumentError(
                    None, None, f"Shape mismatch: accumulator {self.name} expects {expected}, got {grad.shape}")
            if local_step < self.global_step:
                self.dropped += 1
                logging.debug("ConditionalAccumulator %s dropped a stale gradient (local step %d < %d)",
                              self.name, local_step, self.global_step)
                return
            self._grads.append(grad)
            completions = self._progress()
        self._finish(completions)

    def take(self, num_required, done, step, device_name, op_name):
        if num_required < 1:
            done(None, errors.InvalidArgumentError(
                None, None, f"Argument num_required must be positive, but was {num_required}"))
            return
        self._wait(_Waiter(num_required, None, done, step, device_name, op_name), self._takers)

    def _progress(self):
        if not self._takers or len(self._grads) < self._takers[0].want:
            return []
        waiter = self._takers.popleft()
        n = waiter.want
        total = self._grads[0].copy()
        for g in self._grads[1:n]:
            total += g
        if self.reduction_type == "MEAN":
            total = (total / n).astype(self.np_dtype, copy=False)
        self.dropped += len(self._grads) - n
        self._grads = []
        self.global_step += 1
        completions = []
        self._settle(completions, waiter, total)
        return completions
