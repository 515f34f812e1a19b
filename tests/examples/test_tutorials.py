"""End to end on real MNIST: the classic TF1 tutorials, run as programs with capped steps."""

import os
import re
import subprocess
import sys

import pytest

import tensorweave as tf
from tensorweave.examples.tutorials.mnist import input_data

pytestmark = pytest.mark.slow

TIMEOUT = 240


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist")
    input_data.read_data_sets(str(path), one_hot=True)  # extracts once; the programs read the IDX cache
    return str(path)


def _run_module(module, *args):
    env = dict(os.environ, TENSORWEAVE_OFFLINE="1", PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _accuracy(stdout):
    return float(re.findall(r"test accuracy:? ([0-9.]+)", stdout)[-1])


def test_seed_program_reaches_91_percent(data_dir):
    out = _run_module("tensorweave.examples.seed_softmax", "--data_dir", data_dir)
    assert _accuracy(out) >= 0.91


def test_softmax_tutorial_one_hot_form(data_dir):
    out = _run_module("tensorweave.examples.tutorials.mnist.mnist_softmax", "--data_dir", data_dir)
    assert _accuracy(out) >= 0.90


def test_softmax_tutorial_sparse_label_form(data_dir):
    out = _run_module("tensorweave.examples.tutorials.mnist.mnist_softmax", "--data_dir", data_dir, "--sparse")
    assert _accuracy(out) >= 0.90


def test_deep_mnist_tutorial_beats_90_percent(data_dir):
    out = _run_module("tensorweave.examples.tutorials.mnist.mnist_deep", "--data_dir", data_dir,
                      "--max_steps", "300", "--seed", "1")
    assert "step 0, training accuracy" in out
    assert _accuracy(out) > 0.90


def test_fully_connected_feed_writes_summaries_and_checkpoints(data_dir, tmp_path):
    log_dir = tmp_path / "logs"
    out = _run_module("tensorweave.examples.tutorials.mnist.fully_connected_feed", "--input_data_dir", data_dir,
                      "--log_dir", str(log_dir), "--max_steps", "1000")
    precisions = [float(p) for p in re.findall(r"Precision @ 1: ([0-9.]+)", out)]
    assert len(precisions) == 3 and precisions[-1] > 0.85
    assert tf.train.latest_checkpoint(str(log_dir)).endswith("model.ckpt-999")
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(log_dir))


def test_fully_connected_feed_with_fake_data(tmp_path):
    out = _run_module("tensorweave.examples.tutorials.mnist.fully_connected_feed", "--fake_data",
                      "--input_data_dir", str(tmp_path / "none"), "--log_dir", str(tmp_path / "logs"),
                      "--max_steps", "5", "--batch_size", "10")
    assert "Step 0: loss" in out


def test_two_layer_mlp_with_adam_reaches_95_percent(data_dir):
    mnist = input_data.read_data_sets(data_dir, one_hot=True, seed=3)
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        x = tf.placeholder(tf.float32, [None, 784])
        y_ = tf.placeholder(tf.float32, [None, 10])
        h = tf.nn.relu(tf.matmul(x, tf.Variable(tf.truncated_normal([784, 512], stddev=0.05))) +
                       tf.Variable(tf.zeros([512])))
        logits = tf.matmul(h, tf.Variable(tf.truncated_normal([512, 10], stddev=0.05))) + tf.Variable(tf.zeros([10]))
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y_, logits=logits))
        train = tf.train.AdamOptimizer(1e-3).minimize(loss)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), tf.argmax(y_, 1)), tf.float32))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(800):
                bx, by = mnist.train.next_batch(100)
                sess.run(train, {x: bx, y_: by})
            acc = sess.run(accuracy, {x: mnist.test.images, y_: mnist.test.labels})
    assert acc >= 0.95, acc


def test_deep_mnist_evaluation_of_all_test_images_stays_small(data_dir):
    """Convolution and pooling work in batch chunks: one 10,000-image feed fits in a few hundred MB."""
    script = (
        "import resource, numpy as np, tensorweave as tf\n"
        "from tensorweave.examples.tutorials.mnist import mnist_deep as m\n"
        "x = tf.placeholder(tf.float32, [None, 784])\n"
        "y, keep = m.deepnn(x)\n"
        "with tf.Session() as s:\n"
        "    s.run(tf.global_variables_initializer())\n"
        "    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    out = s.run(y, {x: np.random.rand(10000, 784).astype(np.float32), keep: 1.0})\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(out.shape, (peak - base) // 1024)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    shape, growth_mb = proc.stdout.rsplit(" ", 1)
    assert shape.strip() == "(10000, 10)"
    assert int(growth_mb) < 400, f"evaluation grew the process by {growth_mb} MB"
