"""`tf.train.ClusterSpec`, the `TF_CONFIG` environment variable, cluster files, free local ports.

A cluster is a set of jobs ("ps", "worker", ...), each a set of tasks numbered from 0, each task one
"host:port" address. A job may be sparse (tasks 0 and 2 but not 1), so a process can be configured
without knowing the address of every peer, as in TF.
"""

import json
import os
import re
import socket

from tensorweave.framework.device_spec import DeviceSpec

# The same rule as TF's DeviceNameUtils: a job name becomes part of "/job:NAME/..." device names.
_JOB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# TF's own message and TensorBoard's copy of it (the one `as_cluster_def` builds).
_CLUSTER_DEFS = ("tensorflow.ClusterDef", "tensorboard.ClusterDef")


class ClusterSpec:
    """Represents a cluster as a set of "tasks", organized into "jobs".

    ```python
    cluster = tf.train.ClusterSpec({"worker": ["worker0:2222", "worker1:2222"],
                                    "ps": ["ps0:2222"]})
    sparse = tf.train.ClusterSpec({"worker": {1: "worker1:2222"}, "ps": ["ps0:2222"]})
    ```

    `cluster` is a dict from job name to a list of addresses (dense) or a dict from task index to
    address (sparse), another `ClusterSpec`, or a `tf.train.ClusterDef` protocol buffer.
    Raises TypeError for values of the wrong type and ValueError, naming the job and task, for a
    bad job name, task index or address (which must be "host:port" with a port in 1..65535).
    """

    __hash__ = None  # equal to dicts, so unhashable, as in TF

    def __init__(self, cluster):
        if isinstance(cluster, ClusterSpec):
            self._jobs = {job: dict(tasks) for job, tasks in cluster._jobs.items()}
        elif isinstance(cluster, dict):
            self._jobs = {}
            for job, tasks in cluster.items():
                job = _job_name(job)
                if job in self._jobs:  # "ps" and b"ps" both given
                    raise ValueError(f"Job {job!r} is given twice in the cluster")
                self._jobs[job] = _job_tasks(job, tasks)
        elif _is_cluster_def(cluster):
            self._jobs = {}
            for job_def in cluster.job:
                job = _job_name(job_def.name)
                if job in self._jobs:
                    raise ValueError(f"Job {job!r} appears twice in the ClusterDef")
                self._jobs[job] = _job_tasks(job, dict(job_def.tasks))
        else:
            raise TypeError("`cluster` must be a dictionary mapping one or more job names to lists "
                            "of network addresses, or a `ClusterDef` protocol buffer; got "
                            f"{type(cluster).__name__}")

    def __bool__(self):
        return bool(self._jobs)

    def __eq__(self, other):
        if isinstance(other, dict):
            try:
                other = ClusterSpec(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, ClusterSpec):
            return NotImplemented
        return self._jobs == other._jobs

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __repr__(self):
        spec = self.as_dict()
        return "ClusterSpec({" + ", ".join(f"{job!r}: {spec[job]!r}" for job in sorted(spec)) + "})"

    __str__ = __repr__

    def as_dict(self):
        """A dict from job name to a list of addresses where the job's task indices are dense
        (0..n-1), else (sparse or empty job) to a dict from task index to address."""
        out = {}
        for job, tasks in self._jobs.items():
            dense = tasks and max(tasks) + 1 == len(tasks)
            out[job] = self.job_tasks(job) if dense else dict(tasks)  # {} for an empty job, as TF
        return out

    def as_cluster_def(self):
        """A new `tf.train.ClusterDef` protocol buffer for this cluster, jobs and tasks sorted."""
        from tensorboard.compat.proto import cluster_pb2

        cluster_def = cluster_pb2.ClusterDef()
        for job, tasks in sorted(self._jobs.items()):
            job_def = cluster_def.job.add()
            job_def.name = job
            for index, address in sorted(tasks.items()):
                job_def.tasks[index] = address
        return cluster_def

    @property
    def jobs(self):
        """The job names in this cluster."""
        return list(self._jobs)

    def num_tasks(self, job_name):
        """The number of tasks defined in job `job_name` (ValueError if there is no such job)."""
        return len(self._job(job_name))

    def task_indices(self, job_name):
        """The sorted task indices defined in job `job_name`."""
        return sorted(self._job(job_name))

    def task_address(self, job_name, task_index):
        """The address of task `task_index` of job `job_name`; ValueError if either is missing."""
        job = self._job(job_name)
        try:
            return job[task_index]
        except (KeyError, TypeError):
            raise ValueError(f"No task with index {task_index!r} in job {job_name!r}") from None

    def job_tasks(self, job_name):
        """The addresses of job `job_name` ordered by task index, None where a sparse job has no
        task of that index."""
        job = self._job(job_name)
        out = [None] * (max(job) + 1 if job else 0)
        for index, address in job.items():
            out[index] = address
        return out

    def device_name(self, job_name, task_index, device_type="CPU", index=0):
        """The full name of a device of one task: "/job:worker/replica:0/task:1/device:CPU:0"."""
        self.task_address(job_name, task_index)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"Device index must be a non-negative integer, got {index!r}")
        return DeviceSpec(job=job_name, replica=0, task=task_index, device_type=device_type,
                          device_index=index).to_string()

    def task_devices(self):
        """The name of every task, "/job:J/replica:0/task:T", in job order then task index."""
        return [DeviceSpec(job=job, replica=0, task=index).to_string()
                for job, tasks in self._jobs.items() for index in sorted(tasks)]

    def _job(self, job_name):
        try:
            return self._jobs[job_name]
        except (KeyError, TypeError):
            raise ValueError(f"No such job in cluster: {job_name!r}") from None


