"""Where a small tensor's round trip goes: four clients against one server process.

    python -m bench.round_trip [--pin CORE] [--quick] [--json PATH]

The server process runs a data channel server and a plain socket server, both answering a
request with the same 1 KB float32 tensor. The client process times, in blocks that take turns:

  socket       a length-prefixed request, the reply received into a preallocated buffer
  bare client  ready-made REQUEST frame bytes sent to the data channel server, the reply frame's
               bytes received (no framing or checks on the client: the server's share)
  framing      a client that frames the request and parses and checks the reply in the thread
               that waits (the client's own Python work, no hand-off)
  data channel DataChannelClient.request, its reader thread handing the reply to the waiting
               thread through a SimpleQueue, as it hands replies to a step's executor

`--pin CORE` holds both processes to one core, so no wake-up crosses cores: what is left is the
work. `bench.distributed` reports the data channel against the socket; this says why they differ.
"""

import argparse
import os
import queue
import socket
import struct
import subprocess
import sys
import threading

import numpy as np

from bench import write_json
from bench.distributed_child import measure_interleaved
from bench.distributed_child import recv_exact_into as _recv_exact

_LEN = struct.Struct("<Q")
TOKEN = "round-trip-benchmark-token"
NBYTES = 1024
METHODS = ("socket", "bare client", "framing", "data channel")
FULL = dict(repeats=7, target_s=0.15, warmup_s=0.3, min_warmup=200)
QUICK = dict(repeats=3, target_s=0.02, warmup_s=0.02, min_warmup=20)
TIMEOUT_S = 10.0


def serve():
    """The server process: prints "<data channel port> <socket port>", serves until stdin closes."""
    from tensorweave.distributed.transport.data_channel import DataChannelServer

    array = np.ones(NBYTES // 4, np.float32)
    channel = DataChannelServer("127.0.0.1", 0, token=TOKEN, on_request=lambda *args: args[-1](array=array))
    listener = socket.create_server(("127.0.0.1", 0))

    def plain():
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head, reply = bytearray(_LEN.size), _LEN.pack(NBYTES) + array.tobytes()
        with conn:
            while True:
                try:
                    _recv_exact(conn, memoryview(head))
                    _recv_exact(conn, memoryview(bytearray(_LEN.unpack(head)[0])))
                except ConnectionError:
                    return
                conn.sendall(reply)

    threading.Thread(target=plain, daemon=True).start()
    print(channel.port, listener.getsockname()[1], flush=True)
    sys.stdin.read()
    channel.stop()


def _clients(dc_port, sock_port):
    """step() per method, and a close() for all of them."""
    from tensorweave.distributed.transport.data_channel import DataChannelClient
    from tensorweave.distributed.transport.frame_writer import FrameWriter
    from tensorweave.distributed.transport.frames import FrameLimits, FrameReader, FrameType, encode_frame
    from tensorweave.distributed.transport.handshake import client_handshake, token_bytes

    def connect(port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    plain = connect(sock_port)
    reply = memoryview(bytearray(_LEN.size + NBYTES))

    def socket_step():
        plain.sendall(_LEN.pack(4) + b"1024")
        _recv_exact(plain, reply)

    bare = connect(dc_port)
    client_handshake(bare, token_bytes(TOKEN), "/job:bench/task:0", peer="bench")
    request = encode_frame("1;x", None, frame_type=FrameType.REQUEST)[0]
    frame_reply = memoryview(bytearray(len(encode_frame("1", np.ones(NBYTES // 4, np.float32))[0])))

    def bare_step():
        bare.sendall(request)
        _recv_exact(bare, frame_reply)

    framed = connect(dc_port)
    client_handshake(framed, token_bytes(TOKEN), "/job:bench/task:1", peer="bench")
    writer, reader, seq = FrameWriter(framed, FrameLimits()), FrameReader(framed, FrameLimits()), [0]

    def framing_step():
        seq[0] += 1
        writer.write(FrameType.REQUEST, f"{seq[0]};x")
        if reader.read().array.nbytes != NBYTES:
            raise RuntimeError("framing: wrong reply")

    channel = DataChannelClient(f"127.0.0.1:{dc_port}", TOKEN, "/job:bench/task:2")
    replies = queue.SimpleQueue()

    def channel_step():
        channel.request("x", lambda frame, error: replies.put((frame, error)))
        frame, error = replies.get(timeout=TIMEOUT_S)
        if error is not None:
            raise error

    def close():
        channel.close()
        for sock in (plain, bare, framed):
            sock.close()

    return dict(zip(METHODS, (socket_step, bare_step, framing_step, channel_step), strict=True)), close


def measure(steps, repeats, target_s, warmup_s, min_warmup):
    """Median microseconds per round trip of each of `steps` (name -> step()), their timed blocks
    taking turns (`bench.distributed_child.measure_interleaved`)."""
    timed = measure_interleaved({name: (lambda i, step=step: step()) for name, step in steps.items()},
                                repeats, target_s, warmup_s, min_warmup)
    return {name: sorted(per)[len(per) // 2] * 1e6 for name, (per, _) in timed.items()}


def run(pin=None, quick=False):
    """Starts the server process, measures, stops it; returns {method: microseconds}."""
    if pin is not None:
        os.sched_setaffinity(0, {pin})  # the server process inherits it
    server = subprocess.Popen([sys.executable, "-m", "bench.round_trip", "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    close = None
    try:
        ports = _read_ports(server)
        steps, close = _clients(*ports)
        return measure(steps, **(QUICK if quick else FULL))
    finally:
        if close is not None:
            close()
        server.stdin.close()
        try:
            server.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(TIMEOUT_S)


def _read_ports(server):
    got = []
    reader = threading.Thread(target=lambda: got.append(server.stdout.readline()), daemon=True)
    reader.start()
    reader.join(TIMEOUT_S * 3)
    if not got or len(got[0].split()) != 2:
        raise RuntimeError(f"the round-trip server did not start (it said {got!r})")
    return [int(p) for p in got[0].split()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pin", type=int, metavar="CORE", help="hold both processes to this core")
    ap.add_argument("--quick", action="store_true", help="a few short blocks (a smoke run)")
    ap.add_argument("--json", metavar="PATH", help="also write the results here")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve()
    result = run(args.pin, args.quick)
    where = f"both processes on core {args.pin}" if args.pin is not None else "unpinned"
    print(f"1 KB round trip, {where} (median of {(QUICK if args.quick else FULL)['repeats']} blocks, "
          "the methods' blocks taking turns)")
    for name in METHODS:
        print(f"  {name:<14}{result[name]:8.1f} us   {result[name] / result['socket']:5.2f}x the socket")
    if args.json:
        write_json(dict(pin=args.pin, microseconds=result), args.json)


if __name__ == "__main__":
    main()
