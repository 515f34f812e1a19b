"""Real `tf.train.Server` tasks on 127.0.0.1, one OS process each, for tests.

    with server_processes({"ps": 1, "worker": 2}, token=TOKEN) as procs:
        sess = tf.Session(procs.target("worker", 0), config=tf.ConfigProto(cluster_token=TOKEN))
        procs.kill("worker", 1)   # SIGKILL, as a crashed machine

Ports come from the OS (`free_ports`); the children start at once and are waited for together,
each wait bounded; every child still running is SIGKILLed and reaped when the block ends. A child
also exits by itself when its stdin closes (the test process died) or after `max_lifetime_s`,
so a crashed test run leaves no server behind.
"""

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from tensorweave.distributed.cluster import ClusterSpec, free_ports

READY = "tensorweave-test-server-ready"
DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_MAX_LIFETIME_S = 600.0
_REAP_TIMEOUT_S = 30.0

# argv: cluster (JSON), job, task index, max lifetime (s), address-space limit in bytes (0: none).
# The token comes from the environment (TENSORWEAVE_CLUSTER_TOKEN), not argv, which every user
# of the machine can read.
_SERVER_SCRIPT = textwrap.dedent("""
    import json, os, resource, sys, threading
    if int(sys.argv[5]):  # before any import allocates: a runaway allocation fails, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[5]), int(sys.argv[5])))
    import tensorweave as tf

    def exit_when_orphaned():
        sys.stdin.buffer.read()  # EOF: the test process is gone
        os._exit(3)

    def exit_when_too_old(seconds):
        threading.Event().wait(seconds)
        os._exit(4)

    cluster = tf.train.ClusterSpec(json.loads(sys.argv[1]))
    server = tf.train.Server(cluster, sys.argv[2], int(sys.argv[3]))
    threading.Thread(target=exit_when_orphaned, daemon=True).start()
    threading.Thread(target=exit_when_too_old, args=(float(sys.argv[4]),), daemon=True).start()
    print({ready!r}, flush=True)
    server.join()
""").format(ready=READY)


class ServerProcesses:
    """The running tasks of a `server_processes` block: `cluster`, `target(job, i)`,
    `address(job, i)`, `process(job, i)` and `kill(job, i)`."""

    def __init__(self, cluster, token):
        self.cluster = cluster
        self.token = token
        self._procs = {}    # (job, index) -> Popen
        self._stderr = {}   # (job, index) -> temporary file holding the child's stderr

    def address(self, job, index):
        """"127.0.0.1:port" of the task."""
        return self.cluster.task_address(job, index)

    def target(self, job, index):
        """The session target "grpc://127.0.0.1:port" of the task."""
        return f"grpc://{self.address(job, index)}"

    def process(self, job, index):
        """The task's `subprocess.Popen`."""
        return self._procs[(job, index)]

    def kill(self, job, index, timeout=_REAP_TIMEOUT_S):
        """SIGKILLs the task and reaps it (so its port is closed when this returns)."""
        proc = self._procs[(job, index)]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout)

    def stderr(self, job, index):
        """What the task wrote to stderr so far (for failure messages)."""
        f = self._stderr[(job, index)]
        f.flush()
        f.seek(0)
        return f.read().decode("utf-8", "replace")

    def _start(self, job, index, max_lifetime_s, max_memory_bytes):
        env = dict(os.environ)
        env.pop("TENSORWEAVE_CLUSTER_TOKEN_FILE", None)
        env.pop("TF_CONFIG", None)
        if self.token is None:
            env.pop("TENSORWEAVE_CLUSTER_TOKEN", None)
        else:
            env["TENSORWEAVE_CLUSTER_TOKEN"] = self.token
        err = tempfile.TemporaryFile()  # noqa: SIM115 - kept for stderr(), closed by _stop_all
        self._stderr[(job, index)] = err
        self._procs[(job, index)] = subprocess.Popen(
            [sys.executable, "-c", _SERVER_SCRIPT, json.dumps(self.cluster.as_dict()), job, str(index),
             str(max_lifetime_s), str(int(max_memory_bytes or 0))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        waiting = dict(self._procs)
        lines = {key: b"" for key in waiting}
        while waiting:
            for key, proc in list(waiting.items()):
                if proc.poll() is not None:
                    raise RuntimeError(f"Server task {key[0]}:{key[1]} exited with status {proc.returncode} "
                                       f"before serving; its stderr:\n{self.stderr(*key)}")
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(f"{j}:{i}" for j, i in waiting)
                raise TimeoutError(f"Server tasks {names} did not start serving within {timeout} s")
            by_fd = {proc.stdout.fileno(): key for key, proc in waiting.items()}
            readable, _, _ = select.select(list(by_fd), [], [], min(left, 0.5))
            for fd in readable:
                key = by_fd[fd]
                chunk = os.read(fd, 4096)
                lines[key] += chunk
                if READY.encode() in lines[key]:
                    del waiting[key]

    def _stop_all(self):
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_REAP_TIMEOUT_S)
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
        for f in self._stderr.values():
            f.close()


@contextlib.contextmanager
def server_processes(tasks, token, *, start_timeout=DEFAULT_START_TIMEOUT_S,
                     max_lifetime_s=DEFAULT_MAX_LIFETIME_S, max_memory_bytes=None):
    """Starts one server process per task of `tasks` ({job: number of tasks}) on free ports of
    127.0.0.1, waits until each serves, yields a `ServerProcesses`, and kills them all on exit.

    token: the cluster secret of every task (None: no token; the tasks serve loopback only).
    max_memory_bytes: an address-space limit (RLIMIT_AS) for each task, so a test that provokes
        a huge allocation on a shared machine gets a MemoryError in the task instead.
    """
    counts = {job: n for job, n in tasks.items() if n}
    ports = iter(free_ports(sum(counts.values())))
    cluster = ClusterSpec({job: [f"127.0.0.1:{next(ports)}" for _ in range(n)] for job, n in counts.items()})
    procs = ServerProcesses(cluster, token)
    try:
        for job, n in counts.items():
            for index in range(n):
                procs._start(job, index, max_lifetime_s, max_memory_bytes)
        procs._wait_ready(start_timeout)
        yield procs
    finally:
        procs._stop_all()


def wait_serving(address, timeout=60.0):
    """Waits until a gRPC server answers at `address` ("host:port"); raises after `timeout` seconds."""
    import grpc
    deadline = time.monotonic() + timeout
    while True:
        channel = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(channel).result(timeout=1.0)
            return
        except grpc.FutureTimeoutError:
            if time.monotonic() > deadline:
                raise
        finally:
            channel.close()


def make_test_cert(directory, name="cluster"):
    """A self-signed certificate (its own CA) for 127.0.0.1 and localhost, made with openssl:
    returns (cert path, key path); skips the calling test when openssl is missing."""
    import pytest
    cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("openssl is not available to make a test certificate")
    return cert, key
