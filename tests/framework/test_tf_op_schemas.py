"""TF's op schemas as our export and import see them: GraphDefs written with default attrs
stripped import and run, every attr an op reads is one TF always writes or one with a known
default, and export names exactly the attrs TF's ops declare.

The op zoo below uses every registered op type; a new op type fails
`test_the_op_zoo_uses_every_registered_op_type` until the zoo uses it too.
"""

import numpy as np
import pytest
from google.protobuf import text_format
from tensorboard.compat.proto import graph_pb2

import tensorweave as tf
from tensorweave.framework import graph_io, tf_op_schemas
from tensorweave.framework.op_def import registered_ops
from tensorweave.framework.operation import Operation
from tensorweave.ops.data_flow_ops import fail_replica_requests


def _conv_net():
    rng = np.random.RandomState(0)
    x = tf.placeholder(tf.float32, [2, 6, 6, 3], name="images")
    w = tf.constant(rng.randn(3, 3, 3, 4).astype(np.float32) * 0.3)
    b = tf.constant(np.linspace(-0.5, 0.5, 4, dtype=np.float32))
    h = tf.nn.leaky_relu(tf.nn.bias_add(tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME", dilations=[1, 1, 1, 1]), b))
    pooled = tf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "VALID") + tf.nn.avg_pool(h, [1, 3, 3, 1], [1, 2, 2, 1],
                                                                                        "SAME")
    loss = tf.reduce_sum(pooled * pooled)
    gx, gw = tf.gradients(loss, [x, w])
    ggx, = tf.gradients(tf.reduce_sum(gx * gx), [x])  # second order: MaxPoolGradGrad
    return [pooled, gx, gw, ggx], {x: rng.randn(2, 6, 6, 3).astype(np.float32)}


def _activations():
    x = tf.placeholder(tf.float32, [3, 4], name="x")
    acts = [tf.nn.relu, tf.nn.relu6, tf.nn.elu, tf.nn.selu, tf.nn.softplus, tf.nn.softsign, tf.sigmoid, tf.tanh,
            tf.nn.softmax, tf.nn.log_softmax, lambda t: tf.nn.leaky_relu(t, alpha=0.1)]
    ys = [f(x * 4.0) for f in acts]
    grads = tf.gradients(tf.add_n([tf.reduce_sum(y * y) for y in ys]), [x])
    return ys + grads, {x: np.random.RandomState(1).randn(3, 4).astype(np.float32)}


def _arrays():
    x = tf.placeholder(tf.float32, [None, 6], name="x")
    idx = tf.placeholder(tf.int32, [None], name="idx")
    axis = tf.placeholder_with_default(tf.constant(1), [], name="axis")
    r = tf.reshape(x, [-1, 2, 3])
    parts = tf.split(x, [2, 4], axis=1) + tf.split(x, 3, axis=1)
    s = tf.strided_slice(r, [0, 0, 1], [0, 2, 3], [1, 1, 1], begin_mask=1, end_mask=1, new_axis_mask=0)
    cat = tf.concat([x, x * 2.0], axis=axis)  # an axis known only at run time: ConcatOffset
    outs = [
        tf.squeeze(tf.expand_dims(x, 0), [0]), tf.squeeze(tf.expand_dims(x, -1)), tf.transpose(r, [2, 0, 1]),
        tf.transpose(tf.complex(x, x) if hasattr(tf, "complex") else tf.cast(x, tf.complex64), conjugate=True),
        tf.stack(tf.unstack(r, axis=1), axis=2), tf.stack([x, x]), tf.slice(x, [0, 1], [-1, 2]), s, r[:, 1, ::2],
        tf.gather(x, idx), tf.gather(x, [0, 2], axis=1), tf.gather_nd(r, [[0, 1], [1, 0]]),
        tf.tile(x, [2, 1]), tf.pad(x, [[1, 0], [0, 2]]), tf.pad(x, [[1, 1], [1, 1]], mode="REFLECT"),
        tf.pad(x, [[0, 1], [0, 0]], constant_values=3.0), tf.one_hot(idx, 5), tf.one_hot(idx, 3, axis=0),
        tf.where(x > 0), tf.where(x > 0, x, -x), tf.where_v2(x > 0, x, 0.0),
        tf.unsorted_segment_sum(x, idx, 3), tf.broadcast_to(x[:1], [4, 6]), tf.reverse(x, [1]),
        tf.scatter_nd([[1], [3]], [[1.0, 2.0], [3.0, 4.0]], [5, 2]), tf.invert_permutation([2, 0, 1]),
        tf.fill([2, 3], 7.0), tf.zeros_like(x), tf.ones_like(idx), tf.rank(x), tf.size(x, out_type=tf.int64),
        tf.shape(x), tf.stop_gradient(x), tf.boolean_mask(x, x[:, 0] > 0), tf.sequence_mask(idx, 4),
        tf.cast(x, tf.int32), tf.identity(x), axis, cat,
        *tf.shape_n([x, r]), *tf.identity_n([x, idx]), *parts,
    ]
    grads = tf.gradients(tf.reduce_sum(tf.reduce_max(x, 1)) + tf.reduce_sum(s) + tf.reduce_sum(cat) + tf.reduce_sum(outs[14]) + tf.reduce_sum(outs[9])
                         + tf.reduce_sum(outs[11]) + tf.reduce_sum(outs[22]) + tf.reduce_sum(outs[7]), [x])
    feed = {x: np.random.RandomState(2).randn(4, 6).astype(np.float32), idx: np.array([2, 0, 1, 2], np.int32)}
    return outs + grads, feed


def _math():
    rng = np.random.RandomState(3)
    a = tf.placeholder(tf.float32, [3, 4], name="a")
    b = tf.placeholder(tf.float32, [4], name="b")
    m = tf.placeholder(tf.float32, [4, 3], name="m")
    pos = tf.abs(a) + 0.5
    elementwise = [
        a + b, a - b, a * b, a / b, tf.div(a, b), tf.floordiv(a, b), tf.floormod(a, b), tf.pow(pos, 1.5),
        tf.maximum(a, b), tf.minimum(a, b), tf.squared_difference(a, b), -a, tf.abs(a), tf.sign(a), tf.exp(a),
        tf.log(pos), tf.log1p(pos), tf.sqrt(pos), tf.rsqrt(pos), tf.square(a), tf.reciprocal(pos), tf.floor(a),
        tf.ceil(a), tf.round(a), tf.sin(a), tf.cos(a), tf.add_n([a, a, a]),
    ]
    bools = [a < b, a <= b, a > b, a >= b, tf.equal(a, b), tf.not_equal(a, b)]
    logic = [tf.logical_and(bools[0], bools[1]), tf.logical_or(bools[2], bools[3]), tf.logical_not(bools[4])]
    reductions = [
        tf.reduce_sum(a, 1), tf.reduce_mean(a, [0, 1], keepdims=True), tf.reduce_max(a, 0), tf.reduce_min(a),
        tf.reduce_prod(pos, 1), tf.reduce_any(bools[0], 1), tf.reduce_all(bools[1]), tf.argmax(a, 1),
        tf.argmin(a, 0, output_type=tf.int32), tf.cumsum(a, 1), tf.cumsum(a, 1, exclusive=True, reverse=True),
        tf.cumprod(pos, 0), tf.cumprod(pos, 0, exclusive=True),
    ]
    products = [tf.matmul(a, m), tf.matmul(m, a, transpose_a=True, transpose_b=True), tf.range(1, 7, 2)]
    values = elementwise + bools + logic + reductions + products
    grads = tf.gradients(tf.add_n([tf.reduce_sum(tf.cast(v, tf.float32)) for v in elementwise + reductions
                                   + products[:2] if v.dtype.is_floating]), [a, b, m])
    feed = {a: rng.randn(3, 4).astype(np.float32), b: rng.rand(4).astype(np.float32) + 0.5,
            m: rng.randn(4, 3).astype(np.float32)}
    return values + grads, feed


def _losses():
    logits = tf.placeholder(tf.float32, [None, 4], name="logits")
    labels = tf.placeholder(tf.int32, [None], name="labels")
    values, indices = tf.nn.top_k(logits, 2)
    unsorted, _ = tf.nn.top_k(logits, 3, sorted=False)
    loss = (tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
            + tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=tf.one_hot(labels, 4),
                                                                        logits=logits))
            + tf.nn.l2_loss(logits) + tf.reduce_sum(values))
    out = [loss, indices, unsorted, tf.nn.in_top_k(logits, labels, 2), *tf.gradients(loss, [logits])]
    feed = {logits: np.random.RandomState(4).randn(3, 4).astype(np.float32), labels: np.array([0, 3, 1], np.int32)}
    return out, feed


