"""tf.train.replica_device_setter and its placement strategies (graph construction only)."""

import pytest

import tensorweave as tf
from tensorweave.train.device_setter import STANDARD_PS_OPS, _RoundRobinStrategy

CLUSTER = {"ps": ["ps0:2222", "ps1:2222"], "worker": ["worker0:2222", "worker1:2222"]}
PS0 = "/job:ps/task:0/device:CPU:0"
PS1 = "/job:ps/task:1/device:CPU:0"
WORKER = "/job:worker/task:1"


def _between_graph_model():
    """The classic between-graph replica: a two-layer regression trained by gradient descent."""
    x = tf.placeholder(tf.float32, [None, 10], name="x")
    y = tf.placeholder(tf.float32, [None, 1], name="y")
    w1 = tf.Variable(tf.random_normal([10, 10]), name="w1")   # 100 floats
    b1 = tf.Variable(tf.zeros([10]), name="b1")               # 10
    w2 = tf.Variable(tf.random_normal([10, 10]), name="w2")   # 100
    b2 = tf.Variable(tf.zeros([10]), name="b2")               # 10
    hidden = tf.nn.relu(tf.matmul(x, w1) + b1)
    out = tf.matmul(hidden, w2) + b2
    loss = tf.reduce_mean(tf.square(tf.reduce_sum(out, axis=1, keepdims=True) - y))
    step = tf.train.get_or_create_global_step()
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step)
    return [w1, b1, w2, b2, step], loss, train_op


def _colocated_with(graph, var):
    """The ops that name `var`'s colocation group: its Assign, read and optimizer updates."""
    group = f"loc:@{var.op.name}".encode()
    return [op for op in graph.get_operations()
            if op is not var.op and group in op.colocation_groups()]


def test_between_graph_model_round_robin():
    with tf.Graph().as_default() as g:
        setter = tf.train.replica_device_setter(worker_device=WORKER, ps_device="/job:ps/cpu:0",
                                                cluster=CLUSTER)
        with tf.device(setter):
            variables, loss, train_op = _between_graph_model()
    w1, b1, w2, b2, step = variables
    assert [v.device for v in variables] == [PS0, PS1, PS0, PS1, PS0]
    for var in variables:
        colocated = _colocated_with(g, var)
        types = {op.type for op in colocated}
        assert {"Assign", "Identity"} <= types, (var.op.name, types)
        assert all(op.device == var.device for op in colocated), var.op.name
    for var in (w1, b1, w2, b2):
        updates = [op for op in _colocated_with(g, var) if op.type == "ApplyGradientDescent"]
        assert len(updates) == 1 and updates[0].device == var.device
    # As in TF, minimize(global_step=...) returns the step's AssignAdd, colocated with the step.
    assert train_op.type == "AssignAdd" and train_op in _colocated_with(g, step)
    assert train_op.device == step.device
    assert loss.op.device == WORKER
    matmuls = [op for op in g.get_operations() if op.type == "MatMul"]
    assert len(matmuls) >= 2 and all(op.device == WORKER for op in matmuls)
    for name in ("x", "y"):
        assert g.get_operation_by_name(name).device == WORKER
    # Everything is on a PS task or the worker, and only variables and their colocated ops on a PS.
    on_ps = {op for op in g.get_operations() if op.device.startswith("/job:ps")}
    expected = {op for var in variables for op in [var.op] + _colocated_with(g, var)}
    assert on_ps == expected
    assert all(op.device == WORKER for op in g.get_operations() if op not in on_ps)


def test_cluster_spec_and_ps_tasks_agree():
    with tf.Graph().as_default():
        with tf.device(tf.train.replica_device_setter(cluster=tf.train.ClusterSpec(CLUSTER))):
            a, b, c = (tf.Variable(0.0, name=n) for n in "abc")
            total = a + b
        with tf.device(tf.train.replica_device_setter(ps_tasks=3)):
            d, e, f, g = (tf.Variable(0.0, name=n) for n in "defg")
    assert [v.device for v in (a, b, c)] == ["/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:0"]
    assert total.device == "/job:worker"
    assert [v.device for v in (d, e, f, g)] == [f"/job:ps/task:{i}" for i in (0, 1, 2, 0)]


def test_greedy_load_balancing_by_byte_size():
    with tf.Graph().as_default():
        strategy = tf.train.GreedyLoadBalancingStrategy(2, tf.train.byte_size_load_fn)
        setter = tf.train.replica_device_setter(cluster=CLUSTER, ps_strategy=strategy)
        with tf.device(setter):
            big = tf.Variable(tf.zeros([100]), name="big")
            small = [tf.Variable(tf.zeros([10]), name=f"small{i}") for i in range(3)]
            step = tf.train.get_or_create_global_step()
    assert big.device == "/job:ps/task:0"
    assert [v.device for v in small] == ["/job:ps/task:1"] * 3
    # Loads are now 400 and 120 bytes, so the int64 step joins task 1.
    assert step.device == "/job:ps/task:1"


def test_greedy_balances_the_between_graph_model():
    with tf.Graph().as_default():
        strategy = tf.train.GreedyLoadBalancingStrategy(2, tf.train.byte_size_load_fn)
        with tf.device(tf.train.replica_device_setter(cluster=CLUSTER, ps_strategy=strategy)):
            variables, _, _ = _between_graph_model()
    # w1 (400 B) -> 0, b1 (40 B) -> 1, w2 (400 B) -> 1, b2 (40 B) -> 0, step (8 B) -> 0: 448 vs 440.
    assert [v.device for v in variables] == [f"/job:ps/task:{i}" for i in (0, 1, 1, 0, 0)]


