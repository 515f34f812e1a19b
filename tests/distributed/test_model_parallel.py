"""Model parallelism and in-graph replication on real server processes (1 PS + 2 workers, one OS
process each, on 127.0.0.1), driven by a client `tf.Session` in the test process connected to
worker 0: the same program gives exactly the values of a plain single-process `tf.Session()`.
Also: fetches from every task, and placement errors for devices no task has."""

import contextlib

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed import tensor_codec
from tensorweave.framework import errors
from tests.distributed.cluster_procs import server_processes

TOKEN = "model-parallel-test-secret"
STEP_MS = 30_000  # every step carries a deadline
PS, WORKER0, WORKER1 = "/job:ps/task:0", "/job:worker/task:0", "/job:worker/task:1"
STEPS = 3

_rng = np.random.default_rng(11)
XV = _rng.standard_normal((8, 4)).astype(np.float32)
YV = _rng.standard_normal((8, 2)).astype(np.float32)
W_IN = (_rng.standard_normal((4, 16)) * 0.5).astype(np.float32)
B_IN = (_rng.standard_normal(16) * 0.1).astype(np.float32)
W_MID = (_rng.standard_normal((16, 16)) * 0.3).astype(np.float32)
W_OUT = (_rng.standard_normal((16, 2)) * 0.3).astype(np.float32)
W_LIN = _rng.standard_normal((4, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def cluster():
    with server_processes({"ps": 1, "worker": 2}, TOKEN) as procs:
        yield procs


def _config(**kwargs):
    return tf.ConfigProto(cluster_token=TOKEN, operation_timeout_in_ms=STEP_MS, **kwargs)


def _device(name, distributed):
    """`tf.device(name)` in the distributed program; no device at all in the single-process one."""
    return tf.device(name) if distributed else contextlib.nullcontext()


# -- (a) one model split across two workers -------------------------------------------------------

def _model_parallel_mlp(distributed):
    """x -> [worker 0] h1 -> [worker 1] h2 -> [worker 0] out -> [worker 1] loss; variables on the PS.

    Tensors cross from worker 0 to worker 1 and back twice in each forward pass; the gradients
    (built where `minimize` is called) read activations of both workers and update the PS."""
    with _device(PS, distributed):
        w_in = tf.Variable(W_IN, name="mp_w_in")
        b_in = tf.Variable(B_IN, name="mp_b_in")
        w_mid = tf.Variable(W_MID, name="mp_w_mid")
        w_out = tf.Variable(W_OUT, name="mp_w_out")
    with _device(WORKER0, distributed):
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        y = tf.placeholder(tf.float32, [None, 2], name="y")
        h1 = tf.tanh(tf.matmul(x, w_in) + b_in, name="h1")
    with _device(WORKER1, distributed):
        h2 = tf.nn.relu(tf.matmul(h1, w_mid), name="h2")
    with _device(WORKER0, distributed):
        out = tf.matmul(h2, w_out, name="out")
    with _device(WORKER1, distributed):
        loss = tf.reduce_mean(tf.square(out - y), name="loss")
    train = tf.train.GradientDescentOptimizer(0.05).minimize(loss, colocate_gradients_with_ops=True)
    return {"h1": h1, "h2": h2, "out": out, "loss": loss}, [w_in, b_in, w_mid, w_out], train


def _train(sess, tensors, variables, train, feed):
    """(forward values before training, losses of each training step, variables after)."""
    forward = sess.run(tensors, feed)
    losses = [sess.run([tensors["loss"], train], feed)[0] for _ in range(STEPS)]
    return forward, losses, sess.run(variables)


def _assert_same_training(got, expected):
    (forward, losses, weights), (e_forward, e_losses, e_weights) = got, expected
    assert sorted(forward) == sorted(e_forward)
    for name in forward:
        np.testing.assert_array_equal(forward[name], e_forward[name], err_msg=name)
    for a, e in zip(losses + weights, e_losses + e_weights, strict=True):
        np.testing.assert_array_equal(a, e)
    assert losses[-1] < losses[0]  # it trained


def _single_process(build):
    with tf.Graph().as_default():
        tensors, variables, train = build(distributed=False)
        feed = {"x:0": XV, "y:0": YV}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return _train(sess, tensors, variables, train, feed)


def test_a_model_split_across_two_workers_trains_exactly_like_one_process(cluster):
    expected = _single_process(_model_parallel_mlp)
    with tf.Graph().as_default() as g:
        tensors, variables, train = _model_parallel_mlp(distributed=True)
        init = tf.global_variables_initializer()
    assert "task:1" in tensors["h2"].op.device and "task:0" in tensors["out"].op.device
    feed = {"x:0": XV, "y:0": YV}
    with tf.Session(cluster.target("worker", 0), graph=g, config=_config()) as sess:
        sess.run(init)
        # One traced step: each worker received tensors from the other within that step.
        metadata = tf.RunMetadata()
        sess.run(tensors["loss"], feed, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                 run_metadata=metadata)
        received = tensor_codec.transfer_bytes(metadata.step_stats)
        sent = tensor_codec.transfer_bytes(metadata.step_stats, "_send")
        for task in ("/job:worker/replica:0/task:0", "/job:worker/replica:0/task:1"):
            assert any(d.startswith(task) for d in received), (task, received)
            assert any(d.startswith(task) for d in sent), (task, sent)
        got = _train(sess, tensors, variables, train, feed)
    _assert_same_training(got, expected)


# -- (b) in-graph replication ------------------------------------------------------------------------

def _in_graph_replicated(distributed):
    """Two towers, on worker 0 and worker 1, each take the gradient of the loss on half the batch;
    the PS averages the two gradients and applies them (TF1's in-graph replication)."""
    with _device(PS, distributed):
        w = tf.Variable(W_LIN, name="igr_w")
        b = tf.Variable(np.zeros(2, np.float32), name="igr_b")
    with _device(WORKER0, distributed):
        x = tf.placeholder(tf.float32, [8, 4], name="x")
        y = tf.placeholder(tf.float32, [8, 2], name="y")
    opt = tf.train.GradientDescentOptimizer(0.1)
    tower_grads, tower_losses = [], []
    for i, device in enumerate((WORKER0, WORKER1)):
        with _device(device, distributed), tf.name_scope(f"tower_{i}"):
            xs, ys = x[4 * i:4 * (i + 1)], y[4 * i:4 * (i + 1)]
            loss = tf.reduce_mean(tf.square(tf.matmul(xs, w) + b - ys), name="loss")
            tower_losses.append(loss)
            tower_grads.append(opt.compute_gradients(loss, [w, b]))
    with _device(PS, distributed):
        averaged = [((g0 + g1) * 0.5, v0) for (g0, v0), (g1, _) in zip(*tower_grads, strict=True)]
        train = opt.apply_gradients(averaged)
        loss = tf.multiply(tf.add(*tower_losses), 0.5, name="loss")
    return {"loss": loss, "tower_0": tower_losses[0], "tower_1": tower_losses[1]}, [w, b], train


def _full_batch_linear():
    """The same model trained on the whole batch by one tower (no replication)."""
    w = tf.Variable(W_LIN, name="igr_w")
    b = tf.Variable(np.zeros(2, np.float32), name="igr_b")
    x = tf.placeholder(tf.float32, [8, 4], name="x")
    y = tf.placeholder(tf.float32, [8, 2], name="y")
    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y), name="loss")
    return loss, [w, b], tf.train.GradientDescentOptimizer(0.1).minimize(loss)


