"""Session.run semantics: fetch structures, feeds, default sessions, variables, plans and errors."""

import collections

import numpy as np
import pytest

import tensorweave as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def test_fetches_keep_nested_structure():
    a = tf.constant(1.0)
    b = tf.constant([1, 2])
    Pair = collections.namedtuple("Pair", "x y")
    with tf.Session() as sess:
        out = sess.run({"a": a, "rest": [b, (a, Pair(a, b))], "op": tf.no_op()})
    assert out["a"] == 1.0 and isinstance(out["a"], np.float32)
    assert out["rest"][0].tolist() == [1, 2]
    assert isinstance(out["rest"][1], tuple)
    assert isinstance(out["rest"][1][1], Pair) and out["rest"][1][1].y.tolist() == [1, 2]
    assert out["op"] is None


def test_fetch_by_name_and_duplicate_fetches():
    a = tf.constant(3.0, name="a")
    with tf.Session() as sess:
        assert sess.run(["a:0", a, "a:0"]) == [3.0, 3.0, 3.0]
        assert sess.run("a") is None  # an op name fetches the op


def test_any_tensor_can_be_fed_and_cuts_its_producer():
    x = tf.placeholder(tf.float32, [])
    y = x * 2.0
    z = y + 1.0
    with tf.Session() as sess:
        assert sess.run(z, {y: 10.0}) == 11.0  # x is never needed
        assert sess.run(z, {x: 1.0}) == 3.0


def test_feed_dtype_and_shape_are_checked_with_tensor_named():
    x = tf.placeholder(tf.int32, [None, 3], name="ints")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"dtype float64.*'ints:0'.*int32"):
            sess.run(x, {x: np.zeros((2, 3))})
        with pytest.raises(ValueError, match=r"shape \(2, 4\).*'ints:0'.*\(\?, 3\)"):
            sess.run(x, {x: np.zeros((2, 4), dtype=np.int32)})
        # Python lists and float64 arrays for float placeholders are fine, as in TF1.
        f = tf.placeholder(tf.float32, [2])
        assert sess.run(f, {f: [1, 2]}).dtype == np.float32
        assert sess.run(f, {f: np.array([1.5, 2.5])}).tolist() == [1.5, 2.5]


def test_missing_placeholder_feed_is_named():
    x = tf.placeholder(tf.float32, [None, 784], name="images")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"placeholder tensor 'images'.*\[\?,784\]"):
            sess.run(x * 2.0)


def test_fetching_from_another_graph_fails():
    a = tf.constant(1.0)
    with tf.Graph().as_default():
        with tf.Session() as sess:
            with pytest.raises(ValueError, match="not an element of this graph"):
                sess.run(a)


def test_uninitialized_variable_is_a_failed_precondition_naming_it():
    v = tf.Variable(tf.zeros([2]), name="weights")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.FailedPreconditionError, match="uninitialized value weights"):
            sess.run(v + 1.0)


def test_variables_assign_and_read_after_control_dependency():
    v = tf.Variable(1.0)
    inc = tf.assign_add(v, 1.0)
    with tf.control_dependencies([inc]):
        after = tf.identity(v)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(after) == 2.0
        assert sess.run(v) == 2.0
        got = sess.run(v)
        got += 5  # the fetched value is a copy, never the variable's storage
        assert sess.run(v) == 2.0


def test_updates_must_match_the_shape_the_variable_holds_unless_assign_skips_validation():
    v = tf.Variable(np.zeros(2, np.float32))
    grow = tf.assign(v, np.zeros(3, np.float32), validate_shape=False)
    inc = tf.assign_add(v, np.ones(2, np.float32))
    reset = tf.assign(v, np.ones(2, np.float32))
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(grow).shape == (3,)  # validate_shape=False may change the shape
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"AssignAdd requires shapes .* lhs shape= \[3\] "
                                                                 r"rhs shape= \[2\]") as info:
            sess.run(inc)
        assert info.value.op is inc.op
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"lhs shape= \[3\] rhs shape= \[2\]"):
            sess.run(reset)
        assert sess.run(v).shape == (3,)  # nothing was stored


def test_string_tensors_are_fetched_as_bytes_as_in_tf1():
    label = tf.constant("caf\u00e9")
    names = tf.placeholder(tf.string, [None])
    with tf.Session() as sess:
        assert sess.run(label) == "caf\u00e9".encode()
        got = sess.run(tf.identity(names), {names: ["a", b"b"]})
        assert got.dtype == object and got.tolist() == [b"a", b"b"]
        assert sess.run(tf.constant(3)) == 3  # other dtypes are untouched


