"""Step time with tracing off and on: what RunOptions(trace_level=FULL_TRACE) costs.

    python -m bench.tracing [--workloads mlp,chain] [--quick] [--json PATH]

In one process, on one session, three ways of running the same training step are timed in
interleaved rounds (so a disturbance of the machine hits all three alike):

  baseline  sess.run(train, feed)                      -- no options, no RunMetadata
  off       sess.run(train, feed, options=RunOptions(), run_metadata=md)
            -- NO_TRACE, after traced steps have run (their instrumented plan exists)
  on        sess.run(train, feed, options=RunOptions(trace_level=FULL_TRACE), run_metadata=md)

and printed as ratios to the baseline, from the fastest block of each (the one least disturbed
by other processes; the medians are in the JSON output). Targets (issue 4): off costs nothing
measurable (ratio 1.00 within the noise), on <= 1.3x for the MLP. The chain of 1000 tiny element-wise ops shows the
per-op cost of tracing, where the kernels themselves take well under a microsecond.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import write_json
from bench.run_one import THREADS, LoadMeter
from bench.workloads import (CHAIN_LEN, MLP_BATCH, build_chain, build_mlp, chain_input, make_classification_data,
                             make_session, mlp_init_params)

TARGET_ON = 1.3
TARGET_OFF = 1.03  # "nothing measurable": within the run-to-run noise of these measurements
MODES = ("baseline", "off", "on")


def _setup(workload, threads):
    import tensorweave.compat.v1 as tf

    tf.disable_v2_behavior()
    with tf.Graph().as_default():  # the session keeps it
        if workload == "mlp":
            xs, ys = make_classification_data(MLP_BATCH)
            g = build_mlp(tf, mlp_init_params())
            feeds = [{g["x"]: x, g["y_"]: y} for x, y in zip(xs, ys, strict=True)]
            fetch, n_ops = g["train"], None
        else:
            g = build_chain(tf)
            feeds = [{g["x"]: chain_input()}]
            fetch, n_ops = g["out"], CHAIN_LEN
        sess = make_session(tf, threads)
    no_trace = tf.RunOptions()
    full_trace = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
    spare = tf.RunMetadata()
    nb = len(feeds)

    def baseline(i):
        sess.run(fetch, feed_dict=feeds[i % nb])

    def off(i):
        sess.run(fetch, feed_dict=feeds[i % nb], options=no_trace, run_metadata=spare)

    def on(i):
        md = tf.RunMetadata()
        sess.run(fetch, feed_dict=feeds[i % nb], options=full_trace, run_metadata=md)
        return md

    ops = len(on(0).step_stats.dev_stats[0].node_stats)  # also compiles the instrumented plan
    return {"baseline": baseline, "off": off, "on": on}, n_ops or ops, ops


def _median(values):
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])


def measure(workload, rounds, block_s, threads=THREADS):
    """Per mode, the best and the median ms per step over `rounds` interleaved blocks of
    ~`block_s` seconds each, and the ratios of the best blocks to the baseline's."""
    steps, n_ops, traced_ops = _setup(workload, threads)
    clock = time.perf_counter
    for mode in MODES:  # warm-up, and a block size from the slowest mode
        for i in range(3):
            steps[mode](i)
    t0 = clock()
    for i in range(3):
        steps["on"](i)
    n = max(3, int(block_s / max((clock() - t0) / 3, 1e-6)))
    times = {mode: [] for mode in MODES}
    meter = LoadMeter()
    i = 0
    for r in range(rounds):
        order = MODES[r % 3:] + MODES[:r % 3]  # rotate, so no mode always follows another
        for mode in order:
            step = steps[mode]
            t0 = clock()
            for j in range(i, i + n):
                step(j)
            times[mode].append((clock() - t0) / n * 1e3)
            i += n
    out = {mode: min(v) for mode, v in times.items()}
    return {"workload": workload, "step_ms": out, "median_ms": {mode: _median(v) for mode, v in times.items()},
            "ms_all": times, "steps_per_block": n, "n_ops": n_ops,
            "traced_ops": traced_ops, "foreign_load": meter.foreign_cores(), "threads": threads,
            "off_ratio": out["off"] / out["baseline"], "on_ratio": out["on"] / out["baseline"],
            "on_us_per_op": (out["on"] - out["baseline"]) * 1e3 / n_ops}


def report(results):
    print("Tracing cost (TensorWeave, one process, %d BLAS threads; fastest of interleaved blocks)"
          % results[0]["threads"])
    print()
    line = "%-30s%12s%12s%12s%10s%10s%14s" % ("ms per step", "baseline", "off", "on", "off/base",
                                              "on/base", "on: +us/op")
    print(line)
    print("-" * len(line))
    for r in results:
        ms = r["step_ms"]
        label = {"mlp": "MLP 784-1024-1024-10 (b=128)", "chain": "chain of %d ops" % CHAIN_LEN}[r["workload"]]
        print("%-30s%12.3f%12.3f%12.3f%9.2fx%9.2fx%14.2f" % (label, ms["baseline"], ms["off"], ms["on"],
                                                             r["off_ratio"], r["on_ratio"], r["on_us_per_op"]))
    print()
    for r in results:
        if r["workload"] == "mlp":
            print("targets (MLP): off/base <= %.2fx (nothing measurable): %s; on/base <= %.1fx: %s" % (
                TARGET_OFF, "met" if r["off_ratio"] <= TARGET_OFF else "MISSED",
                TARGET_ON, "met" if r["on_ratio"] <= TARGET_ON else "MISSED"))
    loads = [r["foreign_load"] for r in results if r["foreign_load"] is not None]
    if loads and max(loads) > 0.3:
        print("~ other processes kept %.1f CPU cores busy while this was measured: noisy" % max(loads))


def run(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="mlp,chain", help="comma-separated subset of mlp,chain")
    ap.add_argument("--quick", action="store_true", help="6 short rounds instead of 15")
    ap.add_argument("--threads", type=int, default=THREADS,
                    help="intra_op_parallelism_threads, the BLAS pool (default %d, as bench.run_one)" % THREADS)
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args(argv)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in workloads if w not in ("mlp", "chain")]
    if bad:
        ap.error("unknown workload(s) %s (choose from mlp, chain)" % ", ".join(bad))
    rounds, block_s = (6, 0.1) if args.quick else (15, 0.2)
    results = [measure(w, rounds, block_s, args.threads) for w in workloads]
    report(results)
    if args.json:
        write_json({"tracing": results}, args.json, say=False)
    return results


if __name__ == "__main__":
    run()
    sys.stdout.flush()
