"""Run one (framework, workload) benchmark in this process; print JSON on stdout.

    python -m bench.run_one --framework tf --workload softmax [--quick]
    python -m bench.run_one --info

Anything the frameworks print goes to stderr; stdout carries only the JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback

FRAMEWORKS = ("tensorweave", "tf", "torch", "numpy")
THREADS = 2

# Timing parameters: (repeats, seconds per repeat, warm-up seconds, min warm-up steps)
FULL = dict(repeats=7, target_s=0.3, warmup_s=0.5, min_warmup=5)
QUICK = dict(repeats=3, target_s=0.1, warmup_s=0.2, min_warmup=3)
CHECK_STEPS = 3


class NotInstalled(Exception):
    pass


def blas_info():
    """Which BLAS numpy uses here (threadpoolctl if present, else numpy's build config)."""
    import numpy as np

    info = {"numpy": np.__version__}
    try:
        import threadpoolctl

        libs = []
        for d in threadpoolctl.threadpool_info():
            if d.get("user_api") == "blas":
                libs.append({k: d.get(k) for k in ("internal_api", "prefix", "version",
                                                     "architecture", "threading_layer",
                                                     "num_threads", "filepath")})
        info["blas"] = libs
        info["source"] = "threadpoolctl"
    except ImportError:
        try:
            cfg = np.show_config(mode="dicts")
            blas = cfg.get("Build Dependencies", {}).get("blas", {})
            info["blas"] = [{"internal_api": blas.get("name"), "version": blas.get("version"),
                             "architecture": None, "num_threads": None}]
            info["source"] = "numpy.show_config"
        except Exception as e:  # very old numpy
            info["blas"] = []
            info["source"] = "unknown (%s)" % e
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                  "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    return info


def _require(module_name):
    if importlib.util.find_spec(module_name) is None:
        raise NotInstalled("%s is not installed" % module_name)


def setup(framework, workload):
    """Import the framework and build the workload. Returns (Workload, meta dict)."""
    from bench import workloads as W

    meta = {}
    if framework == "tf":
        _require("tensorflow")
        import tensorflow
        import tensorflow.compat.v1 as tf

        tf.disable_v2_behavior()
        meta["version"] = tensorflow.__version__
        meta["threads"] = "intra_op=%d inter_op=%d" % (THREADS, THREADS)
        return W.graph_setup(tf, workload, THREADS), meta
    if framework == "tensorweave":
        _require("tensorweave")
        import tensorweave
        import tensorweave.compat.v1 as tf

        if hasattr(tf, "disable_v2_behavior"):
            tf.disable_v2_behavior()
        meta["version"] = getattr(tensorweave, "__version__", "dev")
        meta["path"] = os.path.dirname(tensorweave.__file__)
        meta["threads"] = "intra_op=%d inter_op=%d" % (THREADS, THREADS)
        return W.graph_setup(tf, workload, THREADS), meta
    if framework == "torch":
        _require("torch")
        import torch

        torch.set_num_threads(THREADS)
        meta["version"] = torch.__version__
        meta["threads"] = "torch.set_num_threads(%d)" % THREADS
        return W.torch_setup(torch, workload), meta
    if framework == "numpy":
        import numpy as np

        meta["version"] = np.__version__
        return W.numpy_setup(workload), meta
    raise ValueError("unknown framework %r" % framework)


def _cpu_busy_s():
    """Seconds of CPU time all processes on the machine spent busy (from /proc/stat),
    or None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / _CLK_TCK


try:
    _CLK_TCK = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):
    _CLK_TCK = 100


class LoadMeter:
    """CPU used by other processes while we measure, in cores (0 = quiet machine)."""

    def __init__(self):
        self.busy0, self.self0, self.wall0 = _cpu_busy_s(), time.process_time(), time.perf_counter()

    def foreign_cores(self):
        busy = _cpu_busy_s()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.wall0
        own = time.process_time() - self.self0
        return max(0.0, (busy - self.busy0 - own) / wall) if wall > 0 else None


def warm_up(step, target_s, warmup_s, min_warmup):
    """Runs `step(i)` for at least `min_warmup` steps and `warmup_s` seconds. Returns (steps run,
    steps per timed block: as many as take about `target_s` at the later warm-up steps' median)."""
    clock = time.perf_counter
    t_start = clock()
    warm_times = []
    i = 0
    while i < min_warmup or clock() - t_start < warmup_s:
        t0 = clock()
        step(i)
        warm_times.append(clock() - t0)
        i += 1
    tail = sorted(warm_times[len(warm_times) // 2:])
    est = max(tail[len(tail) // 2], 1e-7)
    return i, max(1, int(round(target_s / est)))


def measure(step, repeats, target_s, warmup_s, min_warmup):
    """Warm up, then time `repeats` blocks of n steps each (n sized so a block
    takes ~target_s). Returns (per-step seconds for each block, n, warm-up
    steps, foreign CPU load in cores during the timed blocks)."""
    clock = time.perf_counter
    i, n = warm_up(step, target_s, warmup_s, min_warmup)
    n_warm = i
    per_step = []
    meter = LoadMeter()
    for _ in range(repeats):
        t0 = clock()
        for j in range(i, i + n):
            step(j)
        per_step.append((clock() - t0) / n)
        i += n
    return per_step, n, n_warm, meter.foreign_cores()


def run(framework, workload, quick=False):
    params = QUICK if quick else FULL
    result = {"framework": framework, "workload": workload, "ok": False,
              "python": platform.python_version(), "pid": os.getpid()}
    try:
        t0 = time.perf_counter()
        wl, meta = setup(framework, workload)
        result.update(meta)
        result["setup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result["check"] = wl.check(CHECK_STEPS)
        result["first_run_s"] = time.perf_counter() - t0
        per_step, n, n_warm, foreign = measure(wl.step, **params)
    except NotInstalled as e:
        result.update(status="not installed", error=str(e))
        return result
    except BaseException as e:  # report any failure as data, never crash the parent
        result.update(status="error", error="%s: %s" % (type(e).__name__, e),
                      traceback=traceback.format_exc(limit=8))
        return result
    s = sorted(per_step)
    median = s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])
    result.update(ok=True, status="ok", repeats_ms=[t * 1e3 for t in per_step],
                  step_ms=median * 1e3, step_ms_min=s[0] * 1e3, step_ms_max=s[-1] * 1e3,
                  steps_per_repeat=n, warmup_steps=n_warm, n_ops=wl.n_ops,
                  per_op_us=median * 1e6 / wl.n_ops, foreign_load=foreign)
    if framework in ("numpy", "tensorweave"):
        try:
            result["blas"] = blas_info()
        except Exception:
            pass
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.run_one", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--framework", choices=FRAMEWORKS)
    ap.add_argument("--workload", choices=("softmax", "mlp", "chain"))
    ap.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    ap.add_argument("--info", action="store_true", help="print numpy/BLAS info and exit")
    args = ap.parse_args(argv)
    if not args.info and not (args.framework and args.workload):
        ap.error("--framework and --workload are required (or --info)")

    # Keep stdout for the JSON alone: route everything else (including C-level
    # prints from the frameworks) to stderr while we work.
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        result = blas_info() if args.info else run(args.framework, args.workload, args.quick)
    finally:
        sys.stdout.flush()
    os.write(json_fd, (json.dumps(result) + "\n").encode())
    os.close(json_fd)
    sys.stderr.flush()
    # Skip interpreter teardown: some frameworks' thread pools make it slow or
    # crash at exit, and the result has been written.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
