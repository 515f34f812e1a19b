"""`tf.train.replica_device_setter`: places variables on parameter-server tasks, the rest on a worker.

Between-graph replication: every worker builds the same graph under
`with tf.device(tf.train.replica_device_setter(cluster=cluster)):` so each variable lands on one
PS task (chosen by a strategy: round robin, or greedy by byte size) and every other op on the
worker. Ops colocated with a variable (its `Assign`, `read`, optimizer updates, slots) never reach
the device function: the graph gives them their variable's device.
"""

import numpy as np

from tensorweave.distributed.cluster import ClusterSpec
from tensorweave.framework import dtypes
from tensorweave.framework.device_spec import DeviceSpec
from tensorweave.framework.tensor_shape import as_shape
from tensorweave.platform import tf_logging as logging

# Op types that hold state and belong on a parameter server (TF's STANDARD_PS_OPS).
STANDARD_PS_OPS = ("Variable", "VariableV2", "AutoReloadVariable", "MutableHashTable",
                   "MutableHashTableV2", "MutableHashTableOfTensors", "MutableHashTableOfTensorsV2",
                   "MutableDenseHashTable", "MutableDenseHashTableV2", "VarHandleOp")


class _RoundRobinStrategy:
    """Assigns ops to PS tasks 0, 1, ..., num_tasks - 1, 0, 1, ... in creation order."""

    def __init__(self, num_tasks):
        if num_tasks <= 0:
            raise ValueError(f"num_tasks must be positive, got {num_tasks}")
        self._num_tasks = num_tasks
        self._next_task = 0

    def __call__(self, unused_op):
        task = self._next_task
        self._next_task = (task + 1) % self._num_tasks
        return task


class GreedyLoadBalancingStrategy:
    """`tf.contrib.training.GreedyLoadBalancingStrategy(num_tasks, load_fn)`: puts each op on the
    PS task with the least load so far (ties go to the lowest task index), then adds
    `load_fn(op)` to that task's load. With `byte_size_load_fn`, no PS holds many more variable
    bytes than another. Only an approximation: variables are placed one at a time, in creation
    order, without knowing what comes later."""

    def __init__(self, num_tasks, load_fn):
        if num_tasks <= 0:
            raise ValueError(f"num_tasks must be positive, got {num_tasks}")
        if not callable(load_fn):
            raise TypeError(f"load_fn must be callable, got {type(load_fn).__name__}")
        self._num_tasks = num_tasks
        self._load_fn = load_fn
        self._ps_loads = np.zeros(num_tasks)

    def __call__(self, op):
        task = int(np.argmin(self._ps_loads))
        self._ps_loads[task] += self._load_fn(op)
        return task


def byte_size_load_fn(op):
    """The bytes a variable op holds: its static shape's element count times its dtype's size.

    Reads the op's `dtype` and `shape` attrs (a device function sees the op before its outputs
    exist), or else its single output. Raises ValueError if the op has neither, or if the shape is
    not fully defined.
    """
    attrs = op.attrs
    if "dtype" in attrs and "shape" in attrs:
        dtype, shape = dtypes.as_dtype(attrs["dtype"]), as_shape(attrs["shape"])
    elif len(op.outputs) == 1:
        dtype, shape = op.outputs[0].dtype, op.outputs[0].shape
    else:
        raise ValueError(f"Op {op.name!r} ({op.type}) must have `dtype` and `shape` attrs or a "
                         f"single output to measure its byte size")
    if not shape.is_fully_defined():
        raise ValueError(f"Cannot measure the byte size of op {op.name!r} ({op.type}): its shape "
                         f"{shape} is not fully defined")
    return shape.num_elements() * dtype.size