def _training():
    tf.set_random_seed(5)
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    ids = tf.placeholder(tf.int32, [None], name="ids")
    counter = tf.Variable(0.0, name="counter")
    dense = tf.get_variable("dense", [3, 3], initializer=tf.orthogonal_initializer(seed=1))
    noise = tf.Variable(tf.random_normal([3]) + tf.truncated_normal([3]) + tf.random_uniform([3], seed=2)
                        + tf.cast(tf.random_uniform([3], maxval=9, dtype=tf.int32), tf.float32), name="noise")
    shuffled = tf.random_shuffle(tf.range(6), seed=3)
    loss = lambda v, e: tf.reduce_sum(tf.matmul(x, v) ** 2) + tf.reduce_sum(tf.gather(e, ids) ** 2)  # noqa: E731
    train = []
    for i, opt in enumerate([tf.train.GradientDescentOptimizer(0.1), tf.train.MomentumOptimizer(0.1, 0.9),
                             tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
                             tf.train.AdagradOptimizer(0.1), tf.train.AdamOptimizer(0.01),
                             tf.train.RMSPropOptimizer(0.01), tf.train.RMSPropOptimizer(0.01, centered=True)]):
        v = tf.Variable(np.eye(3, dtype=np.float32) * (i + 1), name=f"v{i}")
        e = tf.Variable(np.ones((4, 3), np.float32), name=f"e{i}")
        train.append(opt.minimize(loss(v, e)))
    train += [tf.assign_add(counter, 1.0).op, tf.assign_sub(counter, 0.5).op, tf.assign(noise, noise * 2).op]
    table = tf.Variable(np.arange(8, dtype=np.float32).reshape(4, 2) + 1, name="table")
    train += [scatter(table, [[2], [0]], np.full((2, 1, 2), 1.5, np.float32)).op  # TF's GD uses ScatterSub
              for scatter in (tf.scatter_update, tf.scatter_add, tf.scatter_mul, tf.scatter_div, tf.scatter_min,
                              tf.scatter_max)]
    init = tf.global_variables_initializer()
    out = [counter.value(), dense.value(), noise.value(), shuffled, tf.is_variable_initialized(counter),
           tf.report_uninitialized_variables()]
    feed = {x: np.random.RandomState(6).randn(2, 3).astype(np.float32), ids: np.array([1, 3, 1], np.int32)}
    return out, feed, init, train


