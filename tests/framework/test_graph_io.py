"""GraphDef export and import: round trips, TF1 `import_graph_def` semantics, malformed input,
IdentityN's list of types, and a GraphDef written the way TensorFlow writes one."""

import base64
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import text_format
from tensorboard.compat.proto import attr_value_pb2, graph_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

import tensorweave as tf
from tensorweave.framework import graph_io
from tensorweave.framework.op_def import registered_ops
from tensorweave.framework.tensor_protos import make_tensor_proto

X_VALUE = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]], dtype=np.float32)
Y_VALUE = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)


def build_training_graph():
    """Placeholders, variables, matmul, softmax, a gradient-descent train op, control
    dependencies, devices, colocation and an IdentityN."""
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    labels = tf.placeholder(tf.float32, [None, 2], name="labels")
    with tf.device("/cpu:0"):
        w = tf.Variable(np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2), name="W")
        b = tf.Variable(np.array([0.1, -0.1], np.float32), name="b")
    probs = tf.nn.softmax(tf.matmul(x, w) + b, name="probs")
    diff = probs - labels
    loss = tf.reduce_mean(tf.reduce_sum(diff * diff, axis=1), name="loss")
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss, name="train")
    with tf.control_dependencies([train]):
        after = tf.identity(loss, name="loss_after_step")
    with tf.colocate_with(w.op):
        w_copy = tf.identity(w.value(), name="w_copy")
    tf.identity_n([probs, tf.argmax(probs, 1)], name="probs_and_classes")  # T: a list of types
    return dict(x=x, labels=labels, w=w, b=b, probs=probs, loss=loss, train=train, after=after, w_copy=w_copy)


def run_steps(sess, graph, steps=3):
    """Initializes the graph's variables, runs `steps` train steps; returns every value seen."""
    get = graph.get_tensor_by_name
    feed = {get("x:0"): X_VALUE, get("labels:0"): Y_VALUE}
    sess.run(graph.get_operation_by_name("init"))
    seen = []
    for _ in range(steps):
        seen.append(sess.run([get("loss_after_step:0"), get("probs:0")], feed))
    seen.append(sess.run([get("W:0"), get("b:0"), get("w_copy:0")]))
    return seen


def test_training_graph_round_trips_bit_identically():
    g1 = tf.Graph()
    with g1.as_default():
        build_training_graph()
        tf.global_variables_initializer()
    data = g1.as_graph_def().SerializeToString()

    g2 = tf.Graph()
    with g2.as_default():
        assert tf.import_graph_def(graph_pb2.GraphDef.FromString(data), name="") is None
    assert [op.name for op in g2.get_operations()] == [op.name for op in g1.get_operations()]
    assert g2.as_graph_def() == g1.as_graph_def()  # every node, input, device and attr survives
    w2 = g2.get_operation_by_name("W")
    assert w2.device == "/device:CPU:0"
    assert g2.get_operation_by_name("w_copy").colocation_groups() == [b"loc:@W"]
    assert g2.get_operation_by_name("W/Assign").colocation_groups() == [b"loc:@W"]
    after = g2.get_operation_by_name("loss_after_step")
    assert [c.name for c in after.control_inputs] == ["train"]

    with tf.Session(graph=g1) as s1, tf.Session(graph=g2) as s2:
        r1, r2 = run_steps(s1, g1), run_steps(s2, g2)
    for a, b in zip(_flatten(r1), _flatten(r2), strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert not np.array_equal(r1[0][0], r1[2][0])  # the train op did train


def _flatten(values):
    out = []
    for v in values:
        out.extend(_flatten(v) if isinstance(v, (list, tuple)) else [np.asarray(v)])
    return out


def test_export_adds_tf_type_attrs_and_output_shapes():
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        m = tf.matmul(x, tf.constant(np.ones((3, 2), np.float32)), name="m")
        s = tf.reduce_sum(m, axis=1, name="s")
        c = tf.cast(s, tf.int32, name="c")
        tf.identity(c, name="i")
    nodes = {n.name: n for n in g.as_graph_def(add_shapes=True).node}
    assert nodes["m"].attr["T"].type == types_pb2.DT_FLOAT
    assert nodes["m"].attr["transpose_a"].b is False and "transpose_b" in nodes["m"].attr
    assert nodes["x"].attr["dtype"].type == types_pb2.DT_FLOAT
    assert [d.size for d in nodes["x"].attr["shape"].shape.dim] == [-1, 3]
    assert nodes["s"].attr["Tidx"].type == types_pb2.DT_INT32 and nodes["s"].attr["T"].type == types_pb2.DT_FLOAT
    assert nodes["c"].attr["SrcT"].type == types_pb2.DT_FLOAT and nodes["c"].attr["DstT"].type == types_pb2.DT_INT32
    assert "T" not in nodes["c"].attr
    assert nodes["i"].attr["T"].type == types_pb2.DT_INT32
    assert [d.size for d in nodes["m"].attr["_output_shapes"].list.shape[0].dim] == [-1, 2]
    assert list(nodes["m"].input) == ["x", "Const"]
    assert g.as_graph_def().versions.producer == graph_io.GRAPH_DEF_VERSION
    assert "_output_shapes" not in g.as_graph_def().node[0].attr
    # The imported op keeps the TF attrs it does not use.
    with tf.Graph().as_default() as g2:
        tf.import_graph_def(g.as_graph_def(add_shapes=True), name="")
        assert g2.get_operation_by_name("m").get_attr("T") is tf.float32
        assert "_output_shapes" not in g2.get_operation_by_name("m").attrs


def test_node_def_of_names_inputs_and_control_inputs():
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32, [2], name="a")
        with tf.control_dependencies([a.op]):
            b = tf.identity(tf.constant([1.0, 2.0]), name="b")
        c = tf.add(a, b, name="c")
        node = c.op.node_def
    assert node.name == "c" and node.op == c.op.type and list(node.input) == ["a", "b"]
    assert list(b.op.node_def.input) == ["Const", "^a"]