def _is_cluster_def(value):
    # By descriptor name, so TensorFlow need not be imported to recognise its messages.
    descriptor = getattr(value, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", None) in _CLUSTER_DEFS


def _job_name(job):
    if isinstance(job, bytes):
        job = job.decode("utf-8")
    if not isinstance(job, str):
        raise TypeError(f"Job name {job!r} must be bytes or unicode")
    if not _JOB_NAME.match(job):
        raise ValueError(f"Job name {job!r} is not valid: it must start with a letter and contain "
                         "only letters, digits and underscores")
    return job


def _job_tasks(job, tasks):
    if isinstance(tasks, (list, tuple)):
        items = enumerate(tasks)
    elif isinstance(tasks, dict):
        items = ((_task_index(job, index), address) for index, address in tasks.items())
    else:
        raise TypeError(f"The tasks for job {job!r} must be a list or a dictionary from integers "
                        f"to strings, got {type(tasks).__name__}")
    out = {}
    for index, address in items:
        if index in out:  # 1 and "1" both given
            raise ValueError(f"Task {index} of job {job!r} is given twice")
        out[index] = _address(job, index, address)
    return dict(sorted(out.items()))


def _task_index(job, index):
    # JSON object keys are strings, so "1" is accepted as task 1.
    if isinstance(index, str) and index.isdigit():
        index = int(index)
    elif isinstance(index, bool) or not isinstance(index, int):
        if isinstance(index, str):
            raise ValueError(f"Task index {index!r} of job {job!r} is not a non-negative integer")
        raise TypeError(f"Task index {index!r} of job {job!r} must be an integer")
    if index < 0:
        raise ValueError(f"Task index {index} of job {job!r} is negative")
    return index


def _address(job, index, address):
    if isinstance(address, bytes):
        address = address.decode("utf-8")
    if not isinstance(address, str):
        raise TypeError(f"Task address {address!r} (job {job!r}, task {index}) must be bytes or "
                        "unicode")
    host, port = _split_host_port(address)
    if not host or any(c in host for c in " \t/") or not port.isdigit() or \
            not 1 <= int(port) <= 65535:
        raise ValueError(f"Address {address!r} of job {job!r} task {index} is not 'host:port' "
                         "with a port in 1..65535")
    return address


def _split_host_port(address):
    if address.startswith("["):  # "[::1]:2222"
        host, sep, port = address[1:].partition("]:")
        return (host, port) if sep else ("", "")
    host, _, port = address.rpartition(":")
    return ("", "") if ":" in host else (host, port)


# -- TF_CONFIG and cluster files ------------------------------------------------------------------

def cluster_spec_from_tf_config(env=None):
    """The `ClusterSpec` in the `TF_CONFIG` environment variable, as set by Kubernetes operators:
    `{"cluster": {"worker": [...], "ps": [...]}, "task": {"type": "worker", "index": 0}}`.

    `env` defaults to `os.environ`. Raises ValueError naming TF_CONFIG when it is unset, not JSON,
    has no "cluster", or names a task that is not in the cluster.
    """
    return _tf_config(env)[0]


def task_from_tf_config(env=None):
    """The `(job_name, task_index)` of this process from `TF_CONFIG`'s "task" entry; ValueError
    naming TF_CONFIG when it is missing, malformed, or not in the cluster."""
    task = _tf_config(env)[1]
    if task is None:
        raise ValueError("TF_CONFIG has no 'task' entry ({\"type\": ..., \"index\": ...})")
    return task


def load_cluster_file(path):
    """Reads a JSON cluster file: either a ClusterSpec dict (`{"worker": [...], ...}`) or the shape
    of TF_CONFIG (`{"cluster": {...}, "task": {...}}`). Returns `(cluster_spec, task)`, where task
    is `(job_name, task_index)` or None when the file names none. Errors name the file."""
    source = f"cluster file {os.fspath(path)!r}"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    config = _json_object(text, source)
    if not _looks_like_tf_config(config):
        try:
            return ClusterSpec(config), None
        except (TypeError, ValueError) as e:
            raise type(e)(f"{source}: {e}") from None
    return _parse_tf_config(config, source)


def _tf_config(env):
    text = (os.environ if env is None else env).get("TF_CONFIG", "")
    if not text.strip():
        raise ValueError("TF_CONFIG is not set (or empty)")
    return _parse_tf_config(_json_object(text, "TF_CONFIG"), "TF_CONFIG")


def _json_object(text, source):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source} must hold a JSON object, got {type(value).__name__}")
    return value


