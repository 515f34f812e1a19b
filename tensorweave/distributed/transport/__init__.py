"""Transports between tasks: the authenticated tensor data channel and its frames (DESIGN.md §3)."""

from tensorweave.distributed.transport.data_channel import (
    ChannelStats,
    DataChannelClient,
    DataChannelServer,
)
from tensorweave.distributed.transport.handshake import (
    HandshakeError,
    client_handshake,
    server_handshake,
)
from tensorweave.distributed.transport.frames import (
    ENCODINGS,
    META_FIELDS,
    Frame,
    FrameError,
    FrameLimits,
    FrameReader,
    FrameType,
    dtype_enum,
    encode_frame,
)

__all__ = [
    "ENCODINGS",
    "META_FIELDS",
    "ChannelStats",
    "DataChannelClient",
    "DataChannelServer",
    "Frame",
    "FrameError",
    "FrameLimits",
    "FrameReader",
    "FrameType",
    "HandshakeError",
    "client_handshake",
    "dtype_enum",
    "encode_frame",
    "server_handshake",
]