def test_import_name_prefixes_and_return_elements():
    source = _small_graph_def()
    with tf.Graph().as_default() as g:
        x1, y1 = tf.import_graph_def(source, return_elements=["x:0", "y:0"])
        x2, y2, op2 = tf.import_graph_def(source, return_elements=["x", "y:0", "y"])
        x3, = tf.import_graph_def(source, return_elements=["x:0"], name="net")
        with tf.name_scope("outer"):
            y4, = tf.import_graph_def(source, return_elements=["y:0"], name="inner")
        y5, = tf.import_graph_def(source, return_elements=["y:0"], name="")
        assert x1.name == "import/x:0" and y1.name == "import/y:0"
        assert x2.name == "import_1/x" and y2.name == "import_1/y:0" and op2 is y2.op
        assert x3.name == "net/x:0" and y4.name == "outer/inner/y:0" and y5.name == "y:0"
        # Importing again with no prefix makes names unique, and inputs follow.
        y6, = tf.import_graph_def(source, return_elements=["y:0"], name="")
        assert y6.name == "y_1:0" and y6.op.inputs[0].name == "x_1:0"
        with tf.Session() as sess:
            assert sess.run(y1, {x1: [1.0, 2.0]}).tolist() == [3.0, 6.0]
            assert sess.run(y6, {"x_1:0": [1.0, 1.0]}).tolist() == [3.0, 3.0]
        with pytest.raises(ValueError, match="'nope' not found"):
            tf.import_graph_def(source, return_elements=["nope"])
    assert len(g.get_operations()) > 0


def _small_graph_def():
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [None], name="x")
        tf.multiply(x, tf.constant(3.0, name="three"), name="y")
    return g.as_graph_def()


