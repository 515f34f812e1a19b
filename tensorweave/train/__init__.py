"""`tf.train`: optimizers, savers, global step and training utilities, resolved lazily (PEP 562)."""

from tensorweave.compat.namespace import module_getattr as _module_getattr

_T = "tensorweave.train"


def _names(module, names):
    return {n: f"{_T}.{module}:{n}" for n in names.split()}


_TABLE = {
    **_names("optimizer", "Optimizer GradientDescentOptimizer"),
    **_names("optimizers", "MomentumOptimizer AdagradOptimizer AdamOptimizer RMSPropOptimizer"),
    **_names("saver", "Saver latest_checkpoint import_meta_graph export_meta_graph checkpoint_exists "
             "get_checkpoint_state update_checkpoint_state list_variables load_variable NewCheckpointReader "
             "get_checkpoint_mtimes remove_checkpoint generate_checkpoint_state_proto"),
    **_names("training_util", "get_or_create_global_step get_global_step create_global_step global_step "
             "assert_global_step"),
    **_names("learning_rate_decay", "exponential_decay piecewise_constant inverse_time_decay "
             "polynomial_decay natural_exp_decay"),
    **_names("coordinator", "Coordinator"),
    **_names("moving_averages", "ExponentialMovingAverage"),
    **_names("queue_runner", "QueueRunner add_queue_runner start_queue_runners"),
    "SyncReplicasOptimizer": "tensorweave.train.sync_replicas_optimizer:SyncReplicasOptimizer",
    "Supervisor": "tensorweave.train.supervisor:Supervisor",
    **_names("session_run_hook", "SessionRunHook SessionRunArgs SessionRunContext SessionRunValues"),
    **_names("basic_session_run_hooks", "NanLossDuringTrainingError SecondOrStepTimer StopAtStepHook "
             "CheckpointSaverListener CheckpointSaverHook SummarySaverHook LoggingTensorHook NanTensorHook "
             "StepCounterHook FinalOpsHook FeedFnHook GlobalStepWaiterHook"),
    **_names("monitored_session", "Scaffold SessionCreator ChiefSessionCreator WorkerSessionCreator "
             "MonitoredSession SingularMonitoredSession MonitoredTrainingSession"),
    **_names("device_setter", "replica_device_setter GreedyLoadBalancingStrategy byte_size_load_fn"),
    "ClusterSpec": "tensorweave.distributed.cluster:ClusterSpec",
    "Server": "tensorweave.distributed.server:Server",
    "write_graph": "tensorweave.framework.graph_io:write_graph",
    "summary_iterator": "tensorweave.summary.event_reader:summary_iterator",
}

__getattr__ = _module_getattr(_TABLE, __name__)


def __dir__():
    return sorted(_TABLE)