def test_in_graph_replication_matches_one_process(cluster):
    expected = _single_process(_in_graph_replicated)
    with tf.Graph().as_default() as g:
        tensors, variables, train = _in_graph_replicated(distributed=True)
        init = tf.global_variables_initializer()
    assert "task:1" in tensors["tower_1"].op.device and "ps" in train.device
    with tf.Session(cluster.target("worker", 0), graph=g, config=_config()) as sess:
        sess.run(init)
        got = _train(sess, tensors, variables, train, {"x:0": XV, "y:0": YV})
    # The same program: the same ops add the same floats in the same order, so exactly equal.
    _assert_same_training(got, expected)

    # Against one tower on the whole batch the mean is summed in another order (two means of 4
    # averaged vs one mean of 8), so float32 rounding differs in the last bits: equal to 1e-6.
    with tf.Graph().as_default():
        loss, full_vars, full_train = _full_batch_linear()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            full_losses = [sess.run([loss, full_train], {"x:0": XV, "y:0": YV})[0] for _ in range(STEPS)]
            full_weights = sess.run(full_vars)
    _, losses, weights = got
    np.testing.assert_allclose(losses, full_losses, rtol=1e-6)
    for a, e in zip(weights, full_weights, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7)


# -- (c) fetches from every task ---------------------------------------------------------------------