def _summaries():
    x = tf.placeholder(tf.float32, [2, 4, 4, 3], name="x")
    summaries = [tf.summary.scalar("mean", tf.reduce_mean(x)), tf.summary.histogram("values", x),
                 tf.summary.image("images", x), tf.summary.image("one_image", x, max_outputs=1),
                 tf.summary.audio("clip", tf.sin(tf.reshape(x, [2, 48])), 8000.0),
                 tf.summary.tensor_summary("whole", x), tf.summary.text("note", tf.constant("hello"))]
    return summaries + [tf.summary.merge(summaries)], {x: np.random.RandomState(7).rand(2, 4, 4, 3)}


def _older_tf_ops():
    """Ops only GraphDefs of older TF name: Div (true or truncating division) and Gather."""
    graph_def = text_format.Parse("""
        node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "shape" value { shape { dim { size: 3 } dim { size: 2 } } } } }
        node { name: "two" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 2 } } } }
        node { name: "rows" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
               attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 2 } }
                                                    int_val: 2 int_val: 0 } } } }
        node { name: "half" op: "Div" input: "x" input: "two" attr { key: "T" value { type: DT_FLOAT } } }
        node { name: "picked" op: "Gather" input: "half" input: "rows"
               attr { key: "Tparams" value { type: DT_FLOAT } } attr { key: "Tindices" value { type: DT_INT32 } } }
        """, graph_pb2.GraphDef())
    x, picked = tf.import_graph_def(graph_def, return_elements=["x:0", "picked:0"], name="")
    return [picked], {x: np.arange(6, dtype=np.float32).reshape(3, 2)}


