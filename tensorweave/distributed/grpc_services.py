"""gRPC for the master and worker services: servicers, client stubs and the `grpc://` session.

- `MasterServicer` / `WorkerServicer` wrap the transport-neutral `Master` and `Worker`.
- `GrpcWorkerClient` implements the worker interface over gRPC for the master, plus the
  RecvTensor fetch that `peer_transport` falls back to when a peer's data channel is unreachable.
  RunGraph, the call of every step, goes over the task's data channel once that is connected
  (`DATA_CALLS`, `serve_data_call`): the same messages, without Python gRPC's latency.
- `GrpcSessionRuntime` is the client side of `tf.Session("grpc://host:port")`; `reset` that of
  `tf.Session.reset("grpc://host:port", containers)`.

Errors travel as gRPC status codes, which share TF's numbering (`errors.OpError.error_code`).
Setup calls carry a bounded deadline (`SETUP_TIMEOUT_SECONDS`); steps only the deadline of
`RunOptions.timeout_in_ms` / `ConfigProto.operation_timeout_in_ms`; lost peers are found by the
channel's keepalives (`grpc_auth.channel_options`) and, during a long call, by Health polls
(`watched_call`).
"""

import re
import threading

import grpc
import numpy as np
from tensorboard.compat.proto import config_pb2, step_stats_pb2

from tensorweave.distributed import compression, tensor_codec
from tensorweave.distributed.protocol import tensorweave_service_pb2 as pb
from tensorweave.distributed.protocol import tensorweave_service_pb2_grpc as pb_grpc
from tensorweave.distributed.transport import grpc_auth, tls
from tensorweave.distributed.worker import WorkerStatus
from tensorweave.framework import errors
from tensorweave.framework.device_spec import DeviceSpec
from tensorweave.framework.graph_io import imports_for_peers
from tensorweave.runtime import config as config_lib
from tensorweave.runtime.session import DeviceAttributes, step_timeout

SETUP_TIMEOUT_SECONDS = 30.0
_RECV_POLL_SECONDS = 0.5
_DELIVERY_GRACE_SECONDS = 5.0
_CODES = {code.value[0]: code for code in grpc.StatusCode}


# -- errors --------------------------------------------------------------------------------------

