"""`tf.train.Server`: one task of a cluster, serving the Master and Worker services over gRPC.

The server's `Master` reaches its own task's `Worker` in-process and every other task through a
gRPC client made now but connected on first use. Each task owns the rendezvous of its steps
(`remote_rendezvous.StepRendezvousTable`): a partition receiving a tensor made on another task
pulls it over the producer's data channel (a second port, announced in GetStatus), or over
Worker.RecvTensor where that port cannot be reached (`peer_transport`). The master's RunGraph calls
take the data channel too once it is connected (`_on_data_call` serves them).

Security: with a cluster token (`ConfigProto.cluster_token`, or the environment; see
`grpc_auth.token_from`) every call and data channel connection must carry it; without one the
server listens on 127.0.0.1 only, whatever host the cluster spec names. With TLS files in the
config (`transport.tls`) both ports serve TLS, and mutual TLS when a CA file is given too.
"""

import concurrent.futures
import contextlib
import logging
import threading
import weakref

import grpc
import numpy as np

from tensorweave.distributed import grpc_services, peer_transport
from tensorweave.distributed.cluster import ClusterSpec, _split_host_port, free_ports
from tensorweave.distributed.master import Master, MasterRuntime
from tensorweave.distributed.remote_rendezvous import StepRendezvousTable
from tensorweave.distributed.transport import grpc_auth, tls
from tensorweave.distributed.transport.data_channel import DataChannelServer
from tensorweave.distributed.worker import Worker
from tensorweave.framework import errors
from tensorweave.framework.device_spec import DeviceSpec
from tensorweave.runtime import config as config_lib
from tensorweave.runtime import threads

_log = logging.getLogger(__name__)
# Steps block a handler thread per partition and per cross-task receive, so the pool is generous.
DEFAULT_MAX_HANDLER_THREADS = 128
# Sessions and registered graphs no step used for this long are released (their client or master
# went away without closing them), checked this often.
DEFAULT_MAX_IDLE_SECONDS = 3600.0
DEFAULT_COLLECT_INTERVAL_SECONDS = 60.0
_LOCAL_SERVER_TRIES = 3  # create_local_server: a free port may be taken before it binds
_DATA_PORT_TRIES = 8


