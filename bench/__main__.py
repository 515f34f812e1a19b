"""TensorWeave vs TensorFlow 1.x graph mode vs PyTorch vs hand-written NumPy.

    python -m bench [--workloads softmax,mlp,chain] [--frameworks tensorweave,tf,torch,numpy]
                    [--quick] [--json PATH] [--python INTERPRETER] [--retries N]
                    [--wait-quiet S] [--timeout S]
                    [--suite all|local|distributed|inference|tracing|sync]

--suite all (the default) prints the single-process table below and then the distributed
benchmark (`python -m bench.distributed`, which has options of its own): tensor transfer,
parameter-server training and transfer encodings, training on those of --frameworks that are
tensorweave or tf; then the inference benchmark (`python -m bench.inference`): ONNX Runtime on
the exported MLP vs TensorWeave's NumPy inference path vs a tf.Session; then the cost of
tracing (`python -m bench.tracing`): MLP step time with tracing off and on; then sync vs async
training on MNIST with and without a backup worker against a slow one (`python -m bench.sync`).

Each (framework, workload) pair runs in its own subprocess
(`python -m bench.run_one ...`, JSON on stdout), one at a time, so thread pools
of different frameworks never share a process or compete for the cores.  A peer
that is not installed shows "not installed"; the others still run.

Cells marked "~" were measured while other processes kept more than 0.3 CPU
cores busy (read from /proc/stat); such a measurement is re-run once, and
--wait-quiet S waits for an idle machine before each one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from bench import write_json
from bench.run_one import FRAMEWORKS
from bench.workloads import CHAIN_LEN, WORKLOADS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = {"tensorweave": "TensorWeave", "tf": "TF1 graph", "torch": "PyTorch", "numpy": "NumPy"}
# TensorWeave targets, as a multiple of TensorFlow's time (chain: per op; same op count).
TARGETS = {"softmax": 0.6, "mlp": 0.9, "chain": 2.0}
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Frameworks whose numpy/BLAS run without the old-OpenBLAS workaround variables.
UNSET_OPENBLAS_FOR = ("numpy", "tensorweave", "info")
# Other processes using more than this many cores during a measurement make it noisy.
NOISY_CORES = 0.3
RETRY_BUDGET_S = 120  # no re-runs of noisy measurements after this much total time


def noisy(r):
    return bool(r and r.get("ok") and (r.get("foreign_load") or 0) > NOISY_CORES)


def child_env(framework):
    env = dict(os.environ)
    if framework in UNSET_OPENBLAS_FOR:
        for k in OPENBLAS_VARS:
            env.pop(k, None)
    if framework == "tf":
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_child(python, args, framework, timeout):
    """Run `python -m bench.run_one ARGS`; return its JSON dict (or a failure dict)."""
    cmd = [python, "-m", "bench.run_one"] + args
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=child_env(framework), capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "status": "timeout", "error": "no result within %ss" % timeout}
    except OSError as e:
        return {"ok": False, "status": "error", "error": "cannot start %s: %s" % (python, e)}
    for line in reversed(p.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    tail = "\n".join(p.stderr.strip().splitlines()[-5:])
    return {"ok": False, "status": "crashed", "error": "exit code %s; %s" % (p.returncode, tail)}


def machine_load(window_s=0.5):
    """Cores kept busy by other processes over `window_s` (this parent is idle)."""
    from bench.run_one import _cpu_busy_s

    b0 = _cpu_busy_s()
    time.sleep(window_s)
    b1 = _cpu_busy_s()
    return None if b0 is None or b1 is None else (b1 - b0) / window_s


def wait_quiet(max_wait_s, threshold=0.15):
    """Wait up to max_wait_s for the machine to go quiet; return the last load seen."""
    deadline = time.perf_counter() + max_wait_s
    load = machine_load()
    while load is not None and load > threshold and time.perf_counter() < deadline:
        load = machine_load()
    return load


def cpu_model():
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.processor() or platform.machine())
    if "cpu family" in fields:
        name += " (family %s, model %s)" % (fields["cpu family"], fields.get("model", "?"))
    flags = fields.get("flags", "").split()
    isa = [f for f in ("avx2", "avx512f", "fma") if f in flags]
    if isa:
        name += ", " + "/".join(isa)
    return name


def describe_blas(info):
    if not info or not isinstance(info, dict) or "numpy" not in info:
        return "numpy not importable (%s)" % (info or {}).get("error", "?")
    parts = []
    for b in info.get("blas") or []:
        s = "%s %s" % (b.get("internal_api") or b.get("prefix") or "?", b.get("version") or "")
        if b.get("architecture"):
            s += ", kernel %s" % b["architecture"]
        if b.get("num_threads") is not None:
            s += ", %s threads" % b["num_threads"]
        parts.append(s.strip())
    return "numpy %s, BLAS: %s (via %s)" % (info["numpy"], "; ".join(parts) or "unknown",
                                             info.get("source", "?"))


def fmt_ms(r):
    if r is None:
        return "-"
    if not r.get("ok"):
        return r.get("status", "error")
    ms = r["step_ms"]
    return ("%.3f ms" % ms if ms < 100 else "%.0f ms" % ms) + ("~" if noisy(r) else "")


def fmt_us_per_op(r):
    if r is None or not r.get("ok"):
        return "-"
    return "%.2f us" % r["per_op_us"] + ("~" if noisy(r) else "")


def agreement(results, workload, frameworks):
    """Max relative difference of each framework's check values from a reference."""
    ok = {fw: results[(fw, workload)] for fw in frameworks
          if results.get((fw, workload), {}).get("ok") and results[(fw, workload)].get("check")}
    ref_fw = "numpy" if "numpy" in ok else next(iter(ok), None)
    out = {}
    if ref_fw is None:
        return None, out
    ref = ok[ref_fw]["check"]
    for fw, r in ok.items():
        if fw == ref_fw:
            continue
        vals = r["check"]
        if len(vals) != len(ref):
            out[fw] = float("inf")
            continue
        out[fw] = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(vals, ref))
    return ref_fw, out


