"""One task of the sync-vs-async benchmark (`bench.sync` starts and drives these).

    python -m bench.sync_child --cluster JSON --job ps
    python -m bench.sync_child --cluster JSON --job worker --index 0 --mode sync --replicas 2 \\
        --last-step 400 --data-dir DIR [--slow-ms 60] [--hidden 0] [--snapshot-every 20]

A worker trains MNIST softmax regression (or an MLP with --hidden N) with its variables on the
PS, inside `tf.train.MonitoredTrainingSession(master=server.target, is_chief=index == 0,
hooks=[opt.make_session_run_hook(is_chief), StopAtStepHook(last_step)])`, the optimizer being
`SyncReplicasOptimizer(GradientDescentOptimizer, replicas_to_aggregate=--replicas,
total_num_replicas=<workers>)` (sync) or the plain `GradientDescentOptimizer` (async). --slow-ms
sleeps that long before each step: an artificially slow worker. Each worker records the wall
time of every step (sleep included) and the global step it saw; the chief also takes a copy of
the weights every --snapshot-every steps and, once every worker has stopped, scores each copy on
MNIST's test set, so evaluation costs no training time.

JSON events on stdout, one a line: "up" (server started), "ready" (session created), "result"
(the steps), "scores" (the chief's snapshots and their accuracy). Commands on stdin, one a line:
"go" (start training), "stop" (report the steps so far; a sync worker may wait forever for a
token once the chief has stopped), "score" (after every worker has reported), "exit". The cluster token
comes from $BENCH_CLUSTER_TOKEN (bench.distributed_child.make_config).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import traceback

import numpy as np

from bench.distributed_child import emit, make_config, run_child, wait_for_port

SETUP_TIMEOUT_S = 120.0
def build_model(tf, hidden, seed):
    """Placeholders, the loss and the weights (as `accuracy` reads them), on the current device scope."""
    x = tf.placeholder(tf.float32, [None, 784], name="x")
    y_ = tf.placeholder(tf.float32, [None, 10], name="y_")
    weights, inputs = [], x
    if hidden:
        w1 = tf.Variable(tf.truncated_normal([784, hidden], stddev=1.0 / 28, seed=seed), name="hid_w")
        b1 = tf.Variable(tf.zeros([hidden]), name="hid_b")
        inputs = tf.nn.relu(tf.matmul(x, w1) + b1)
        weights += [w1, b1]
        w = tf.Variable(tf.truncated_normal([hidden, 10], stddev=1.0 / hidden ** 0.5, seed=seed), name="sm_w")
    else:
        w = tf.Variable(tf.zeros([784, 10]), name="sm_w")
    b = tf.Variable(tf.zeros([10]), name="sm_b")
    weights += [w, b]
    logits = tf.matmul(inputs, w) + b
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits))
    return x, y_, loss, weights


def accuracy(weights, images, labels):
    """Test accuracy of a weight snapshot, in NumPy (the model of `build_model`)."""
    h = images
    for w, b in zip(weights[:-2:2], weights[1:-2:2], strict=True):
        h = np.maximum(h @ w + b, 0)
    logits = h @ weights[-2] + weights[-1]
    return float(np.mean(np.argmax(logits, 1) == np.argmax(labels, 1)))


class Training(threading.Thread):
    """The training loop, in a thread so that the main thread can answer "stop" at any time."""

    def __init__(self, sess, run, slow_s, snapshot):
        super().__init__(daemon=True)
        self._sess, self._run, self._slow_s, self._snapshot = sess, run, slow_s, snapshot
        self.steps = []       # (end time, seconds, global step seen), time.time() clock
        self.snapshots = []   # (time, global step, [weights])
        self.error, self.trace = None, None

    def run(self):
        try:
            while not self._sess.should_stop():
                t0 = time.time()
                if self._slow_s:
                    time.sleep(self._slow_s)
                step = self._run()
                t1 = time.time()
                self.steps.append((t1, t1 - t0, int(step)))
                if self._snapshot and self._snapshot(len(self.steps)) and not self._sess.should_stop():
                    self.snapshots.append(self._snapshot.take())
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.error = e
            self.trace = traceback.format_exc(limit=8)


class Snapshots:
    """The chief's copies of the weights: every `every` local steps, and once at the end."""

    def __init__(self, sess, weights, global_step, every):
        self._sess, self._fetch, self._every = sess, [global_step] + weights, every

    def __call__(self, local_step):
        return local_step % self._every == 0

    def take(self):
        # The raw session (`run_step_fn`): no hooks, and allowed after the stop was requested.
        step, *values = self._sess.run_step_fn(lambda context: context.session.run(self._fetch))
        return time.time(), int(step), values


