"""`tensorweave.inference.load`: frozen GraphDef files and simple_save directories run with NumPy
alone, with the runtime's kernels and without the training or distributed code."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tensorweave as tf
import tensorweave.inference
from tensorweave.framework import errors

FEED = np.random.default_rng(0).random((5, 6), dtype=np.float32)


def _mlp():
    """(session, x, probabilities, class): a two-layer MLP with initialized variables."""
    x = tf.placeholder(tf.float32, [None, 6], name="x")
    h = tf.nn.relu(tf.matmul(x, tf.Variable(tf.random_normal([6, 8], seed=1))) + tf.Variable(tf.zeros([8])))
    logits = tf.matmul(h, tf.Variable(tf.random_normal([8, 3], seed=2)), name="logits")
    probs = tf.nn.softmax(logits, name="probs")
    cls = tf.argmax(probs, 1, name="cls")
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    return sess, x, probs, cls


@pytest.mark.parametrize("as_text", [False, True])
def test_frozen_graph_file_matches_the_session(tmp_path, as_text):
    with tf.Graph().as_default():
        sess, x, probs, cls = _mlp()
        frozen = tf.graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(), ["probs", "cls"])
        path = tf.train.write_graph(frozen, str(tmp_path), "frozen.pb", as_text=as_text)
        expected = sess.run([probs, cls], {x: FEED})
    model = tensorweave.inference.load(path, outputs=["probs:0", "cls:0"])
    out = model.run({"x:0": FEED})
    np.testing.assert_allclose(out["probs:0"], expected[0], rtol=1e-6)
    np.testing.assert_array_equal(out["cls:0"], expected[1])
    np.testing.assert_array_equal(model.run({"x": FEED.tolist()}, outputs=["cls:0"])["cls:0"], expected[1])


def test_saved_model_directory_uses_its_signature(tmp_path):
    with tf.Graph().as_default():
        sess, x, probs, _ = _mlp()
        tf.saved_model.simple_save(sess, str(tmp_path / "m"), {"pixels": x}, {"probabilities": probs})
        expected = sess.run(probs, {x: FEED})
    out = tensorweave.inference.load(tmp_path / "m")({"pixels": FEED})
    np.testing.assert_allclose(out["probabilities"], expected, rtol=1e-6)


def test_bad_feeds_and_unfrozen_graphs_fail_with_names(tmp_path):
    with tf.Graph().as_default():
        sess, _, _, _ = _mlp()
        tf.train.write_graph(sess.graph, str(tmp_path), "live.pb", as_text=False)
        frozen = tf.graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(), ["probs"])
        tf.train.write_graph(frozen, str(tmp_path), "frozen.pb", as_text=False)
    with pytest.raises(errors.InvalidArgumentError, match="freeze the graph"):
        tensorweave.inference.load(tmp_path / "live.pb", outputs=["probs:0"])
    model = tensorweave.inference.load(tmp_path / "frozen.pb", outputs=["probs:0"])
    with pytest.raises(errors.InvalidArgumentError, match="x:0"):
        model.run({"x:0": np.zeros((2, 5), np.float32)})
    with pytest.raises(errors.InvalidArgumentError, match="placeholder"):
        model.run({})


def test_inference_imports_no_training_or_distributed_code(tmp_path):
    with tf.Graph().as_default():
        sess, x, probs, _ = _mlp()
        tf.saved_model.simple_save(sess, str(tmp_path / "m"), {"x": x}, {"y": probs})
        frozen = tf.graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(), ["probs"])
        tf.train.write_graph(frozen, str(tmp_path), "frozen.pb", as_text=False)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorweave.inference
        x = np.ones((2, 6), np.float32)
        a = tensorweave.inference.load({str(tmp_path / "m")!r}).run({{"x": x}})["y"]
        b = tensorweave.inference.load({str(tmp_path / "frozen.pb")!r}, outputs=["probs:0"]).run({{"x:0": x}})
        assert np.allclose(a, b["probs:0"])
        banned = ("tensorweave.train", "tensorweave.distributed", "tensorweave.autodiff", "tensorweave.runtime",
                  "grpc")
        print(sorted(m for m in sys.modules if m.startswith(banned)))
        """)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