class Server:
    """`tf.train.Server(cluster, job_name, task_index, protocol=None, config=None, start=True)`.

    cluster: a `ClusterSpec`, its dict, or a ClusterDef. job_name / task_index: this task
    (defaults: the only job, task 0). `target` is the "grpc://host:port" a `tf.Session` connects to.
    data_port: the data channel's port (0: chosen by the OS; None: no data channel, tensors
    travel over gRPC).
    max_idle_seconds / collect_interval_seconds: every `collect_interval_seconds` while it
    serves, the server closes its master's sessions and releases its worker's graphs that no
    step used for `max_idle_seconds` (clients that vanished without closing them).
    """

    def __init__(self, server_or_cluster_def, job_name=None, task_index=None, protocol=None, config=None,
                 start=True, *, max_handler_threads=DEFAULT_MAX_HANDLER_THREADS, data_port=0,
                 max_idle_seconds=DEFAULT_MAX_IDLE_SECONDS,
                 collect_interval_seconds=DEFAULT_COLLECT_INTERVAL_SECONDS):
        if not max_idle_seconds > 0 or not collect_interval_seconds > 0:
            raise ValueError(f"max_idle_seconds and collect_interval_seconds must be positive, got "
                             f"{max_idle_seconds!r} and {collect_interval_seconds!r}")
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
        threads.apply_intra_op_threads(self.config)
        token = grpc_auth.token_from(self.config)
        self._token = token
        tls_files = self._tls_files = tls.tls_files(self.config)
        credentials = tls.grpc_channel_credentials(tls_files)
        self.task_name = DeviceSpec(job_name, 0, task_index).to_string()
        host, port = _split_host_port(self.address)
        bind_host = host if token is not None else "127.0.0.1"

        self.worker = Worker(self.task_name)
        self._clients = {}
        self._data_server = None
        peers, remote = {}, {}
        cluster_ports = set()
        for task in cluster.task_devices():
            spec = DeviceSpec.from_string(task)
            address = cluster.task_address(spec.job, spec.task)
            cluster_ports.add(int(_split_host_port(address)[1]))
            if task == self.task_name:
                continue
            client = self._clients[task] = grpc_services.GrpcWorkerClient(task, address, token, credentials)
            peers[task] = client
            remote[task] = (client, _split_host_port(address)[0])
        self.transport = peer_transport.PeerTransport(
            self.task_name, remote, token, ssl_context=tls.client_ssl_context(tls_files),
            keepalive_interval=grpc_auth.keepalive_seconds())
        for client in self._clients.values():
            client.data_calls = self.transport.call
        self.rendezvous = StepRendezvousTable(self.task_name, self.transport.fetch)
        peers[self.task_name] = LocalWorkerClient(self.worker, self.rendezvous)
        if data_port is not None:
            # RunGraph calls over the data channel block for a step: never on its reader thread.
            self._data_calls = concurrent.futures.ThreadPoolExecutor(
                max_handler_threads, thread_name_prefix="tensorweave-dc-call")
            self._data_server = _data_channel_server(
                bind_host, data_port, cluster_ports, token, ssl_context=tls.server_ssl_context(tls_files),
                idle_timeout=6 * grpc_auth.keepalive_seconds(),  # clients ping every K
                on_request=lambda peer, what, encoding, reply: peer_transport.answer_request(
                    self.rendezvous, peer, what, encoding, reply),
                on_call=self._on_data_call)
        workers = {task: AbortForwardingWorker(c, peers) for task, c in peers.items()}
        self.master = Master(cluster, workers, default_task=(job_name, task_index), config=self.config,
                             rendezvous_factory=NullStepRendezvous)

        interceptors = [grpc_auth.TokenAuthInterceptor(token)] if token is not None else []
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_handler_threads,
                                                                         thread_name_prefix="tensorweave-rpc"),
                                   interceptors=interceptors, options=grpc_auth.server_options())
        self._master_servicer = grpc_services.MasterServicer(self.master)
        self._server.add_generic_rpc_handlers((
            grpc_services.service_handler("Master", self._master_servicer),
            grpc_services.service_handler("Worker", grpc_services.WorkerServicer(
                self.worker, self.rendezvous, self._data_server.port if self._data_server is not None else 0))))
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
        server_credentials = tls.grpc_server_credentials(tls_files)
        try:
            if server_credentials is None:
                bound = self._server.add_insecure_port(bind)
            else:
                bound = self._server.add_secure_port(bind, server_credentials)
        except RuntimeError as e:
            bound, reason = 0, f": {e}"
        else:
            reason = ""
        if bound == 0:
            if self._data_server is not None:
                self._data_server.stop()
            raise errors.UnavailableError(None, None, f"Cannot listen on {bind} for task {self.task_name}{reason}")
        self._max_idle_seconds = max_idle_seconds
        self._collect_interval_seconds = collect_interval_seconds
        self._stopping = threading.Event()
        self._collector = threading.Thread(target=self._collect_idle_loop, daemon=True,
                                           name=f"tensorweave-collect-idle-{job_name}-{task_index}")
        self._started = self._stopped = False
        if start:
            self.start()

    @classmethod
    def create_local_server(cls, config=None, start=True):
        """A server of a one-task cluster on this machine (job "localhost"), on a free port, as
        TF1's `Server.create_local_server`. `server.target` names the port it got."""
        for attempt in range(_LOCAL_SERVER_TRIES):
            port, = free_ports(1)
            try:
                return cls(ClusterSpec({"localhost": [f"localhost:{port}"]}), job_name="localhost",
                           task_index=0, config=config, start=start)
            except errors.UnavailableError:  # another process took the port since free_ports
                if attempt == _LOCAL_SERVER_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

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
            self._collector.start()
            with _in_process_lock:
                _in_process[self.target] = weakref.ref(self)

    def join(self):
        """Blocks until the server stops."""
        self._server.wait_for_termination()

    def stop(self, grace=1.0):
        """Stops serving: calls in flight get `grace` seconds, steps waiting here are aborted."""
        if self._stopped:
            return
        self._stopped = True
        with _in_process_lock:
            if _in_process.get(self.target, lambda: None)() is self:
                del _in_process[self.target]
        self._stopping.set()
        if self._collector.is_alive():
            self._collector.join(grace + 10.0)  # a round in progress may wait on a silent task
        self.rendezvous.abort_all(errors.UnavailableError(None, None, f"Task {self.task_name} stopped"))
        self._server.stop(grace).wait(grace + 5.0)
        if self._data_server is not None:
            self._data_server.stop()
            self._data_calls.shutdown(wait=False)
        self.transport.close()
        for client in self._clients.values():
            client.close()

    def _on_data_call(self, peer, method, payload, reply):
        """Answers a Worker call that came over the data channel (`grpc_services.DATA_CALLS`), on a
        thread of its own: a RunGraph lasts a step, while the reader serves the step's pulls."""
        def run():
            try:
                response = grpc_services.serve_data_call(self.worker, self.rendezvous, method, payload)
            except errors.OpError as e:
                reply(error=e)
            else:
                reply(array=np.frombuffer(response, np.uint8))
        try:
            self._data_calls.submit(run)
        except RuntimeError:  # the pool was shut down: this server is stopping
            reply(error=errors.UnavailableError(None, None, f"Task {self.task_name} is stopping"))

    def collect_idle(self):
        """Closes the master's sessions and releases the worker's graphs that no step used for
        `max_idle_seconds` (done every `collect_interval_seconds` while serving); returns
        (session handles, graph handles) released."""
        sessions = self.master.collect_idle(self._max_idle_seconds)
        self._master_servicer.forget(sessions)
        graphs = self.worker.collect_idle(self._max_idle_seconds)
        if sessions or graphs:
            _log.info("Task %s released %d idle sessions and %d idle graphs", self.task_name, len(sessions),
                      len(graphs))
        return sessions, graphs

    def _collect_idle_loop(self):
        while not self._stopping.wait(self._collect_interval_seconds):
            try:
                self.collect_idle()
            except Exception:  # noqa: BLE001 - a failed round must not end collection
                _log.exception("Task %s: collecting idle sessions and graphs failed", self.task_name)

    @property
    def data_port(self):
        """The data channel's port, or None when this server has none."""
        return self._data_server.port if self._data_server is not None else None