def test_input_map_replaces_tensors_and_control_inputs():
    source = _small_graph_def()
    with tf.Graph().as_default():
        z = tf.constant([2.0, 4.0], name="z")
        y, = tf.import_graph_def(source, input_map={"x:0": z}, return_elements=["y:0"])
        assert y.op.inputs[0] is z
        y_short, = tf.import_graph_def(source, input_map={"x": z}, return_elements=["y:0"])
        assert y_short.op.inputs[0] is z
        gate = tf.no_op(name="gate")
        three, = tf.import_graph_def(_with_control_input(source), input_map={"^x": gate},
                                     return_elements=["three"])
        assert three.control_inputs == [gate]
        with tf.Session() as sess:
            assert sess.run(y).tolist() == [6.0, 12.0]
        with pytest.raises(ValueError, match="not found in graph_def: \\[missing:0\\]"):
            tf.import_graph_def(source, input_map={"missing:0": z})
        with pytest.raises(ValueError, match="float32"):
            tf.import_graph_def(source, input_map={"x:0": tf.constant([1, 2])})


def _with_control_input(graph_def):
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    for node in out.node:
        if node.name == "three":
            node.input.append("^x")
    return out


def test_nodes_in_any_order_import():
    with tf.Graph().as_default() as g:
        build_training_graph()
        tf.global_variables_initializer()
    graph_def = g.as_graph_def()
    nodes = list(graph_def.node)
    random.Random(7).shuffle(nodes)
    shuffled = graph_pb2.GraphDef()
    shuffled.node.extend(nodes)
    with tf.Graph().as_default() as g2:
        tf.import_graph_def(shuffled, name="")
    assert {n.name: n for n in g2.as_graph_def().node} == {n.name: n for n in graph_def.node}
    with tf.Session(graph=g) as s1, tf.Session(graph=g2) as s2:
        for a, b in zip(_flatten(run_steps(s1, g, 2)), _flatten(run_steps(s2, g2, 2)), strict=True):
            assert a.tobytes() == b.tobytes()


def test_colocation_groups_follow_the_import_prefix():
    with tf.Graph().as_default() as g:
        w = tf.Variable([1.0, 2.0], name="W")
        with tf.colocate_with(w.op):
            tf.identity(w.value(), name="near_w")
    with tf.Graph().as_default() as g2:
        tf.import_graph_def(g.as_graph_def(), name="copy")
        assert g2.get_operation_by_name("copy/near_w").colocation_groups() == [b"loc:@copy/W"]
    broken = g.as_graph_def()
    for node in broken.node:
        if node.name == "near_w":
            node.attr["_class"].list.s[:] = [b"loc:@ghost"]
    with tf.Graph().as_default(), pytest.raises(ValueError, match="near_w.*ghost"):
        tf.import_graph_def(broken)


# -- malformed GraphDefs ------------------------------------------------------------------------

def _node(graph_def, name, op, inputs=(), **attrs):
    node = graph_def.node.add(name=name, op=op)
    node.input.extend(inputs)
    for key, value in attrs.items():
        node.attr[key].CopyFrom(value)
    return node


def _type(dtype):
    return attr_value_pb2.AttrValue(type=dtype)


def _shape(*dims):
    return attr_value_pb2.AttrValue(shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))


def _bool(v):
    return attr_value_pb2.AttrValue(b=v)


def _const_attr(array):
    return attr_value_pb2.AttrValue(tensor=make_tensor_proto(array))


def _placeholder(graph_def, name, *dims):
    return _node(graph_def, name, "Placeholder", dtype=_type(types_pb2.DT_FLOAT), shape=_shape(*dims))


def _assert_import_fails(graph_def, *patterns):
    with tf.Graph().as_default() as g:
        with pytest.raises(ValueError) as info:
            tf.import_graph_def(graph_def)
        for pattern in patterns:
            assert pattern in str(info.value), str(info.value)
        return g, info.value


def test_malformed_bytes_raise_a_clear_error():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="cannot parse GraphDef"):
            tf.import_graph_def(b"\x0a\xff\xff\xff\xff\x0f garbage")
        with pytest.raises(TypeError):
            tf.import_graph_def("not a graph def")


def test_unknown_op_type_names_node_and_type():
    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2)
    _node(gd, "weird", "FrobnicateV7", ["x"])
    g, _ = _assert_import_fails(gd, "'weird'", "FrobnicateV7", "not registered")
    assert g.get_operations() == []  # nothing was added


