"""Distributed benchmark: tensor transfer, parameter-server training, transfer encodings.

    python -m bench.distributed [--parts transfer,training,compression]
                                [--frameworks tensorweave,tf] [--quick] [--json PATH]
                                [--python INTERPRETER] [--measure-s S] [--windows N] [--rounds N]

1. Transfer: one process pulls float32 tensors of 1 KB, 1 MB and 64 MB from another over
   loopback, one request at a time: TensorWeave's data channel (cluster token on) next to a plain
   socket (length-prefixed request, reply received into a preallocated buffer) and Python gRPC
   (a unary call returning bytes), all measured in the same run, their timed blocks taking turns
   (socket, data channel, gRPC, then again) so each sees the same drift of the machine's speed.
   The 1 KB time is the round trip.
2. Training: the MLP 784-1024-1024-10 of the local benchmark, async SGD, all variables on one PS
   (`replica_device_setter`), fed a batch of 128 each step: one process, 1 PS + 1 worker, 1 PS +
   2 workers (the workers' steps/s summed), on TensorWeave and on TensorFlow's runtime.
3. Compression: 1 PS + 1 worker under each `ConfigProto.transfer_encoding`; bytes per step are
   the payloads received by all tasks in one FULL_TRACE step.

Every task is its own process (`bench.distributed_child`). A training configuration starts on
both runtimes at once; their workers warm up, then the runtimes take turns timing windows of
--measure-s seconds (all of one runtime's workers at one signal, the other's waiting idle), five
each by default, and the median window is reported. So a ratio compares measurements seconds
apart, on a machine whose speed drifts by half within a minute. `--rounds N` repeats everything
with fresh processes and reports the median round. Figures marked "~" were measured while other
processes kept more than 0.3 CPU cores busy: rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time

from bench import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("transfer", "training", "compression")
FRAMEWORKS = ("tensorweave", "tf")
LABELS = {"tensorweave": "TensorWeave", "tf": "TF runtime"}
ENCODINGS = ("none", "bfloat16_truncate", "bfloat16", "float16", "int8")
KB, MB = 1 << 10, 1 << 20
SIZES = (KB, MB, 64 * MB)
QUICK_SIZES = (KB, MB, 4 * MB)
GRPC_MAX_BYTES = 64 * MB
# (key, row label, workers; 0 = one process with a plain tf.Session())
CONFIGS = (("single", "1 process", 0), ("ps1w1", "1 PS + 1 worker", 1),
           ("ps1w2", "1 PS + 2 workers (sum)", 2))
# Targets: data channel vs plain socket; TensorWeave vs TF steps/s (higher is better for both).
TARGET_64MB_THROUGHPUT = 0.7  # at least this fraction of the plain socket's GB/s
TARGET_ROUND_TRIP = 2.0  # at most this multiple of the plain socket's 1 KB round trip
TARGET_STEPS = {"ps1w1": 1.3, "ps1w2": 1.1}
# TF's steps/s measured on this kind of machine before the project (the figures).
TF_REFERENCE = {"single": 98, "ps1w1": 39, "ps1w2": 51}
NOISY_CORES = 0.3
DEFAULT_WINDOWS = 5  # timed windows per runtime and configuration, of --measure-s seconds each
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# --- child processes ------------------------------------------------------------------------------

class ChildError(RuntimeError):
    """A benchmark process failed, exited or fell silent; `traceback` is the child's, if it sent one."""

    def __init__(self, message, traceback=None):
        super().__init__(message)
        self.traceback = traceback


