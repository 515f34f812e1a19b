"""Rendezvous: where a tensor sent by one partition of a step meets the partition receiving it.

A key (`ops.comm_ops.rendezvous_key`) names (source device, source incarnation, destination
device, tensor, step), so each key is used exactly once. A producer never blocks: `send` stores the value or hands it to a waiting
consumer. A consumer never blocks either: `recv_async` calls back when the value is there, so
no partition waits in a fixed order (which could deadlock two partitions exchanging tensors).
"""

import queue
import threading

from tensorweave.framework import errors


class LocalRendezvous:
    """An in-process rendezvous for the partitions of one step."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values = {}
        self._waiters = {}
        self._used = set()
        self._error = None

    def send(self, key, value):
        """Delivers `value` under `key`; never blocks. Sending a key twice is an error."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if key in self._used:
                raise errors.InternalError(None, None, f"Rendezvous key {key!r} was sent twice")
            self._used.add(key)
            waiter = self._waiters.pop(key, None)
            if waiter is None:
                self._values[key] = value
                return
        waiter(value, None)

    def recv_async(self, key, callback):
        """Calls `callback(value, error)` once the value for `key` is there (maybe at once)."""
        with self._lock:
            error = self._error
            if error is None:
                if key in self._waiters:
                    error = errors.InternalError(None, None, f"Rendezvous key {key!r} was received twice")
                elif key in self._values:
                    value = self._values.pop(key)
                else:
                    self._waiters[key] = callback
                    return
        if error is not None:
            callback(None, error)
        else:
            callback(value, None)

    def cancel(self, key, callback):
        """Withdraws `callback`, waiting for `key`, before any value reached it (its receiver gave
        up). Returns whether it was withdrawn; False once it has been called or was never waiting."""
        with self._lock:
            if self._waiters.get(key) is not callback:
                return False
            del self._waiters[key]
            return True

    def recv(self, key, timeout=None):
        """Blocks for the value of `key`; raises DeadlineExceededError after `timeout` seconds."""
        return blocking_recv(self, key, timeout)

    def abort(self, error):
        """Fails every pending and future receive with `error` (a peer died, the step failed)."""
        with self._lock:
            if self._error is not None:
                return
            self._error = error
            waiters, self._waiters = self._waiters, {}
            self._values.clear()
        for callback in waiters.values():
            callback(None, error)

    def pending_keys(self):
        """Keys sent but not yet received, and keys awaited but not yet sent (for diagnostics)."""
        with self._lock:
            return sorted(self._values), sorted(self._waiters)


def blocking_recv(rendezvous, key, timeout=None):
    """`rendezvous.recv_async(key, ...)` waited for: the value, or its error raised, or
    DeadlineExceededError after `timeout` seconds."""
    # A SimpleQueue hands the value over with one wake-up; an Event's waiter also contends for
    # its condition's lock with the thread that set it (about 20 µs a receive on 2 cores).
    done = queue.SimpleQueue()
    rendezvous.recv_async(key, lambda value, error: done.put((value, error)))
    try:
        value, error = done.get(timeout=timeout)
    except queue.Empty:
        raise errors.DeadlineExceededError(None, None, f"Timed out after {timeout} s waiting for {key!r}") from None
    if error is not None:
        raise error
    return value
