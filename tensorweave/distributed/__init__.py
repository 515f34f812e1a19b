"""The distributed runtime: clusters, servers and cross-task execution (DESIGN.md §3)."""

import atexit
import logging
import time
import weakref

from tensorweave.distributed.cluster import (
    ClusterSpec,
    cluster_spec_from_tf_config,
    free_ports,
    load_cluster_file,
    local_cluster_spec,
    task_from_tf_config,
)
from tensorweave.runtime.session import (
    register_session_factory as _register_session_factory,
)


def _grpc_session_runtime(target, graph, config):
    # gRPC loads only when a grpc:// session is made; a server of this process is called directly.
    from tensorweave.distributed.grpc_services import GrpcSessionRuntime
    from tensorweave.distributed.server import in_process_session_runtime
    runtime = in_process_session_runtime(target, graph, config) or GrpcSessionRuntime(target, graph, config)
    _open_runtimes.add(runtime)
    return runtime


def _grpc_reset(target, containers, config):
    # `tf.Session.reset`: a server of this process directly, any other over gRPC.
    from tensorweave.distributed.grpc_services import reset
    from tensorweave.distributed.server import in_process_reset
    if not in_process_reset(target, containers, config):
        reset(target, containers, config)


_open_runtimes = weakref.WeakSet()
EXIT_CLOSE_SECONDS = 5.0  # what closing the sessions left open may add to a program's exit


@atexit.register
def _close_open_sessions():
    # A program may end with sessions it never closed. Their servers would only free them when
    # the idle collector runs, and once the interpreter finalizes, a session's `__del__` can no
    # longer start the threads or calls a close needs (it skips the close then), so close here.
    # A master that no longer answers (a partitioned network) must not hold the exit long.
    deadline = time.monotonic() + EXIT_CLOSE_SECONDS
    for runtime in list(_open_runtimes):
        try:
            runtime.close(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as e:  # noqa: BLE001 - the servers collect what is left
            logging.getLogger(__name__).debug("Closing a session at exit: %s", e)


_register_session_factory("grpc://", _grpc_session_runtime, reset=_grpc_reset)

__all__ = [
    "ClusterSpec",
    "cluster_spec_from_tf_config",
    "free_ports",
    "load_cluster_file",
    "local_cluster_spec",
    "task_from_tf_config",
]