def test_missing_and_wrong_attrs_name_the_node():
    gd = graph_pb2.GraphDef()
    _node(gd, "c", "Const", dtype=_type(types_pb2.DT_FLOAT))
    _assert_import_fails(gd, "'c'", "value")

    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2, 2)
    _node(gd, "m", "MatMul", ["x", "x"], transpose_a=attr_value_pb2.AttrValue(s=b"yes"))
    _assert_import_fails(gd, "'m'", "transpose_a", "must be a bool, got string")

    gd = graph_pb2.GraphDef()
    _node(gd, "c", "Const", dtype=_type(types_pb2.DT_INT32), value=_const_attr(np.ones(2, np.float32)))
    _assert_import_fails(gd, "'c'", "dtype")

    gd = graph_pb2.GraphDef()
    bad = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\x00" * 7,
                                 tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                     dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2)]))
    _node(gd, "c", "Const", dtype=_type(types_pb2.DT_FLOAT), value=attr_value_pb2.AttrValue(tensor=bad))
    _assert_import_fails(gd, "'c'", "7 bytes")

    gd = graph_pb2.GraphDef()
    _node(gd, "p", "Placeholder", dtype=_type(77))
    _assert_import_fails(gd, "'p'", "DataType")

    gd = graph_pb2.GraphDef()  # a shape rule rejecting the node's attrs names it too
    _node(gd, "v", "VariableV2", dtype=_type(types_pb2.DT_FLOAT), shape=_shape(2))
    _node(gd, "a", "Assign", ["v", "c"])
    _node(gd, "c", "Const", dtype=_type(types_pb2.DT_FLOAT), value=_const_attr(np.ones(3, np.float32)))
    _assert_import_fails(gd, "a")


def test_dangling_inputs_cycles_and_duplicates_name_the_node():
    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2)
    _node(gd, "y", "Identity", ["nowhere:0"])
    _assert_import_fails(gd, "'y'", "nowhere")

    gd = graph_pb2.GraphDef()
    _node(gd, "a", "Identity", ["b"])
    _node(gd, "b", "Identity", ["a"])
    _assert_import_fails(gd, "cycle", "'a'", "'b'")

    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2)
    _placeholder(gd, "x", 3)
    _assert_import_fails(gd, "'x'", "two nodes")

    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2)
    _node(gd, "y", "Identity", ["x:3"])
    _assert_import_fails(gd, "'y'", "x:3")

    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2)
    _node(gd, "y", "Identity", ["^x", "x"])
    _assert_import_fails(gd, "'y'", "follows a control input")

    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder", dtype=_type(types_pb2.DT_FLOAT)).device = "/bogus:thing"
    _assert_import_fails(gd, "'x'", "device")


def test_import_never_evaluates_anything(monkeypatch):
    """A GraphDef is data: importing one runs no kernel."""
    from tensorweave.framework import op_def
    calls = []
    for d in op_def.registered_ops().values():
        if d.make_kernel is not None:
            original = d.make_kernel
            monkeypatch.setattr(d, "make_kernel", lambda *a, _o=original: calls.append(1) or _o(*a))
    with tf.Graph().as_default() as g:
        build_training_graph()
    with tf.Graph().as_default():
        tf.import_graph_def(g.as_graph_def())
    assert calls == []


# -- a GraphDef as TensorFlow writes it ------------------------------------------------------------

