"""`tf.train.write_graph` and `tf.graph_util`: writing, pruning and freezing GraphDefs."""

import os

import numpy as np
import pytest
from google.protobuf import text_format
from tensorboard.compat.proto import graph_pb2

import tensorweave as tf
from tensorweave.framework import graph_util


def _trained_softmax():
    """A softmax model with a training op; returns (session, x, y)."""
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 10, name="W")
    b = tf.Variable(np.array([0.5, -0.5], np.float32), name="b")
    unused = tf.Variable(np.ones(4, np.float32), name="unused")
    y = tf.nn.softmax(tf.matmul(x, w) + b, name="y")
    loss = tf.reduce_sum(y * unused[0])
    tf.train.GradientDescentOptimizer(0.1).minimize(loss, name="train")
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    return sess, x, y


def test_write_graph_text_and_binary_round_trip(tmp_path):
    with tf.Graph().as_default() as graph:
        _trained_softmax()
        text = tf.train.write_graph(graph, str(tmp_path), "g.pbtxt")
        binary = tf.train.write_graph(graph.as_graph_def(), str(tmp_path / "sub"), "g.pb", as_text=False)
    with open(text) as f:
        from_text = text_format.Parse(f.read(), graph_pb2.GraphDef())
    with open(binary, "rb") as f:
        from_binary = graph_pb2.GraphDef.FromString(f.read())
    assert from_text == from_binary == graph.as_graph_def()
    assert os.path.dirname(binary) == str(tmp_path / "sub")


def test_convert_variables_to_constants_keeps_only_what_outputs_need():
    with tf.Graph().as_default():
        sess, x, y = _trained_softmax()
        frozen = tf.graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(), ["y"])
        feed = np.array([[1.0, 2.0, 3.0]], np.float32)
        expected = sess.run(y, {x: feed})
    ops = {node.name: node.op for node in frozen.node}
    assert ops["W"] == "Const" and ops["b"] == "Const"
    assert "unused" not in ops and "train" not in ops
    assert "VariableV2" not in ops.values()
    with tf.Graph().as_default():
        (y2,) = tf.import_graph_def(frozen, return_elements=["y:0"], name="")
        np.testing.assert_allclose(tf.Session().run(y2, {"x:0": feed}), expected, rtol=1e-6)


def test_whitelist_and_blacklist_choose_the_variables_to_freeze():
    with tf.Graph().as_default():
        sess, _, _ = _trained_softmax()
        graph_def = sess.graph.as_graph_def()
        only_w = graph_util.convert_variables_to_constants(sess, graph_def, ["y"], variable_names_whitelist=["W"])
        not_w = graph_util.convert_variables_to_constants(sess, graph_def, ["y"], variable_names_blacklist=["W"])
    assert {n.name: n.op for n in only_w.node}["b"] == "VariableV2"
    assert {n.name: n.op for n in not_w.node}["W"] == "VariableV2"
    assert {n.name: n.op for n in not_w.node}["b"] == "Const"


def test_freezing_a_variable_that_an_assign_needs_fails_with_the_node():
    with tf.Graph().as_default():
        sess, _, _ = _trained_softmax()
        with pytest.raises(ValueError, match="ApplyGradientDescent"):
            graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(), ["train"])


def test_extract_sub_graph_follows_control_inputs_and_rejects_unknown_nodes():
    with tf.Graph().as_default() as graph:
        a = tf.constant(1.0, name="a")
        c = tf.constant(3.0, name="c")
        with tf.control_dependencies([c]):
            b = tf.identity(a, name="b")
        tf.constant(4.0, name="d")
        sub = graph_util.extract_sub_graph(graph.as_graph_def(), ["b"])
        assert [n.name for n in sub.node] == ["a", "c", "b"]
        with pytest.raises(AssertionError, match="nope"):
            graph_util.extract_sub_graph(graph.as_graph_def(), ["nope"])
        del b


def test_remove_training_nodes_splices_identities():
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [2], name="x")
        y = tf.identity(tf.identity(x, name="i1"), name="i2") * 2.0
        tf.identity(y, name="out")
        stripped = graph_util.remove_training_nodes(graph.as_graph_def(), protected_nodes=["out"])
    names = [n.name for n in stripped.node]
    assert "i1" not in names and "i2" not in names and "out" in names
    mul = next(n for n in stripped.node if n.op == "Mul")
    assert mul.input[0] == "x"
    with tf.Graph().as_default():
        (out,) = tf.import_graph_def(stripped, return_elements=["out:0"], name="")
        np.testing.assert_array_equal(tf.Session().run(out, {"x:0": [1.0, 2.0]}), [2.0, 4.0])
