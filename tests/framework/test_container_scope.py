"""`tf.container` (`Graph.container`): stateful ops created in the block get its `container`
attr (variables from `tf.Variable` and `tf.get_variable`, queues, accumulators); the innermost
scope wins, "" returns to the default, an op naming its own container keeps it, stateless ops
are untouched, and the attr survives a GraphDef round trip."""

import pytest

import tensorweave as tf
from tensorweave.ops import state_ops


def _container(op_or_var):
    op = getattr(op_or_var, "op", op_or_var)
    return op.get_attr("container")


def test_container_scopes_nest_and_reset():
    with tf.Graph().as_default() as g:
        outside = tf.Variable(0.0, name="outside")
        with tf.container("c1") as name:
            assert name == "c1"
            a = tf.Variable(1.0, name="a")
            with tf.container("c2"):
                b = tf.get_variable("b", [2], initializer=tf.zeros_initializer())
                with tf.container(""):
                    c = tf.Variable(2.0, name="c")
                d = tf.Variable(3.0, name="d")
            q = tf.FIFOQueue(2, tf.float32, name="q")
            acc = tf.ConditionalAccumulator(tf.float32, shape=[], name="acc")
            own = state_ops.variable_op([], tf.float32, name="own", container="mine")
            const = tf.constant(1.0, name="const")
        after = tf.Variable(4.0, name="after")
    assert [_container(v) for v in (outside, a, b, c, d, after)] == ["", "c1", "c2", "", "c2", ""]
    assert _container(q.queue_ref) == "c1"
    assert _container(acc.accumulator_ref) == "c1"
    assert _container(own) == "mine"
    with pytest.raises((KeyError, ValueError)):
        const.op.get_attr("container")
    nodes = {n.name: n for n in g.as_graph_def().node}
    assert nodes["a"].attr["container"].s == b"c1"
    assert nodes["b"].attr["container"].s == b"c2"
    with tf.Graph().as_default() as imported:
        tf.import_graph_def(g.as_graph_def(), name="")
    assert _container(imported.get_operation_by_name("b")) == "c2"


def test_container_scope_is_restored_after_an_error():
    with tf.Graph().as_default():
        with pytest.raises(RuntimeError), tf.container("c"):
            raise RuntimeError("boom")
        assert _container(tf.Variable(1.0, name="v")) == ""


def test_container_is_exported_at_the_top_level_and_in_compat_v1():
    assert tf.container is tf.compat.v1.container
    with tf.Graph().as_default() as g, tf.compat.v1.container("x"):
        v = tf.Variable(1.0)
    assert v.op.graph is g and _container(v) == "x"
    with pytest.raises(TypeError):
        with tf.container(None):
            pass


def test_variables_in_a_container_run_and_share_by_container():
    with tf.Graph().as_default():
        with tf.container("c"):
            v = tf.Variable(5.0, name="v")
        w = tf.Variable(6.0, name="w")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert sess.run([v, w]) == [5.0, 6.0]
            keys = sorted(k for k, _ in sess._runtime.device.resources.items())
    assert keys == [("", "w"), ("c", "v")]
