"""`tensorweave launch`: runs one process per task of a local cluster, like `torchrun`.

Every task runs the same script with `TF_CONFIG` naming its task and `TENSORWEAVE_CLUSTER_TOKEN`
holding the cluster's secret. Arguments may name the task: "{job}", "{task}", "{ps_hosts}" and
"{worker_hosts}" are replaced (by plain substitution, so other braces, e.g. JSON, pass through).
Each child's output lines are prefixed with its task, "[worker:1] ".

All tasks share this machine's cores, so unless the environment already says otherwise the
workers' BLAS and OpenMP pools split them (`THREAD_ENV`: cores // workers, at least 1) and each
PS task, whose updates are element-wise, gets one thread, much as `torchrun` sets
OMP_NUM_THREADS; without it every task's pool would use every core. OpenBLAS's idle workers also
spin for about 2**28 cycles after each call, taking the cores other tasks need, so they are asked
to sleep after 2**4 (OPENBLAS_THREAD_TIMEOUT=4) unless the environment sets it.

The chief's training progress reaches the launcher over a local socket named in the tasks'
environment (`progress_channel`; programs report through `tensorweave.train.progress.Progress`)
and is drawn as one tqdm bar for the cluster on the launcher's stderr, with steps per second and
the latest loss: `progress="auto"` draws it when stderr is a terminal, "always" draws it anyway,
"never" opens no channel. The latest report is kept in `Launch.progress` whether or not a bar is
drawn.

The launch succeeds when every worker exits 0; parameter servers block in `server.join()`, so
they are terminated then. A task that fails ends the launch with its exit status, after the other
tasks are terminated (unless `keep_going`: then the remaining workers run to their end).

With `restart="on-failure"` (supervise mode), a task that fails (exits non-zero or is killed by a
signal; a PS task too) is started again with the same arguments and environment, so the same
TF_CONFIG, task index, port and token, and it rejoins the cluster; each task may be restarted
`max_restarts` times (a budget per task, so one flapping task cannot use up the others'). Only when
a task fails with its restarts used up does the launch fail, with that task's status. A task that
exits 0 is never restarted, and `stop()` (Ctrl-C, SIGTERM) stops every task for good. A first
failure is restarted at once; a task that fails again within `QUICK_FAILURE_S` of its start waits
before its next start, 1 s and doubling up to `MAX_BACKOFF_S` (a run that lasts longer resets
this), so a task that cannot start (a port in use, a bad flag) does not spin.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from tensorweave.distributed import progress_channel
from tensorweave.distributed.cluster import local_cluster_spec
from tensorweave.distributed.transport import grpc_auth
from tensorweave.distributed.transport import tls as tls_lib

_POLL_S = 0.05
QUICK_FAILURE_S = 10.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
DEFAULT_STOP_TIMEOUT_S = 10.0


def exit_status(returncode):
    """A child's `returncode` as a shell exit status: killed by signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def template_args(args, job, task, ps_hosts, worker_hosts):
    """`args` with "{job}", "{task}", "{ps_hosts}" and "{worker_hosts}" replaced in each."""
    values = {"{job}": job, "{task}": str(task), "{ps_hosts}": ",".join(ps_hosts),
              "{worker_hosts}": ",".join(worker_hosts)}
    out = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


class _Task:
    """One child process and the threads copying its output."""

    def __init__(self, job, index, args, env):
        self.job, self.index, self.args, self.env = job, index, args, env
        self.process = None
        self.readers = []  # of every process this task has run, so that `stop` joins them all
        self.restarts = 0
        self.started_at = None
        self.quick_failures = 0  # failures in a row, each within QUICK_FAILURE_S of its start
        self.restart_at = None  # when a restart waits out its backoff: the monotonic time it is due

    @property
    def name(self):
        return f"{self.job}:{self.index}"