def _data_channel_server(host, port, cluster_ports, token, **kwargs):
    """The task's DataChannelServer. On a port the OS chooses (`port` 0), never one the cluster
    spec names: a task of this machine that has not bound its port yet would fail to (free_ports
    and `tensorweave launch` release the ports they pick until the tasks bind them)."""
    unsuitable = []
    try:
        for _ in range(_DATA_PORT_TRIES):
            server = DataChannelServer(host, port, token, **kwargs)
            if port or server.port not in cluster_ports:
                return server
            unsuitable.append(server)  # still bound while the next try binds: the OS hands out another
        raise errors.UnavailableError(None, None, f"Cannot find a data channel port on {host} outside the "
                                      f"cluster spec's ports after {_DATA_PORT_TRIES} tries")
    finally:
        for server in unsuitable:
            server.stop()


# -- sessions on a server of this process ------------------------------------------------------------

_in_process = {}  # target -> weakref to the started Server of this process serving it
_in_process_lock = threading.Lock()


def _in_process_server(target, config):
    """The started server of this process serving `target`, if `config` carries its token and
    TLS files; None otherwise (the call then goes over gRPC, where a mismatch is refused)."""
    with _in_process_lock:
        ref = _in_process.get(target)
    server = ref() if ref is not None else None
    if server is None or server._stopped:
        return None
    if server._token is not None and grpc_auth.token_from(config) != server._token:
        return None
    if server._tls_files.serves_tls and tls.tls_files(config) != server._tls_files:
        return None
    return server


