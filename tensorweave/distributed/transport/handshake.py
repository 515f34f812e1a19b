"""The data channel handshake (DESIGN.md §3, "Security"): proves knowledge of the cluster token
without sending it.

    server -> client   b"TWH1", server nonce (32)
    client -> server   b"TWH1", client nonce (32), name length u8, task name,
                       HMAC-SHA256(token, b"tw-client" + server nonce + client nonce + task name)
    server -> client   status u8 (0 accepted, 1 rejected), HMAC-SHA256(token, b"tw-server" +
                       client nonce + server nonce) (zeros when rejected)

With `token=None` authentication is off (the MACs are zeros and unchecked).
"""

import hashlib
import hmac
import secrets
import time

from tensorweave.framework.errors import UnauthenticatedError, UnavailableError

HANDSHAKE_MAGIC = b"TWH1"
NONCE_BYTES = 32
MAX_TASK_NAME_BYTES = 255
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
_MAC_BYTES = hashlib.sha256().digest_size
_NO_MAC = bytes(_MAC_BYTES)
_ACCEPTED, _REJECTED = 0, 1


class HandshakeError(Exception):
    """The peer failed the data channel handshake (bad token, bad bytes, or too slow)."""


def token_bytes(token):
    """The cluster token as bytes (None stays None: no authentication); ValueError if it is empty
    or blank, which is no secret. gRPC metadata and the data channel both use it."""
    if token is None:
        return None
    data = token.encode("utf-8") if isinstance(token, str) else bytes(token)
    if not data.strip():
        raise ValueError("An empty cluster token is not a secret; set a non-empty token or none at all")
    return data


def _mac(token, *parts):
    return _NO_MAC if token is None else hmac.new(token, b"".join(parts), hashlib.sha256).digest()


def _recv_exact(sock, n, deadline=None):
    """Reads exactly n bytes; with a monotonic `deadline` the whole read (not each recv) is bounded."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HandshakeError("handshake deadline passed")
            sock.settimeout(remaining)
        k = sock.recv_into(view[got:])
        if k == 0:
            raise HandshakeError(f"connection closed during the handshake ({got} of {n} bytes)")
        got += k
    return bytes(buf)


def server_handshake(sock, token, deadline=None):
    """Runs the server side on a connected socket; returns the client's task name or raises HandshakeError.

    `deadline` (time.monotonic() value) bounds the whole exchange, so a slow trickle cannot hold it open.
    """
    server_nonce = secrets.token_bytes(NONCE_BYTES)
    sock.sendall(HANDSHAKE_MAGIC + server_nonce)
    head = _recv_exact(sock, len(HANDSHAKE_MAGIC) + NONCE_BYTES + 1, deadline)
    if head[:4] != HANDSHAKE_MAGIC:
        raise HandshakeError(f"bad handshake magic {head[:4]!r}")
    client_nonce, name_len = head[4:4 + NONCE_BYTES], head[-1]
    rest = _recv_exact(sock, name_len + _MAC_BYTES, deadline)
    name, client_mac = rest[:name_len], rest[name_len:]
    expected = _mac(token, b"tw-client", server_nonce, client_nonce, name)
    if token is not None and not hmac.compare_digest(client_mac, expected):
        sock.sendall(bytes([_REJECTED]) + _NO_MAC)
        raise HandshakeError("client failed authentication (wrong cluster token)")
    try:
        task_name = name.decode("utf-8")
    except UnicodeDecodeError:
        raise HandshakeError("task name is not valid utf-8") from None
    sock.sendall(bytes([_ACCEPTED]) + _mac(token, b"tw-server", client_nonce, server_nonce))
    return task_name


def client_handshake(sock, token, task_name, peer=""):
    """Runs the client side on a connected socket; raises UnauthenticatedError or UnavailableError."""
    name = task_name.encode("utf-8")
    if len(name) > MAX_TASK_NAME_BYTES:
        raise ValueError(f"task name of {len(name)} bytes exceeds {MAX_TASK_NAME_BYTES}")
    try:
        hello = _recv_exact(sock, len(HANDSHAKE_MAGIC) + NONCE_BYTES)
        if hello[:4] != HANDSHAKE_MAGIC:
            raise UnavailableError(message=f"{peer} is not a data channel server (bad handshake magic)")
        server_nonce, client_nonce = hello[4:], secrets.token_bytes(NONCE_BYTES)
        sock.sendall(HANDSHAKE_MAGIC + client_nonce + bytes([len(name)]) + name
                     + _mac(token, b"tw-client", server_nonce, client_nonce, name))
        reply = _recv_exact(sock, 1 + _MAC_BYTES)
    except (HandshakeError, OSError) as e:
        raise UnavailableError(message=f"Data channel handshake with {peer} failed: {e}") from e
    if reply[0] != _ACCEPTED:
        raise UnauthenticatedError(message=f"Data channel server {peer} rejected our cluster token")
    if not hmac.compare_digest(reply[1:], _mac(token, b"tw-server", client_nonce, server_nonce)):
        raise UnauthenticatedError(message=f"Data channel server {peer} could not prove the cluster token")