def test_each_session_owns_its_variables():
    v = tf.Variable(1.0)
    with tf.Session() as s1, tf.Session() as s2:
        s1.run(tf.global_variables_initializer())
        s1.run(tf.assign(v, 5.0))
        with pytest.raises(tf.errors.FailedPreconditionError):
            s2.run(v)


def test_default_session_eval_and_run():
    v = tf.Variable(2.0)
    with tf.Session() as sess:
        tf.global_variables_initializer().run()
        assert (v * 3.0).eval() == 6.0
        assert tf.get_default_session() is sess
    with pytest.raises(ValueError, match="no default session"):
        (v * 3.0).eval()


def test_interactive_session_installs_itself():
    sess = tf.InteractiveSession()
    try:
        c = tf.constant(4.0)
        assert c.eval() == 4.0
    finally:
        sess.close()
    assert tf.get_default_session() is None


def test_closed_session_refuses_to_run():
    sess = tf.Session()
    sess.close()
    with pytest.raises(RuntimeError, match="closed"):
        sess.run(tf.constant(1.0))


def test_plans_survive_new_ops_and_are_rebuilt_after_mutation(fresh_graph):
    x = tf.placeholder(tf.float32, [])
    y = x + 1.0
    with tf.Session() as sess:
        assert sess.run(y, {x: 1.0}) == 2.0
        z = y * 2.0  # a new op does not invalidate y's plan
        assert sess.run([y, z], {x: 1.0}) == [2.0, 4.0]
        plans = len(sess._runtime._plans)
        assert sess.run(y, {x: 2.0}) == 3.0
        assert len(sess._runtime._plans) == plans


def test_runtime_kernel_error_names_op_and_site():
    x = tf.placeholder(tf.float32, [None])
    y = tf.reshape(x, [2, 2])
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)Reshape.*test_session.py"):
            sess.run(y, {x: np.zeros(3)})


def test_soft_placement_and_unknown_devices():
    with tf.device("/gpu:0"):
        a = tf.constant(1.0) + 1.0
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match="Cannot assign a device"):
            sess.run(a)
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)) as sess:
        assert sess.run(a) == 2.0


def test_config_proto_accepts_tf_fields_and_tensorweave_options():
    config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=True, device_filters=["/job:ps"],
                            intra_op_parallelism_threads=2, inter_op_parallelism_threads=2,
                            operation_timeout_in_ms=1000, transfer_encoding="bfloat16")
    config.gpu_options.allow_growth = True
    assert config.gpu_options.allow_growth
    assert config.transfer_encoding == "bfloat16"
    assert list(config.device_filters) == ["/job:ps"]
    with pytest.raises(ValueError, match="no field"):
        tf.ConfigProto(not_a_field=1)


def test_make_callable_and_operation_run():
    x = tf.placeholder(tf.float32, [])
    f = x * 3.0
    with tf.Session() as sess:
        call = sess.make_callable(f, [x])
        assert call(2.0) == 6.0


def test_log_device_placement_prints_each_op(capsys):
    a = tf.constant(1.0, name="a")
    b = tf.add(a, a, name="b")
    with tf.Session(config=tf.ConfigProto(log_device_placement=True)) as sess:
        sess.run(b)
    err = capsys.readouterr().err
    assert "b: (Add): /job:localhost/replica:0/task:0/device:CPU:0" in err


def test_fetching_indexed_slices_returns_its_parts():
    params = tf.placeholder(tf.float32, [3, 2])
    grad = tf.gradients(tf.reduce_sum(tf.gather(params, [1, 1])), params)[0]
    assert isinstance(grad, tf.IndexedSlices)
    with tf.Session() as sess:
        value = sess.run(grad, {params: np.ones((3, 2))})
        dense = sess.run(tf.convert_to_tensor(grad), {params: np.ones((3, 2))})
    assert value.indices.tolist() == [1, 1] and value.dense_shape.tolist() == [3, 2]
    np.testing.assert_array_equal(dense, [[0, 0], [2, 2], [0, 0]])


def test_unknown_session_targets_are_refused_clearly():
    with pytest.raises(tf.errors.UnavailableError):  # nothing listens there
        tf.Session("grpc://127.0.0.1:1")
    with pytest.raises(tf.errors.NotFoundError, match="'bogus://x'"):
        tf.Session("bogus://x")


def test_list_devices_names_the_local_cpu_as_tf1_does():
    with tf.Session(graph=tf.Graph()) as sess:
        devices = sess.list_devices()
    assert [(d.name, d.device_type, d.memory_limit_bytes) for d in devices] == [
        ("/job:localhost/replica:0/task:0/device:CPU:0", "CPU", 0)]
    assert "CPU" in repr(devices[0])