def tf_style_graph_def():
    """The GraphDef TF1 writes for: x -> relu(x @ W + b) -> + c -> softmax -> identity."""
    w = np.array([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.25]], np.float32)
    gd = graph_pb2.GraphDef()
    gd.versions.producer = 134
    _node(gd, "x", "Placeholder", dtype=_type(types_pb2.DT_FLOAT), shape=_shape(-1, 3))
    weights = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=w.tobytes(),
                                     tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[
                                         tensor_shape_pb2.TensorShapeProto.Dim(size=3),
                                         tensor_shape_pb2.TensorShapeProto.Dim(size=2)]))
    _node(gd, "W", "Const", dtype=_type(types_pb2.DT_FLOAT), value=attr_value_pb2.AttrValue(tensor=weights))
    bias = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.5],
                                  tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[
                                      tensor_shape_pb2.TensorShapeProto.Dim(size=2)]))
    _node(gd, "b", "Const", dtype=_type(types_pb2.DT_FLOAT), value=attr_value_pb2.AttrValue(tensor=bias))
    _node(gd, "c", "Const", dtype=_type(types_pb2.DT_FLOAT), value=attr_value_pb2.AttrValue(
        tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[-0.25],
                                      tensor_shape=tensor_shape_pb2.TensorShapeProto())))
    _node(gd, "MatMul", "MatMul", ["x", "W"], T=_type(types_pb2.DT_FLOAT), transpose_a=_bool(False),
          transpose_b=_bool(False))
    _node(gd, "add", "Add", ["MatMul", "b"], T=_type(types_pb2.DT_FLOAT))
    hidden = "add"
    if "Relu" in registered_ops():
        _node(gd, "Relu", "Relu", ["add"], T=_type(types_pb2.DT_FLOAT))
        hidden = "Relu"
    _node(gd, "add_1", "AddV2", [hidden, "c"], T=_type(types_pb2.DT_FLOAT))
    _node(gd, "Softmax", "Softmax", ["add_1"], T=_type(types_pb2.DT_FLOAT))
    _node(gd, "output", "Identity", ["Softmax"], T=_type(types_pb2.DT_FLOAT))
    # TF writes a _class and _output_shapes on some nodes; both must be accepted.
    gd.node[-1].attr["_output_shapes"].list.shape.add().dim.add(size=-1)

    def reference(x):
        h = x @ w + 0.5
        if hidden == "Relu":
            h = np.maximum(h, 0)
        h = h - 0.25
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return gd, reference


def test_tf1_pb_file_imports_and_runs(tmp_path):
    gd, reference = tf_style_graph_def()
    path = tmp_path / "frozen.pb"
    path.write_bytes(gd.SerializeToString())
    with tf.Graph().as_default():
        graph_def = graph_pb2.GraphDef()
        graph_def.ParseFromString(path.read_bytes())
        x, out = tf.import_graph_def(graph_def, return_elements=["x:0", "output:0"], name="")
        assert out.shape.as_list() == [None, 2]
        with tf.Session() as sess:
            value = sess.run(out, {x: X_VALUE})
    np.testing.assert_allclose(value, reference(X_VALUE), rtol=1e-6)
    assert value.dtype == np.float32


