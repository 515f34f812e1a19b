"""`ConfigProto.intra_op_parallelism_threads` for the NumPy kernels: the size of the BLAS pool.

The kernels are NumPy calls; the only ones that use several cores are BLAS calls (matmul,
convolutions lowered to matmul), whose pool is process-wide. A config that names a thread count
(> 0) sets that pool for the whole process, as TF1's per-process intra-op pool is set by the
first session; 0 keeps the library's default (every core). Several tasks on one machine should
name their share, or the pools oversubscribe the cores (`tensorweave launch` does this through
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS).
"""

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
