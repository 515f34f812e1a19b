"""One process of the distributed benchmark (`bench.distributed` starts and drives these).

    python -m bench.distributed_child transfer-server --sizes 1024,1048576
    python -m bench.distributed_child transfer-client --ports DC,SOCK,GRPC --sizes ... [--quick]
    python -m bench.distributed_child task --framework tensorweave --cluster JSON --job ps --index 0
    python -m bench.distributed_child single --framework tf --measure-s 5

Each prints JSON events, one a line, on stdout (everything else the frameworks print goes to
stderr) and takes one-word commands ("go", "exit") a line at a time on stdin, so the parent can
start all workers of a configuration at the same moment. End of stdin means the parent is gone:
the process exits. The cluster token comes from $BENCH_CLUSTER_TOKEN, never from the command line.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import queue
import select
import socket
import struct
import sys
import threading
import time
import traceback

import numpy as np

THREADS = 2  # intra/inter-op threads, as in the single-process benchmark (bench.run_one)
TOKEN_ENV = "BENCH_CLUSTER_TOKEN"
STEP_TIMEOUT_MS = 60_000  # a step that takes longer has hung: fail it rather than wait forever
SETUP_TIMEOUT_S = 120.0
GRPC_METHOD = "/bench.Transfer/Get"
_LEN = struct.Struct("<Q")
_JSON_FD = None


# --- the parent <-> child protocol ----------------------------------------------------------------

def emit(**event):
    """Writes one JSON event line for the parent."""
    os.write(_JSON_FD, (json.dumps(event) + "\n").encode())


class Commands:
    """Reads one-word command lines from stdin, each wait bounded by a timeout."""

    def __init__(self):
        self._buf = b""

    def next(self, timeout):
        """The next command, or None if none came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([0], [], [], left)[0]:
                return None
            chunk = os.read(0, 4096)
            if not chunk:
                raise SystemExit("parent closed stdin")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode().strip()

    def wait(self, expected, timeout):
        got = self.next(timeout)
        if got is None:
            raise TimeoutError(f"no {expected!r} from the parent within {timeout:.0f}s")
        if got != expected:
            raise RuntimeError(f"expected command {expected!r}, got {got!r}")


