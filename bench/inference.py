"""Inference throughput of the MLP 784-1024-1024-10: ONNX Runtime on the exported model vs
TensorWeave's NumPy inference path vs a regular `tf.Session` run, side by side.

    python -m bench.inference [--quick] [--batches 128,1] [--python INTERPRETER]

The parent builds the model once (fixed seeds), saves it with `tf.saved_model.simple_save` and
exports it with `tensorweave.export.onnx`; each runtime is then measured in its own subprocess
(`python -m bench.inference --child RUNTIME ...`, JSON on stdout), so no thread pool of one
runtime spins beside another. The session run loads the saved model with
`tf.saved_model.loader.load` (variables live); the inference path freezes it on load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = (784, 1024, 1024, 10)
RUNTIMES = ("onnxruntime", "inference", "session")
LABELS = {"onnxruntime": "ONNX Runtime", "inference": "TW inference", "session": "TW tf.Session"}


def build(workdir):
    """Saves the MLP to `workdir/saved_model` and `workdir/mlp.onnx`."""
    import tensorweave.compat.v1 as tf
    from tensorweave.export import onnx as onnx_export

    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, SIZES[0]], name="x")
        h = x
        for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
            w = tf.Variable(tf.truncated_normal([n_in, n_out], stddev=0.05, seed=i + 1), name=f"w{i}")
            b = tf.Variable(tf.zeros([n_out]), name=f"b{i}")
            h = tf.matmul(h, w) + b
            if i < len(SIZES) - 2:
                h = tf.nn.relu(h)
        y = tf.nn.softmax(h, name="y")
        sess = tf.Session()
        sess.run(tf.global_variables_initializer())
        tf.saved_model.simple_save(sess, os.path.join(workdir, "saved_model"), {"x": x}, {"y": y})
    onnx_export.export(os.path.join(workdir, "saved_model"), ["x"], ["y"], os.path.join(workdir, "mlp.onnx"))


def _runner(runtime, workdir, threads):
    """A function `run(batch) -> probabilities` for `runtime`, and a version string; each
    runtime computes with `threads` threads (ONNX Runtime's intra-op pool, NumPy's BLAS)."""
    if runtime == "onnxruntime":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(os.path.join(workdir, "mlp.onnx"), options, providers=["CPUExecutionProvider"])
        return (lambda batch: session.run(["y:0"], {"x:0": batch})[0]), f"onnxruntime {ort.__version__}"
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)  # for the life of the process
    if runtime == "inference":
        import tensorweave.inference
        model = tensorweave.inference.load(os.path.join(workdir, "saved_model"))
        return (lambda batch: model.run({"x": batch})["y"]), "tensorweave.inference (NumPy)"
    import tensorweave.compat.v1 as tf
    sess = tf.Session(graph=tf.Graph(), config=tf.ConfigProto(intra_op_parallelism_threads=threads))
    with sess.graph.as_default():
        meta = tf.saved_model.loader.load(sess, ["serve"], os.path.join(workdir, "saved_model"))
    sig = meta.signature_def["serving_default"]
    x, y = sig.inputs["x"].name, sig.outputs["y"].name
    return (lambda batch: sess.run(y, {x: batch})), "tensorweave tf.Session"


def child(runtime, workdir, batches, measure_s, repeats, threads):
    """Measures `runtime`; prints one JSON line: per batch size, the median seconds per run."""
    run, version = _runner(runtime, workdir, threads)
    rng = np.random.default_rng(0)
    out = {"runtime": runtime, "version": version, "results": {}}
    for batch in batches:
        data = rng.random((batch, SIZES[0]), dtype=np.float32)
        for _ in range(5):  # warm-up: plans, allocations, thread pools
            result = run(data)
        times = []
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while True:
                run(data)
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= measure_s:
                    break
            times.append(elapsed / n)
        out["results"][str(batch)] = {"s_per_run": statistics.median(times),
                                      "check": np.asarray(result, np.float64)[:2].ravel().tolist()}
    print(json.dumps(out))


def _measure(python, runtime, workdir, batches, measure_s, repeats, timeout, threads):
    cmd = [python, "-m", "bench.inference", "--child", runtime, "--workdir", workdir, "--threads", str(threads),
           "--batches", ",".join(map(str, batches)), "--measure-s", str(measure_s), "--repeats", str(repeats)]
    env = dict(os.environ, PYTHONPATH=ROOT + (os.pathsep + os.environ["PYTHONPATH"]
                                              if os.environ.get("PYTHONPATH") else ""))
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no result within {timeout} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line), ok=True)
    tail = " | ".join(p.stderr.strip().splitlines()[-3:])
    return {"ok": False, "error": f"exit code {p.returncode}: {tail}"}


def run(args):
    """Builds, measures every runtime, prints the table; returns the results as a dict."""
    batches = [int(b) for b in args.batches.split(",") if b]
    measure_s, repeats = (0.3, 3) if args.quick else (1.0, 5)
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    with tempfile.TemporaryDirectory(prefix="tw-bench-inference-") as workdir:
        try:
            build(workdir)
        except ImportError as e:
            print(f"inference benchmark skipped: {e}")
            return {"skipped": str(e)}
        results = {}
        for runtime in RUNTIMES:
            sys.stderr.write(f"inference: {runtime} ... ")
            sys.stderr.flush()
            results[runtime] = _measure(args.python, runtime, workdir, batches, measure_s, repeats,
                                        args.timeout or 300, threads)
            sys.stderr.write("done\n" if results[runtime]["ok"] else f"{results[runtime]['error']}\n")
    print(f"Inference, MLP {'-'.join(map(str, SIZES))} + softmax, forward only: median of {repeats} repeats "
          f"of {measure_s:g} s, {threads} thread(s) each")
    print()
    line = f"{'':22}" + "".join(f"{LABELS[r]:>24}" for r in RUNTIMES) + f"{'ORT/TW-inf':>12}"
    print(line)
    print("-" * len(line))
    for batch in batches:
        cells, speeds = [], {}
        for runtime in RUNTIMES:
            r = results[runtime]
            if not r["ok"]:
                cells.append("failed")
                continue
            s = r["results"][str(batch)]["s_per_run"]
            speeds[runtime] = batch / s
            cells.append(f"{s * 1e3:.3f} ms {batch / s:9.0f}/s")
        ratio = speeds["onnxruntime"] / speeds["inference"] if {"onnxruntime", "inference"} <= set(speeds) else None
        print(f"{f'batch {batch}':22}" + "".join(f"{c:>24}" for c in cells) +
              f"{f'{ratio:.2f}x' if ratio else '-':>12}")
    print()
    print("cells: time per run, images per second; ORT/TW-inf: ONNX Runtime's throughput over "
          "TensorWeave's inference path")
    ok = [r for r in results.values() if r["ok"]]
    if len(ok) > 1:
        ref = ok[0]["results"]
        diff = max(abs(a - b) for r in ok[1:] for k in ref for a, b in zip(r["results"][k]["check"],
                                                                             ref[k]["check"], strict=True))
        print(f"check: outputs agree within {diff:.1e}")
    for runtime, r in results.items():
        print(f"{LABELS[runtime]:14} {r.get('version') or r.get('error')}")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 repeats of 0.3 s instead of 5 of 1 s")
    ap.add_argument("--batches", default="128,1", help="comma-separated batch sizes (default 128,1)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the subprocesses")
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed per runtime (default 300)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads per runtime: ONNX Runtime's intra-op pool, NumPy's BLAS (default: all cores)")
    ap.add_argument("--child", choices=RUNTIMES, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--measure-s", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.workdir, [int(b) for b in args.batches.split(",")], args.measure_s, args.repeats,
              args.threads or 1)
    else:
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