def _comm():
    """A tensor sent and received within one graph (a partition sending to itself)."""
    from tensorweave.ops import comm_ops
    x = tf.placeholder(tf.float32, [2], name="x")
    device = "/job:localhost/replica:0/task:0/device:CPU:0"
    sent = comm_ops.send(x * 2.0, "doubled", device, device)
    received = comm_ops.recv(x.graph, tf.float32, [2], "doubled", device, device)
    with tf.control_dependencies([sent]):
        out = tf.identity(received) + 1.0
    return [out], {x: np.array([1.0, 2.0], dtype=np.float32)}


def _debugging():
    """Numeric checks, assertions and printing, all passing (each run prints to stderr)."""
    x = tf.placeholder(tf.float32, [2, 3], name="x")
    checked = tf.check_numerics(x * 2.0, "doubled")
    with tf.control_dependencies([tf.assert_positive(x + 10.0)]):
        printed = tf.Print(checked, [x, "x"], "x is ", summarize=4)
    print_op = tf.print("sum:", tf.reduce_sum(printed), [x])
    grads = tf.gradients(tf.reduce_sum(printed * printed), [x])
    with tf.control_dependencies([print_op, tf.add_check_numerics_ops()]):
        out = tf.identity(printed)
    return [out, print_op.inputs[0]] + grads, {x: np.random.RandomState(8).randn(2, 3).astype(np.float32)}


def _data_flow():
    """A queue filled and closed, then drained; an accumulator fed a fresh and a stale gradient."""
    q = tf.FIFOQueue(5, [tf.float32, tf.int32], shapes=[[2], []], name="q")
    filled = q.enqueue_many(([[1.0, 2.0], [3.0, 4.0]], [5, 6]))
    with tf.control_dependencies([filled]):
        one = q.enqueue(([7.0, 8.0], 9))
    with tf.control_dependencies([one]):
        closed = q.close()
    first = q.dequeue()
    with tf.control_dependencies(first):
        rest = q.dequeue_many(2)
    with tf.control_dependencies(rest):
        size = q.size()
    acc = tf.ConditionalAccumulator(tf.float32, [2], name="acc")
    set_step = acc.set_global_step(1)
    with tf.control_dependencies([set_step]):
        stale = acc.apply_grad([100.0, 100.0], local_step=0)
    with tf.control_dependencies([stale]):
        fresh = acc.apply_grad([1.0, 3.0], local_step=1)
    with tf.control_dependencies([fresh]):
        count = acc.num_accumulated()
    with tf.control_dependencies([count]):
        mean = acc.take_grad(1)
    with tf.control_dependencies([mean]):
        cleared = fail_replica_requests(acc, "/job:worker/task:0", 0, "")  # code OK: nothing to fail
    sparse = tf.SparseConditionalAccumulator(tf.float32, [4, 2], name="sparse_acc")
    with tf.control_dependencies([cleared]):
        restart = sparse.set_global_step(0)  # so every run's gradient is fresh
    with tf.control_dependencies([restart]):
        pushed = sparse.apply_grad([3, 0], [[1.0, 2.0], [3.0, 4.0]], [4, 2])
    with tf.control_dependencies([pushed]):
        rows = sparse.take_grad(1)
    return first + rest + [size, count, mean, *rows], {}, None, [closed, mean.op, cleared, rows[0].op]


OP_ZOO = [_conv_net, _activations, _arrays, _math, _losses, _training, _summaries, _older_tf_ops, _comm, _debugging,
          _data_flow]


