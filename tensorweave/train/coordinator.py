"""`tf.train.Coordinator`: lets a set of threads stop together and report the first error.

    coord = tf.train.Coordinator()
    threads = [threading.Thread(target=loop, args=(coord,)) for _ in range(4)]
    ...
    coord.join(threads)   # re-raises an exception a thread reported with request_stop(ex)
"""

import contextlib
import sys
import threading
import time

from tensorweave.framework import errors
from tensorweave.platform import tf_logging as logging


class Coordinator:
    """`tf.train.Coordinator(clean_stop_exception_types=None)`.

    Threads poll `should_stop()`; any of them may call `request_stop(ex)`. Exceptions of the
    clean-stop types (default: `tf.errors.OutOfRangeError`, the end of an input) stop the threads
    without being reported. `join` waits for the threads, giving them `stop_grace_period_secs`
    after a stop request, then re-raises the first reported exception.
    """

    def __init__(self, clean_stop_exception_types=None):
        if clean_stop_exception_types is None:
            clean_stop_exception_types = (errors.OutOfRangeError,)
        self._clean_stop_exception_types = tuple(clean_stop_exception_types)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._exc_info_to_raise = None
        self._joined = False
        self._registered_threads = set()

    def _filter_exception(self, ex):
        value = ex[1] if isinstance(ex, tuple) else ex
        return None if isinstance(value, self._clean_stop_exception_types) else ex

    def request_stop(self, ex=None):
        """Asks the threads to stop. `ex` (an exception, or a `sys.exc_info()` tuple) is recorded
        to be re-raised by `join`, unless one was recorded already or it is a clean-stop type.
        After `join`, a reported exception is raised here at once instead."""
        with self._lock:
            ex = self._filter_exception(ex)
            if self._joined:
                if isinstance(ex, tuple):
                    raise ex[1].with_traceback(ex[2])
                if ex is not None:
                    raise ex
            if self._stop_event.is_set():
                return
            if ex is not None and self._exc_info_to_raise is None:
                if isinstance(ex, tuple):
                    logging.info("Error reported to Coordinator: %s", ex[1])
                    exc_info = ex
                else:
                    logging.info("Error reported to Coordinator: %s, %s", type(ex), ex)
                    current = sys.exc_info()
                    exc_info = current if current[1] is ex else (type(ex), ex, ex.__traceback__)
                if len(exc_info) != 3 or not exc_info[0] or not exc_info[1]:
                    exc_info = (ValueError, ValueError(
                        f"ex must be a tuple or sys.exc_info must return the current exception: "
                        f"{exc_info}"), None)
                self._exc_info_to_raise = exc_info
            self._stop_event.set()

    def clear_stop(self):
        """Forgets a stop request and its exception, so the coordinator can be used again."""
        with self._lock:
            self._joined = False
            self._exc_info_to_raise = None
            self._stop_event.clear()

    def should_stop(self):
        """True once a stop was requested."""
        return self._stop_event.is_set()

    @contextlib.contextmanager
    def stop_on_exception(self):
        """A block whose exception (any) is reported with `request_stop` instead of raised."""
        try:
            yield
        except BaseException:  # noqa: BLE001 - TF reports everything, including SystemExit
            self.request_stop(ex=sys.exc_info())

    def wait_for_stop(self, timeout=None):
        """Waits until a stop is requested, at most `timeout` seconds; True if it was."""
        return self._stop_event.wait(timeout)

    def register_thread(self, thread):
        """Adds `thread` to those `join` waits for."""
        with self._lock:
            self._registered_threads.add(thread)

    def join(self, threads=None, stop_grace_period_secs=120, ignore_live_threads=False):
        """Waits for `threads` (and the registered ones) to end. After a stop request they get
        `stop_grace_period_secs`; threads still alive then raise RuntimeError (or are logged,
        with `ignore_live_threads`). A reported exception is re-raised."""
        with self._lock:
            threads = set(self._registered_threads) | set(threads or ())
            threads = list(threads)
        while any(t.is_alive() for t in threads) and not self.wait_for_stop(1.0):
            pass
        # Poll with a growing interval, bounded by what is left of the grace period.
        stop_wait_secs = 0.001
        while any(t.is_alive() for t in threads) and stop_grace_period_secs >= 0.0:
            time.sleep(stop_wait_secs)
            stop_grace_period_secs -= stop_wait_secs
            stop_wait_secs = max(min(2 * stop_wait_secs, stop_grace_period_secs), 0.001)
        stragglers = [t.name for t in threads if t.is_alive()]
        with self._lock:
            self._joined = True
            self._registered_threads = set()
            if self._exc_info_to_raise:
                _, value, tb = self._exc_info_to_raise
                raise value.with_traceback(tb)
            if stragglers:
                message = f"Coordinator stopped with threads still running: {' '.join(stragglers)}"
                if not ignore_live_threads:
                    raise RuntimeError(message)
                logging.info(message)

    @property
    def joined(self):
        return self._joined

    def raise_requested_exception(self):
        """Re-raises the exception reported with `request_stop`, if any."""
        with self._lock:
            if self._exc_info_to_raise:
                _, value, tb = self._exc_info_to_raise
                raise value.with_traceback(tb)


class LooperThread(threading.Thread):
    """`tf.train.LooperThread(coord, timer_interval_secs, target=None, args=None, kwargs=None)`:
    a thread calling `target` (or `run_loop`) every `timer_interval_secs` seconds, or back to
    back if that is None, until the coordinator stops; its exceptions go to the coordinator."""

    def __init__(self, coord, timer_interval_secs, target=None, args=None, kwargs=None):
        if not isinstance(coord, Coordinator):
            raise ValueError(f"'coord' argument must be a Coordinator: {coord}")
        super().__init__()
        self.daemon = True
        self._coord = coord
        self._timer_interval_secs = timer_interval_secs
        self._target = target
        if self._target:
            self._args = args or ()
            self._kwargs = kwargs or {}
        elif args or kwargs:
            raise ValueError("'args' and 'kwargs' argument require that you also pass 'target'")
        self._coord.register_thread(self)

    @staticmethod
    def loop(coord, timer_interval_secs, target, args=None, kwargs=None):
        """Starts and returns a LooperThread calling `target(*args, **kwargs)`."""
        looper = LooperThread(coord, timer_interval_secs, target=target, args=args, kwargs=kwargs)
        looper.start()
        return looper

    def run(self):
        with self._coord.stop_on_exception():
            self.start_loop()
            if self._timer_interval_secs is None:
                while not self._coord.should_stop():
                    self.run_loop()
            else:
                next_timer_time = time.time()
                while not self._coord.wait_for_stop(next_timer_time - time.time()):
                    next_timer_time += self._timer_interval_secs
                    self.run_loop()
            self.stop_loop()

    def start_loop(self):
        """Called once when the thread starts."""

    def stop_loop(self):
        """Called once when the thread stops."""

    def run_loop(self):
        """One iteration; override it or pass `target`."""
        if self._target:
            self._target(*self._args, **self._kwargs)


__all__ = ["Coordinator", "LooperThread"]