# Written by TensorFlow 2.21 (tf.compat.v1, graph mode, classic variables) for:
#   x = placeholder(float32, [None, 3]); W = constant(RandomState(1).randn(3, 4))
#   output = identity(softmax(relu(x @ W + 0.5) - 0.25)); m = reduce_mean(output, axis=0)
#   V = Variable(zeros([3, 2])); bump = assign_add(V, ones([3, 2])); vo = x @ V.read_value()
# TF's MatMul carries grad_a/grad_b and its Assign _has_manual_control_dependencies: attrs
# TensorWeave's ops do not use, which import keeps.
TF_WRITTEN_GRAPH_DEF = (
    "CjsKAXgSC1BsYWNlaG9sZGVyKhwKBXNoYXBlEhM6ERILCP///////////wESAggDKgsKBWR0eXBlEgIwAQpiCgFXEgVDb25z"
    "dCpJCgV2YWx1ZRJAQj4IARIIEgIIAxICCAQiMI3qzz8RnBy/RDYHvwlXib9bi10/aUwTwP5V3z913kK/GFmjPvNaf75aJrs/"
    "WNkDwCoLCgVkdHlwZRICMAEKYQoGTWF0TXVsEgZNYXRNdWwaAXgaAVcqDAoGZ3JhZF9hEgIoACoRCgt0cmFuc3Bvc2VfYRIC"
    "KAAqDAoGZ3JhZF9iEgIoACoHCgFUEgIwASoRCgt0cmFuc3Bvc2VfYhICKAAKNgoFQ29uc3QSBUNvbnN0KhkKBXZhbHVlEhBC"
    "DggBEgQSAggEKgQAAAA/KgsKBWR0eXBlEgIwAQokCgNhZGQSBUFkZFYyGgZNYXRNdWwaBUNvbnN0KgcKAVQSAjABChoKBFJl"
    "bHUSBFJlbHUaA2FkZCoHCgFUEgIwAQo0CgdDb25zdF8xEgVDb25zdCoVCgV2YWx1ZRIMQgoIARIAKgQAAIC+KgsKBWR0eXBl"
    "EgIwAQomCgVhZGRfYxIFQWRkVjIaBFJlbHUaB0NvbnN0XzEqBwoBVBICMAEKIgoHU29mdG1heBIHU29mdG1heBoFYWRkX2Mq"
    "BwoBVBICMAEKJAoGb3V0cHV0EghJZGVudGl0eRoHU29mdG1heCoHCgFUEgIwAQo9ChNtL3JlZHVjdGlvbl9pbmRpY2VzEgVD"
    "b25zdCoSCgV2YWx1ZRIJQgcIAxIAOgEAKgsKBWR0eXBlEgIwAwpMCgFtEgRNZWFuGgZvdXRwdXQaE20vcmVkdWN0aW9uX2lu"
    "ZGljZXMqDwoJa2VlcF9kaW1zEgIoACoHCgFUEgIwASoKCgRUaWR4EgIwAwo6CgV6ZXJvcxIFQ29uc3QqHQoFdmFsdWUSFEIS"
    "CAESCBICCAMSAggCKgQAAAAAKgsKBWR0eXBlEgIwAQpVCgFWEgpWYXJpYWJsZVYyKg8KCWNvbnRhaW5lchICEgAqCwoFZHR5"
    "cGUSAjABKhEKC3NoYXJlZF9uYW1lEgISACoTCgVzaGFwZRIKOggSAggDEgIIAgqMAQoIVi9Bc3NpZ24SBkFzc2lnbhoBVhoF"
    "emVyb3MqJgogX2hhc19tYW51YWxfY29udHJvbF9kZXBlbmRlbmNpZXMSAigBKgcKAVQSAjABKhQKBl9jbGFzcxIKCggSBmxv"
    "YzpAVioRCgt1c2VfbG9ja2luZxICKAEqFAoOdmFsaWRhdGVfc2hhcGUSAigBCjQKBlYvcmVhZBIISWRlbnRpdHkaAVYqBwoB"
    "VBICMAEqFAoGX2NsYXNzEgoKCBIGbG9jOkBWCjkKBG9uZXMSBUNvbnN0Kh0KBXZhbHVlEhRCEggBEggSAggDEgIIAioEAACA"
    "PyoLCgVkdHlwZRICMAEKTAoEYnVtcBIJQXNzaWduQWRkGgFWGgRvbmVzKgcKAVQSAjABKhQKBl9jbGFzcxIKCggSBmxvYzpA"
    "VioRCgt1c2VfbG9ja2luZxICKAAKHAoEcmVhZBIISWRlbnRpdHkaAVYqBwoBVBICMAEKYAoCdm8SBk1hdE11bBoBeBoEcmVh"
    "ZCoMCgZncmFkX2ESAigAKgcKAVQSAjABKgwKBmdyYWRfYhICKAAqEQoLdHJhbnNwb3NlX2ESAigAKhEKC3RyYW5zcG9zZV9i"
    "EgIoAAoXCgRpbml0EgROb09wGgleVi9Bc3NpZ24iAwiqEw=="
)
# TF's `output` for x = RandomState(0).randn(4, 3).astype(float32).
TF_OUTPUT = np.array([
    [0.8823001384735107, 0.01577690802514553, 0.08614606410264969, 0.01577690802514553],
    [0.9782512187957764, 0.004226493649184704, 0.013295792043209076, 0.004226493649184704],
    [0.6622424721717834, 0.13552390038967133, 0.10111682116985321, 0.10111682116985321],
    [0.2619166970252991, 0.045261021703481674, 0.647561252117157, 0.045261021703481674]], np.float32)


