"""Benchmark workloads: data, shared TF1 graph builders and hand-written peers.

The graph-building functions take the TF1-style module as a parameter, so the
very same code builds the graph for TensorFlow (``tensorflow.compat.v1``) and
for TensorWeave (``tensorweave.compat.v1``).  PyTorch and NumPy variants are
written by hand below and compute the same thing from the same data and the
same initial parameters.

Every ``*_setup`` function returns a ``Workload``: a ``step(i)`` callable (one
training step on batch ``i % n_batches``, or one forward run for the chain)
and a ``check(k)`` callable returning the first ``k`` losses (chain: outputs)
from the initial parameters, used to verify that all frameworks agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List

import numpy as np

WORKLOADS = ("softmax", "mlp", "chain")

DESCRIPTIONS = {
    "softmax": "softmax regression, MNIST beginner step (batch 100)",
    "mlp": "MLP 784-1024-1024-10 ReLU + softmax xent, SGD (batch 128)",
    "chain": "chain of 1000 elementwise ops on a [10] placeholder (per run)",
}

SOFTMAX_BATCH = 100
SOFTMAX_LR = 0.01
MLP_BATCH = 128
MLP_SIZES = (784, 1024, 1024, 10)
MLP_LR = 0.01
CHAIN_LEN = 1000
CHAIN_WIDTH = 10
# The chain repeats this pattern: x * 1.0001, x + 0.5, tanh(x), ...
CHAIN_MUL = 1.0001
CHAIN_ADD = 0.5
N_BATCHES = 20  # distinct batches cycled through by every framework
SEED = 20151109  # TensorFlow's open-source release date


@dataclass
class Workload:
    step: Callable[[int], object]
    check: Callable[[int], List[float]]
    n_ops: int = 1  # ops per step, for per-op figures (chain)


# --------------------------------------------------------------------------
# Data: deterministic, identical for every framework.
# --------------------------------------------------------------------------

def make_classification_data(batch: int, n_batches: int = N_BATCHES, seed: int = SEED):
    """MNIST-like synthetic data: sparse non-negative pixels in [0, 1], labels
    from a random linear teacher with 10% label noise (learnable, not
    separable, so long timing runs stay numerically tame).  Returns float32
    arrays xs [n_batches, batch, 784] and one-hot ys [n_batches, batch, 10]."""
    rng = np.random.default_rng(seed)
    n = batch * n_batches
    x = rng.random((n, 784), dtype=np.float32)
    x *= rng.random((n, 784), dtype=np.float32) < 0.19  # ~19% of MNIST pixels are on
    teacher = rng.standard_normal((784, 10)).astype(np.float32)
    labels = np.argmax(x @ teacher, axis=1)
    noisy = rng.random(n) < 0.1
    labels[noisy] = rng.integers(0, 10, size=int(noisy.sum()))
    y = np.zeros((n, 10), dtype=np.float32)
    y[np.arange(n), labels] = 1.0
    return x.reshape(n_batches, batch, 784), y.reshape(n_batches, batch, 10)


def mlp_init_params(seed: int = SEED + 1) -> Dict[str, np.ndarray]:
    """He-initialised weights [in, out] and zero biases, float32."""
    rng = np.random.default_rng(seed)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(MLP_SIZES[:-1], MLP_SIZES[1:]), start=1):
        params["W%d" % i] = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        params["b%d" % i] = np.zeros((fan_out,), dtype=np.float32)
    return params


def chain_input(seed: int = SEED + 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(CHAIN_WIDTH).astype(np.float32)


def chain_kinds(n: int = CHAIN_LEN) -> List[str]:
    pattern = ("mul", "add", "tanh")
    return [pattern[i % len(pattern)] for i in range(n)]


# --------------------------------------------------------------------------
# Shared TF1 graph builders: `tf` is tensorflow.compat.v1 or tensorweave.compat.v1
# --------------------------------------------------------------------------

def build_softmax(tf, lr: float = SOFTMAX_LR):
    """The TF1 MNIST beginner tutorial, verbatim in spirit."""
    x = tf.placeholder(tf.float32, [None, 784])
    W = tf.Variable(tf.zeros([784, 10]))
    b = tf.Variable(tf.zeros([10]))
    y = tf.nn.softmax(tf.matmul(x, W) + b)
    y_ = tf.placeholder(tf.float32, [None, 10])
    cross_entropy = -tf.reduce_sum(y_ * tf.log(y))
    train_step = tf.train.GradientDescentOptimizer(lr).minimize(cross_entropy)
    return {"x": x, "y_": y_, "loss": cross_entropy, "train": train_step}


def build_mlp(tf, params: Dict[str, np.ndarray], lr: float = MLP_LR):
    x = tf.placeholder(tf.float32, [None, MLP_SIZES[0]])
    y_ = tf.placeholder(tf.float32, [None, MLP_SIZES[-1]])
    W1 = tf.Variable(params["W1"])
    b1 = tf.Variable(params["b1"])
    W2 = tf.Variable(params["W2"])
    b2 = tf.Variable(params["b2"])
    W3 = tf.Variable(params["W3"])
    b3 = tf.Variable(params["b3"])
    h1 = tf.nn.relu(tf.matmul(x, W1) + b1)
    h2 = tf.nn.relu(tf.matmul(h1, W2) + b2)
    logits = tf.matmul(h2, W3) + b3
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y_, logits=logits))
    train_step = tf.train.GradientDescentOptimizer(lr).minimize(loss)
    return {"x": x, "y_": y_, "loss": loss, "train": train_step}


def build_chain(tf, n_ops: int = CHAIN_LEN):
    x = tf.placeholder(tf.float32, [CHAIN_WIDTH])
    h = x
    for kind in chain_kinds(n_ops):
        if kind == "mul":
            h = h * CHAIN_MUL
        elif kind == "add":
            h = h + CHAIN_ADD
        else:
            h = tf.tanh(h)
    return {"x": x, "out": h}


def make_session(tf, threads: int = 2):
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    sess = tf.Session(config=config)
    sess.run(tf.global_variables_initializer())
    return sess


def graph_setup(tf, workload: str, threads: int = 2) -> Workload:
    """Build `workload` with the TF1-style module `tf` and return its Workload."""
    if workload == "softmax":
        xs, ys = make_classification_data(SOFTMAX_BATCH)
        g = build_softmax(tf)
    elif workload == "mlp":
        xs, ys = make_classification_data(MLP_BATCH)
        g = build_mlp(tf, mlp_init_params())
    elif workload == "chain":
        g = build_chain(tf)
        sess = make_session(tf, threads)
        out, feed = g["out"], {g["x"]: chain_input()}

        def step(i):
            return sess.run(out, feed_dict=feed)

        def check(k):
            return [float(v) for v in np.asarray(sess.run(out, feed_dict=feed)).ravel()]

        return Workload(step, check, n_ops=CHAIN_LEN)
    else:
        raise ValueError("unknown workload %r" % workload)

    sess = make_session(tf, threads)
    feeds = [{g["x"]: xs[k], g["y_"]: ys[k]} for k in range(len(xs))]
    nb = len(feeds)
    train, loss = g["train"], g["loss"]

    def step(i):
        sess.run(train, feed_dict=feeds[i % nb])

    def check(k):
        return [float(sess.run([train, loss], feed_dict=feeds[i % nb])[1]) for i in range(k)]

    return Workload(step, check)


# --------------------------------------------------------------------------
# PyTorch, by hand
# --------------------------------------------------------------------------

def torch_setup(torch, workload: str) -> Workload:
    if workload == "chain":
        x0 = chain_input()
        kinds = chain_kinds()

        def forward():
            with torch.no_grad():
                h = torch.from_numpy(x0)
                for kind in kinds:
                    if kind == "mul":
                        h = h * CHAIN_MUL
                    elif kind == "add":
                        h = h + CHAIN_ADD
                    else:
                        h = torch.tanh(h)
                return h.numpy()

        return Workload(lambda i: forward(),
                        lambda k: [float(v) for v in forward()], n_ops=CHAIN_LEN)

    F = torch.nn.functional
    if workload == "softmax":
        xs, ys = make_classification_data(SOFTMAX_BATCH)
        W = torch.zeros(784, 10, requires_grad=True)
        b = torch.zeros(10, requires_grad=True)
        params, lr = [W, b], SOFTMAX_LR

        def loss_fn(x, y_):
            y = torch.softmax(x @ W + b, dim=1)
            return -(y_ * torch.log(y)).sum()
    elif workload == "mlp":
        xs, ys = make_classification_data(MLP_BATCH)
        p = {k: torch.tensor(v, requires_grad=True) for k, v in mlp_init_params().items()}
        params, lr = list(p.values()), MLP_LR

        def loss_fn(x, y_):
            h1 = torch.relu(torch.addmm(p["b1"], x, p["W1"]))
            h2 = torch.relu(torch.addmm(p["b2"], h1, p["W2"]))
            logits = torch.addmm(p["b3"], h2, p["W3"])
            return F.cross_entropy(logits, y_)  # probability targets, mean over batch
    else:
        raise ValueError("unknown workload %r" % workload)

    opt = torch.optim.SGD(params, lr=lr)
    nb = len(xs)

    def step(i):
        k = i % nb
        loss = loss_fn(torch.from_numpy(xs[k]), torch.from_numpy(ys[k]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def check(k):
        return [float(step(i).item()) for i in range(k)]

    return Workload(step, check)


# --------------------------------------------------------------------------
# NumPy, by hand (forward and backward written out)
# --------------------------------------------------------------------------

def numpy_setup(workload: str) -> Workload:
    if workload == "chain":
        x0 = chain_input()
        mul, add = np.float32(CHAIN_MUL), np.float32(CHAIN_ADD)
        ops = []
        for kind in chain_kinds():
            if kind == "mul":
                ops.append((np.multiply, mul))
            elif kind == "add":
                ops.append((np.add, add))
            else:
                ops.append((np.tanh, None))

        def forward():
            h = x0
            for fn, c in ops:
                h = fn(h) if c is None else fn(h, c)
            return h

        return Workload(lambda i: forward(),
                        lambda k: [float(v) for v in forward()], n_ops=CHAIN_LEN)

    if workload == "softmax":
        xs, ys = make_classification_data(SOFTMAX_BATCH)
        W = np.zeros((784, 10), np.float32)
        b = np.zeros((10,), np.float32)
        lr = np.float32(SOFTMAX_LR)

        def step_fn(x, y_):
            nonlocal W, b
            z = x @ W
            z += b
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)  # z is now y = softmax
            loss = -np.sum(y_ * np.log(z))
            # d(-sum y_ log y)/dz = y * rowsum(y_) - y_
            dz = z * y_.sum(axis=1, keepdims=True)
            dz -= y_
            W -= lr * (x.T @ dz)
            b -= lr * dz.sum(axis=0)
            return loss
    elif workload == "mlp":
        xs, ys = make_classification_data(MLP_BATCH)
        p = {k: v.copy() for k, v in mlp_init_params().items()}
        W1, b1, W2, b2, W3, b3 = (p[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
        lr = np.float32(MLP_LR)

        def step_fn(x, y_):
            nonlocal W1, b1, W2, b2, W3, b3
            n = np.float32(x.shape[0])
            h1 = x @ W1
            h1 += b1
            np.maximum(h1, 0, out=h1)
            h2 = h1 @ W2
            h2 += b2
            np.maximum(h2, 0, out=h2)
            z = h2 @ W3
            z += b3
            z -= z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
            logp = z - lse
            loss = -np.sum(y_ * logp) / n
            # dlogits = (softmax * rowsum(y_) - y_) / n
            dz = np.exp(logp)
            dz *= y_.sum(axis=1, keepdims=True)
            dz -= y_
            dz /= n
            dh2 = dz @ W3.T
            dh2 *= h2 > 0
            dh1 = dh2 @ W2.T
            dh1 *= h1 > 0
            W3 -= lr * (h2.T @ dz)
            b3 -= lr * dz.sum(axis=0)
            W2 -= lr * (h1.T @ dh2)
            b2 -= lr * dh2.sum(axis=0)
            W1 -= lr * (x.T @ dh1)
            b1 -= lr * dh1.sum(axis=0)
            return loss
    else:
        raise ValueError("unknown workload %r" % workload)

    nb = len(xs)

    def step(i):
        k = i % nb
        return step_fn(xs[k], ys[k])

    def check(k):
        return [float(step(i)) for i in range(k)]

    return Workload(step, check)
