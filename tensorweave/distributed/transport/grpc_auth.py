"""Cluster-token authentication and channel settings for the gRPC control plane (DESIGN.md §3).

Every RPC carries the metadata `authorization: Bearer <cluster token>`. `TokenAuthInterceptor`
checks it on the server before the method's handler runs; a call without a valid token is
answered `UNAUTHENTICATED` by a handler that never reads the request, so a stranger's bytes are
never parsed. `TokenAuthClientInterceptor` (or `intercept_channel`) adds the header on the client.

`server_options` and `channel_options` bound message sizes on both sides and turn on HTTP/2
keepalive pings: lost peers are found by keepalives and connection errors, not step deadlines.
One interval K (`keepalive_seconds`: $TENSORWEAVE_KEEPALIVE_SECONDS, default 10 s) paces both
channels of a task: clients ping every K and give up after 2K more; servers accept pings every
K/2 (a server answers pings that come faster with GOAWAY "too_many_pings"), so every task of a
cluster must use the same K.
"""

import collections
import hashlib
import hmac
import os

import grpc

from tensorweave.distributed.transport.handshake import token_bytes

AUTH_METADATA_KEY = "authorization"
_BEARER = "Bearer "
TOKEN_ENV = "TENSORWEAVE_CLUSTER_TOKEN"
TOKEN_FILE_ENV = "TENSORWEAVE_CLUSTER_TOKEN_FILE"

DEFAULT_MAX_MESSAGE_BYTES = 256 << 20  # bulk tensors use the data channel; this bounds fallbacks
KEEPALIVE_ENV = "TENSORWEAVE_KEEPALIVE_SECONDS"
DEFAULT_KEEPALIVE_SECONDS = 10.0
_MAX_TOKEN_FILE_BYTES = 64 << 10


def _token_bytes(token):
    if token is None:
        raise ValueError("A cluster token is required (see grpc_auth.token_from)")
    return token_bytes(token)


def _digest(data):
    # compare_digest leaks the length of its inputs; comparing fixed-size digests hides it.
    return hashlib.sha256(data).digest()


def auth_metadata(token):
    """The `(key, value)` metadata pair that authenticates one call with `token`."""
    return ((AUTH_METADATA_KEY, _BEARER + _token_bytes(token).decode("utf-8")),)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Rejects every call whose `authorization` metadata is not `Bearer <token>`.

    The check runs before the method's handler is looked up, so an unauthenticated request body
    is never deserialized; the rejecting handler does not even read it.
    """

    def __init__(self, token):
        self._expected = _digest(_token_bytes(token))
        self._reject = grpc.stream_stream_rpc_method_handler(_reject_unauthenticated)

    def intercept_service(self, continuation, handler_call_details):
        if self._authorized(handler_call_details.invocation_metadata or ()):
            return continuation(handler_call_details)
        return self._reject

    def _authorized(self, metadata):
        values = [v for k, v in metadata if k == AUTH_METADATA_KEY]
        if len(values) != 1:  # missing, or ambiguous: two headers where one might be checked
            return False
        value = values[0]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not value.startswith(_BEARER):
            return False
        presented = value[len(_BEARER):].encode("utf-8")
        return hmac.compare_digest(_digest(presented), self._expected)


def _reject_unauthenticated(request_iterator, context):
    # A stream-stream handler with no deserializer: the body is neither read nor parsed, whatever
    # the method's real arity. The message names no token and no method.
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid cluster token")


class _CallDetails(
        collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class TokenAuthClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                                 grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call on a channel (plaintext or TLS)."""

    def __init__(self, token):
        self._metadata = auth_metadata(token)

    def _details(self, details):
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != AUTH_METADATA_KEY]
        return _CallDetails(details.method, details.timeout, metadata + list(self._metadata),
                            details.credentials, getattr(details, "wait_for_ready", None),
                            getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


def intercept_channel(channel, token):
    """`channel` with the cluster token attached to every call."""
    return grpc.intercept_channel(channel, TokenAuthClientInterceptor(token))


def _check_max_message_bytes(max_message_bytes):
    if not isinstance(max_message_bytes, int) or not 0 < max_message_bytes < 1 << 31:
        raise ValueError(f"max_message_bytes must be an int in [1, 2**31), got {max_message_bytes!r}")


def keepalive_seconds(env=os.environ):
    """The keepalive interval K in seconds: $TENSORWEAVE_KEEPALIVE_SECONDS, else 10."""
    value = env.get(KEEPALIVE_ENV)
    if not value:
        return DEFAULT_KEEPALIVE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0.05 <= seconds <= 3600:
        raise ValueError(f"${KEEPALIVE_ENV} must be a number of seconds in [0.05, 3600], got {value!r}")
    return seconds


def server_options(max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES, keepalive_s=None):
    """gRPC server options: message size limits both ways and keepalive for lost clients.

    The server pings idle connections too, every 3K (a master whose client vanished between
    steps would otherwise keep the session), and accepts client pings every K/2 or slower.
    """
    _check_max_message_bytes(max_message_bytes)
    k_ms = 1000 * (keepalive_seconds() if keepalive_s is None else keepalive_s)
    return (
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", int(3 * k_ms)),
        ("grpc.keepalive_timeout_ms", int(2 * k_ms)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", int(k_ms / 2)),
        ("grpc.http2.max_ping_strikes", 2),
    )


def channel_options(max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES, keepalive_s=None):
    """gRPC channel options: message size limits both ways and keepalive pings every K seconds.

    Pings continue while no call is active (workers sit idle between steps) and without data
    (by default gRPC stops after two pings with no data frames between them).
    """
    _check_max_message_bytes(max_message_bytes)
    k_ms = 1000 * (keepalive_seconds() if keepalive_s is None else keepalive_s)
    return (
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", int(k_ms)),
        ("grpc.keepalive_timeout_ms", int(2 * k_ms)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # A task restarting or still starting is tried again within a second, not after gRPC's
        # default backoff (growing to two minutes), so sessions reach it as soon as it is up.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    )


def token_from(config=None, env=os.environ, token_file=None):
    """The cluster token, or None when none is configured.

    Looked up in order: `config.cluster_token` (a `tf.ConfigProto` or a dict), the file
    `token_file`, the environment variable TENSORWEAVE_CLUSTER_TOKEN, then the file named by
    TENSORWEAVE_CLUSTER_TOKEN_FILE. Surrounding whitespace is stripped; a configured token that
    is empty raises ValueError rather than silently turning authentication off.
    """
    configured = config.get("cluster_token") if isinstance(config, dict) else getattr(
        config, "cluster_token", None)
    if configured is not None:
        return _non_empty(configured, "config.cluster_token")
    if token_file is not None:
        return _read_token_file(token_file)
    if env.get(TOKEN_ENV) is not None:
        return _non_empty(env[TOKEN_ENV], f"${TOKEN_ENV}")
    if env.get(TOKEN_FILE_ENV):
        return _read_token_file(env[TOKEN_FILE_ENV])
    return None


def _non_empty(token, source):
    token = (token.decode("utf-8") if isinstance(token, bytes) else str(token)).strip()
    if not token:
        raise ValueError(f"The cluster token from {source} is empty; set a non-empty secret")
    return token


def _read_token_file(path):
    with open(path, "rb") as f:
        data = f.read(_MAX_TOKEN_FILE_BYTES + 1)
    if len(data) > _MAX_TOKEN_FILE_BYTES:
        raise ValueError(f"Cluster token file {path} is larger than {_MAX_TOKEN_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"Cluster token file {path} is not UTF-8 text") from e
    return _non_empty(text, f"file {path}")
