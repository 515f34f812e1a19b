"""Threads of the runtime: the BLAS pool's size, and reusable threads for a step's partitions.

`ConfigProto.intra_op_parallelism_threads` sets the size of the BLAS pool for the NumPy kernels.

The kernels are NumPy calls; the only ones that use several cores are BLAS calls (matmul,
convolutions lowered to matmul), whose pool is process-wide. A config that names a thread count
(> 0) sets that pool for the whole process, as TF1's per-process intra-op pool is set by the
first session; 0 keeps the library's default (every core). Several tasks on one machine should
name their share, or the pools oversubscribe the cores (`tensorweave launch` does this through
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS).
"""

import queue
import threading

from threadpoolctl import threadpool_limits

_lock = threading.Lock()
_applied = None


def apply_intra_op_threads(config):
    """Limits the BLAS pool to `config.intra_op_parallelism_threads` when that is positive.

    Returns the limit now in force for this process (None when never set). Called by sessions
    and servers; the last positive value given wins.
    """
    global _applied
    threads = int(getattr(config, "intra_op_parallelism_threads", 0) or 0)
    if threads < 0:
        raise ValueError(f"intra_op_parallelism_threads must be >= 0, got {threads}")
    with _lock:
        if threads and threads != _applied:
            threadpool_limits(limits=threads, user_api="blas")
            _applied = threads
        return _applied


class ReusableThreads:
    """Runs each submitted call on a daemon thread at once, reusing idle threads.

    Unbounded, like starting a fresh thread per call (a call blocked on a receive never keeps
    another from starting), but without paying for a thread start on every step: on a busy
    two-core machine that costs up to a millisecond. A thread idle for `idle_seconds` exits.
    """

    def __init__(self, name, idle_seconds=30.0):
        self._name = name
        self._idle_seconds = idle_seconds
        self._calls = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a call and not yet claimed by a submit

    def submit(self, fn, *args):
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._calls.put((fn, args))
        if spawn:
            threading.Thread(target=self._loop, name=self._name, daemon=True).start()

    def _loop(self):
        while True:
            try:
                fn, args = self._calls.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # an unclaimed idle slot: retire it (and this thread)
                        self._idle -= 1
                        return
                continue  # claimed by a submit whose call is about to arrive
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - callers report their own errors
                pass
            finally:
                fn = args = None
            with self._lock:
                self._idle += 1