class _ReplicaDeviceChooser:
    """The device function `replica_device_setter` returns (bound method `device_function`)."""

    def __init__(self, ps_tasks, ps_device, worker_device, merge_devices, ps_ops, ps_strategy):
        self._ps_tasks = ps_tasks
        self._ps_device = ps_device
        self._worker_device = worker_device
        self._merge_devices = merge_devices
        self._ps_ops = frozenset(ps_ops)
        self._ps_strategy = ps_strategy

    def device_function(self, op):
        """The device for `op`: fields already set on it (by inner `tf.device` scopes) win."""
        if not self._merge_devices and op.device:
            return op.device
        current = DeviceSpec.from_string(op.device or "")
        if self._ps_tasks and self._ps_device and op.type in self._ps_ops:
            ps_device = DeviceSpec.from_string(self._ps_device)
            # Choose a task only when the op stays in the PS job; asking the strategy otherwise
            # would skew its count (round robin) or load (greedy) for a variable not on a PS.
            if ps_device.job and (not current.job or current.job == ps_device.job):
                ps_device.task = self._ps_strategy(op)
            return ps_device.merged_with(current).to_string()
        return DeviceSpec.from_string(self._worker_device or "").merged_with(current).to_string()


def replica_device_setter(ps_tasks=0, ps_device="/job:ps", worker_device="/job:worker",
                          merge_devices=True, cluster=None, ps_ops=None, ps_strategy=None):
    """`tf.train.replica_device_setter(...)`: a device function for `with tf.device(...)` that
    places variables on parameter-server tasks and every other op on `worker_device`.

    ```python
    cluster = {"ps": ["ps0:2222", "ps1:2222"], "worker": ["worker0:2222", "worker1:2222"]}
    with tf.device(tf.train.replica_device_setter(cluster=cluster)):
        v1 = tf.Variable(...)  # on /job:ps/task:0
        v2 = tf.Variable(...)  # on /job:ps/task:1
        v3 = tf.Variable(...)  # on /job:ps/task:0
        y = tf.matmul(x, v1)   # on /job:worker
    ```

    Args:
      ps_tasks: the number of PS tasks; ignored when `cluster` is given.
      ps_device: the PS job's device name ("/job:ps" or e.g. "/job:ps/cpu:0"); the strategy's
        task index is added to it.
      worker_device: the device for ops that are not `ps_ops`, e.g. "/job:worker/task:1".
      merge_devices: if True, an op's device fields set by inner `tf.device` scopes are kept and
        only the unset ones are filled; if False, an op with any device set is left alone.
      cluster: a `ClusterSpec` or dict; the number of tasks of `ps_device`'s job gives `ps_tasks`.
      ps_ops: op types placed on PS tasks (default: the variable and hash-table ops).
      ps_strategy: a callable `op -> task index` (default: round robin over the PS tasks).

    Returns:
      A function from Operation to device string, or None when there are no PS tasks (`ps_tasks`
      is 0 and no `cluster`, or `cluster` has no job named by `ps_device`), as in TF.

    Raises:
      TypeError: if `ps_strategy` is not callable.
      ValueError: if `ps_tasks` is negative or a device name is malformed.
    """
    ps_job = DeviceSpec.from_string(ps_device or "").job
    DeviceSpec.from_string(worker_device or "")  # fail here, not at the first op, on a bad name
    if cluster is not None:
        spec = cluster.as_dict() if isinstance(cluster, ClusterSpec) else ClusterSpec(cluster).as_dict()
        if ps_job not in spec or spec[ps_job] is None:
            return None
        ps_tasks = len(spec[ps_job])
    if ps_tasks < 0:
        raise ValueError(f"ps_tasks must be non-negative, got {ps_tasks}")
    if ps_tasks == 0:
        return None
    if ps_ops is None:
        ps_ops = STANDARD_PS_OPS
    if not merge_devices:
        logging.warning("DEPRECATION: It is recommended to set merge_devices=true in "
                        "replica_device_setter")
    if ps_strategy is None:
        ps_strategy = _RoundRobinStrategy(ps_tasks)
    if not callable(ps_strategy):
        raise TypeError("ps_strategy must be callable")
    chooser = _ReplicaDeviceChooser(ps_tasks, ps_device, worker_device, merge_devices, ps_ops,
                                    ps_strategy)
    return chooser.device_function


__all__ = ["STANDARD_PS_OPS", "GreedyLoadBalancingStrategy", "byte_size_load_fn",
           "replica_device_setter"]
