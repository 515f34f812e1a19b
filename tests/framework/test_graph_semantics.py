"""Graph semantics as TF1 defines them: names, scopes, devices, colocation, collections, identity."""

import pytest

import tensorweave as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def test_unique_names_get_numeric_suffixes_case_insensitively():
    a = tf.constant(1.0, name="x")
    b = tf.constant(1.0, name="x")
    c = tf.constant(1.0, name="X")
    assert (a.op.name, b.op.name, c.op.name) == ("x", "x_1", "X_2")
    assert a.name == "x:0"


def test_name_scopes_nest_reset_and_reenter():
    with tf.name_scope("outer") as outer:
        assert outer == "outer/"
        with tf.name_scope("inner"):
            t = tf.constant(1.0, name="c")
        with tf.name_scope(None):
            root = tf.constant(1.0, name="r")
        with tf.name_scope("inner"):
            u = tf.constant(1.0, name="c")
    with tf.name_scope(outer):
        again = tf.constant(1.0, name="d")
    assert t.op.name == "outer/inner/c"
    assert root.op.name == "r"
    assert u.op.name == "outer/inner_1/c"
    assert again.op.name == "outer/d"


def test_default_op_names_follow_op_types():
    x = tf.placeholder(tf.float32, [2, 2])
    y = tf.matmul(x, x)
    z = x + x
    assert y.op.name == "MatMul" and y.op.type == "MatMul"
    assert z.op.name == "add"


def test_device_scopes_merge_field_by_field_and_functions_apply():
    with tf.device("/job:worker/task:1"):
        with tf.device("/cpu:0"):
            a = tf.constant(1.0)
        with tf.device(lambda op: "/job:ps/task:0" if op.type == "Const" else ""):
            b = tf.constant(2.0)
        with tf.device(None):
            c = tf.constant(3.0)
    assert a.device == "/job:worker/task:1/device:CPU:0"
    assert b.device == "/job:ps/task:0"
    assert c.device == ""


def test_variable_update_ops_are_colocated_with_the_variable():
    with tf.device("/job:ps/task:0"):
        v = tf.Variable(1.0, name="v")
    with tf.device("/job:worker/task:0"):
        update = tf.assign_add(v, 1.0)
    assert update.op.device == "/job:ps/task:0"
    assert update.op.colocation_groups() == [b"loc:@v"]
    assert v.initializer.colocation_groups() == [b"loc:@v"]


def test_collections_and_trainable_variables():
    w = tf.Variable(tf.zeros([2]), name="w")
    s = tf.Variable(0, name="step", trainable=False)
    assert tf.global_variables() == [w, s]
    assert tf.trainable_variables() == [w]
    tf.add_to_collection("mine", 3)
    assert tf.get_collection("mine") == [3]
    assert tf.get_collection("nothing") == []
    assert tf.get_collection(tf.GraphKeys.GLOBAL_VARIABLES, scope="st") == [s]


def test_control_dependencies_add_control_inputs_and_none_clears():
    a = tf.constant(1.0)
    b = tf.constant(2.0)
    with tf.control_dependencies([a]):
        c = tf.identity(b)
        with tf.control_dependencies(None):
            d = tf.identity(b)
        e = tf.identity(a)  # a is already a data input: no duplicate control edge
    assert c.op.control_inputs == [a.op]
    assert d.op.control_inputs == []
    assert e.op.control_inputs == []


def test_tensors_hash_and_compare_by_identity():
    a = tf.constant(1.0)
    b = tf.constant(1.0)
    assert a == a and not (a == b)
    assert len({a, b, a}) == 2
    feed = {a: 1, b: 2}
    assert feed[a] == 1
    with pytest.raises(TypeError):
        bool(a)


def test_graph_lookups_and_element_errors(fresh_graph):
    a = tf.constant(1.0, name="a")
    assert fresh_graph.get_tensor_by_name("a:0") is a
    assert fresh_graph.get_operation_by_name("a") is a.op
    assert fresh_graph.as_graph_element("a:0") is a
    with pytest.raises(KeyError):
        fresh_graph.get_operation_by_name("nope")
    with pytest.raises(ValueError):
        fresh_graph.get_tensor_by_name("a")


def test_finalized_graph_rejects_new_ops(fresh_graph):
    tf.constant(1.0)
    fresh_graph.finalize()
    with pytest.raises(RuntimeError, match="finalized"):
        tf.constant(2.0)


def test_static_shape_error_names_op_and_user_line():
    a = tf.placeholder(tf.float32, [2, 3])
    b = tf.placeholder(tf.float32, [4, 5])
    with pytest.raises(ValueError, match=r"(?s)Dimensions must be equal.*MatMul.*test_graph_semantics.py:\d+") as info:
        tf.matmul(a, b)
    assert isinstance(info.value, tf.errors.InvalidArgumentError)


def test_inputs_from_another_graph_are_rejected():
    a = tf.constant(1.0)
    with tf.Graph().as_default():
        b = tf.constant(2.0)
        with pytest.raises(ValueError, match="same graph"):
            tf.add(a, b)


def test_op_records_creation_site():
    c = tf.constant(1.0)
    assert c.op.creation_site.endswith(".py:" + c.op.creation_site.rsplit(":", 1)[1])
    assert "test_graph_semantics.py" in c.op.creation_site


def test_shapes_partial_and_dimension_values():
    x = tf.placeholder(tf.float32, [None, 784])
    assert x.shape.as_list() == [None, 784]
    assert x.get_shape()[1].value == 784
    assert int(x.shape[1]) == 784
    assert x.shape[0].value is None
    x.set_shape([100, 784])
    assert x.shape.as_list() == [100, 784]
    with pytest.raises(ValueError):
        x.set_shape([10, 784])
