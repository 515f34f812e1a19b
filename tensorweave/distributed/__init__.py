"""The distributed runtime: clusters, servers and cross-task execution (DESIGN.md §3)."""

from tensorweave.distributed.cluster import (
    ClusterSpec,
    cluster_spec_from_tf_config,
    free_ports,
    load_cluster_file,
    local_cluster_spec,
    task_from_tf_config,
)

__all__ = [
    "ClusterSpec",
    "cluster_spec_from_tf_config",
    "free_ports",
    "load_cluster_file",
    "local_cluster_spec",
    "task_from_tf_config",
]
