"""Tensors between tasks: pulled over the data channel, with gRPC's RecvTensor as the fallback.

DESIGN.md §3 ("Wire"): gRPC's Python stack moves large payloads several times slower than a
plain socket, so a task's step rendezvous fetches a tensor made on a peer (`PeerTransport.fetch`)
over a `DataChannelClient` to that peer's data channel. The peer's data port is learnt from its
GetStatus reply (a cluster spec names one address per task); the connection is made on first
use, kept for later steps, and made again after a loss. When the peer has no data channel, or
its data port cannot be reached while its gRPC port can, fetches use Worker.RecvTensor for a while
(`FALLBACK_SECONDS`) before the data channel is tried again.

`answer_request` is the producer's side: a peer's pull of "<step id>;<rendezvous key>" waits on
the task's step rendezvous for the value, then answers with it under the encoding asked for.
"""

import math
import threading
import time

from tensorweave.distributed import compression
from tensorweave.distributed.transport.data_channel import DataChannelClient
from tensorweave.framework import errors

FALLBACK_SECONDS = 30.0


def answer_request(table, peer, what, encoding, reply):
    """Answers a data channel pull of `what` ("<step id>;<key>") from `table` (a StepRendezvousTable);
    returns the function that withdraws the wait (`DataChannelServer` calls it if the requester goes)."""
    step, sep, key = what.partition(";")
    if not sep or not step.isdigit():
        reply(error=errors.InvalidArgumentError(None, None, f"Bad tensor request {what[:80]!r} from {peer}: "
                                                "expected \"<step id>;<rendezvous key>\""))
        return

    def done(value, error):
        if error is not None:
            reply(error=error)
            return
        try:
            wire, meta, wire_encoding = compression.encode_array(value, encoding)
        except ValueError as e:
            reply(error=errors.InvalidArgumentError(None, None, f"Cannot send {key!r} under {encoding!r}: {e}"))
            return
        reply(array=wire, encoding=wire_encoding, meta=meta)

    return table.take(int(step), key, done)  # withdrawn if the requester's connection ends first


class _Fetch:
    """One fetch: `cancel` works before and after the transport's own request has started."""

    def __init__(self, deliver):
        self.deliver = deliver
        self._lock = threading.Lock()
        self._cancel_request = None
        self._cancelled = None

    def started(self, cancel_request):
        with self._lock:
            self._cancel_request = cancel_request
            cancelled = self._cancelled
        if cancelled is not None:
            cancel_request(cancelled)

    def cancel(self, error):
        with self._lock:
            self._cancelled = error
            cancel_request = self._cancel_request
        if cancel_request is not None:
            cancel_request(error)
        else:
            self.deliver(None, error)  # the rendezvous delivers once; a later reply is dropped


class _Peer:
    def __init__(self, task, client, host):
        self.task = task
        self.client = client  # GrpcWorkerClient: GetStatus, and RecvTensor as the fallback
        self.host = host
        self.lock = threading.Lock()
        self.channel = None
        self.waiting = None  # fetches queued while a connection is being made, else None
        self.fallback_until = -math.inf