def test_graph_def_written_by_tensorflow_imports_and_runs():
    graph_def = graph_pb2.GraphDef.FromString(base64.b64decode("".join(TF_WRITTEN_GRAPH_DEF)))
    assert graph_def.versions.producer > 1000
    x_value = np.random.RandomState(0).randn(4, 3).astype(np.float32)
    with tf.Graph().as_default():
        out, m, vo = tf.import_graph_def(graph_def, return_elements=["output:0", "m:0", "vo:0"], name="tf")
        with tf.Session() as sess:
            sess.run("tf/init")
            sess.run("tf/bump")
            got_out, got_m, got_vo = sess.run([out, m, vo], {"tf/x:0": x_value})
    np.testing.assert_allclose(got_out, TF_OUTPUT, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_m, TF_OUTPUT.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(got_vo, np.repeat(x_value.sum(axis=1, keepdims=True), 2, axis=1), rtol=1e-6)


def test_a_fresh_process_imports_random_ops_and_initializers(tmp_path):
    """Import registers every op type, not only those of the modules `import tensorweave` loads."""
    with tf.Graph().as_default() as g:
        tf.get_variable("w", [3, 3], initializer=tf.orthogonal_initializer(seed=1))
        tf.random_uniform([2], seed=2) + tf.random_normal([2], seed=3)
        tf.global_variables_initializer()
    path = tmp_path / "graph.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    program = ("import sys, tensorweave as tf\n"
               "gd = tf.GraphDef.FromString(open(sys.argv[1], 'rb').read())\n"
               "with tf.Graph().as_default(), tf.Session() as sess:\n"
               "    tf.import_graph_def(gd, name='')\n"
               "    sess.run('init')\n"
               "    print(sess.run('w:0').shape)\n")
    done = subprocess.run([sys.executable, "-c", program, str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 3)"


def test_write_graph_text_and_binary(tmp_path):
    with tf.Graph().as_default() as g:
        build_training_graph()
    text_path = tf.train.write_graph(g, str(tmp_path / "logs"), "graph.pbtxt")
    assert text_path == os.path.join(str(tmp_path / "logs"), "graph.pbtxt")
    parsed = text_format.Parse(open(text_path).read(), graph_pb2.GraphDef())
    assert parsed == g.as_graph_def()
    bin_path = graph_io.write_graph(g.as_graph_def(), str(tmp_path / "logs"), "graph.pb", as_text=False)
    assert graph_pb2.GraphDef.FromString(open(bin_path, "rb").read()) == g.as_graph_def()
    assert sorted(os.listdir(tmp_path / "logs")) == ["graph.pb", "graph.pbtxt"]  # no temp files left


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    graph_io.atomic_write(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk on fire")
    monkeypatch.setattr(graph_io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        graph_io.atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["file.bin"]


# -- IdentityN -----------------------------------------------------------------------------------

def _identity_n_graph_def(t_attr):
    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2)
    _node(gd, "i", "Const", dtype=_type(types_pb2.DT_INT32), value=_const_attr(np.array([1, 2, 3], np.int32)))
    _node(gd, "n", "IdentityN", ["x", "i"], T=t_attr)
    return gd


def test_identity_n_takes_a_list_of_types():
    """TF declares IdentityN's T as list(type) (ShapeN's T is one type, with N)."""
    types = attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[types_pb2.DT_FLOAT,
                                                                                    types_pb2.DT_INT32]))
    with tf.Graph().as_default():
        x, i = tf.import_graph_def(_identity_n_graph_def(types), return_elements=["n:0", "n:1"], name="")
        assert (x.dtype, i.dtype) == (tf.float32, tf.int32)
        assert x.op.get_attr("T") == [tf.float32, tf.int32]
        with tf.Session() as sess:
            assert sess.run(i, {x.op.inputs[0]: [0.5, 1.5]}).tolist() == [1, 2, 3]
    _assert_import_fails(_identity_n_graph_def(_type(types_pb2.DT_FLOAT)), "'n'", "list(type)")
    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2)
    _node(gd, "y", "Identity", ["x"], T=types)
    _assert_import_fails(gd, "'y'", "must be a type, got list(type)")
    gd = graph_pb2.GraphDef()
    _placeholder(gd, "x", 2)
    _node(gd, "s", "ShapeN", ["x", "x"], T=types, N=attr_value_pb2.AttrValue(i=2))
    _assert_import_fails(gd, "'s'", "must be a type")
