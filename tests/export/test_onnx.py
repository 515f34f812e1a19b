"""ONNX export: the softmax, MLP and convolutional MNIST models pass `onnx.checker` and match
TensorWeave in ONNX Runtime within 1e-5; an unsupported op fails the export with its name."""

import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import tensorweave as tf
from tensorweave.export import onnx as onnx_export

RNG = np.random.default_rng(0)
IMAGES = RNG.random((16, 784), dtype=np.float32)


def _softmax_model():
    x = tf.placeholder(tf.float32, [None, 784], name="x")
    w = tf.Variable(tf.random_normal([784, 10], stddev=0.1, seed=1))
    b = tf.Variable(tf.random_normal([10], stddev=0.1, seed=2))
    y = tf.nn.softmax(tf.matmul(x, w) + b, name="y")
    return x, [y, tf.argmax(y, 1, name="prediction")]


def _mlp_model():
    x = tf.placeholder(tf.float32, [None, 784], name="x")
    h = x
    for i, (n_in, n_out) in enumerate([(784, 64), (64, 32)]):
        w = tf.Variable(tf.truncated_normal([n_in, n_out], stddev=0.1, seed=10 + i))
        h = tf.nn.relu(tf.nn.bias_add(tf.matmul(h, w), tf.Variable(tf.constant(0.1, shape=[n_out]))))
    w_t = tf.Variable(tf.truncated_normal([10, 32], stddev=0.1, seed=20))  # transpose_b path
    logits = tf.add(tf.matmul(h, w_t, transpose_b=True), tf.Variable(tf.zeros([10])), name="logits")
    return x, [tf.nn.softmax(logits, name="y"), tf.reduce_mean(tf.tanh(logits), axis=1, name="score")]