def _build(builder):
    """A fresh graph holding what `builder` makes: (graph, fetches, feed, init op, train ops)."""
    with tf.Graph().as_default() as g:
        built = builder()
    fetches, feed = built[:2]
    init, train = built[2:] if len(built) > 2 else (None, [])
    return g, fetches, feed, init, train


def _run_by_name(graph, fetches, feed, init, train):
    """Runs `init`, then `train` once, then fetches `fetches`, all named as in `graph`."""
    feed = {t.name: v for t, v in feed.items()}
    with tf.Session(graph=graph) as sess:
        if init is not None:
            sess.run(init.name)
        if train:
            sess.run([op.name for op in train], feed)
        return sess.run([t.name for t in fetches], feed)


def _flatten(values):
    out = []
    for v in values:
        out.extend(_flatten(v) if isinstance(v, (list, tuple)) else [np.asarray(v)])
    return out


def _copy(graph_def):
    return graph_pb2.GraphDef.FromString(graph_def.SerializeToString())


@pytest.mark.parametrize("builder", OP_ZOO, ids=lambda f: f.__name__.strip("_"))
def test_graph_defs_with_default_attrs_stripped_import_and_run(builder):
    """TF writes GraphDefs with `strip_default_attrs`: every attr holding its schema default is left
    out. Import fills each back in, so the graph is the same and computes the same values."""
    g, fetches, feed, init, train = _build(builder)
    full = g.as_graph_def()
    stripped = graph_io.strip_default_attrs(_copy(full))
    assert sum(len(a.attr) - len(b.attr) for a, b in zip(full.node, stripped.node, strict=True)) > 0
    with tf.Graph().as_default() as g2:
        tf.import_graph_def(stripped, name="")
    assert g2.as_graph_def() == full
    for a, b in zip(_flatten(_run_by_name(g, fetches, feed, init, train)),
                    _flatten(_run_by_name(g2, fetches, feed, init, train)), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def _all_op_types():
    graph_io._register_every_op_type()
    return set(registered_ops())


def test_the_op_zoo_uses_every_registered_op_type():
    used = set()
    for builder in OP_ZOO:
        used |= {op.type for op in _build(builder)[0].get_operations()}
    assert sorted(_all_op_types() - used) == []


# Attrs TF's op schemas declare with no default value: every GraphDef TF writes holds them.
_TF_REQUIRED_ATTRS = {
    "Const": {"value", "dtype"},
    "Placeholder": {"dtype"},
    "PlaceholderWithDefault": {"dtype", "shape"},
    "VariableV2": {"dtype", "shape"},
    "IsVariableInitialized": {"dtype"},
    "Cast": {"SrcT", "DstT"},
    "Unpack": {"num"},
    "Split": {"num_split"},
    "SplitV": {"num_split"},
    "MirrorPad": {"mode"},
    "MirrorPadGrad": {"mode"},
    "CheckNumerics": {"message"},
    "_Send": {"tensor_name", "send_device", "send_device_incarnation", "recv_device"},
    "_Recv": {"tensor_type", "tensor_name", "send_device", "send_device_incarnation", "recv_device"},
    **{t: {"dtype"} for t in ("RandomUniform", "RandomStandardNormal", "TruncatedNormal")},
    **{t: {"component_types"} for t in ("FIFOQueueV2", "QueueDequeueV2", "QueueDequeueManyV2")},
    **{t: {"Tcomponents"} for t in ("QueueEnqueueV2", "QueueEnqueueManyV2")},
    "ConditionalAccumulator": {"dtype", "shape"},
    **{t: {"dtype"} for t in ("AccumulatorApplyGradient", "AccumulatorTakeGradient",
                              "SparseAccumulatorTakeGradient")},
    "SparseConditionalAccumulator": {"dtype", "shape"},
    "SparseAccumulatorApplyGradient": {"dtype", "has_known_shape"},
    **{t: {"strides", "padding"} for t in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")},
    **{t: {"ksize", "strides", "padding"} for t in ("MaxPool", "MaxPoolGrad", "MaxPoolGradGrad", "AvgPool",
                                                    "AvgPoolGrad")},
}
# Op types of TensorWeave's own, which TF does not have: only TensorWeave writes GraphDefs naming them.
_OWN_OP_TYPES = {"ReducedShape", "_OrthogonalBasis", "FailReplicaRequests"}


def test_every_attr_an_op_reads_is_required_by_tf_or_has_a_default(monkeypatch):
    """An attr a shape rule or kernel reads that TF's schema gives a default must be in the
    defaults table, or a GraphDef TF wrote with default attrs stripped would not import."""
    read = set()
    get_attr = Operation.get_attr

    def recording_get_attr(op, name):
        read.add((op.type, name))
        return get_attr(op, name)
    monkeypatch.setattr(Operation, "get_attr", recording_get_attr)
    for builder in OP_ZOO:
        _run_by_name(*_build(builder))
    unaccounted = sorted((t, name) for t, name in read if t not in _OWN_OP_TYPES
                         and name not in _TF_REQUIRED_ATTRS.get(t, ()) and name not in tf_op_schemas.attr_defaults(t))
    assert unaccounted == []
    assert len(read) > 50


def test_export_writes_exactly_the_attrs_tf_declares():
    expected = {
        "ConcatOffset": {"N"},
        "IdentityN": {"T"},
        "ShapeN": {"N", "T", "out_type"},
        "LogicalAnd": set(), "LogicalOr": set(), "LogicalNot": set(),
        "PlaceholderWithDefault": {"dtype", "shape"},
        "Cast": {"SrcT", "DstT", "Truncate"},
        "RandomUniformInt": {"T", "Tout", "seed", "seed2"},
        "AssignAdd": {"T", "use_locking"},
        "SparseApplyMomentum": {"T", "Tindices", "use_locking", "use_nesterov"},
        "ScatterSub": {"T", "Tindices", "use_locking"},
        "SparseApplyAdagrad": {"T", "Tindices", "use_locking", "update_slots"},
        "SparseApplyRMSProp": {"T", "Tindices", "use_locking"},
        "SparseApplyCenteredRMSProp": {"T", "Tindices", "use_locking"},
        "Conv2D": {"T", "strides", "padding", "data_format", "dilations", "use_cudnn_on_gpu", "explicit_paddings"},
        "ScalarSummary": {"T"},
        "ImageSummary": {"T", "max_images"},
        "AudioSummaryV2": {"max_outputs"},
        "MergeSummary": {"N"},
        "CheckNumerics": {"T", "message"},
        "Assert": {"T", "summarize"},
        "Print": {"T", "U", "message", "first_n", "summarize"},
        "StringFormat": {"T", "template", "placeholder", "summarize"},
        "PrintV2": {"output_stream", "end"},
        "FIFOQueueV2": {"component_types", "shapes", "capacity", "container", "shared_name"},
        "QueueEnqueueManyV2": {"Tcomponents", "timeout_ms"},
        "QueueDequeueManyV2": {"component_types", "timeout_ms"},
        "QueueSizeV2": set(),
        "QueueCloseV2": {"cancel_pending_enqueues"},
        "ConditionalAccumulator": {"dtype", "shape", "container", "shared_name", "reduction_type"},
        "AccumulatorApplyGradient": {"dtype"},
        "AccumulatorTakeGradient": {"dtype"},
        "AccumulatorSetGlobalStep": set(),
        "SparseConditionalAccumulator": {"dtype", "shape", "container", "shared_name", "reduction_type"},
        "SparseAccumulatorApplyGradient": {"dtype", "has_known_shape"},
        "SparseAccumulatorTakeGradient": {"dtype"},
        "StridedSlice": {"T", "Index", "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                         "shrink_axis_mask"},
    }
    seen = set()
    for builder in OP_ZOO:
        for node in _build(builder)[0].as_graph_def().node:
            if node.op in expected:
                seen.add(node.op)
                assert set(node.attr) - {"_class"} == expected[node.op], node
    assert seen == set(expected)