def test_byte_size_load_fn():
    with tf.Graph().as_default():
        v = tf.Variable(tf.zeros([3, 4], dtype=tf.float64))
        assert tf.train.byte_size_load_fn(v.op) == 3 * 4 * 8
        c = tf.constant([1, 2, 3], dtype=tf.int32)
        assert tf.train.byte_size_load_fn(c.op) == 12
        p = tf.placeholder(tf.float32, [None, 3])
        with pytest.raises(ValueError, match="not fully defined"):
            tf.train.byte_size_load_fn(p.op)
        unknown = tf.Variable(tf.zeros([2]), validate_shape=False)
        with pytest.raises(ValueError, match="not fully defined"):
            tf.train.byte_size_load_fn(unknown.op)
        no_out = tf.no_op()
        with pytest.raises(ValueError, match="single output"):
            tf.train.byte_size_load_fn(no_out)


def test_greedy_placement_of_unknown_shape_fails_clearly():
    with tf.Graph().as_default():
        strategy = tf.train.GreedyLoadBalancingStrategy(2, tf.train.byte_size_load_fn)
        setter = tf.train.replica_device_setter(ps_tasks=2, ps_strategy=strategy)
        with tf.device(setter), pytest.raises(ValueError, match="not fully defined"):
            tf.Variable(tf.zeros([2]), validate_shape=False, name="loose")


def test_merge_devices_keeps_inner_fields():
    setter = tf.train.replica_device_setter(cluster=CLUSTER, worker_device=WORKER)
    with tf.Graph().as_default(), tf.device(setter):
        with tf.device("/cpu:0"):
            v = tf.Variable(1.0, name="v")
            w = v * 2.0
        with tf.device("/job:worker/task:0"):
            u = tf.Variable(1.0, name="u")  # leaves the PS job: no task drawn from the strategy
            z = u + 1.0
        with tf.device("/job:ps/task:1"):
            pinned = tf.Variable(1.0, name="pinned")  # inner task wins over the strategy's
        after = tf.Variable(1.0, name="after")
    assert v.device == "/job:ps/task:0/device:CPU:0"
    assert w.device == "/job:worker/task:1/device:CPU:0"
    assert u.device == "/job:worker/task:0" and z.device == "/job:worker/task:0"
    assert pinned.device == "/job:ps/task:1"
    # The round robin advanced for v and pinned but not for u.
    assert after.device == "/job:ps/task:0"


def test_merge_devices_false_leaves_placed_ops_alone():
    setter = tf.train.replica_device_setter(ps_tasks=2, merge_devices=False)
    with tf.Graph().as_default(), tf.device(setter):
        with tf.device("/cpu:0"):
            v = tf.Variable(1.0, name="v")
            w = v * 2.0
        u = tf.Variable(1.0, name="u")
        z = u + 1.0
    assert v.device == "/device:CPU:0" and w.device == "/device:CPU:0"
    assert u.device == "/job:ps/task:0" and z.device == "/job:worker"


def test_custom_ps_ops_and_strategy():
    with tf.Graph().as_default():
        setter = tf.train.replica_device_setter(ps_tasks=4, ps_ops=["Const"],
                                                ps_strategy=lambda op: 3)
        with tf.device(setter):
            c = tf.constant(1.0)
            v = tf.Variable(c)
    assert c.device == "/job:ps/task:3"
    assert v.device == "/job:worker"


def test_no_ps_tasks_returns_none():
    assert tf.train.replica_device_setter() is None
    assert tf.train.replica_device_setter(ps_tasks=0) is None
    assert tf.train.replica_device_setter(cluster={"worker": ["w0:2222"]}) is None
    assert tf.train.replica_device_setter(cluster={"ps": [], "worker": ["w0:2222"]}) is None
    assert tf.train.replica_device_setter(cluster=CLUSTER, ps_device="/job:params") is None
    # A cluster decides ps_tasks, as in TF.
    assert tf.train.replica_device_setter(ps_tasks=5, cluster={"worker": ["w0:2222"]}) is None
    with tf.Graph().as_default(), tf.device(tf.train.replica_device_setter()):
        v = tf.Variable(1.0)  # a None device function clears outer scopes
    assert v.device == ""


def test_sparse_cluster_counts_defined_tasks():
    setter = tf.train.replica_device_setter(cluster={"ps": {0: "ps0:2222", 1: "ps1:2222"}})
    with tf.Graph().as_default(), tf.device(setter):
        devices = [tf.Variable(0.0).device for _ in range(3)]
    assert devices == ["/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:0"]


def test_errors():
    with pytest.raises(TypeError, match="ps_strategy must be callable"):
        tf.train.replica_device_setter(ps_tasks=2, ps_strategy=3)
    with pytest.raises(ValueError, match="non-negative"):
        tf.train.replica_device_setter(ps_tasks=-1)
    with pytest.raises(ValueError, match="Unknown device specification"):
        tf.train.replica_device_setter(ps_tasks=1, worker_device="/job:worker/bogus")
    with pytest.raises(ValueError, match="Unknown device specification"):
        tf.train.replica_device_setter(ps_tasks=1, ps_device="/nonsense")
    with pytest.raises(TypeError):
        tf.train.replica_device_setter(cluster=["ps0:2222"])
    with pytest.raises(ValueError, match="positive"):
        tf.train.GreedyLoadBalancingStrategy(0, tf.train.byte_size_load_fn)
    with pytest.raises(TypeError, match="load_fn must be callable"):
        tf.train.GreedyLoadBalancingStrategy(2, None)


def test_round_robin_strategy_and_standard_ops():
    strategy = _RoundRobinStrategy(3)
    assert [strategy(None) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert "VariableV2" in STANDARD_PS_OPS and "VarHandleOp" in STANDARD_PS_OPS
    assert "Const" not in STANDARD_PS_OPS