def _deep_model():
    """mnist_deep.py's network, narrower, without dropout (as served)."""
    x = tf.placeholder(tf.float32, [None, 784], name="x")
    image = tf.reshape(x, [-1, 28, 28, 1])

    def conv_pool(h, k, c_in, c_out, seed):
        w = tf.Variable(tf.truncated_normal([k, k, c_in, c_out], stddev=0.1, seed=seed))
        h = tf.nn.relu(tf.nn.conv2d(h, w, strides=[1, 1, 1, 1], padding="SAME") +
                       tf.Variable(tf.constant(0.1, shape=[c_out])))
        return tf.nn.max_pool(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")

    h = conv_pool(conv_pool(image, 5, 1, 8, 1), 5, 8, 16, 2)
    h = tf.reshape(h, [-1, 7 * 7 * 16])
    h = tf.nn.relu(tf.matmul(h, tf.Variable(tf.truncated_normal([7 * 7 * 16, 64], stddev=0.1, seed=3))))
    logits = tf.matmul(h, tf.Variable(tf.truncated_normal([64, 10], stddev=0.1, seed=4)), name="logits")
    return x, [logits, tf.cast(tf.argmax(logits, 1), tf.int32, name="prediction")]


def _strided_valid_model():
    """VALID and strided convolution, odd SAME padding, average pooling, squeeze/expand_dims."""
    x = tf.placeholder(tf.float32, [None, 784], name="x")
    image = tf.expand_dims(tf.reshape(x, [-1, 28, 28]), -1)
    w = tf.Variable(tf.truncated_normal([3, 3, 1, 4], stddev=0.5, seed=5))
    h = tf.nn.conv2d(image, w, strides=[1, 2, 2, 1], padding="VALID")  # 13x13
    h = tf.nn.avg_pool(h, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding="SAME")  # 7x7
    h = tf.nn.conv2d(h, tf.Variable(tf.truncated_normal([2, 2, 4, 1], seed=6)), [1, 1, 1, 1], "SAME")
    return x, [tf.squeeze(h, [3], name="out"), tf.reduce_sum(h, [1, 2], keepdims=True, name="total")]


def _run_both(build, tmp_path):
    with tf.Graph().as_default():
        x, outputs = build()
        sess = tf.Session()
        sess.run(tf.global_variables_initializer())
        expected = sess.run(outputs, {x: IMAGES})
        names = [t.name for t in outputs]
        frozen = tf.graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(),
                                                              [t.op.name for t in outputs])
    path = str(tmp_path / "model.onnx")
    onnx_export.export(frozen, ["x"], names, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(names, {"x:0": IMAGES})
    return expected, got


@pytest.mark.parametrize("build", [_softmax_model, _mlp_model, _deep_model, _strided_valid_model],
                         ids=["softmax", "mlp", "deep", "strided"])
def test_onnx_runtime_matches_tensorweave(build, tmp_path):
    expected, got = _run_both(build, tmp_path)
    for want, have in zip(expected, got, strict=True):
        assert have.dtype == want.dtype and have.shape == want.shape
        np.testing.assert_allclose(have, want, atol=1e-5, rtol=1e-5)


def test_export_from_a_checkpoint_on_the_command_line(tmp_path):
    with tf.Graph().as_default():
        x, (y, _) = _softmax_model()
        labels = tf.placeholder(tf.float32, [None, 10])
        loss = -tf.reduce_sum(labels * tf.log(y))
        step = tf.train.GradientDescentOptimizer(0.01).minimize(loss)
        sess = tf.Session()
        sess.run(tf.global_variables_initializer())
        sess.run(step, {x: IMAGES, labels: np.eye(10, dtype=np.float32)[np.arange(16) % 10]})
        prefix = tf.train.Saver().save(sess, str(tmp_path / "model"), global_step=1)
        expected = sess.run(y, {x: IMAGES})
    out = str(tmp_path / "m.onnx")
    result = subprocess.run([sys.executable, "-m", "tensorweave.cli", "export", "onnx", "--checkpoint", prefix,
                             "--inputs", "x", "--outputs", "y", out], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(["y:0"], {"x:0": IMAGES})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_export_from_a_saved_model_directory(tmp_path):
    with tf.Graph().as_default():
        x, (y, _) = _softmax_model()
        sess = tf.Session()
        sess.run(tf.global_variables_initializer())
        tf.saved_model.simple_save(sess, str(tmp_path / "sm"), {"pixels": x}, {"probabilities": y})
        expected = sess.run(y, {x: IMAGES})
    model = onnx_export.to_onnx_model(str(tmp_path / "sm"), [], [])  # the signature's tensors
    assert [i.name for i in model.graph.input] == ["x:0"] and [o.name for o in model.graph.output] == ["y:0"]
    by_key = onnx_export.to_onnx_model(str(tmp_path / "sm"), ["pixels"], ["probabilities"])
    assert by_key.graph == model.graph
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["y:0"], {"x:0": IMAGES})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_unsupported_op_fails_with_its_name_and_type(tmp_path):
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        tf.cumsum(x, axis=1, name="running_total")
        with pytest.raises(onnx_export.UnsupportedOpError, match="'running_total' of type Cumsum"):
            onnx_export.export(graph.as_graph_def(), ["x"], ["running_total"], str(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()
    result = subprocess.run([sys.executable, "-m", "tensorweave.cli", "export", "onnx", "--graph",
                             tf.train.write_graph(graph, str(tmp_path), "g.pb", as_text=False),
                             "--inputs", "x", "--outputs", "running_total", str(tmp_path / "m.onnx")],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "running_total" in result.stderr and "Cumsum" in result.stderr


def test_unfrozen_graph_is_refused():
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 2], name="x")
        tf.matmul(x, tf.Variable(tf.ones([2, 2]), name="W"), name="y")
        with pytest.raises(tf.errors.InvalidArgumentError, match="'W' is a variable"):
            onnx_export.to_onnx_model(graph.as_graph_def(), ["x"], ["y"])