def in_process_reset(target, containers, config):
    """`tf.Session.reset(target, containers)` on a server of this process, called directly (as
    `in_process_session_runtime`); False when `target` is not one (reset then goes over gRPC)."""
    config = config_lib.as_config(config)
    server = _in_process_server(target, config)
    if server is None:
        return False
    server._master_servicer.forget(server.master.reset(containers, list(config.device_filters)))
    return True


def in_process_session_runtime(target, graph, config):
    """The runtime of `tf.Session(target)` when `target` is served by a started `Server` of this
    process and the session carries its cluster token and TLS files (as TF calls its own master
    in-process): steps go to that master directly, with no gRPC call and no copy of feeds and
    fetches. None otherwise: the session goes over gRPC, where a wrong token or certificate is
    refused, so a misconfigured client fails here as it would in another process."""
    config = config_lib.as_config(config)
    server = _in_process_server(target, config)
    return InProcessSessionRuntime(server.master, graph, config) if server is not None else None


class InProcessSessionRuntime(MasterRuntime):
    """A `MasterRuntime` for a client graph in the master's own process: it creates the session
    and points step errors at the client's ops, as the gRPC client does."""

    def __init__(self, master, graph, config):
        handle = master.create_session(graph.as_graph_def().SerializeToString(), config)
        super().__init__(master, handle, graph)
        self.config = config

    def run(self, feeds, feed_values, fetches, targets, options, run_metadata):
        try:
            return super().run(feeds, feed_values, fetches, targets, options, run_metadata)
        except errors.OpError as e:
            raise grpc_services.with_client_op(e, self.graph) from None


# -- the master's view of the tasks: each task owns its step rendezvous ----------------------------

class LocalWorkerClient:
    """The server's own `Worker` as the master sees it: steps use the task's step rendezvous."""

    def __init__(self, worker, table):
        self._worker = worker
        self._table = table
        self.task_name = worker.task_name

    def __getattr__(self, name):
        return getattr(self._worker, name)

    def run_graph(self, graph_handle, step_id, sends, recv_keys, rendezvous=None, timeout=None, step_stats=None):
        return grpc_services.run_graph_on_table(self._worker, self._table, graph_handle, step_id, sends, recv_keys,
                                                timeout, step_stats)

    def cleanup_graph(self, step_id):
        self._worker.cleanup_graph(step_id)
        self._table.cleanup(step_id)


class AbortForwardingWorker:
    """Wraps a worker client so that a failed step is cleaned up on every task at once: a peer
    waiting on a tensor of the failed task stops instead of holding the step (and the master)."""

    def __init__(self, client, peers):
        self._client = client
        self._peers = peers  # {task name: client}, filled once all are made

    def __getattr__(self, name):
        return getattr(self._client, name)

    def run_graph(self, graph_handle, step_id, sends, recv_keys, rendezvous=None, timeout=None, step_stats=None):
        try:
            return self._client.run_graph(graph_handle, step_id, sends, recv_keys, rendezvous, timeout, step_stats)
        except BaseException as e:
            # Aborted first, so the master's view records this task's error as the step's: a peer
            # stopped below fails with CancelledError, which could otherwise be recorded before it.
            if rendezvous is not None:
                rendezvous.abort(e)
            for peer in self._peers.values():
                threading.Thread(target=_quiet_cleanup, args=(peer, step_id), daemon=True).start()
            raise


def _quiet_cleanup(client, step_id):
    with contextlib.suppress(Exception):  # best effort; the step's own error is reported
        client.cleanup_graph(step_id)


class NullStepRendezvous:
    """The master's per-step rendezvous when every task owns its own (nothing passes through it;
    aborts reach the tasks through `AbortForwardingWorker` and CleanupGraph)."""

    def send(self, key, value):
        raise errors.InternalError(None, None, f"Tensor {key!r} was sent through the master's rendezvous")

    def recv_async(self, key, callback):
        callback(None, errors.InternalError(None, None, f"Tensor {key!r} was awaited at the master"))

    def recv(self, key, timeout=None):
        raise errors.InternalError(None, None, f"Tensor {key!r} was awaited at the master")

    def abort(self, error):
        pass

    def pending_keys(self):
        return [], []
