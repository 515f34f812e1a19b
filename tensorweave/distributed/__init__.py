"""The distributed runtime: clusters, servers and cross-task execution (DESIGN.md §3)."""

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
    return in_process_session_runtime(target, graph, config) or GrpcSessionRuntime(target, graph, config)


_register_session_factory("grpc://", _grpc_session_runtime)

__all__ = [
    "ClusterSpec",
    "cluster_spec_from_tf_config",
    "free_ports",
    "load_cluster_file",
    "local_cluster_spec",
    "task_from_tf_config",
]