class ClusterProgress:
    """The cluster's progress as the chief last reported it (`step`, `total`, `loss`, `reports`
    received), drawn as a tqdm bar on `file` when `draw`. `receive_from(listener)` collects
    reports on a thread until `close()`; `write_line` prints a task's line above the bar."""

    def __init__(self, file, draw, lock):
        self.step = self.total = self.loss = None
        self.reports = 0
        self._file, self._draw, self._lock = file, draw, lock
        self._bar = None
        self._listener = self._thread = None
        self._closing = threading.Event()

    def receive_from(self, listener):
        self._listener = listener
        self._thread = threading.Thread(target=self._receive, name="tensorweave-launch-progress", daemon=True)
        self._thread.start()

    def _receive(self):
        while not self._closing.is_set():
            report = self._listener.receive(timeout=0.2)
            if report is not None:
                self.record(*report)

    def record(self, step, total, loss):
        """Takes one report; a step below the latest one (reordered datagrams) only updates loss."""
        with self._lock:
            self.reports += 1
            self.step = step if self.step is None else max(self.step, step)
            self.total = total if total is not None else self.total
            self.loss = loss if loss is not None else self.loss
            if self._draw:
                self._update_bar()

    def _update_bar(self):
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=self.total, desc="cluster", unit="step", file=self._file, dynamic_ncols=True)
        if self._bar.total != self.total:
            self._bar.total = self.total
        if self.loss is not None:
            self._bar.set_postfix(loss=f"{self.loss:.4g}", refresh=False)
        # Asynchronous workers may carry the global step past the last one; tqdm would drop the total.
        shown = self.step if self.total is None else min(self.step, self.total)
        self._bar.update(shown - self._bar.n)

    def write_line(self, out, text):
        """Writes `text` (a task's output line) to `out`, keeping the bar below it; hold the lock."""
        if self._bar is not None:
            self._bar.clear()
        out.write(text)
        out.flush()
        if self._bar is not None:
            self._bar.refresh()

    def close(self):
        """Takes the reports that have arrived, stops receiving and closes the bar."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        listener, self._listener = self._listener, None
        if listener is not None:
            while (report := listener.receive(timeout=0)) is not None:
                self.record(*report)
            listener.close()
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


class Launch:
    """Runs `script args...` once per task of a cluster of `ps` PS and `workers` worker tasks on
    free ports of `host`: `start()`, then `wait()` for the exit status; `stop()` terminates every
    child that is still running (also safe after `wait`). `progress` is "auto", "always" or "never";
    `restart` is "no" or "on-failure", with `max_restarts` per task (see the module's docstring)."""

    def __init__(self, script, args=(), *, ps=1, workers=1, token=None, keep_going=False, tls=None,
                 host="127.0.0.1", python=sys.executable, stdout=None, stderr=None,
                 stop_timeout=DEFAULT_STOP_TIMEOUT_S, progress="auto", restart="no", max_restarts=0):
        if workers < 1:
            raise ValueError(f"A launch needs at least one worker, got {workers}")
        if ps < 0:
            raise ValueError(f"The number of PS tasks must not be negative, got {ps}")
        self.script, self.args = os.fspath(script), list(args)
        if not os.path.isfile(self.script):  # else every task would fail alike, one line each
            raise FileNotFoundError(f"No script to launch at {self.script!r}")
        self.ps, self.workers = ps, workers
        if token is not None and not str(token).strip():
            raise ValueError("An empty cluster token is not a secret; give a non-empty token")
        self.token = None if token is None else str(token).strip()
        self.keep_going, self.host, self.python = keep_going, host, python
        # {ConfigProto TLS field: path}; the tasks read them from the environment (transport.tls).
        self.tls = {tls_lib.ENV[name]: os.path.abspath(path) for name, path in (tls or {}).items()}
        self.stop_timeout = stop_timeout
        if progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {', '.join(PROGRESS_MODES)}, got {progress!r}")
        self._progress_mode = progress
        if restart not in RESTART_POLICIES:
            raise ValueError(f"restart must be one of {', '.join(RESTART_POLICIES)}, got {restart!r}")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must not be negative, got {max_restarts}")
        self.restart, self.max_restarts = restart, max_restarts
        self._stopping = False
        self._out = {"stdout": stdout or sys.stdout, "stderr": stderr or sys.stderr}
        self._write_lock = threading.Lock()
        stderr = self._out["stderr"]
        draw = progress == "always" or (progress == "auto" and hasattr(stderr, "isatty") and stderr.isatty())
        self.progress = ClusterProgress(stderr, draw, self._write_lock)
        self._progress_path = None
        self.cluster = None
        self.tasks = []
        self._threads = {}

    def start(self):
        """Picks the ports and starts every task (PS first); returns self."""
        if self.tasks:
            raise RuntimeError("This launch was already started")
        self._threads = {job: thread_env(job, self.workers) for job in ("ps", "worker")}
        if THREAD_ENV[0] in self._threads["worker"]:
            self._report(f"each worker's BLAS/OpenMP pool gets {self._threads['worker'][THREAD_ENV[0]]} of "
                         f"{os.cpu_count()} cores, each PS task's 1 (set {THREAD_ENV[0]} to choose)")
        self.cluster = local_cluster_spec(self.ps, self.workers, self.host)
        hosts = self.cluster.as_dict()
        ps_hosts, worker_hosts = hosts.get("ps", []), hosts["worker"]
        try:
            if self._progress_mode != "never":
                listener = progress_channel.ProgressListener()
                self._progress_path = listener.path
                self.progress.receive_from(listener)
            for job in self.cluster.jobs:
                for index in self.cluster.task_indices(job):
                    args = template_args(self.args, job, index, ps_hosts, worker_hosts)
                    self.tasks.append(self._spawn(job, index, args, hosts))
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, job, index, args, hosts):
        task = _Task(job, index, args, self._task_env(job, index, hosts))
        self._run(task)
        return task

    def _task_env(self, job, index, hosts):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": hosts, "task": {"type": job, "index": index}})
        env["PYTHONUNBUFFERED"] = "1"  # so lines stream as they are printed
        if self.token is not None:
            env[grpc_auth.TOKEN_ENV] = self.token
        env.update(self.tls)
        env.update(self._threads.get(job, {}))
        if self._progress_path is not None:
            env[progress_channel.ENV] = self._progress_path
        return env

    def _run(self, task):
        """Starts (or restarts) `task`'s process and the threads copying its output."""
        task.started_at, task.restart_at = time.monotonic(), None
        task.process = subprocess.Popen([self.python, self.script, *task.args], env=task.env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        prefix = f"[{task.name}] "
        readers = [threading.Thread(target=self._copy_lines, args=(pipe, prefix, self._out[stream]),
                                    name=f"tensorweave-launch-{task.job}-{task.index}-{stream}", daemon=True)
                   for stream, pipe in (("stdout", task.process.stdout), ("stderr", task.process.stderr))]
        for reader in readers:
            reader.start()
        task.readers.extend(readers)

    def _copy_lines(self, pipe, prefix, out):
        with pipe:
            for line in iter(pipe.readline, b""):
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                with self._write_lock:
                    self.progress.write_line(out, prefix + text + "\n")

    def wait(self, timeout=None):
        """Waits for the launch to end and returns its exit status: 0 when every worker exited 0,
        else the status of the first task that failed (with its restarts used up, in supervise
        mode). Other tasks are terminated before it returns. Raises TimeoutError (children left
        running) after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        failed = None
        while True:
            for task in self.tasks:
                if task.restart_at is not None:  # waiting out its backoff
                    if time.monotonic() >= task.restart_at and not self._stopping:
                        self._run(task)
                    continue
                code = task.process.poll()
                if code is not None and code != 0 and self._restarted(task, exit_status(code)):
                    continue
                if code is not None and code != 0 and failed is None:
                    failed = exit_status(code)
                    used = f" after {task.restarts} restart{'s' * (task.restarts != 1)}" \
                        if self.restart != "no" else ""
                    self._report(f"{task.name} exited with status {failed}{used}")
                    if not self.keep_going:
                        self.stop()
                        return failed
            workers = [t for t in self.tasks if t.job == "worker"]
            if all(t.process.poll() is not None and t.restart_at is None for t in workers):
                self.stop()
                return failed or 0
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"The launch did not end within {timeout} seconds")
            time.sleep(_POLL_S)

    def _restarted(self, task, status):
        """Restarts failed `task` if the policy and its budget allow; whether it did."""
        if self.restart != "on-failure" or task.restarts >= self.max_restarts or self._stopping:
            return False
        task.restarts += 1
        quick = time.monotonic() - task.started_at < QUICK_FAILURE_S
        task.quick_failures = task.quick_failures + 1 if quick else 0
        delay = 0.0 if task.quick_failures <= 1 else \
            min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (task.quick_failures - 2))
        after = f" in {delay:g} s" if delay else ""
        self._report(f"restarting {task.name} (exit {status}){after}, restart {task.restarts} of {self.max_restarts}")
        if delay:
            task.restart_at = time.monotonic() + delay
        else:
            self._run(task)
        return True

    def stop(self):
        """Terminates every task still running: SIGTERM, then SIGKILL after `stop_timeout`. No
        task is restarted after this."""
        self._stopping = True
        running = [t for t in self.tasks if t.process.poll() is None]
        for task in running:
            _signal(task.process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for task in running:
            try:
                task.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(task.process, signal.SIGKILL)
                task.process.wait()
        for task in self.tasks:
            for reader in task.readers:
                reader.join(self.stop_timeout)
        self.progress.close()

    def _report(self, message):
        with self._write_lock:
            self.progress.write_line(self._out["stderr"], f"tensorweave launch: {message}\n")


PROGRESS_MODES = ("auto", "always", "never")
RESTART_POLICIES = ("no", "on-failure")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(job, workers, environ=None, cores=None):
    """The environment variables a task of `job` among `workers` workers gets: a worker an equal
    share of the cores, a PS task one thread (none of `THREAD_ENV` when the environment already
    sets one), and OPENBLAS_THREAD_TIMEOUT=4 unless set."""
    environ = os.environ if environ is None else environ
    env = {} if environ.get("OPENBLAS_THREAD_TIMEOUT") else {"OPENBLAS_THREAD_TIMEOUT": "4"}
    if any(environ.get(name) for name in THREAD_ENV):
        return env
    share = 1 if job == "ps" else max(1, (cores or os.cpu_count() or 1) // max(1, workers))
    return {**dict.fromkeys(THREAD_ENV, str(share)), **env}


def _signal(process, signum):
    try:
        process.send_signal(signum)
    except ProcessLookupError:  # exited since it was polled
        pass
