"""`tensorweave.debug.dump`: a step's tensors as .npy files plus an index, readable without pickle."""

import json

import numpy as np

import tensorweave as tf
from tensorweave.debug import dump, load_dump


def _model():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    with tf.variable_scope("layer1"):
        w = tf.get_variable("w", initializer=np.eye(3, dtype=np.float32) * -1.0)
        h = tf.nn.relu(tf.matmul(x, w))  # relu line
    loss = tf.reduce_sum(tf.log(h + 1e-3 - 1e-3), name="loss")  # log(0): -inf where relu is 0
    return x, w, h, loss


def test_dump_writes_every_tensor_of_the_step_with_an_index(tmp_path):
    with tf.Graph().as_default():
        x, w, h, loss = _model()
        train = tf.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_sum(h))
        feed = {x: np.array([[1.0, -2.0, 3.0]], np.float32)}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            before = sess.run(w)
            result = dump(sess, {"loss": loss, "train": train}, feed, str(tmp_path / "step"))
            assert set(result) == {"loss", "train"} and result["train"] is None
            after = sess.run(w)
            assert not np.array_equal(after, before)  # the dumped step was a training step
    index = json.loads((tmp_path / "step" / "index.json").read_text())
    by_name = {e["name"]: e for e in index["tensors"]}
    relu = by_name["layer1/Relu:0"]
    assert relu["file"] == "layer1_Relu_0.npy" and relu["op_type"] == "Relu"
    with open(__file__, encoding="utf-8") as f:
        relu_line = next(n for n, line in enumerate(f, 1) if line.endswith("# relu line\n"))
    assert relu["defined_at"] == f"{__file__}:{relu_line}"
    assert by_name["x:0"]["shape"] == [1, 3] and by_name["x:0"]["dtype"] == "float32"
    assert by_name["loss:0"]["inf"] == 1 and by_name["loss:0"]["nan"] == 0
    values = load_dump(str(tmp_path / "step"))
    np.testing.assert_array_equal(values["layer1/Relu:0"], [[0.0, 2.0, 0.0]])
    np.testing.assert_array_equal(values["x:0"], feed[x])
    np.testing.assert_array_equal(values["layer1/w/read:0"], before)  # the value the step used
    np.testing.assert_array_equal(values["layer1/w:0"], after)  # the variable, after the step
    assert float(values["loss:0"]) == result["loss"] == -np.inf
    for e in index["tensors"]:  # plain .npy files
        np.load(tmp_path / "step" / e["file"], allow_pickle=False)


def test_dump_of_chosen_tensors_and_strings(tmp_path):
    with tf.Graph().as_default():
        x, _, h, _ = _model()
        tf.constant(["first", "second"], name="label")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            out = dump(sess, h, {x: np.ones((2, 3), np.float32)}, str(tmp_path), tensors=[h, "label:0"])
    np.testing.assert_array_equal(out, np.zeros((2, 3)))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["index.json", "label_0.npy", "layer1_Relu_0.npy"]
    strings = np.load(tmp_path / "label_0.npy", allow_pickle=False)
    assert strings.tolist() == [b"first", b"second"]