def worker(args, commands):
    import tensorweave as tf
    from tensorweave.examples.tutorials.mnist import input_data

    cluster_dict = json.loads(args.cluster)
    cluster = tf.train.ClusterSpec(cluster_dict)
    server = tf.train.Server(cluster, job_name=args.job, task_index=args.index,
                             config=make_config(tf, "tensorweave"))
    emit(event="up")
    if args.job == "ps":
        while commands.next(SETUP_TIMEOUT_S * 10) not in ("exit", None):
            pass
        return
    n_workers = len(cluster_dict["worker"])
    is_chief = args.index == 0
    mnist = input_data.read_data_sets(args.data_dir, one_hot=True, seed=args.seed + args.index)
    wait_for_port(cluster_dict["ps"][0], SETUP_TIMEOUT_S)

    tf.set_random_seed(args.seed)
    worker_device = "/job:worker/task:%d" % args.index
    with tf.device(tf.train.replica_device_setter(worker_device=worker_device, ps_device="/job:ps",
                                                  cluster=cluster)):
        global_step = tf.train.get_or_create_global_step()
        x, y_, loss, weights = build_model(tf, args.hidden, args.seed)
        opt = tf.train.GradientDescentOptimizer(args.lr)
        hooks = [tf.train.StopAtStepHook(last_step=args.last_step)]
        if args.mode == "sync":
            opt = tf.train.SyncReplicasOptimizer(opt, replicas_to_aggregate=args.replicas or n_workers,
                                                 total_num_replicas=n_workers)
            hooks.insert(0, opt.make_session_run_hook(is_chief))
        train_op = opt.minimize(loss, global_step=global_step)

    config = make_config(tf, "tensorweave", "none", ["/job:ps", worker_device])
    sess = tf.train.MonitoredTrainingSession(master=server.target, is_chief=is_chief, hooks=hooks,
                                             config=config, max_wait_secs=SETUP_TIMEOUT_S,
                                             stop_grace_period_secs=5)
    emit(event="ready")
    commands.wait("go", SETUP_TIMEOUT_S * 5)

    def step():
        xs, ys = mnist.train.next_batch(args.batch)
        return sess.run([train_op, global_step], {x: xs, y_: ys})[1]

    snapshot = Snapshots(sess, weights, global_step, args.snapshot_every) if is_chief else None
    training = Training(sess, step, args.slow_ms / 1000.0, snapshot)
    training.start()
    while training.is_alive():
        command = commands.next(0.05)
        if command == "stop":
            break
        if command is not None:
            raise RuntimeError(f"unexpected command {command!r} while training")
    if training.error is not None:
        raise RuntimeError(f"{type(training.error).__name__}: {training.error}\n{training.trace}")
    steps = list(training.steps)
    snaps = list(training.snapshots)
    if is_chief and not training.is_alive():
        snaps.append(snapshot.take())
    emit(event="result", index=args.index, steps=steps, finished=not training.is_alive())
    # A sync worker's last step may wait forever for a token: never close, the parent kills us.
    while True:
        command = commands.next(SETUP_TIMEOUT_S * 10)
        if command in ("exit", None):
            break
        if command == "score":  # once every worker has stopped: scoring takes no training time
            emit(event="scores", snapshots=[(t, g, accuracy(values, mnist.test.images, mnist.test.labels))
                                            for t, g, values in snaps])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.sync_child", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cluster", required=True, help="the cluster spec as JSON")
    ap.add_argument("--job", choices=("ps", "worker"), required=True)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--mode", choices=("sync", "async"), default="async")
    ap.add_argument("--replicas", type=int, default=0, help="replicas_to_aggregate (0: every worker)")
    ap.add_argument("--last-step", type=int, default=400)
    ap.add_argument("--slow-ms", type=float, default=0.0)
    ap.add_argument("--data-dir", default="MNIST_data")
    ap.add_argument("--hidden", type=int, default=0, help="hidden ReLU units (0: softmax regression)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--snapshot-every", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    run_child(worker, args)


if __name__ == "__main__":
    main()
