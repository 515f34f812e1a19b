"""`tf.train.Server`: one task of a cluster, serving the Master and Worker services over gRPC.

The server's `Master` reaches its own task's `Worker` in-process and every other task through a
gRPC client made now but connected on first use. Each task owns the rendezvous of its steps
(`remote_rendezvous.StepRendezvousTable`): a partition receiving a tensor made on another task
fetches it with Worker.RecvTensor.

Security: with a cluster token (`ConfigProto.cluster_token`, or the environment; see
`grpc_auth.token_from`) every call must carry it; without one the server listens on 127.0.0.1
only, whatever host the cluster spec names.
"""

import concurrent.futures
import logging

import grpc

from tensorweave.distributed import grpc_services
from tensorweave.distributed.cluster import ClusterSpec, _split_host_port
from tensorweave.distributed.master import Master
from tensorweave.distributed.protocol import tensorweave_service_pb2_grpc as pb_grpc
from tensorweave.distributed.remote_rendezvous import StepRendezvousTable
from tensorweave.distributed.transport import grpc_auth
from tensorweave.distributed.worker import Worker
from tensorweave.framework import errors
from tensorweave.framework.device_spec import DeviceSpec
from tensorweave.runtime import config as config_lib

_log = logging.getLogger(__name__)
# Steps block a handler thread per partition and per cross-task receive, so the pool is generous.
DEFAULT_MAX_HANDLER_THREADS = 128


class Server:
    """`tf.train.Server(cluster, job_name, task_index, protocol=None, config=None, start=True)`.

    cluster: a `ClusterSpec`, its dict, or a ClusterDef. job_name / task_index: this task
    (defaults: the only job, task 0). `target` is the "grpc://host:port" a `tf.Session` connects to.
    """

    def __init__(self, server_or_cluster_def, job_name=None, task_index=None, protocol=None, config=None,
                 start=True, *, max_handler_threads=DEFAULT_MAX_HANDLER_THREADS):
        if protocol not in (None, "grpc"):
            raise ValueError(f"Server protocol must be 'grpc', got {protocol!r}")
        cluster = server_or_cluster_def if isinstance(server_or_cluster_def, ClusterSpec) \
            else ClusterSpec(server_or_cluster_def)
        if job_name is None:
            if len(cluster.jobs) != 1:
                raise ValueError(f"job_name must be given for a cluster of several jobs {cluster.jobs}")
            job_name = cluster.jobs[0]
        task_index = 0 if task_index is None else task_index
        self.cluster_spec = cluster
        self.job_name, self.task_index = job_name, task_index
        self.address = cluster.task_address(job_name, task_index)
        self.config = config_lib.as_config(config)
        token = grpc_auth.token_from(self.config)
        self.task_name = DeviceSpec(job_name, 0, task_index).to_string()

        self.worker = Worker(self.task_name)
        self._clients = {}
        self.rendezvous = StepRendezvousTable(self.task_name, self._fetch)
        peers = {}
        for task in cluster.task_devices():
            if task == self.task_name:
                client = grpc_services.LocalWorkerClient(self.worker, self.rendezvous)
            else:
                spec = DeviceSpec.from_string(task)
                client = self._clients[task] = grpc_services.GrpcWorkerClient(
                    task, cluster.task_address(spec.job, spec.task), token)
            peers[task] = client
        workers = {task: grpc_services.AbortForwardingWorker(c, peers) for task, c in peers.items()}
        self.master = Master(cluster, workers, default_task=(job_name, task_index), config=self.config,
                             rendezvous_factory=grpc_services.NullStepRendezvous)

        interceptors = [grpc_auth.TokenAuthInterceptor(token)] if token is not None else []
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_handler_threads,
                                                                         thread_name_prefix="tensorweave-rpc"),
                                   interceptors=interceptors, options=grpc_auth.server_options())
        pb_grpc.add_MasterServicer_to_server(grpc_services.MasterServicer(self.master), self._server)
        pb_grpc.add_WorkerServicer_to_server(grpc_services.WorkerServicer(self.worker, self.rendezvous),
                                             self._server)
        host, port = _split_host_port(self.address)
        if token is None:
            if host not in ("127.0.0.1", "localhost"):
                _log.warning("No cluster token configured: task %s serves on 127.0.0.1:%s only (set "
                             "ConfigProto.cluster_token or $%s to serve on %s)", self.task_name, port,
                             grpc_auth.TOKEN_ENV, self.address)
            else:
                _log.info("No cluster token configured: task %s accepts unauthenticated calls on loopback "
                          "only", self.task_name)
            bind = f"127.0.0.1:{port}"
        else:
            bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = self._server.add_insecure_port(bind)
        except RuntimeError as e:
            raise errors.UnavailableError(None, None, f"Cannot listen on {bind} for task {self.task_name}: {e}") \
                from None
        if bound == 0:
            raise errors.UnavailableError(None, None, f"Cannot listen on {bind} for task {self.task_name}")
        self._started = self._stopped = False
        if start:
            self.start()

    @property
    def target(self):
        """The session target of this server: "grpc://host:port"."""
        return f"grpc://{self.address}"

    @property
    def server_def(self):
        """(cluster spec, job name, task index) of this server."""
        return self.cluster_spec, self.job_name, self.task_index

    def start(self):
        """Starts serving (done by the constructor unless start=False)."""
        if self._stopped:
            raise errors.FailedPreconditionError(None, None, "A stopped server cannot be started again")
        if not self._started:
            self._started = True
            self._server.start()

    def join(self):
        """Blocks until the server stops."""
        self._server.wait_for_termination()

    def stop(self, grace=1.0):
        """Stops serving: calls in flight get `grace` seconds, steps waiting here are aborted."""
        if self._stopped:
            return
        self._stopped = True
        self.rendezvous.abort_all(errors.UnavailableError(None, None, f"Task {self.task_name} stopped"))
        self._server.stop(grace).wait(grace + 5.0)
        for client in self._clients.values():
            client.close()

    def _fetch(self, task, key, step_id, deliver, encoding="none"):
        client = self._clients.get(task)
        if client is None:
            deliver(None, errors.InvalidArgumentError(None, None, f"Rendezvous key {key!r} names task {task}, "
                                                      "which is not in the cluster"))
            return lambda error: None
        return client.fetch(key, step_id, deliver, encoding)
