"""Sync vs async data-parallel training on MNIST, and what a backup worker buys against a straggler.

    python -m bench.sync [--quick] [--last-step N] [--slow-ms MS] [--hidden N] [--target ACC]
                         [--max-s S] [--json PATH] [--python INTERPRETER] [--timeout S]

Every configuration is a fresh cluster of real servers on loopback, one process per task
(`bench.sync_child`): 1 PS and 2 or 3 workers, each worker training MNIST softmax regression
(batch 100, learning rate 0.5) in `tf.train.MonitoredTrainingSession` until the global step
reaches --last-step. Sync runs wrap the optimizer in `tf.train.SyncReplicasOptimizer` and pass
`opt.make_session_run_hook(is_chief)`; async runs use the plain optimizer. In the straggler
configurations the last worker sleeps --slow-ms before each step: sync without a backup
(replicas_to_aggregate=2 of 2 workers) against sync with one backup (2 of 3 workers), and
async with the same slow worker for reference.

The table gives, per configuration: global steps/s (the global step each worker saw with its
steps, from the end of the first warm-up to the last step);
the median and 90th percentile of the workers' step times (the wall time of one training step
of one worker, sleep and a sync worker's wait for its token included, pooled over all workers,
the first two steps of each left out);
the time from the start signal until the chief's copy of the weights first scores the target
accuracy on MNIST's 10000 test images (copies taken every few steps, scored after training);
and the final accuracy. Below it: sync/async throughput ratios and the backup's speedup
(median step time without the backup / with it). Rows marked "~" were measured while other
processes kept more than 0.3 CPU cores busy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from bench import distributed, write_json
from bench.distributed import (
    ChildError,
    ForeignLoad,
    child_env,
    local_ports,
    noisy,
    stop_all,
    task_env,
)

ROOT = distributed.ROOT
# key, row label, mode, workers, replicas_to_aggregate (0: all), last worker slow
CONFIGS = (
    ("async2", "async, 1 PS + 2 workers", "async", 2, 0, False),
    ("sync2", "sync,  1 PS + 2 workers (N=2)", "sync", 2, 2, False),
    ("async3", "async, 1 PS + 3 workers", "async", 3, 0, False),
    ("sync3", "sync,  1 PS + 3 workers (N=3)", "sync", 3, 3, False),
    ("async_slow", "async, 2 workers, 1 slow", "async", 2, 0, True),
    ("sync_slow", "sync,  2 workers, 1 slow, no backup (N=2 of 2)", "sync", 2, 2, True),
    ("sync_backup", "sync,  3 workers, 1 slow, 1 backup (N=2 of 3)", "sync", 3, 2, True),
)
WARMUP_STEPS = 2  # each worker's first steps (graph registration) are left out of the times
DEFAULTS = dict(last_step=500, slow_ms=40.0, max_s=40.0, snapshot_every=10)
QUICK = dict(last_step=60, slow_ms=30.0, max_s=10.0, snapshot_every=10)


class Child(distributed.Child):
    """A `bench.sync_child` task, driven as `bench.distributed.Child` drives its processes."""

    def __init__(self, python, args, token, name, extra_env=None):  # as Child.__init__, another module
        self.name = name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._events = queue.Queue()
        env = child_env("tensorweave", token, dict(extra_env or {}, TENSORWEAVE_OFFLINE="1"))
        try:
            self.proc = subprocess.Popen([python, "-m", "bench.sync_child"] + args, cwd=ROOT, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as e:
            self._stderr.close()
            raise ChildError(f"cannot start {name} with {python}: {e}") from e
        threading.Thread(target=self._read, daemon=True).start()


def run_config(opts, token, config):
    """Trains one configuration; returns its measurements (or ok=False and the error)."""
    key, label, mode, n_workers, replicas, slow = config
    ports = local_ports(1 + n_workers)
    cluster = json.dumps({"ps": ["127.0.0.1:%d" % ports[0]], "worker": ["127.0.0.1:%d" % p for p in ports[1:]]})
    common = ["--cluster", cluster, "--mode", mode, "--replicas", str(replicas), "--last-step", str(opts.last_step),
              "--data-dir", opts.data_dir, "--hidden", str(opts.hidden),
              "--snapshot-every", str(opts.snapshot_every)]
    slow_index = n_workers - 1 if slow else None
    children, timer = [], None
    try:
        children.append(Child(opts.python, common + ["--job", "ps"], token, "ps", task_env("tensorweave", "ps", 2)))
        for i in range(n_workers):
            extra = ["--slow-ms", str(opts.slow_ms)] if i == slow_index else []
            children.append(Child(opts.python, common + ["--job", "worker", "--index", str(i)] + extra, token,
                                  "worker %d" % i, task_env("tensorweave", "worker", n_workers)))
        for c in children:
            c.expect("up", opts.timeout)
        workers = children[1:]
        for w in workers:
            w.expect("ready", opts.timeout)
        load = ForeignLoad(children)
        t_go = time.time()
        for w in workers:
            w.send("go")
        # Past the time budget every worker reports the steps it has taken (the chief included).
        timer = threading.Timer(opts.max_s, lambda: [w.send("stop") for w in workers])
        timer.start()
        results = [workers[0].expect("result", opts.max_s + opts.timeout)]
        for w in workers[1:]:
            w.send("stop")  # a sync worker may be waiting for a token the stopped chief never sends
            results.append(w.expect("result", opts.timeout))
        foreign = load.cores()
        workers[0].send("score")
        results[0]["snapshots"] = workers[0].expect("scores", opts.timeout)["snapshots"]
        for c in children:
            c.send("exit")
        return dict(summarize(results, t_go, opts.target), key=key, label=label, mode=mode,
                    workers=n_workers, replicas=replicas or n_workers, slow_worker=slow_index,
                    foreign_load=foreign, ok=True)
    except ChildError as e:
        return dict(key=key, label=label, ok=False, error=str(e), traceback=e.traceback)
    finally:
        if timer is not None:
            timer.cancel()
        stop_all(children)


def summarize(results, t_go, target):
    """Step-time percentiles, global steps/s and the time to `target` accuracy of one run."""
    times = np.array([s for r in results for _, s, _ in r["steps"][WARMUP_STEPS:]]) * 1e3
    # Global steps/s from the first step after a worker's warm-up to the last step of any worker.
    points = sorted((t, g) for r in results for t, _, g in r["steps"][WARMUP_STEPS - 1:])
    rate = None
    if len(points) > 1 and points[-1][0] > points[0][0]:
        (t0, g0), (t1, g1) = points[0], points[-1]
        rate = (g1 - g0) / (t1 - t0)
    snaps = results[0]["snapshots"]
    reached = next(((t - t_go, g) for t, g, acc in snaps if acc >= target), None)
    per_worker = [dict(index=r["index"], steps=len(r["steps"]), finished=r["finished"],
                       median_ms=float(np.median([s for _, s, _ in r["steps"][WARMUP_STEPS:]]) * 1e3)
                       if len(r["steps"]) > WARMUP_STEPS else None) for r in results]
    return dict(
        steps_per_s=rate,
        median_ms=float(np.median(times)) if times.size else None,
        p90_ms=float(np.percentile(times, 90)) if times.size else None,
        global_step=max((s[-1][2] for s in (r["steps"] for r in results) if s), default=0),
        elapsed_s=max((s[-1][0] for s in (r["steps"] for r in results) if s), default=t_go) - t_go,
        time_to_target_s=reached[0] if reached else None,
        step_at_target=reached[1] if reached else None,
        final_accuracy=snaps[-1][2] if snaps else None,
        accuracy_curve=[(t - t_go, g, acc) for t, g, acc in snaps],
        per_worker=per_worker)


# --- the table ------------------------------------------------------------------------------------

def fmt(value, pattern, missing="-"):
    return missing if value is None else pattern % value


def print_table(rows, opts):
    """The table of `rows` (run_config results, in CONFIGS order) and the ratios under it."""
    by = {r["key"]: r for r in rows}
    model = "MLP 784-%d-10" % opts.hidden if opts.hidden else "softmax regression"
    print("Sync vs async training, MNIST %s, batch 100, lr 0.5, all variables on 1 PS; stop at global "
          "step %d or after %.0f s" % (model, opts.last_step, opts.max_s))
    print("slow worker: the last one, sleeping %.0f ms before each step; step times: one worker's step, "
          "sleep included, all workers pooled" % opts.slow_ms)
    print()
    head = "%-48s%10s%12s%10s%14s%9s%11s" % ("configuration", "steps/s", "median ms", "p90 ms",
                                             "to %.2f acc" % opts.target, "at step", "final acc")
    print(head)
    print("-" * len(head))
    for key, label, *_ in CONFIGS:
        r = by.get(key)
        if r is None:
            continue
        if not r.get("ok"):
            print("%-48s%10s" % (label, "error"))
            continue
        mark = "~" if noisy(r.get("foreign_load")) else ""
        print("%-48s%10s%12s%10s%14s%9s%11s" % (
            label, fmt(r["steps_per_s"], "%.1f") + mark, fmt(r["median_ms"], "%.1f"), fmt(r["p90_ms"], "%.1f"),
            fmt(r["time_to_target_s"], "%.1f s", "not reached"), fmt(r["step_at_target"], "%d"),
            fmt(r["final_accuracy"], "%.4f")))
    print()

    def ratio(a, b, field):
        x, y = by.get(a), by.get(b)
        if x and y and x.get("ok") and y.get("ok") and x.get(field) and y.get(field):
            return x[field] / y[field]
        return None

    for n in (2, 3):
        print("sync / async global steps/s, %d workers: %s" % (
            n, fmt(ratio("sync%d" % n, "async%d" % n, "steps_per_s"), "%.2fx")))
    print("backup worker speedup (median step time without / with backup): %s"
          % fmt(ratio("sync_slow", "sync_backup", "median_ms"), "%.2fx"))
    print("backup worker, global steps/s with / without backup: %s"
          % fmt(ratio("sync_backup", "sync_slow", "steps_per_s"), "%.2fx"))
    print("backup worker, time to %.2f accuracy without / with backup: %s" % (
        opts.target, fmt(ratio("sync_slow", "sync_backup", "time_to_target_s"), "%.2fx")))
    print()
    for r in rows:
        if r.get("ok"):
            print("%-48s local steps per worker: %s; median ms: %s" % (
                r["label"], ", ".join("%d%s" % (w["steps"], "" if w["finished"] else "*") for w in r["per_worker"]),
                ", ".join(fmt(w.get("median_ms"), "%.1f") for w in r["per_worker"])))
    print("* stopped by the benchmark in a step once the chief had finished (a sync worker may wait for a "
          "token forever then), or at the time budget")
    for r in rows:
        if not r.get("ok"):
            print("%s: %s" % (r["label"], r["error"][:500]))
    if any(r.get("ok") and noisy(r.get("foreign_load")) for r in rows):
        print("~ other processes used more than %.1f CPU cores while this was measured: noisy, rerun on a "
              "quiet machine" % distributed.NOISY_CORES)


# --- driver ---------------------------------------------------------------------------------------

def prepare_data(data_dir):
    """Makes sure the MNIST files are in `data_dir`, so that the tasks read them offline."""
    from tensorweave.examples.tutorials.mnist import input_data

    input_data.read_data_sets(data_dir, one_hot=True)


def run(opts, log=sys.stderr):
    """Runs every configuration, prints the table, returns the results as a dict."""
    for name, value in (QUICK if opts.quick else DEFAULTS).items():
        if getattr(opts, name, None) is None:
            setattr(opts, name, value)
    opts.timeout = getattr(opts, "timeout", None) or 120.0
    opts.target = getattr(opts, "target", None) or 0.9
    opts.hidden = getattr(opts, "hidden", None) or 0
    opts.data_dir = getattr(opts, "data_dir", None) or os.path.join(ROOT, "MNIST_data")
    token = secrets.token_hex(16)
    t_start = time.perf_counter()
    prepare_data(opts.data_dir)
    rows = []
    for config in CONFIGS:
        t0 = time.perf_counter()
        log.write("sync: %-48s ... " % config[1])
        log.flush()
        r = run_config(opts, token, config)
        rows.append(r)
        log.write("%s (%.1f s)\n" % ("%s steps/s" % fmt(r.get("steps_per_s"), "%.1f") if r["ok"] else "error",
                                     time.perf_counter() - t0))
        log.flush()
    log.write("\n")
    print("TensorWeave sync/async benchmark%s: %s CPUs (%s), python %s, loopback only" % (
        " (quick)" if opts.quick else "",
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        distributed.cpu_name(), platform.python_version()))
    print()
    print_table(rows, opts)
    elapsed = time.perf_counter() - t_start
    print("sync benchmark: %.0f s" % elapsed)
    return dict(quick=bool(opts.quick), last_step=opts.last_step, slow_ms=opts.slow_ms, max_s=opts.max_s,
                target=opts.target, hidden=opts.hidden, rows=rows, elapsed_s=elapsed)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a short run (global step %d, %d ms sleep): a smoke test" % (QUICK["last_step"],
                                                                                   QUICK["slow_ms"]))
    ap.add_argument("--last-step", type=int, default=None,
                    help="global step budget (default %d)" % DEFAULTS["last_step"])
    ap.add_argument("--slow-ms", type=float, default=None,
                    help="sleep before each step of the slow worker (default %d ms)" % DEFAULTS["slow_ms"])
    ap.add_argument("--max-s", type=float, default=None,
                    help="time budget per configuration (default %d s)" % DEFAULTS["max_s"])
    ap.add_argument("--snapshot-every", type=int, default=None,
                    help="the chief copies the weights every N of its steps (default %d)" % DEFAULTS["snapshot_every"])
    ap.add_argument("--target", type=float, default=0.9, help="test accuracy to reach (default 0.9)")
    ap.add_argument("--hidden", type=int, default=0, help="hidden ReLU units (default 0: softmax regression)")
    ap.add_argument("--data-dir", default=None, help="MNIST directory (default: MNIST_data in the repository)")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON to PATH")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the tasks (default: this one)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds allowed for each wait on a task (default 120)")
    opts = ap.parse_args(argv)
    doc = run(opts)
    if opts.json:
        write_json(doc, opts.json)
    return 0 if all(r.get("ok") for r in doc["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