def child_env(framework, token, extra=None):
    env = dict(os.environ)
    if framework != "tf":  # as bench.__main__: numpy's BLAS runs without the old-OpenBLAS workaround
        for k in OPENBLAS_VARS:
            env.pop(k, None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["BENCH_CLUSTER_TOKEN"] = token
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


class Child:
    """A `bench.distributed_child` process: JSON events in, one-word commands out, killed on stop."""

    def __init__(self, python, args, framework, token, name, extra_env=None):
        self.name = name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._events = queue.Queue()
        try:
            self.proc = subprocess.Popen([python, "-m", "bench.distributed_child"] + args, cwd=ROOT,
                                         env=child_env(framework, token, extra_env), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as e:
            self._stderr.close()
            raise ChildError(f"cannot start {name} with {python}: {e}") from e
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self._events.put(json.loads(line))
            except ValueError:
                pass
        self._events.put(None)  # end of stream: the process has exited

    def expect(self, event, timeout):
        """The next event, which must be `event`; ChildError on an error event, exit or timeout."""
        try:
            got = self._events.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            raise ChildError(f"{self.name}: no {event!r} within {timeout:.0f}s{self._tail()}") from None
        if got is None:
            self.proc.wait(timeout=10)
            raise ChildError(f"{self.name} exited (code {self.proc.returncode}) before {event!r}"
                             + self._tail())
        if got.get("event") == "error":
            raise ChildError(f"{self.name}: {got['error']}", got.get("traceback"))
        if got.get("event") != event:
            raise ChildError(f"{self.name}: expected {event!r}, got {got}")
        return got

    def send(self, command):
        try:
            self.proc.stdin.write((command + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # it has exited; the next expect() says why

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)

    def _tail(self):
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return ("; stderr: " + " | ".join(lines[-4:])) if lines else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self._stderr.close()


def stop_all(children):
    for c in children:
        c.stop()


# --- CPU load of other processes ------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid):
    """User + system CPU seconds of process `pid` (all its threads), or 0 where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


class ForeignLoad:
    """Cores that processes other than this one and `children` kept busy since construction."""

    def __init__(self, children):
        from bench.run_one import _cpu_busy_s

        self._busy = _cpu_busy_s
        self.children = children
        self.t0, self.busy0, self.self0 = time.perf_counter(), _cpu_busy_s(), time.process_time()
        self.cpu0 = [c.cpu_s() for c in children]
        self.own0 = sum(self.cpu0)

    def cpu_by_child(self):
        """{child name: CPU seconds it used since construction}."""
        return {c.name: c.cpu_s() - c0 for c, c0 in zip(self.children, self.cpu0, strict=True)}

    def cores(self):
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return None
        own = sum(c.cpu_s() for c in self.children) - self.own0 + time.process_time() - self.self0
        wall = time.perf_counter() - self.t0
        return max(0.0, (busy - self.busy0 - own) / wall) if wall > 0 else None


def noisy(load):
    return load is not None and load > NOISY_CORES


# --- part 1: tensor transfer ----------------------------------------------------------------------

def run_transfer(opts, token):
    sizes = QUICK_SIZES if opts.quick else SIZES
    size_arg = ",".join(str(n) for n in sizes)
    children = []
    try:
        server = Child(opts.python, ["transfer-server", "--sizes", size_arg], "tensorweave", token,
                       "transfer server")
        children.append(server)
        up = server.expect("up", opts.timeout)
        client = Child(opts.python, ["transfer-client", "--sizes", size_arg,
                                     "--ports", ",".join(map(str, up["ports"])),
                                     "--grpc-max-bytes", str(GRPC_MAX_BYTES)]
                       + (["--quick"] if opts.quick else []), "tensorweave", token, "transfer client")
        children.append(client)
        load = ForeignLoad(children)
        result = client.expect("result", opts.timeout * 3)
        result["foreign_load"] = load.cores()
        server.send("exit")
        return result
    finally:
        stop_all(children)


def format_size(n):
    return "%d MB" % (n // MB) if n >= MB else "%d KB" % (n // KB)


def print_transfer(r):
    by = {(t["method"], t["bytes"]): t for t in r["transfers"]}
    sizes = sorted({t["bytes"] for t in r["transfers"]})
    mark = "~" if noisy(r.get("foreign_load")) else ""
    print("1. Tensor transfer between two processes over loopback, float32, one at a time "
          "(median of 7 blocks, the methods' blocks taking turns)")
    print("   data channel: DataChannelClient.request, answered from a preallocated array, the reply handed")
    print("     to the waiting thread through a SimpleQueue as to a step's executor; cluster token on")
    print("   plain socket: length-prefixed request, reply received into a preallocated buffer")
    print("   gRPC: Python unary call returning bytes (for reference)")
    print()
    line = "%-20s%14s%14s%12s%14s%14s%9s" % ("throughput", "data channel", "plain socket", "DC/socket",
                                              "gRPC", "target", "")
    print(line)
    print("-" * len(line))

    def cell(method, n, fmt):
        t = by.get((method, n))
        return fmt(t) + mark if t else "-"

    def gbps(t):
        return "%.3f GB/s" % t["gbps"]

    def micros(t):
        return "%.0f us" % (t["seconds"] * 1e6)

    for n in sizes:
        dc, so = by.get(("data_channel", n)), by.get(("socket", n))
        ratio = dc["gbps"] / so["gbps"] if dc and so else None
        target = verdict = ""
        if n == max(sizes):
            target = ">=%.2fx" % TARGET_64MB_THROUGHPUT
            verdict = "" if ratio is None else ("met" if ratio >= TARGET_64MB_THROUGHPUT else "MISSED")
        print("%-20s%14s%14s%12s%14s%14s%9s" % (format_size(n), cell("data_channel", n, gbps),
                                                cell("socket", n, gbps), "%.2fx" % ratio if ratio else "-",
                                                cell("grpc", n, gbps), target, verdict))
    n = min(sizes)
    dc, so = by.get(("data_channel", n)), by.get(("socket", n))
    ratio = dc["seconds"] / so["seconds"] if dc and so else None
    verdict = "" if ratio is None else ("met" if ratio <= TARGET_ROUND_TRIP else "MISSED")
    print("%-20s%14s%14s%12s%14s%14s%9s" % (
        "round trip, %s" % format_size(n), cell("data_channel", n, micros), cell("socket", n, micros),
        "%.2fx" % ratio if ratio else "-", cell("grpc", n, micros), "<=%.1fx" % TARGET_ROUND_TRIP, verdict))
    print()


# --- part 2 and 3: parameter-server training ------------------------------------------------------

def local_ports(n):
    """n distinct free loopback ports (bound to port 0 together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def task_env(framework, job, n_workers):
    """What `tensorweave launch` gives a task of this cluster (its BLAS thread share); TF's tasks
    run as TF's own servers do, with its default per-process pools."""
    if framework != "tensorweave":
        return {}
    from tensorweave.distributed.launcher import thread_env
    return thread_env(job, n_workers)


class Config:
    """The processes of one configuration on one runtime: a single process, or a PS and workers.
    Their workers time `windows` windows of `opts.measure_s` seconds per encoding, each on a
    "go" from here."""

    def __init__(self, opts, token, framework, n_workers, encodings=("none",), windows=1):
        self.opts, self.framework, self.n_workers = opts, framework, n_workers
        common = ["--framework", framework, "--warmup", str(opts.warmup), "--measure-s", str(opts.measure_s),
                  "--windows", str(windows)]
        self.children = []
        if n_workers == 0:
            self.children.append(Child(opts.python, ["single"] + common, framework, token, f"{framework} single"))
            self.workers = self.children
            return
        ports = local_ports(1 + n_workers)
        cluster = json.dumps({"ps": ["127.0.0.1:%d" % ports[0]],
                              "worker": ["127.0.0.1:%d" % p for p in ports[1:]]})
        task = ["task", "--cluster", cluster] + common
        self.children.append(Child(opts.python, task + ["--job", "ps"], framework, token, f"{framework} ps",
                                   task_env(framework, "ps", n_workers)))
        for i in range(n_workers):
            mine = encodings if i == 0 else ("none",)
            self.children.append(Child(opts.python, task + ["--job", "worker", "--index", str(i),
                                                            "--encodings", ",".join(mine)],
                                       framework, token, f"{framework} worker {i}",
                                       task_env(framework, "worker", n_workers)))
        self.workers = self.children[1:]

    def wait_up(self):
        if self.n_workers:
            for c in self.children:
                c.expect("up", self.opts.timeout)

    def wait_warm(self, active):
        for w in active:
            w.expect("warm", self.opts.timeout)

    def window(self, active):
        """Times one window on `active` workers at once: (their summed steps/s, foreign load, CPU s by child)."""
        load = ForeignLoad(self.children)
        for w in active:
            w.send("go")
        got = [w.expect("window", self.opts.measure_s + self.opts.timeout) for w in active]
        return sum(g["steps_per_s"] for g in got), load.cores(), load.cpu_by_child()

    def row(self, active, encoding, windows):
        """The result row once `active` workers timed their `windows` [(steps/s, load, cpu)]: the
        median window's steps/s, every window's under "windows"."""
        results = [w.expect("result", self.opts.timeout) for w in active]
        rates = [w[0] for w in windows]
        median = sorted(windows, key=lambda w: w[0])[(len(windows) - 1) // 2]
        return dict(framework=self.framework, workers=self.n_workers, encoding=encoding, ok=True,
                    steps_per_s=median[0], windows=rates, per_worker=results,
                    bytes_per_step=results[0].get("bytes_per_step"), loss=results[0].get("loss"),
                    version=results[0].get("version"), foreign_load=max(
                        (w[1] for w in windows if w[1] is not None), default=None), cpu_s=median[2])

    def stop(self):
        for w in self.workers:
            w.send("exit")
        stop_all(self.children)


def run_config(opts, token, framework, n_workers, encodings=("none",)):
    """Steps/s of one configuration on one runtime, one window per encoding; a list with one dict
    per encoding (summed over the workers)."""
    config = None
    try:
        config = Config(opts, token, framework, n_workers, encodings)
        config.wait_up()
        out = []
        for k, encoding in enumerate(encodings):
            active = config.workers if k == 0 else config.workers[:1]
            config.wait_warm(active)
            out.append(config.row(active, encoding, [config.window(active)]))
        return out
    except ChildError as e:
        return [dict(framework=framework, workers=n_workers, encoding=enc, ok=False, error=str(e),
                     traceback=e.traceback) for enc in encodings]
    finally:
        if config is not None:
            config.stop()


def run_paired(opts, token, frameworks, n_workers, windows):
    """One configuration on every runtime of `frameworks` at once, timed in turns: window k of
    each runtime runs right after the other's (the order alternating), while the other's
    processes wait idle. So every ratio compares seconds-apart measurements on a machine whose
    speed drifts. Returns {framework: row} (`Config.row`; an error row for each if one failed)."""
    configs = {}
    try:
        for fw in frameworks:
            configs[fw] = Config(opts, token, fw, n_workers, windows=windows)
        for config in configs.values():
            config.wait_up()
            config.wait_warm(config.workers)
        timed = {fw: [] for fw in frameworks}
        for k in range(windows):
            for fw in (frameworks if k % 2 == 0 else frameworks[::-1]):
                timed[fw].append(configs[fw].window(configs[fw].workers))
        return {fw: configs[fw].row(configs[fw].workers, "none", timed[fw]) for fw in frameworks}
    except ChildError as e:
        return {fw: dict(framework=fw, workers=n_workers, encoding="none", ok=False, error=str(e),
                         traceback=e.traceback) for fw in frameworks}
    finally:
        for config in configs.values():
            config.stop()


def median_trial(rows):
    """The round with the median steps/s (the lower middle one of an even count), all rounds'
    steps/s under "rounds"; the first failed round instead, if one failed."""
    failed = [r for r in rows if not r.get("ok")]
    if failed:
        return failed[0]
    ranked = sorted(rows, key=lambda r: r["steps_per_s"])
    return dict(ranked[(len(ranked) - 1) // 2], rounds=[r["steps_per_s"] for r in rows])


def fmt_rate(r):
    if r is None:
        return "-"
    if not r.get("ok"):
        return "error"
    return "%.1f" % r["steps_per_s"] + ("~" if noisy(r.get("foreign_load")) else "")


def print_training(results, frameworks):
    rounds = max([len(r.get("rounds", ())) for r in results.values()] + [1])
    windows = max([len(r.get("windows", ())) for r in results.values()] + [1])
    how = ", median of %d windows" % windows if windows > 1 else ""
    how += ", median of %d rounds" % rounds if rounds > 1 else ""
    print("2. Parameter-server training, async SGD: MLP 784-1024-1024-10, batch 128 fed each step, "
          "all variables on one PS (steps/s%s)" % how)
    print()
    cols = [LABELS[fw] for fw in frameworks]
    both = "tf" in frameworks and "tensorweave" in frameworks
    line = "%-28s" % "configuration" + "".join("%14s" % c for c in cols)
    if both:
        line += "%10s%12s%9s" % ("TW/TF", "target", "")
    line += "%16s" % "TF reference"
    print(line)
    print("-" * len(line))
    for key, label, _ in CONFIGS:
        row = {fw: results.get((fw, key)) for fw in frameworks}
        line = "%-28s" % label + "".join("%14s" % fmt_rate(row[fw]) for fw in frameworks)
        if both:
            tw, tf = row["tensorweave"], row["tf"]
            ratio = tw["steps_per_s"] / tf["steps_per_s"] if tw and tf and tw["ok"] and tf["ok"] else None
            target = TARGET_STEPS.get(key)
            verdict = "" if ratio is None or target is None else ("met" if ratio >= target else "MISSED")
            line += "%10s%12s%9s" % ("%.2fx" % ratio if ratio else "-", ">=%.1fx" % target if target else "-",
                                     verdict)
        line += "%16s" % TF_REFERENCE[key]
        print(line)
    print()
    print("TF reference: TensorFlow's steps/s measured on this kind of machine before the project.")
    for fw in frameworks:
        for key, label, n in CONFIGS:
            r = results.get((fw, key))
            if r and r.get("ok") and n == 2:
                print("%s, %s: per worker %s steps/s" % (LABELS[fw], label, " + ".join(
                    "%.1f" % w["steps_per_s"] for w in r["per_worker"])))
    print()


def print_compression(rows):
    print("3. Transfer encodings, 1 PS + 1 worker, TensorWeave (bytes: payloads received by all "
          "tasks in one step)")
    print()
    line = "%-20s%14s%10s%12s%10s%12s" % ("encoding", "bytes/step", "vs none", "steps/s", "vs none", "loss")
    print(line)
    print("-" * len(line))
    base = rows[0] if rows and rows[0].get("ok") and rows[0]["encoding"] == "none" else None
    for r in rows:
        if not r.get("ok"):
            print("%-20s%14s" % (r["encoding"], "error"))
            continue
        b = r.get("bytes_per_step")
        vb = "%.2fx" % (b / base["bytes_per_step"]) if base and b and base.get("bytes_per_step") else "-"
        vs = "%.2fx" % (r["steps_per_s"] / base["steps_per_s"]) if base else "-"
        print("%-20s%14s%10s%12s%10s%12s" % (r["encoding"], "%.2f MB" % (b / MB) if b else "-", vb,
                                             fmt_rate(r), vs, "%.4f" % r["loss"]))
    print()
    print("loss: on batch 0 after the row's steps; the PS keeps the variables from row to row, so it "
          "falls down the table")
    print()


# --- driver ---------------------------------------------------------------------------------------

def parse_list(value, allowed, what):
    items = [v.strip() for v in value.replace(" ", ",").split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit("unknown %s: %s (choose from %s)" % (what, ", ".join(bad), ", ".join(allowed)))
    return items


def tf_installed(python):
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"
    try:
        return subprocess.run([python, "-c", probe], timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(opts, log=sys.stderr):
    """Runs the parts named in `opts`, prints their tables, returns the results as a dict."""
    parts = parse_list(opts.parts, PARTS, "part")
    frameworks = parse_list(opts.frameworks, FRAMEWORKS, "framework")
    opts.measure_s = opts.measure_s or (0.5 if opts.quick else 2.0)
    opts.warmup = 2 if opts.quick else 5
    opts.timeout = getattr(opts, "timeout", None) or 180.0
    token = secrets.token_hex(16)
    t_start = time.perf_counter()

    def say(msg):
        log.write(msg)
        log.flush()

    if "tf" in frameworks and not tf_installed(opts.python):
        frameworks.remove("tf")
        say("tensorflow is not installed for %s: TensorWeave only\n" % opts.python)
    doc = {"quick": bool(opts.quick), "frameworks": frameworks, "measure_s": opts.measure_s}

    if "transfer" in parts:
        t0 = time.perf_counter()
        say("transfer: data channel / socket / gRPC ... ")
        try:
            doc["transfer"] = run_transfer(opts, token)
            say("done (%.1f s)\n" % (time.perf_counter() - t0))
        except ChildError as e:
            doc["transfer"] = {"ok": False, "error": str(e), "traceback": e.traceback}
            say("error\n")

    rounds = max(1, getattr(opts, "rounds", None) or 1)
    windows = max(1, getattr(opts, "windows", None) or (2 if opts.quick else DEFAULT_WINDOWS))
    doc.update(rounds=rounds, windows=windows)
    trials = {}
    for key, label, n in CONFIGS:
        if key == "ps1w1" and "compression" in parts:
            t0 = time.perf_counter()
            say("compression: tensorweave %-24s ... " % label)
            doc["compression"] = run_config(opts, token, "tensorweave", n, ENCODINGS)
            rates = "; ".join("%s %s" % (r["encoding"], fmt_rate(r)) for r in doc["compression"])
            say("%s steps/s (%.1f s)\n" % (rates, time.perf_counter() - t0))
        if "training" not in parts:
            continue
        for rnd in range(rounds):
            t0 = time.perf_counter()
            order = frameworks if rnd % 2 == 0 else frameworks[::-1]
            say("training: %-24s%s ... " % (label, " round %d" % (rnd + 1) if rounds > 1 else ""))
            rows = run_paired(opts, token, order, n, windows)
            for fw, row in rows.items():
                trials.setdefault((fw, key), []).append(row)
            rates = "; ".join("%s %s steps/s" % (LABELS[fw], fmt_rate(rows[fw])) for fw in frameworks)
            say("%s (%.1f s)\n" % (rates, time.perf_counter() - t0))
    training = {k: median_trial(rows) for k, rows in trials.items()}
    if training:
        doc["training"] = [dict(r, config=key) for (fw, key), r in training.items()]

    say("\n")
    print("TensorWeave distributed benchmark%s: %s CPUs (%s), python %s, loopback only" % (
        " (quick)" if opts.quick else "",
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        cpu_name(), platform.python_version()))
    print()
    if "transfer" in doc:
        if doc["transfer"].get("transfers"):
            print_transfer(doc["transfer"])
        else:
            print("1. Tensor transfer: %s\n" % doc["transfer"].get("error"))
    if "training" in parts:
        print_training(training, frameworks)
    if doc.get("compression"):
        print_compression(doc["compression"])
    failures = [r for r in training.values() if not r.get("ok")] + \
               [r for r in doc.get("compression", []) if not r.get("ok")]
    for r in failures:
        print("%s, %d worker(s), %s: %s" % (LABELS[r["framework"]], r["workers"], r["encoding"],
                                            r["error"][:500]))
    if any(noisy(r.get("foreign_load")) for r in [doc.get("transfer", {})] + list(training.values())
           + doc.get("compression", [])):
        print("~ other processes used more than %.1f CPU cores while this was measured: noisy, "
              "rerun on a quiet machine" % NOISY_CORES)
    versions = {r["framework"]: r.get("version") for r in training.values() if r.get("ok")}
    if versions:
        print("versions: %s" % ", ".join("%s %s" % (LABELS[fw], v) for fw, v in versions.items()))
    doc["elapsed_s"] = time.perf_counter() - t_start
    print("distributed benchmark: %.0f s" % doc["elapsed_s"])
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS), metavar="LIST",
                    help="comma-separated subset of %s" % ",".join(PARTS))
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS), metavar="LIST",
                    help="training on these runtimes (subset of %s)" % ",".join(FRAMEWORKS))
    ap.add_argument("--measure-s", type=float, default=None, metavar="S",
                    help="seconds per timed window (default 2, quick 0.5)")
    ap.add_argument("--windows", type=int, default=None, metavar="N",
                    help="timed windows per runtime and training configuration, the runtimes taking "
                         "turns (default %d, quick 2)" % DEFAULT_WINDOWS)
    ap.add_argument("--rounds", type=int, default=1, metavar="N",
                    help="repeat the training measurements N times with fresh processes and report "
                         "the median round (default 1)")
    ap.add_argument("--quick", action="store_true", help="small sizes and short timings (smoke test)")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON to PATH")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter for the subprocesses (default: this one)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds allowed for each wait on a subprocess (default 180)")
    opts = ap.parse_args(argv)
    doc = run(opts)
    if opts.json:
        write_json(doc, opts.json)
    ok = all(r.get("ok", True) for r in doc.get("training", []) + doc.get("compression", [])) \
        and doc.get("transfer", {}).get("ok", True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