def print_table(results, workloads, frameworks, header):
    print(header)
    print()
    w0 = 34
    cols = frameworks
    show_ratios = "tensorweave" in frameworks
    ratio_cols = [fw for fw in ("tf", "torch") if fw in frameworks] if show_ratios else []
    line = "%-*s" % (w0, "time per step (median)") + "".join("%14s" % LABELS[fw] for fw in cols)
    line += "".join("%10s" % ("TW/" + {"tf": "TF", "torch": "torch"}[fw]) for fw in ratio_cols)
    if "tf" in ratio_cols:
        line += "%10s%8s" % ("target", "")
    print(line)
    print("-" * len(line))

    def ratio(wl, fw):
        a, b = results.get(("tensorweave", wl)), results.get((fw, wl))
        if a and b and a.get("ok") and b.get("ok"):
            return a["step_ms"] / b["step_ms"]
        return None

    for wl in workloads:
        label = {"softmax": "softmax regression (b=100)",
                 "mlp": "MLP 784-1024-1024-10 (b=128)",
                 "chain": "chain of %d ops, per run" % CHAIN_LEN}[wl]
        rows = [(label, fmt_ms)]
        if wl == "chain":
            rows.append(("chain, per op", fmt_us_per_op))
        for i, (lab, fmt) in enumerate(rows):
            line = "%-*s" % (w0, lab) + "".join("%14s" % fmt(results.get((fw, wl))) for fw in cols)
            # ratios go on the per-op row for the chain (same op count, same ratio)
            if ratio_cols and i == len(rows) - 1:
                for fw in ratio_cols:
                    r = ratio(wl, fw)
                    line += "%10s" % ("%.2fx" % r if r is not None else "-")
                if "tf" in ratio_cols:
                    r = ratio(wl, "tf")
                    verdict = "" if r is None else ("met" if r <= TARGETS[wl] else "MISSED")
                    line += "%10s%8s" % ("<=%.1fx TF" % TARGETS[wl], verdict)
            print(line)
    print()
    if any(noisy(r) for r in results.values()):
        print("~ other processes used more than %.1f CPU cores while this was measured: "
              "noisy, rerun on a quiet machine" % NOISY_CORES)
        print()

    # Correctness: the first losses (chain: outputs) from identical data and parameters.
    for wl in workloads:
        ref_fw, diffs = agreement(results, wl, frameworks)
        if not diffs:
            continue
        what = "outputs" if wl == "chain" else "first 3 losses"
        parts = ["%s %.1e%s" % (LABELS[fw], d, "" if d < 1e-3 else " MISMATCH")
                 for fw, d in diffs.items()]
        print("check %-8s %s, max rel. diff vs %s: %s" % (wl, what, LABELS[ref_fw], ", ".join(parts)))

    # Versions and failures
    print()
    seen = set()
    for fw in frameworks:
        for wl in workloads:
            r = results.get((fw, wl))
            if r and r.get("ok") and fw not in seen:
                seen.add(fw)
                extra = ", %s" % r["threads"] if r.get("threads") else ""
                print("%-12s %s%s" % (LABELS[fw], r.get("version", "?"), extra))
    for fw in frameworks:
        for wl in workloads:
            r = results.get((fw, wl))
            if r and not r.get("ok") and r.get("status") != "not installed":
                print("%s/%s: %s: %s" % (fw, wl, r.get("status"), (r.get("error") or "").splitlines()[0][:300]
                                         if r.get("error") else ""))
    missing = sorted({fw for (fw, wl), r in results.items() if r.get("status") == "not installed"})
    for fw in missing:
        print("%-12s not installed" % LABELS[fw])