def status_code(error):
    """The gRPC status code of an exception raised by a service method."""
    if isinstance(error, errors.OpError):
        return _CODES.get(error.error_code, grpc.StatusCode.UNKNOWN)
    if isinstance(error, (ValueError, TypeError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


def op_error(rpc_error, where):
    """The TF error class for a failed call (`grpc.RpcError`), its message naming `where`."""
    code = rpc_error.code() if hasattr(rpc_error, "code") else grpc.StatusCode.UNKNOWN
    details = rpc_error.details() if hasattr(rpc_error, "details") else str(rpc_error)
    cls = errors.exception_type_from_error_code(code.value[0] if code is not None else 2)
    return cls(None, None, f"{details} (from {where})")


def _serve(method):
    """Runs a servicer method, answering its exceptions with the matching gRPC status. Graphs it
    imports come from another process, so their ops name their GraphDef node, not a site here."""
    def wrapper(self, request, context):
        try:
            with imports_for_peers():
                return method(self, request, context)
        except Exception as e:  # noqa: BLE001 - every failure becomes a status, never a crash
            message = e.message if isinstance(e, errors.OpError) else f"{type(e).__name__}: {e}"
            context.abort(status_code(e), message)
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


def _parse_field(message, data, what):
    """`message` parsed from `data`, the bytes of field `what` of a request; InvalidArgumentError
    naming the field when they do not parse."""
    try:
        message.ParseFromString(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise errors.InvalidArgumentError(None, None, f"Cannot parse {what} ({len(data)} bytes) as "
                                          f"{message.DESCRIPTOR.name}: {e}") from None
    return message


class _Unparsable:
    """A request body that is not a message of its method's request type."""

    def __init__(self, reason):
        self.reason = reason


def _lenient_parser(request_type):
    # gRPC answers a deserializer's exception with INTERNAL "Exception deserializing request!"
    # before any servicer code runs; a marker lets the handler answer INVALID_ARGUMENT instead.
    def parse(body):
        try:
            return request_type.FromString(body)
        except Exception as e:  # noqa: BLE001 - DecodeError, RecursionError: the body is bad either way
            return _Unparsable(f"{type(e).__name__}: {e}")
    return parse


def _checked(method, path, request_type):
    def handle(request, context):
        if isinstance(request, _Unparsable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{path}: the request body is not a valid "
                          f"{request_type.DESCRIPTOR.name} ({request.reason})")
        return method(request, context)
    return handle


def service_handler(service_name, servicer):
    """The gRPC handler serving `servicer` as service `service_name` ("Master", "Worker") of
    tensorweave_service.proto. Unlike the generated `add_*Servicer_to_server`, a request body
    that does not parse is answered INVALID_ARGUMENT naming the method (the servicer is not
    called), not INTERNAL. A server's interceptors (the token check) still run first."""
    service = pb.DESCRIPTOR.services_by_name[service_name]
    handlers = {}
    for method in service.methods:
        if method.client_streaming or method.server_streaming:
            raise TypeError(f"{service.full_name}.{method.name} streams; only unary methods are served")
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _checked(getattr(servicer, method.name), f"/{service.full_name}/{method.name}", request_type),
            request_deserializer=_lenient_parser(request_type),
            response_serializer=response_type.SerializeToString)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def make_channel(address, token=None, credentials=None):
    """A channel to `host:port` carrying the cluster token (when there is one) on every call;
    under TLS when `credentials` (`tls.grpc_channel_credentials`) are given."""
    if credentials is None:
        channel = grpc.insecure_channel(address, options=grpc_auth.channel_options())
    else:
        channel = grpc.secure_channel(address, credentials, options=grpc_auth.channel_options())
    return grpc_auth.intercept_channel(channel, token) if token is not None else channel


def _run_options(timeout, trace=False):
    options = config_pb2.RunOptions()
    if timeout is not None:
        options.timeout_in_ms = max(1, int(timeout * 1000))
    if trace:
        options.trace_level = config_pb2.RunOptions.FULL_TRACE
    return options


def _decode_tensors(messages):
    return dict(tensor_codec.from_named_tensor(m) for m in messages)


# -- master --------------------------------------------------------------------------------------

class MasterServicer(pb_grpc.MasterServicer):
    """The Master service of one task, over a transport-neutral `Master`."""

    def __init__(self, master):
        self._master = master
        self._versions = {}
        self._lock = threading.Lock()

    @_serve
    def CreateSession(self, request, context):
        # The config may carry transfer_encoding (tensor_codec.config_to_wire).
        config = _parse_field(config_pb2.ConfigProto(), request.config, "CreateSessionRequest.config")
        handle = self._master.create_session(request.graph_def, config)
        with self._lock:
            self._versions[handle] = 0
        return pb.CreateSessionResponse(session_handle=handle, graph_version=0)

    @_serve
    def ExtendSession(self, request, context):
        # Our master replaces the session's graph, so `graph_def` holds the client's whole graph.
        with self._lock:
            version = self._versions.get(request.session_handle)
            if version is not None and version != request.current_graph_version:
                raise errors.AbortedError(None, None, f"Session {request.session_handle!r} is at graph version "
                                          f"{version}, not {request.current_graph_version}")
        self._master.extend_session(request.session_handle, request.graph_def)
        with self._lock:
            version = self._versions[request.session_handle] = (version or 0) + 1
        return pb.ExtendSessionResponse(new_graph_version=version)

    @_serve
    def RunStep(self, request, context):
        if request.partial_run_handle:
            raise errors.UnimplementedError(None, None, "Partial runs are not supported over gRPC yet")
        options = _parse_field(config_pb2.RunOptions(), request.options, "RunStepRequest.options")
        feeds = _decode_tensors(request.feeds)
        metadata = config_pb2.RunMetadata() if options.trace_level != config_pb2.RunOptions.NO_TRACE else None
        out = self._master.run(request.session_handle, feeds, list(request.fetches), list(request.targets),
                               options, metadata)
        return pb.RunStepResponse(tensors=[tensor_codec.to_named_tensor(n, out[n]) for n in request.fetches],
                                  metadata=metadata.SerializeToString() if metadata is not None else b"")

    def forget(self, session_handles):
        """Drops what this servicer keeps of sessions the master closed on its own (idle ones)."""
        with self._lock:
            for handle in session_handles:
                self._versions.pop(handle, None)

    @_serve
    def CloseSession(self, request, context):
        with self._lock:
            self._versions.pop(request.session_handle, None)
        self._master.close_session(request.session_handle)
        return pb.CloseSessionResponse()

    @_serve
    def ListDevices(self, request, context):
        # With a session: the devices it may use (its device filters), as known when it began.
        if request.session_handle:
            session = self._master.session(request.session_handle)
            devices = [(name, session.incarnations.get(name, 0)) for name in session.devices]
        else:
            devices = [(name, status.incarnation) for status in
                       (worker.get_status() for worker in self._master.workers.values())
                       for name in status.device_names]
        own_task = _task_of(self._master.default_device)
        out = pb.ListDevicesResponse()
        for name, incarnation in devices:
            spec = DeviceSpec.from_string(name)
            field = out.local_device if _task_of(name) == own_task else out.remote_device
            field.add(name=name, device_type=spec.device_type or "", incarnation=incarnation)
        return out

    @_serve
    def Reset(self, request, context):
        # Every session of the master closes, so this servicer forgets their graph versions too.
        self.forget(self._master.reset(list(request.container), list(request.device_filters)))
        return pb.ResetResponse()


def _task_of(device_name):
    spec = DeviceSpec.from_string(device_name)
    return spec.job, spec.replica or 0, spec.task


# -- worker --------------------------------------------------------------------------------------

class WorkerServicer(pb_grpc.WorkerServicer):
    """The Worker service of one task: `worker` runs partitions, `table` holds the step rendezvous."""

    def __init__(self, worker, table, data_channel_port=0):
        self._worker = worker
        self._table = table
        self._data_channel_port = data_channel_port

    @_serve
    def GetStatus(self, request, context):
        status = self._worker.get_status()
        devices = [pb.DeviceAttributes(name=n, device_type=t, incarnation=status.incarnation)
                   for n, t in zip(status.device_names, status.device_types, strict=True)]
        return pb.GetStatusResponse(device_attributes=devices, incarnation=status.incarnation,
                                    task_name=status.task_name, data_channel_port=self._data_channel_port)

    @_serve
    def RegisterGraph(self, request, context):
        handle = self._worker.register_graph(request.session_handle, request.graph_def, request.config)
        return pb.RegisterGraphResponse(graph_handle=handle)

    @_serve
    def DeregisterGraph(self, request, context):
        self._worker.deregister_graph(request.graph_handle)
        return pb.DeregisterGraphResponse()

    @_serve
    def RunGraph(self, request, context):
        return serve_run_graph(self._worker, self._table, request)

    @_serve
    def CleanupGraph(self, request, context):
        self._worker.cleanup_graph(request.step_id)
        self._table.cleanup(request.step_id)
        return pb.CleanupGraphResponse()

    @_serve
    def RecvTensor(self, request, context):
        done = threading.Event()
        box = []
        withdraw = self._table.take(request.step_id, request.rendezvous_key,
                                    lambda value, error: (box.append((value, error)), done.set()))
        # Waits as long as the consumer does: its cancellation (step aborted, deadline) ends this,
        # and takes the waiter back at once, so the consumer's retry of the key can wait for it.
        if not context.add_callback(withdraw):
            withdraw()
        while not done.wait(_RECV_POLL_SECONDS):
            if not context.is_active():
                withdraw()
                raise errors.CancelledError(None, None, f"Receive of {request.rendezvous_key!r} was cancelled")
        value, error = box[0]
        if error is not None:
            raise error
        # The consumer's session encoding; float32 tensors only (others travel under "none").
        encoding = compression.check_encoding(request.encoding or "none")
        return pb.RecvTensorResponse(tensor=tensor_codec.to_named_tensor(request.rendezvous_key, value, encoding))

    @_serve
    def Health(self, request, context):
        return pb.HealthResponse(incarnation=self._worker.get_status().incarnation)

    @_serve
    def CleanupAll(self, request, context):
        self._worker.cleanup_all(list(request.container))
        return pb.CleanupAllResponse()


def watched_call(method, worker_stub, request, timeout, where):
    """Calls `method` (a stub's unary method) for a call that may run long (a step). While it
    runs, the task must answer Worker.Health every keepalive interval K within 2K, or the call is
    cancelled with UnavailableError naming `where`: HTTP/2 keepalives alone did not notice a
    stopped peer during a long call."""
    k = grpc_auth.keepalive_seconds()
    future = method.future(request, timeout=timeout)
    while True:
        try:
            return future.result(timeout=k)
        except grpc.FutureTimeoutError:
            pass
        except grpc.RpcError as e:
            raise op_error(e, where) from None
        try:
            worker_stub.Health(pb.HealthRequest(), timeout=2 * k)
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE) or future.done():
                continue  # an answer, if not a healthy one: the task is there
            future.cancel()
            raise errors.UnavailableError(None, None, f"{where}: the task stopped answering (no Health reply "
                                          f"within {2 * k:g} s: {e.details()})") from None


def serve_run_graph(worker, table, request):
    """The RunGraphResponse to a RunGraphRequest, run on `worker` with the step rendezvous of
    `table`; over gRPC (`WorkerServicer.RunGraph`) or the data channel (`serve_data_call`)."""
    options = _parse_field(config_pb2.RunOptions(), request.options, "RunGraphRequest.options")
    timeout = options.timeout_in_ms / 1000.0 if options.timeout_in_ms > 0 else None
    sends = _decode_tensors(request.sends)
    stats = step_stats_pb2.StepStats() if options.trace_level == config_pb2.RunOptions.FULL_TRACE else None
    out = run_graph_on_table(worker, table, request.graph_handle, request.step_id, sends,
                             list(request.recv_keys), timeout, stats)
    return pb.RunGraphResponse(recvs=[tensor_codec.to_named_tensor(k, out[k]) for k in request.recv_keys],
                               step_stats=stats.SerializeToString() if stats is not None else b"")


# Worker methods a master may call over the data channel (`DataChannelClient.call`): RunGraph, the
# one call of every step, where gRPC's Python stack adds about a millisecond each way.
DATA_CALLS = {"RunGraph": (pb.RunGraphRequest, serve_run_graph)}


def serve_data_call(worker, table, method, payload, max_message_bytes=grpc_auth.DEFAULT_MAX_MESSAGE_BYTES):
    """The serialized response to a data channel call of Worker method `method` whose request
    bytes are `payload` (a uint8 array); raises the OpError whose code gRPC would send as status.
    Requests and responses are held to gRPC's message limit, so a call is refused the same way on
    either path (the data channel's own frame limit is far larger)."""
    entry = DATA_CALLS.get(method)
    if entry is None:
        raise errors.UnimplementedError(None, None, f"Worker method {method[:64]!r} cannot be called over the "
                                        f"data channel (only {sorted(DATA_CALLS)})")
    _check_message_size(payload.nbytes, max_message_bytes, f"{method} request")
    request_type, serve = entry
    try:
        request = _parse_field(request_type(), payload.tobytes(), f"the {method} request")
        with imports_for_peers():
            response = serve(worker, table, request).SerializeToString()
        _check_message_size(len(response), max_message_bytes, f"{method} response")
        return response
    except errors.OpError:
        raise
    except Exception as e:  # noqa: BLE001 - as `_serve` answers it over gRPC
        cls = errors.exception_type_from_error_code(status_code(e).value[0])
        raise cls(None, None, f"{type(e).__name__}: {e}") from None


def _check_message_size(nbytes, limit, what):
    if nbytes > limit:  # gRPC's own words for it, and its status code
        raise errors.ResourceExhaustedError(None, None, f"{what} of {nbytes} bytes is larger than the "
                                            f"{limit}-byte message limit")


def run_graph_on_table(worker, table, graph_handle, step_id, sends, recv_keys, timeout, step_stats=None):
    """`worker.run_graph` with the task's own rendezvous of the step (from `table`)."""
    rendezvous = table.begin_step(step_id)
    try:
        return worker.run_graph(graph_handle, step_id, sends, recv_keys, rendezvous, timeout=timeout,
                                step_stats=step_stats)
    finally:
        table.end_step(step_id)


class GrpcWorkerClient:
    """The worker interface of a remote task over gRPC (what `Master` calls), plus `fetch`, the
    RecvTensor call tensors fall back to without a data channel. The channel connects on first use."""

    def __init__(self, task_name, address, token=None, credentials=None):
        self.task_name = task_name
        self.address = address
        self._channel = make_channel(address, token, credentials)
        self._stub = pb_grpc.WorkerStub(self._channel)
        self._lock = threading.Lock()
        self._session_graphs = {}  # session handle -> graph handles, for close_session
        # `call(task, method, payload, deliver) -> cancel or None` (`PeerTransport.call`): RunGraph
        # goes over the task's data channel when it is connected, else over gRPC.
        self.data_calls = None

    def _call(self, method, request, timeout):
        try:
            return getattr(self._stub, method)(request, timeout=timeout)
        except grpc.RpcError as e:
            raise op_error(e, f"task {self.task_name} at {self.address}, {method}") from None

    def _watched_call(self, method, request, timeout):
        return watched_call(getattr(self._stub, method), self._stub, request, timeout,
                            f"task {self.task_name} at {self.address}, {method}")

    def get_status(self):
        r = self._call("GetStatus", pb.GetStatusRequest(), SETUP_TIMEOUT_SECONDS)
        return WorkerStatus(r.task_name, tuple(d.name for d in r.device_attributes),
                            tuple(d.device_type for d in r.device_attributes), r.incarnation,
                            r.data_channel_port)

    def register_graph(self, session_handle, graph_def_bytes, config=None):
        config = config if isinstance(config, (bytes, type(None))) else tensor_codec.config_to_wire(config)
        r = self._call("RegisterGraph", pb.RegisterGraphRequest(session_handle=session_handle,
                                                                graph_def=graph_def_bytes, config=config or b""),
                       SETUP_TIMEOUT_SECONDS)
        with self._lock:
            self._session_graphs.setdefault(session_handle, set()).add(r.graph_handle)
        return r.graph_handle

    def deregister_graph(self, graph_handle):
        with self._lock:
            for handles in self._session_graphs.values():
                handles.discard(graph_handle)
        self._call("DeregisterGraph", pb.DeregisterGraphRequest(graph_handle=graph_handle), SETUP_TIMEOUT_SECONDS)

    def close_session(self, session_handle):
        with self._lock:
            handles = self._session_graphs.pop(session_handle, set())
        for handle in sorted(handles):
            try:
                self._call("DeregisterGraph", pb.DeregisterGraphRequest(session_handle=session_handle,
                                                                        graph_handle=handle),
                           SETUP_TIMEOUT_SECONDS)
            except errors.NotFoundError:
                pass
        return len(handles)

    def run_graph(self, graph_handle, step_id, sends, recv_keys, rendezvous=None, timeout=None, step_stats=None):
        # `rendezvous` is the master's view; the remote task uses its own step rendezvous.
        request = pb.RunGraphRequest(graph_handle=graph_handle, step_id=step_id,
                                     sends=[tensor_codec.to_named_tensor(k, v) for k, v in sends.items()],
                                     recv_keys=list(recv_keys),
                                     options=_run_options(timeout, step_stats is not None).SerializeToString())
        r = self._data_call("RunGraph", request, pb.RunGraphResponse, timeout)
        if r is None:
            r = self._watched_call("RunGraph", request, timeout)
        if step_stats is not None and r.step_stats:
            stats = step_stats_pb2.StepStats()
            stats.ParseFromString(r.step_stats)
            tensor_codec.merge_step_stats(step_stats, stats)
        return _decode_tensors(r.recvs)

    def _data_call(self, method, request, response_type, timeout):
        """`method` called over the task's data channel: its response, or None when no channel is
        connected (then the caller uses gRPC). The channel's keepalives find a lost task."""
        if self.data_calls is None:
            return None
        done = threading.Event()
        box = []
        payload = np.frombuffer(request.SerializeToString(), np.uint8)
        cancel = self.data_calls(self.task_name, method, payload,
                                 lambda frame, error: (box.append((frame, error)), done.set()))
        if cancel is None:
            return None
        where = f"task {self.task_name} at {self.address}, {method}"
        if not done.wait(timeout):
            cancel(errors.DeadlineExceededError(None, None, f"{method} did not finish within {timeout:g} s"))
            # `cancel` delivers at once, unless the reply came first and is being delivered now.
            if not done.wait(_DELIVERY_GRACE_SECONDS):
                raise errors.DeadlineExceededError(None, None, f"{where}: no answer within {timeout:g} s")
        frame, error = box[0]
        if error is not None:
            raise type(error)(None, None, f"{error.message} (from {where})")
        try:
            return response_type.FromString(frame.array.tobytes())
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
            raise errors.DataLossError(None, None, f"Bad {method} response from {where}: {e}") from None

    def cleanup_graph(self, step_id):
        self._call("CleanupGraph", pb.CleanupGraphRequest(step_id=step_id), SETUP_TIMEOUT_SECONDS)

    def cleanup_all(self, containers=None):
        self._call("CleanupAll", pb.CleanupAllRequest(container=list(containers or [])), SETUP_TIMEOUT_SECONDS)

    def fetch(self, key, step_id, deliver, encoding="none"):
        """Starts RecvTensor for `key`, asking for `encoding`; calls `deliver(value, error, wire_bytes,
        wire_encoding)` once (the last two only for a tensor received); returns `cancel(error)`."""
        future = self._stub.RecvTensor.future(pb.RecvTensorRequest(step_id=step_id, rendezvous_key=key,
                                                                   encoding=encoding))
        cancelled = []

        def done(f):
            if cancelled:
                deliver(None, cancelled[0])
                return
            try:
                tensor = f.result().tensor
                _, value = tensor_codec.from_named_tensor(tensor)
            except grpc.RpcError as e:
                error = op_error(e, f"task {self.task_name} at {self.address}, RecvTensor {key!r}")
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
                    error = errors.UnavailableError(None, None, f"Task {self.task_name} is unreachable or failed: "
                                                    f"{error.message}")
                deliver(None, error)
            except grpc.FutureCancelledError:
                deliver(None, errors.CancelledError(None, None, f"Receive of {key!r} was cancelled"))
            except ValueError as e:
                deliver(None, errors.DataLossError(None, None, f"Bad tensor from task {self.task_name}: {e}"))
            else:
                deliver(value, None, len(tensor.content), tensor.encoding or "none")

        def cancel(error):
            cancelled.append(error)
            future.cancel()  # a finished call is delivered as is; `deliver` runs once either way
        future.add_done_callback(done)
        return cancel

    def close(self):
        self._channel.close()


# -- client session --------------------------------------------------------------------------------

class GrpcSessionRuntime:
    """The client side of `tf.Session("grpc://host:port")`, with the `LocalRuntime` interface:
    the graph goes to that task's Master service, and grows there when the client graph grows."""

    def __init__(self, target, graph, config):
        self.graph = graph
        self.config = config_lib.as_config(config)
        self.address = target[len("grpc://"):]
        self._channel = make_channel(self.address, grpc_auth.token_from(self.config),
                                     tls.grpc_channel_credentials(tls.tls_files(self.config)))
        self._stub = pb_grpc.MasterStub(self._channel)
        self._health = pb_grpc.WorkerStub(self._channel)
        self._extended_at = _graph_size(graph)
        r = self._call("CreateSession", pb.CreateSessionRequest(
            graph_def=graph.as_graph_def().SerializeToString(),
            config=tensor_codec.config_to_wire(self.config), target=target), SETUP_TIMEOUT_SECONDS)
        self.handle, self._version = r.session_handle, r.graph_version
        self._closed = False

    def _call(self, method, request, timeout):
        try:
            return getattr(self._stub, method)(request, timeout=timeout)
        except grpc.RpcError as e:
            raise op_error(e, f"master at {self.address}, {method}") from None

    def run(self, feeds, feed_values, fetches, targets, options, run_metadata):
        if _graph_size(self.graph) != self._extended_at:
            self._extended_at = _graph_size(self.graph)
            r = self._call("ExtendSession", pb.ExtendSessionRequest(
                session_handle=self.handle, graph_def=self.graph.as_graph_def().SerializeToString(),
                current_graph_version=self._version), SETUP_TIMEOUT_SECONDS)
            self._version = r.new_graph_version
        names = [t.name for t in fetches]
        request = pb.RunStepRequest(
            session_handle=self.handle,
            feeds=[tensor_codec.to_named_tensor(t.name, v) for t, v in zip(feeds, feed_values, strict=True)],
            fetches=list(dict.fromkeys(names)), targets=[op.name for op in targets],
            options=options.SerializeToString() if options is not None else b"")
        try:
            r = watched_call(self._stub.RunStep, self._health, request, step_timeout(options, self.config),
                             f"master at {self.address}, RunStep")
        except errors.OpError as e:
            raise with_client_op(e, self.graph) from None
        if run_metadata is not None and r.metadata:
            run_metadata.MergeFromString(r.metadata)  # step_stats of a FULL_TRACE step
        out = _decode_tensors(r.tensors)
        return [out[n] for n in names]

    def list_devices(self):
        """The devices of the cluster this session may use (`tf.Session.list_devices`)."""
        r = self._call("ListDevices", pb.ListDevicesRequest(session_handle=self.handle), SETUP_TIMEOUT_SECONDS)
        return [DeviceAttributes(d.name, d.device_type, d.memory_limit_bytes, d.incarnation)
                for d in [*r.local_device, *r.remote_device]]

    def close(self, timeout=SETUP_TIMEOUT_SECONDS):
        if self._closed:
            return
        self._closed = True
        try:
            self._call("CloseSession", pb.CloseSessionRequest(session_handle=self.handle), timeout)
        finally:
            self._channel.close()


def _graph_size(graph):
    return (len(graph.get_operations()), graph._mutation_version)


def reset(target, containers, config):
    """`tf.Session.reset("grpc://host:port", containers, config)` over gRPC: the server's master
    closes its sessions and clears `containers` (all when empty) on the tasks of its cluster
    that `config.device_filters` match. The call carries the config's cluster token and TLS
    files; its deadline covers the master waiting on every task."""
    config = config_lib.as_config(config)
    address = target[len("grpc://"):]
    channel = make_channel(address, grpc_auth.token_from(config), tls.grpc_channel_credentials(tls.tls_files(config)))
    try:
        pb_grpc.MasterStub(channel).Reset(pb.ResetRequest(container=list(containers),
                                                          device_filters=list(config.device_filters)),
                                          timeout=SETUP_TIMEOUT_SECONDS)
    except grpc.RpcError as e:
        raise op_error(e, f"master at {address}, Reset") from None
    finally:
        channel.close()


# "[[node NAME (defined at SITE)]]", as errors.OpError writes it; SITE may hold parentheses.
_NODE_LINE = re.compile(r"\[\[node (?P<name>\S+) \(defined at (?P<site>.*?)\)\]\]")


def with_client_op(error, graph):
    """`error` from a server, pointing at the op of the client's `graph` it names: the op is set
    as `error.op` and the message says where the client defined it (the server only knows the
    GraphDef node it imported). An error naming no op of `graph` is returned as is."""
    match = _NODE_LINE.search(error.message)
    if match is None:
        return error
    try:
        op = graph.get_operation_by_name(match["name"])
    except (KeyError, ValueError):
        return error  # a node the partitioner made (_recv_0, _send_1), not one of the client's
    message = (error.message[:match.start("site")] + op.creation_site + error.message[match.end("site"):])
    out = type(error)(error.node_def, None, message)
    out.op = op
    return out