class PeerTransport:
    """The fetches of one task's step rendezvous (`fetch_remote` of `StepRendezvousTable`).

    peers: {task name: (GrpcWorkerClient, host)} of the other tasks. token / ssl_context: as
    for `DataChannelClient`. keepalive_interval: seconds between data channel pings.
    """

    def __init__(self, task_name, peers, token=None, *, ssl_context=None, keepalive_interval=10.0,
                 clock=time.monotonic):
        self.task_name = task_name
        self._peers = {task: _Peer(task, client, host) for task, (client, host) in peers.items()}
        self._token = token
        self._ssl = ssl_context
        self._keepalive = keepalive_interval
        self._clock = clock
        self._closed = False

    def fetch(self, task, key, step_id, deliver, encoding="none"):
        """Starts fetching `key` of step `step_id` from `task`; returns `cancel(error)`."""
        peer = self._peers.get(task)
        if peer is None:
            deliver(None, errors.InvalidArgumentError(None, None, f"Rendezvous key {key!r} names task {task}, "
                                                      "which is not in the cluster"))
            return lambda error: None
        fetch = _Fetch(deliver)
        self._start(peer, fetch, key, step_id, encoding)
        return fetch.cancel

    def call(self, task, method, payload, deliver):
        """Calls Worker method `method` of `task` over its data channel (`DataChannelClient.call`)
        and returns `cancel(error)`; or returns None at once, without calling `deliver`, when no
        channel to `task` is connected now (one is then made for later calls, as a fetch makes it)."""
        peer = self._peers.get(task)
        if peer is None or self._closed:
            return None
        with peer.lock:
            channel = peer.channel if peer.channel is not None and peer.channel.alive else None
            if channel is None and peer.waiting is None and self._clock() >= peer.fallback_until:
                self._begin_connect(peer)
        return None if channel is None else channel.call(method, payload, deliver)

    def channels(self):
        """{task: data channel address} of the live connections (for diagnostics and tests)."""
        return {p.task: p.channel.address for p in self._peers.values()
                if p.channel is not None and p.channel.alive}

    def close(self):
        """Closes every data channel connection; later fetches fail."""
        self._closed = True
        for peer in self._peers.values():
            with peer.lock:
                channel, peer.channel = peer.channel, None
            if channel is not None:
                channel.close()

    def _start(self, peer, fetch, key, step_id, encoding):
        with peer.lock:
            channel = peer.channel if peer.channel is not None and peer.channel.alive else None
            use_grpc = channel is None and self._clock() < peer.fallback_until
            if channel is None and not use_grpc:
                if peer.waiting is None:
                    self._begin_connect(peer)
                peer.waiting.append((fetch, key, step_id, encoding))
                return
        if use_grpc:
            fetch.started(peer.client.fetch(key, step_id, fetch.deliver, encoding))
        else:
            fetch.started(self._request(channel, peer.task, key, step_id, encoding, fetch.deliver))

    def _begin_connect(self, peer):
        """Starts connecting to `peer` (under its lock; fetches queue in `peer.waiting` meanwhile).
        Connecting blocks (GetStatus, connect, handshake), so it runs on a thread of its own."""
        peer.waiting = []
        threading.Thread(target=self._connect, args=(peer,), daemon=True, name=f"tw-connect:{peer.task}").start()

    def _connect(self, peer):
        channel, error = None, None
        try:
            status = peer.client.get_status()
            port = getattr(status, "data_channel_port", 0)
            if port and not self._closed:
                try:
                    channel = DataChannelClient(f"{peer.host}:{port}", self._token, self.task_name,
                                                ssl_context=self._ssl, keepalive_interval=self._keepalive)
                except errors.UnavailableError:
                    channel = None  # gRPC answers but the data port does not: fall back below
        except errors.OpError as e:
            error = e
        with peer.lock:
            if channel is not None:
                peer.channel = channel
            elif error is None:
                peer.fallback_until = self._clock() + FALLBACK_SECONDS
            waiting, peer.waiting = peer.waiting or [], None
        for fetch, key, step_id, encoding in waiting:
            if error is not None:
                fetch.deliver(None, errors.UnavailableError(
                    None, None, f"Task {peer.task} is unreachable: {error.message}"))
            else:
                self._start(peer, fetch, key, step_id, encoding)

    @staticmethod
    def _request(channel, task, key, step_id, encoding, deliver):
        def on_reply(frame, error):
            if error is not None:
                if isinstance(error, errors.UnavailableError):
                    error = errors.UnavailableError(None, None, f"Task {task} is unreachable or failed: "
                                                    f"{error.message}")
                deliver(None, error)
                return
            try:
                value = compression.decode_array(frame.array, frame.encoding, frame.meta)
            except ValueError as e:
                deliver(None, errors.DataLossError(None, None, f"Bad tensor {key!r} from task {task}: {e}"))
                return
            deliver(value, None, frame.array.nbytes, frame.encoding)

        return channel.request(f"{step_id};{key}", on_reply, encoding)