def test_fetches_of_tensors_on_every_task_return_to_the_client(cluster):
    with tf.Graph().as_default() as g:
        with tf.device(PS):
            v = tf.Variable(W_IN, name="fetch_v")
            on_ps = tf.reduce_sum(v, name="on_ps")
        with tf.device(WORKER0):
            x = tf.placeholder(tf.float32, [None, 4], name="x")
            on_worker0 = tf.matmul(x, v, name="on_worker0")
        with tf.device(WORKER1):
            on_worker1 = tf.add(on_worker0, 1.0, name="on_worker1")
            int_on_worker1 = tf.shape(on_worker1, name="int_on_worker1")
        init = tf.global_variables_initializer()
    with tf.Session(cluster.target("worker", 0), graph=g, config=_config()) as sess:
        sess.run(init)
        expected = {"ps": np.sum(W_IN), "w0": XV @ W_IN, "w1": XV @ W_IN + np.float32(1.0)}
        got = sess.run({"ps": on_ps, "w0": on_worker0, "w1": on_worker1, "v": v, "shape": int_on_worker1},
                       {x: XV})
        assert got["ps"] == pytest.approx(expected["ps"], rel=1e-6)
        np.testing.assert_array_equal(got["w0"], expected["w0"])
        np.testing.assert_array_equal(got["w1"], expected["w1"])
        np.testing.assert_array_equal(got["v"], W_IN)
        np.testing.assert_array_equal(got["shape"], [8, 16])
        assert got["shape"].dtype == np.int32
        # A fetch from one remote task alone, and from the PS alone (nothing runs on worker 0).
        np.testing.assert_array_equal(sess.run(on_worker1, {x: XV[:2]}), expected["w1"][:2])
        np.testing.assert_array_equal(sess.run(v), W_IN)


# -- (d) devices no task has -----------------------------------------------------------------------

def test_a_missing_device_fails_naming_op_and_device_unless_soft_placement(cluster):
    with tf.Graph().as_default() as g:
        with tf.device(WORKER1):
            a = tf.placeholder(tf.float32, [None], name="a")
            doubled = tf.multiply(a, 2.0, name="doubled")
        with tf.device(WORKER0 + "/device:GPU:0"):
            on_gpu = tf.identity(doubled, name="on_gpu")
    feed = {a: np.arange(3, dtype=np.float32)}
    with tf.Session(cluster.target("worker", 0), graph=g, config=_config()) as sess:
        with pytest.raises(errors.InvalidArgumentError, match=r"(?s)on_gpu.*GPU:0|GPU:0.*on_gpu") as info:
            sess.run(on_gpu, feed)
        assert "/job:worker/task:0/device:GPU:0" in info.value.message
        # The session stays usable for what it can place.
        np.testing.assert_array_equal(sess.run(doubled, feed), [0.0, 2.0, 4.0])
    with tf.Session(cluster.target("worker", 0), graph=g, config=_config(allow_soft_placement=True)) as sess:
        np.testing.assert_array_equal(sess.run(on_gpu, feed), [0.0, 2.0, 4.0])


def test_list_devices_of_a_grpc_session_names_the_cpu_of_every_task(cluster):
    with tf.Graph().as_default() as g:
        tf.constant(1.0)
    with tf.Session(cluster.target("worker", 0), graph=g, config=_config()) as sess:
        devices = sess.list_devices()
    assert sorted(d.name for d in devices) == [
        "/job:ps/replica:0/task:0/device:CPU:0", "/job:worker/replica:0/task:0/device:CPU:0",
        "/job:worker/replica:0/task:1/device:CPU:0"]
    assert {d.device_type for d in devices} == {"CPU"}


def test_colocate_gradients_with_ops_puts_each_gradient_on_its_ops_task():
    with tf.Graph().as_default() as g:
        _model_parallel_mlp(distributed=True)
    grads = [op for op in g.get_operations() if op.name.startswith("gradients") and "h2" in op.name]
    assert grads, [op.name for op in g.get_operations()]
    assert all("task:1" in op.device for op in grads), {op.name: op.device for op in grads}
