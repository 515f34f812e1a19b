"""A faulty transport for tests: worker clients that drop, delay or lose calls on command.

`Faults` is the switchboard; `FaultyWorker(task, client, faults)` wraps any worker client the
`Master` takes (an in-process `Worker`, a gRPC client) and consults it on every call:

- `faults.delay(task, seconds)`: each call to the task waits first (a slow link or a straggler);
- `faults.drop(task)`: calls reach the task and run, but their answers never come back, as when
  a link goes silent; the caller waits for its own deadline (a step's `timeout`), then gets
  DeadlineExceededError, exactly what a real RPC with a deadline gives;
- `faults.kill(task)`: the task is gone: calls in flight and later calls fail with
  UnavailableError naming it, as a reset connection does;
- `faults.heal(task)`: back to normal;
- `faults.on_call(task, method, n, action)`: applies `action` ("kill", "drop" or a delay in
  seconds) when the task receives its n-th call of `method` (1-based), so a fault can land in
  the middle of a chosen step, deterministically.

Nothing here is random: a test says which call fails and how.
"""

import threading
import time

from tensorweave.framework import errors

_UNANSWERED_WAIT_SECONDS = 60.0  # a dropped call without a deadline still ends, in a test


class Faults:
    """What is wrong with each task now; shared by the FaultyWorkers of one test."""

    def __init__(self):
        self._lock = threading.Condition()
        self._state = {}  # task -> ("delay", seconds) | ("drop",) | ("kill",)
        self._triggers = {}  # (task, method) -> [(n, action)]
        self._calls = {}  # (task, method) -> count

    def delay(self, task, seconds):
        self._set(task, ("delay", float(seconds)))

    def drop(self, task):
        self._set(task, ("drop",))

    def kill(self, task):
        self._set(task, ("kill",))

    def heal(self, task):
        self._set(task, None)

    def on_call(self, task, method, n, action):
        """Applies `action` ("kill", "drop", or seconds of delay) at the n-th `method` call to `task`."""
        if action not in ("kill", "drop") and not isinstance(action, (int, float)):
            raise ValueError(f"action must be 'kill', 'drop' or a delay in seconds, got {action!r}")
        with self._lock:
            self._triggers.setdefault((task, method), []).append((int(n), action))

    def calls(self, task, method):
        """How many `method` calls `task` has received."""
        with self._lock:
            return self._calls.get((task, method), 0)

    def _set(self, task, state):
        with self._lock:
            if state is None:
                self._state.pop(task, None)
            else:
                self._state[task] = state
            self._lock.notify_all()

    def _arrive(self, task, method):
        """Counts the call, fires its trigger, and returns the task's state for it."""
        with self._lock:
            n = self._calls[(task, method)] = self._calls.get((task, method), 0) + 1
            for when, action in self._triggers.get((task, method), ()):
                if when == n:
                    self._state[task] = (action,) if isinstance(action, str) else ("delay", float(action))
            return self._state.get(task)

    def _killed(self, task):
        with self._lock:
            return self._state.get(task) == ("kill",)

    def _dropped(self, task):
        with self._lock:
            return self._state.get(task) == ("drop",)

    def _wait(self, predicate, timeout):
        with self._lock:
            return self._lock.wait_for(predicate, timeout)


class FaultyWorker:
    """A worker client whose calls to `task` go through `faults` (see the module docstring)."""

    def __init__(self, task, client, faults):
        self.task_name = task
        self._task = task
        self._client = client
        self._faults = faults

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        return lambda *args, **kwargs: self._call(name, attr, args, kwargs)

    def _call(self, method, fn, args, kwargs):
        state = self._faults._arrive(self._task, method)
        self._raise_if_killed(method)
        if state is not None and state[0] == "delay":
            time.sleep(state[1])
            self._raise_if_killed(method)
        timeout = kwargs.get("timeout") if method == "run_graph" else None
        box, done = [], threading.Event()

        def run():
            try:
                box.append((fn(*args, **kwargs), None))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box.append((None, e))
            done.set()

        threading.Thread(target=run, daemon=True, name=f"faulty-{self._task}-{method}").start()
        deadline = time.monotonic() + (_UNANSWERED_WAIT_SECONDS if timeout is None else timeout)
        while True:
            if self._faults._killed(self._task):
                raise self._unavailable(method)
            if done.is_set() and not self._faults._dropped(self._task):
                value, error = box[0]
                if error is not None:
                    raise error
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.DeadlineExceededError(None, None, f"No answer from task {self._task} to {method} "
                                                   "before the deadline")
            self._faults._wait(lambda: self._faults._killed(self._task) or done.is_set(), min(left, 0.05))

    def _raise_if_killed(self, method):
        if self._faults._killed(self._task):
            raise self._unavailable(method)

    def _unavailable(self, method):
        return errors.UnavailableError(None, None, f"Task {self._task} is unreachable (connection lost during "
                                       f"{method})")