def _looks_like_tf_config(config):
    # A job named "cluster" maps to addresses (strings); TF_CONFIG's "cluster" maps to jobs.
    cluster = config.get("cluster")
    if isinstance(cluster, dict) and not any(isinstance(v, str) for v in cluster.values()):
        return True
    return isinstance(config.get("task"), dict)


def _parse_tf_config(config, source):
    if "cluster" not in config:
        raise ValueError(f"{source} has no 'cluster' entry")
    try:
        cluster = ClusterSpec(config["cluster"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source} has a bad 'cluster': {e}") from None
    if "task" not in config:
        return cluster, None
    task = config["task"]
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(f"{source} 'task' must be an object with 'type' and 'index', got {task!r}")
    job, index = task["type"], task["index"]
    if isinstance(index, str) and index.isdigit():
        index = int(index)
    if not isinstance(job, str) or isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"{source} 'task' needs a string 'type' and an integer 'index', "
                         f"got {task!r}")
    if job not in cluster.jobs:
        raise ValueError(f"{source} task type {job!r} is not a job in the cluster "
                         f"(jobs: {sorted(cluster.jobs)})")
    if index not in cluster.task_indices(job):
        raise ValueError(f"{source} task {job}:{index} is not in the cluster (job {job!r} has "
                         f"tasks {cluster.task_indices(job)})")
    return cluster, (job, index)


# -- for tests and launchers ----------------------------------------------------------------------

def free_ports(n, host="127.0.0.1"):
    """`n` distinct TCP ports that are free on `host` now, for tests and launchers.

    All `n` sockets are bound to port 0 at once (so the OS hands out distinct ports), then closed.
    Another process may take a port before it is used; that race is accepted for tests.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"free_ports needs a non-negative integer count, got {n!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_cluster_spec(ps=1, workers=2, host="127.0.0.1"):
    """A `ClusterSpec` of `ps` parameter-server and `workers` worker tasks on `host`, each on a
    free port (see `free_ports`); a job with no tasks is left out. For tests and launchers."""
    for name, count in (("ps", ps), ("workers", workers)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"local_cluster_spec: {name} must be a non-negative integer, "
                             f"got {count!r}")
    if ps + workers == 0:
        raise ValueError("local_cluster_spec needs at least one task")
    hostname = f"[{host}]" if ":" in host else host
    addresses = [f"{hostname}:{port}" for port in free_ports(ps + workers, host)]
    cluster = {"ps": addresses[:ps], "worker": addresses[ps:]}
    return ClusterSpec({job: tasks for job, tasks in cluster.items() if tasks})