def parse_list(value, allowed, what):
    items = [v.strip() for v in value.replace(" ", ",").split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit("unknown %s: %s (choose from %s)" % (what, ", ".join(bad), ", ".join(allowed)))
    return items


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="comma-separated subset of %s" % ",".join(WORKLOADS))
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                    help="comma-separated subset of %s" % ",".join(FRAMEWORKS))
    ap.add_argument("--quick", action="store_true", help="3 short repeats instead of 7")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON to PATH")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter for the subprocesses (default: this one)")
    ap.add_argument("--retries", type=int, default=1,
                    help="re-runs of a measurement disturbed by other processes (default 1)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="before each measurement wait up to S seconds for other "
                         "processes to leave the CPUs idle (default 0: don't wait)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds allowed per subprocess (default 150, quick 60)")
    ap.add_argument("--suite", choices=("all", "local", "distributed", "inference", "tracing", "sync"),
                    default="all",
                    help="local: the single-process table; distributed: bench.distributed; "
                         "inference: bench.inference (ONNX Runtime vs TensorWeave on the exported MLP); "
                         "tracing: bench.tracing (step time with tracing off and on); "
                         "sync: bench.sync (sync vs async training, backup workers); all (default): each")
    args = ap.parse_args(argv)
    if args.suite == "distributed":
        return run_distributed(args, parse_list(args.frameworks, FRAMEWORKS, "framework"))
    if args.suite == "inference":
        return run_inference(args)
    if args.suite == "tracing":
        return run_tracing(args)
    if args.suite == "sync":
        return run_sync(args)
    workloads = parse_list(args.workloads, WORKLOADS, "workload")
    frameworks = parse_list(args.frameworks, FRAMEWORKS, "framework")
    timeout = args.timeout or (60 if args.quick else 150)

    t_start = time.perf_counter()
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = run_child(args.python, ["--info"], "info", 60)
    set_vars = {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}
    header = [
        "TensorWeave benchmark%s: median of %s repeats, each of N steps after warm-up"
        % (" (quick)" if args.quick else "", 3 if args.quick else 7),
        "machine:  %s CPUs (nproc), %s; %s %s" % (nproc, cpu_model(), platform.system(), platform.release()),
        "python:   %s (%s)" % (platform.python_version(), args.python),
        "numpy:    %s" % describe_blas(info),
    ]
    if set_vars:
        header.append("env:      %s set here; unset for the NumPy and TensorWeave subprocesses"
                      % " ".join("%s=%s" % kv for kv in set_vars.items()))
    header.append("threads:  2 (TF ConfigProto intra/inter_op=2, torch.set_num_threads(2), "
                  "OpenBLAS default on %s cores)" % nproc)

    results = {}
    jobs = [(wl, fw) for wl in workloads for fw in frameworks]
    for n, (wl, fw) in enumerate(jobs, 1):
        t0 = time.perf_counter()
        sys.stderr.write("[%2d/%d] %-11s %-8s ... " % (n, len(jobs), fw, wl))
        sys.stderr.flush()
        child_args = ["--framework", fw, "--workload", wl] + (["--quick"] if args.quick else [])
        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet)
        r = run_child(args.python, child_args, fw, timeout)
        tries = 0
        while noisy(r) and tries < args.retries and time.perf_counter() - t_start < RETRY_BUDGET_S:
            tries += 1
            sys.stderr.write("noisy (other processes: %.1f cores), again ... " % r["foreign_load"])
            sys.stderr.flush()
            if args.wait_quiet > 0:
                wait_quiet(args.wait_quiet)
            r2 = run_child(args.python, child_args, fw, timeout)
            if r2.get("ok") and r2.get("foreign_load", 0) < r.get("foreign_load", 0):
                r = r2
        r.setdefault("framework", fw)
        r.setdefault("workload", wl)
        results[(fw, wl)] = r
        status = fmt_ms(r) + ("/step" if r.get("ok") else "")
        sys.stderr.write("%s (%.1f s)\n" % (status, time.perf_counter() - t0))
        sys.stderr.flush()

    sys.stderr.write("\n")
    print_table(results, workloads, frameworks, "\n".join(header))
    elapsed = time.perf_counter() - t_start
    print("\ntotal %.0f s" % elapsed)

    doc = {"header": header, "numpy_info": info, "nproc": nproc, "cpu": cpu_model(),
           "targets_vs_tf": TARGETS, "elapsed_s": elapsed,
           "results": [results[(fw, wl)] for wl, fw in jobs]}
    if args.json:
        write_json(doc, args.json, say=False)
    if args.suite == "all":
        print()
        sys.stdout.flush()
        run_distributed(args, frameworks, doc)
        print()
        sys.stdout.flush()
        run_inference(args)
        print()
        sys.stdout.flush()
        run_tracing(args)
        print()
        sys.stdout.flush()
        run_sync(args)
    elif args.json:
        print("results written to %s" % args.json)
    return 0