def array_of(nbytes, seed=0):
    return np.random.default_rng(seed).standard_normal(nbytes // 4).astype(np.float32)


def recv_exact_into(sock, view):
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("peer closed the connection")
        got += n


# --- tensor transfer: the serving end -------------------------------------------------------------

def plain_socket_server(arrays):
    """A thread answering length-prefixed requests (a key) with length-prefixed raw bytes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = bytearray(_LEN.size)
        with conn:
            while True:
                try:
                    recv_exact_into(conn, memoryview(head))
                except ConnectionError:
                    return
                key = bytearray(_LEN.unpack(head)[0])
                recv_exact_into(conn, memoryview(key))
                payload = arrays[key.decode()].view(np.uint8).data
                if payload.nbytes < 64 << 10:
                    conn.sendall(_LEN.pack(payload.nbytes) + payload.tobytes())
                else:
                    conn.sendall(_LEN.pack(payload.nbytes))
                    conn.sendall(payload)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def grpc_server(arrays):
    """A Python gRPC server with one unary method returning the requested tensor's bytes."""
    import concurrent.futures

    import grpc

    payloads = {key: a.tobytes() for key, a in arrays.items()}
    handler = grpc.method_handlers_generic_handler("bench.Transfer", {
        "Get": grpc.unary_unary_rpc_method_handler(lambda request, context: payloads[request.decode()])})
    limit = [("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4), handlers=[handler], options=limit)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def transfer_server(args, commands):
    from tensorweave.distributed.transport.data_channel import DataChannelServer

    token = os.environ[TOKEN_ENV]
    arrays = {str(n): array_of(n) for n in args.sizes}

    def on_request(*args):  # (peer, [step id,] key, encoding, reply): the last three agree
        key, reply = args[-3], args[-1]
        reply(array=arrays[key])

    dc = DataChannelServer("127.0.0.1", 0, token=token, on_request=on_request)
    sock_port = plain_socket_server(arrays)
    grpc_srv, grpc_port = grpc_server(arrays)
    emit(event="up", ports=[dc.port, sock_port, grpc_port])
    try:
        commands.wait("exit", SETUP_TIMEOUT_S * 5)
    finally:
        grpc_srv.stop(0)
        dc.stop()


# --- tensor transfer: the pulling end -------------------------------------------------------------

def transfer_client(args, commands):
    import grpc

    from bench.run_one import FULL, QUICK
    from tensorweave.distributed.transport.data_channel import DataChannelClient

    token = os.environ[TOKEN_ENV]
    dc_port, sock_port, grpc_port = args.ports
    timing = dict(QUICK if args.quick else FULL)
    results = []

    # Plain socket: request a key, receive the reply straight into a preallocated buffer.
    sock = socket.create_connection(("127.0.0.1", sock_port), timeout=SETUP_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffers = {str(n): bytearray(n) for n in args.sizes}
    head = bytearray(_LEN.size)

    def plain(key):
        buf = memoryview(buffers[key])
        request = key.encode()

        def step(i):
            sock.sendall(_LEN.pack(len(request)) + request)
            recv_exact_into(sock, memoryview(head))
            if _LEN.unpack(head)[0] != len(buf):
                raise RuntimeError("plain socket: wrong reply size")
            recv_exact_into(sock, buf)
        return step

    # Data channel: pull with `request`, the reply delivered on the channel's reader thread to
    # this one through a queue.SimpleQueue, as a step's executor waits for its receives.
    client = DataChannelClient(f"127.0.0.1:{dc_port}", token, "/job:bench/replica:0/task:1")
    takes_step_id = "step_id" in inspect.signature(client.request).parameters  # (key, [step_id,] deliver)

    def channel(key):
        replies = queue.SimpleQueue()

        def deliver(value, error, *wire):  # value: the array, or the reply Frame holding it
            replies.put((getattr(value, "array", value), error))

        def step(i):
            if takes_step_id:
                client.request(key, i, deliver)
            else:
                client.request(key, deliver)
            try:
                value, error = replies.get(timeout=SETUP_TIMEOUT_S)
            except queue.Empty:
                raise TimeoutError(f"data channel request {key} got no reply") from None
            if error is not None:
                raise error
            if value.nbytes != int(key):
                raise RuntimeError("data channel: wrong reply size")
        return step

    limit = [("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)]
    grpc_channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=limit)
    get = grpc_channel.unary_unary(GRPC_METHOD)

    def grpc_call(key):
        request = key.encode()

        def step(i):
            reply = get(request, timeout=SETUP_TIMEOUT_S)
            np.frombuffer(reply, np.float32)  # what a receiver would do with it: no copy
            if len(reply) != int(key):
                raise RuntimeError("gRPC: wrong reply size")
        return step

    methods = [("socket", plain), ("data_channel", channel)]
    if not args.no_grpc:
        methods.append(("grpc", grpc_call))
    try:
        for nbytes in args.sizes:
            steps = {name: make(str(nbytes)) for name, make in methods
                     if name != "grpc" or nbytes <= args.grpc_max_bytes}
            t = dict(timing)
            if nbytes >= 16 << 20:  # a few transfers per block are enough, and gRPC is slow
                t.update(warmup_s=min(t["warmup_s"], 0.2), min_warmup=2)
            # gRPC (for reference) after the pair it would disturb: its threads stay busy after a call.
            grpc_step = {"grpc": steps.pop("grpc")} if "grpc" in steps else {}
            timed = measure_interleaved(steps, **t)
            timed.update(measure_interleaved(grpc_step, **t))
            for name, (per, n) in timed.items():
                s = sorted(per)
                median = s[len(s) // 2]
                results.append(dict(method=name, bytes=nbytes, seconds=median, best_s=s[0],
                                    repeats_s=per, per_repeat=n, gbps=nbytes / median / 1e9))
    finally:
        client.close()
        sock.close()
        grpc_channel.close()
    emit(event="result", transfers=results)


def measure_interleaved(steps, repeats, target_s, warmup_s, min_warmup):
    """Times each of `steps` (name -> step(i)) in `repeats` rounds, one block of each per round,
    so every method sees the same drift of the machine's speed. Blocks are sized (after a warm-up)
    to take about `target_s`. Returns name -> (per-step seconds of each block, steps per block)."""
    from bench.run_one import warm_up

    clock = time.perf_counter
    done, sizes = {}, {}
    for name, step in steps.items():
        done[name], sizes[name] = warm_up(step, target_s, warmup_s, min_warmup)
    per = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            n, i = sizes[name], done[name]
            t0 = clock()
            for j in range(i, i + n):
                step(j)
            per[name].append((clock() - t0) / n)
            done[name] = i + n
    return {name: (per[name], sizes[name]) for name in steps}


# --- parameter-server training --------------------------------------------------------------------

def import_framework(name):
    if name == "tf":
        import tensorflow
        import tensorflow.compat.v1 as tf

        tf.disable_v2_behavior()
        return tf, tensorflow.__version__
    import tensorweave as tf

    return tf, getattr(tf, "__version__", "dev")


def make_config(tf, framework, encoding="none", device_filters=None, cluster=True):
    kwargs = dict(operation_timeout_in_ms=STEP_TIMEOUT_MS)
    # One process: both frameworks get THREADS, as in the single-process benchmark. A cluster's
    # tasks share the cores: TF's servers use their default pools (one thread per core), and
    # TensorWeave's take the share `tensorweave launch` gives them (bench.distributed.task_env).
    if not cluster or framework == "tf":
        kwargs.update(intra_op_parallelism_threads=THREADS, inter_op_parallelism_threads=THREADS)
    if device_filters:
        kwargs["device_filters"] = device_filters
    # TF's server has no authentication and no transfer encodings; one process needs neither.
    if framework == "tensorweave" and cluster:
        kwargs["cluster_token"] = os.environ[TOKEN_ENV]
        kwargs["transfer_encoding"] = encoding
    return tf.ConfigProto(**kwargs)


def wait_for_port(address, timeout):
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {address} after {timeout:.0f}s")
            time.sleep(0.1)


def timed_steps(step, warmup, measure_s, commands, windows=1):
    """Warms up and says so; then, `windows` times, waits for "go", runs steps for `measure_s`
    seconds and reports them (a "window" event). Returns the median window, all windows' steps/s
    under "windows"."""
    for i in range(warmup):
        step(i)
    emit(event="warm")
    done, n_total = [], warmup
    for _ in range(windows):
        commands.wait("go", SETUP_TIMEOUT_S * 3)
        cpu0, t0 = time.process_time(), time.perf_counter()
        n = 0
        while True:
            step(n_total + n)
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= measure_s:
                break
        n_total += n
        window = dict(steps=n, seconds=elapsed, steps_per_s=n / elapsed, cpu_s=time.process_time() - cpu0)
        emit(event="window", **window)
        done.append(window)
    median = sorted(done, key=lambda w: w["steps_per_s"])[(len(done) - 1) // 2]
    return dict(median, windows=[w["steps_per_s"] for w in done])


def build_training(tf, device_fn):
    from bench import workloads as W

    xs, ys = W.make_classification_data(W.MLP_BATCH)
    with tf.device(device_fn):
        g = W.build_mlp(tf, W.mlp_init_params())
    return g, [{g["x"]: xs[k], g["y_"]: ys[k]} for k in range(len(xs))]


def single(args, commands):
    tf, version = import_framework(args.framework)
    g, feeds = build_training(tf, None)
    sess = tf.Session(config=make_config(tf, args.framework, cluster=False))
    sess.run(tf.global_variables_initializer())
    train, loss = g["train"], g["loss"]
    r = timed_steps(lambda i: sess.run(train, feeds[i % len(feeds)]), args.warmup, args.measure_s, commands,
                    args.windows)
    r.update(encoding="none", loss=float(sess.run(loss, feeds[0])))
    emit(event="result", version=version, **r)


def task(args, commands):
    tf, version = import_framework(args.framework)
    cluster_dict = json.loads(args.cluster)
    cluster = tf.train.ClusterSpec(cluster_dict)
    server = tf.train.Server(cluster, job_name=args.job, task_index=args.index,
                             config=make_config(tf, args.framework))
    emit(event="up")
    if args.job == "ps":
        server.join()
        return
    wait_for_port(cluster_dict["ps"][0], SETUP_TIMEOUT_S)
    worker_device = "/job:worker/task:%d" % args.index
    setter = tf.train.replica_device_setter(ps_device="/job:ps/cpu:0", worker_device=worker_device,
                                            cluster=cluster)
    g, feeds = build_training(tf, setter)
    init = tf.global_variables_initializer()
    # Not tf.report_uninitialized_variables(): TensorWeave places that op (it reads the variables'
    # refs) on the PS, and its string result cannot cross tasks there. Per-variable bools can.
    uninitialized = tf.logical_not(tf.stack([tf.is_variable_initialized(v) for v in tf.global_variables()]))
    train, loss = g["train"], g["loss"]
    chief = args.index == 0
    for encoding in args.encodings:
        config = make_config(tf, args.framework, encoding, ["/job:ps", worker_device])
        with tf.Session(server.target, config=config) as sess:
            deadline = time.monotonic() + SETUP_TIMEOUT_S
            while sess.run(uninitialized).any():
                if chief:
                    sess.run(init)
                elif time.monotonic() > deadline:
                    raise TimeoutError("the chief did not initialize the variables in time")
                else:
                    time.sleep(0.1)
            step_bytes = None
            if args.framework == "tensorweave":
                from tensorweave.distributed.tensor_codec import transfer_bytes

                md = tf.RunMetadata()
                sess.run(train, feeds[0], options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                         run_metadata=md)
                step_bytes = sum(transfer_bytes(md.step_stats).values())
            r = timed_steps(lambda i: sess.run(train, feeds[i % len(feeds)]), args.warmup,
                            args.measure_s, commands, args.windows)
            r.update(encoding=encoding, bytes_per_step=step_bytes, loss=float(sess.run(loss, feeds[0])))
            emit(event="result", version=version, **r)
    commands.wait("exit", SETUP_TIMEOUT_S * 5)  # keep this task's server up until every worker is done


# --- entry point ----------------------------------------------------------------------------------

def int_list(text):
    return [int(v) for v in text.split(",") if v]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.distributed_child", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="role", required=True)
    p = sub.add_parser("transfer-server")
    p.add_argument("--sizes", type=int_list, required=True)
    p = sub.add_parser("transfer-client")
    p.add_argument("--ports", type=int_list, required=True)
    p.add_argument("--sizes", type=int_list, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-grpc", action="store_true")
    p.add_argument("--grpc-max-bytes", type=int, default=1 << 40)
    for role in ("single", "task"):
        p = sub.add_parser(role)
        p.add_argument("--framework", choices=("tensorweave", "tf"), required=True)
        p.add_argument("--warmup", type=int, default=5)
        p.add_argument("--measure-s", type=float, default=5.0)
        p.add_argument("--windows", type=int, default=1, help="timed windows, each started by a \"go\"")
        if role == "task":
            p.add_argument("--cluster", required=True, help="the cluster spec as JSON")
            p.add_argument("--job", choices=("ps", "worker"), required=True)
            p.add_argument("--index", type=int, default=0)
            p.add_argument("--encodings", default="none", type=lambda s: s.split(","))
    args = ap.parse_args(argv)

    run_child({"transfer-server": transfer_server, "transfer-client": transfer_client,
               "single": single, "task": task}[args.role], args)


def run_child(role, args):
    """Runs `role(args, Commands())` as a benchmark child and exits: stdout carries the JSON
    events alone (whatever the frameworks print goes to stderr), and a failure becomes an
    "error" event and exit status 1."""
    global _JSON_FD
    sys.stdout.flush()
    _JSON_FD = os.dup(1)
    os.dup2(2, 1)
    code = 0
    try:
        role(args, Commands())
    except SystemExit as e:
        code = 0 if e.code in (None, 0) else 1
    except BaseException as e:  # noqa: BLE001 - the failure becomes an event the parent prints
        emit(event="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip teardown: thread pools, or a sync worker blocked on a token, make it slow or hang


if __name__ == "__main__":
    main()