def run_distributed(args, frameworks, doc=None):
    """Runs `bench.distributed` with this command line's options; its results go into the JSON
    file under "distributed" (next to the single-process `doc`, if any)."""
    from bench import distributed

    opts = argparse.Namespace(
        parts=",".join(distributed.PARTS), measure_s=None, quick=args.quick, python=args.python,
        timeout=args.timeout,
        frameworks=",".join(fw for fw in frameworks if fw in distributed.FRAMEWORKS))
    if not opts.frameworks:
        opts.parts = "transfer"
    doc = dict(doc or {}, distributed=distributed.run(opts))
    if args.json:
        write_json(doc, args.json)
    return 0


def run_inference(args):
    """Runs `bench.inference` (ONNX Runtime vs TensorWeave's inference path vs a Session)."""
    from bench import inference

    inference.run(argparse.Namespace(quick=args.quick, batches="128,1", python=args.python,
                                     timeout=args.timeout, threads=None))
    return 0


def run_tracing(args):
    """Runs `bench.tracing` (TensorWeave alone) in its own process, as the other measurements run."""
    cmd = [args.python, "-m", "bench.tracing"] + (["--quick"] if args.quick else [])
    try:
        subprocess.run(cmd, cwd=ROOT, env=child_env("tensorweave"), timeout=args.timeout or 300, check=False)
    except subprocess.TimeoutExpired:
        print("tracing: no result within %ss" % (args.timeout or 300))
    return 0


def run_sync(args):
    """Runs `bench.sync` (sync vs async training on MNIST, with and without a backup worker)."""
    from bench import sync

    sync.run(argparse.Namespace(quick=args.quick, python=args.python, timeout=args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
