"""Numeric debugging: check_numerics, add_check_numerics_ops, the assert_* family, tf.Assert,
tf.Print and tf.print. Values against NumPy, gradients against finite differences, and errors
that name the op, the line that created it and, for a NaN or Inf, the op that produced it."""

import itertools
import sys

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.compat import v1
from tests.op_check import check_gradient, check_op


def _line_of(marker):
    """`this_file:N` where N is the line holding `marker` (a comment at the end of a line)."""
    with open(__file__, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.rstrip().endswith(marker) and "_line_of" not in line:
                return f"{__file__}:{n}"
    raise AssertionError(marker)


# -- check_numerics ---------------------------------------------------------------------------------

def test_check_numerics_passes_values_and_gradients_through():
    x = np.random.default_rng(0).normal(size=(3, 4))
    check_op(lambda t: tf.check_numerics(t, "fine"), [x], lambda a: a)
    check_gradient(lambda t: tf.check_numerics(t * t, "squared") * 3.0, [x])
    with tf.Graph().as_default():
        t = tf.placeholder(tf.float32, [None, 4])
        y = tf.check_numerics(t, "msg", name="checked")
        assert y.op.type == "CheckNumerics" and y.op.name == "checked"
        assert y.shape.as_list() == [None, 4] and y.dtype == tf.float32
        assert y.op.get_attr("message") == "msg"


def test_check_numerics_takes_float_tensors_only():
    with tf.Graph().as_default(), pytest.raises(TypeError, match="float"):
        tf.check_numerics(tf.constant([1, 2]), "ints")


@pytest.mark.parametrize("values, kind", [([1.0, np.nan], "NaN"), ([np.inf, 1.0], "Inf"),
                                          ([np.nan, -np.inf], "Inf and NaN")])
def test_check_numerics_names_the_kind_the_message_the_op_and_the_lines(values, kind):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2], name="x")
        scaled = tf.multiply(x, 2.0, name="scaled")  # producer line
        checked = tf.check_numerics(scaled, "after scaling", name="scale_check")  # check line
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(checked, {x: [1.0, 2.0]}), [2.0, 4.0])
            with pytest.raises(tf.errors.InvalidArgumentError) as info:
                sess.run(checked, {x: values})
    message = str(info.value)
    assert f"after scaling : Tensor had {kind} values" in message
    assert "scale_check" in message and _line_of("# check line") in message
    assert "'scaled'" in message and _line_of("# producer line") in message
    assert info.value.op is checked.op


def test_check_numerics_in_the_gradient_catches_a_bad_gradient():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [2])
        y = tf.check_numerics(x, "input")
        grad, = tf.gradients(tf.reduce_sum(tf.sqrt(y)), [x])  # d sqrt(y) / dy is Inf at 0
        assert grad.op.type == "CheckNumerics"
        with tf.Session() as sess:
            np.testing.assert_allclose(sess.run(grad, {x: [1.0, 4.0]}), [0.5, 0.25])
            with pytest.raises(tf.errors.InvalidArgumentError, match="detected in gradient. input"):
                sess.run(grad, {x: [0.0, 4.0]})


def test_check_numerics_of_a_sparse_gradient_stays_sparse():
    with tf.Graph().as_default():
        params = tf.placeholder(tf.float32, [4, 2])
        rows = tf.gather(tf.check_numerics(params, "params"), [0, 2])
        grad, = tf.gradients(tf.reduce_sum(rows), [params])
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(tf.convert_to_tensor(grad), {params: np.ones((4, 2))}),
                                          [[1, 1], [0, 0], [1, 1], [0, 0]])


# -- add_check_numerics_ops -----------------------------------------------------------------------

def test_add_check_numerics_ops_catches_a_deliberate_nan_naming_the_op_that_made_it():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None], name="x")
        w = tf.Variable([1.0, 1.0, 1.0], name="w")
        logs = tf.log(x, name="logs")  # the NaN comes from here
        loss = tf.reduce_sum(logs * w, name="loss")
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        check = tf.add_check_numerics_ops()
        assert check.type == "NoOp"
        checks = [op for op in tf.get_default_graph().get_operations() if op.type == "CheckNumerics"]
        checked = {op.inputs[0].name for op in checks}
        assert {"x:0", "logs:0", "loss:0", "w/read:0"} <= checked
        assert "w:0" not in checked  # the variable itself (a reference), as in TF1
        # chained: each check runs after the one before it
        assert all(b.control_inputs == [a] for a, b in itertools.pairwise(checks))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run([train, check], {x: [1.0, 2.0, 3.0]})
            with pytest.raises(tf.errors.InvalidArgumentError) as info:
                sess.run([train, check], {x: [1.0, -2.0, 3.0]})
    message = str(info.value)
    assert "logs:0 : Tensor had NaN values" in message
    assert "op 'logs' of type Log" in message and _line_of("# the NaN comes from here") in message


def test_add_check_numerics_ops_leaves_integer_tensors_and_updates_alone():
    with tf.Graph().as_default():
        counter = tf.Variable(0, name="counter")
        v = tf.Variable(2.0, name="v")
        tf.assign_add(counter, 1)
        tf.assign(v, v * 2.0)
        tf.cast(counter, tf.float32, name="as_float")
        tf.add_check_numerics_ops()
        checked = {op.inputs[0].op.type for op in tf.get_default_graph().get_operations()
                   if op.type == "CheckNumerics"}
        assert "Assign" not in checked and "AssignAdd" not in checked and "VariableV2" not in checked
        assert "Cast" in checked


def test_assert_all_finite_and_verify_tensor_all_finite():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        y = tf.debugging.assert_all_finite(x, "x went bad")
        z = tf.verify_tensor_all_finite(x * 2.0, "double went bad")
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(y, {x: [1.0, 2.0]}), [1.0, 2.0])
            with pytest.raises(tf.errors.InvalidArgumentError, match="x went bad : Tensor had Inf"):
                sess.run(y, {x: [1.0, np.inf]})
            with pytest.raises(tf.errors.InvalidArgumentError, match="double went bad"):
                sess.run(z, {x: [np.nan, 1.0]})


# -- tf.Assert and the assert_* family -------------------------------------------------------------

def test_tf_assert_raises_at_run_time_with_its_data_and_line():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.int32, [None], name="x")
        check = tf.Assert(tf.reduce_all(x > 0), ["x must be positive:", x], summarize=2)  # assert line
        with tf.control_dependencies([check]):
            y = tf.identity(x)
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(y, {x: [1, 2]}), [1, 2])
            with pytest.raises(tf.errors.InvalidArgumentError) as info:
                sess.run(y, {x: [1, -2, 3]})
    message = str(info.value)
    assert "assertion failed: [x must be positive:] [1 -2...]" in message
    assert _line_of("# assert line") in message and info.value.op is check


def test_tf_assert_condition_must_be_a_scalar_bool():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="scalar"):
            tf.Assert(tf.constant([True, False]), ["two conditions"])
        with pytest.raises((TypeError, ValueError)):
            tf.Assert(tf.constant(1.0), ["a float"])


_BINARY = [  # (function, passing y, failing y) for x = [1, 2, 3]
    (tf.assert_equal, [1, 2, 3], [1, 2, 4]),
    (tf.assert_none_equal, [0, 0, 0], [0, 2, 0]),
    (tf.assert_less, [2, 3, 4], [2, 2, 4]),
    (tf.assert_less_equal, [1, 2, 3], [1, 1, 3]),
    (tf.assert_greater, [0, 1, 2], [0, 2, 2]),
    (tf.assert_greater_equal, [1, 2, 3], [1, 3, 3]),
]


@pytest.mark.parametrize("fn, ok, bad", _BINARY, ids=lambda v: getattr(v, "__name__", ""))
def test_binary_asserts_at_run_time(fn, ok, bad):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.int32, [3], name="x")
        y = tf.placeholder(tf.int32, [3], name="y")
        check = fn(x, y, message="custom message")
        assert check.type == "Assert"
        with tf.control_dependencies([check]):
            out = tf.identity(x)
        with tf.Session() as sess:
            sess.run(out, {x: [1, 2, 3], y: ok})
            with pytest.raises(tf.errors.InvalidArgumentError) as info:
                sess.run(out, {x: [1, 2, 3], y: bad})
    message = str(info.value)
    assert "custom message" in message and "did not hold element-wise" in message
    assert "x (x:0) = ] [1 2 3]" in message


@pytest.mark.parametrize("fn, ok, bad", _BINARY, ids=lambda v: getattr(v, "__name__", ""))
def test_binary_asserts_on_known_values_raise_while_building(fn, ok, bad):
    with tf.Graph().as_default():
        fn(tf.constant([1, 2, 3]), ok)  # passes: an Assert op that always holds
        with pytest.raises(tf.errors.InvalidArgumentError, match="did not hold") as info:
            fn(tf.constant([1, 2, 3]), bad)
        assert isinstance(info.value, ValueError)  # as TF1 programs catch it


_SIGN = [(tf.assert_positive, [1, 2], [1, 0]), (tf.assert_non_negative, [0, 2], [0, -1]),
         (tf.assert_negative, [-1, -2], [-1, 0]), (tf.assert_non_positive, [0, -2], [0, 1])]


@pytest.mark.parametrize("fn, ok, bad", _SIGN, ids=lambda v: getattr(v, "__name__", ""))
def test_sign_asserts(fn, ok, bad):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2], name="x")
        check = fn(x)
        with tf.Session() as sess:
            sess.run(check, {x: ok})
            with pytest.raises(tf.errors.InvalidArgumentError, match="did not hold element-wise"):
                sess.run(check, {x: bad})
        with pytest.raises(tf.errors.InvalidArgumentError):
            fn(tf.constant(bad, dtype=tf.float32))


def test_assert_near():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        check = tf.assert_near(x, [1.0, 2.0], rtol=1e-3, atol=1e-3)
        with tf.Session() as sess:
            sess.run(check, {x: [1.0005, 2.0]})
            with pytest.raises(tf.errors.InvalidArgumentError, match="not equal to tolerance"):
                sess.run(check, {x: [1.1, 2.0]})
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.assert_near(tf.constant([1.0]), [1.5])


def test_assert_rank_static_and_dynamic():
    with tf.Graph().as_default():
        known = tf.placeholder(tf.float32, [2, 3])
        assert tf.assert_rank(known, 2).type == "NoOp"
        assert tf.assert_rank_at_least(known, 1).type == "NoOp"
        with pytest.raises(ValueError, match="must have rank 3"):
            tf.assert_rank(known, 3)
        with pytest.raises(ValueError, match="must have rank at least 3"):
            tf.assert_rank_at_least(known, 3)
        unknown = tf.placeholder(tf.float32)
        check = tf.assert_rank(unknown, 2)
        with tf.Session() as sess:
            sess.run(check, {unknown: np.zeros((2, 2))})
            with pytest.raises(tf.errors.InvalidArgumentError, match="must have rank"):
                sess.run(check, {unknown: np.zeros(3)})


def test_assert_type():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32)
        assert tf.assert_type(x, tf.float32).type == "NoOp"
        with pytest.raises(TypeError, match="must be of type int32"):
            tf.assert_type(x, tf.int32, message="ids")


def test_assert_shapes():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        y = tf.placeholder(tf.float32, [None, 2], name="y")
        b = tf.placeholder(tf.float32, [], name="b")
        check = tf.debugging.assert_shapes([(x, ("N", "Q")), (y, ("N", 2)), (b, ()), (x, ("...", 3))])
        with tf.Session() as sess:
            sess.run(check, {x: np.zeros((4, 3)), y: np.zeros((4, 2)), b: 1.0})
            with pytest.raises(tf.errors.InvalidArgumentError, match="must equal dimension 0 of x:0"):
                sess.run(check, {x: np.zeros((4, 3)), y: np.zeros((5, 2)), b: 1.0})
        with pytest.raises(ValueError, match="must have size 4"):
            tf.debugging.assert_shapes({x: (None, 4)})
        with pytest.raises(ValueError, match="both 'Q'"):
            tf.debugging.assert_shapes([(x, ("N", "Q")), (y, ("N", "Q"))])


def test_asserts_resolve_in_every_namespace():
    names = ["assert_equal", "assert_none_equal", "assert_positive", "assert_non_negative", "assert_negative",
             "assert_non_positive", "assert_less", "assert_less_equal", "assert_greater", "assert_greater_equal",
             "assert_near", "assert_rank", "assert_type", "Assert", "check_numerics"]
    for name in names:
        assert getattr(tf, name) is getattr(v1, name) is getattr(tf.debugging, name)
    for name in ["assert_shapes", "assert_all_finite"]:
        assert callable(getattr(tf.debugging, name))
    for name in ["Print", "print", "add_check_numerics_ops", "verify_tensor_all_finite"]:
        assert getattr(tf, name) is getattr(v1, name)


# -- tf.Print and tf.print ---------------------------------------------------------------------------

def test_print_passes_its_input_and_prints_message_and_data(capfd):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None], name="x")
        y = tf.Print(x, [x, "label", tf.constant([[1, 2], [3, 4]])], message="values: ", summarize=3)
        with tf.Session() as sess:
            out = sess.run(y * 2.0, {x: np.arange(5, dtype=np.float32)})
    np.testing.assert_array_equal(out, np.arange(5) * 2.0)
    err = capfd.readouterr().err
    assert err == "values: [0 1 2...][label][[1 2][3...]...]\n"


def test_print_first_n_counts_runs_across_a_session(capsys):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        y = tf.Print(x, [x], message="step ", first_n=2, summarize=-1)
        with tf.Session() as sess:
            for i in range(4):
                sess.run(y, {x: [i, 0.5]})
            sess.run([y, y * 2.0], {x: [9, 9]})  # another plan: still past first_n
    assert capsys.readouterr().err == "step [0 0.5]\nstep [1 0.5]\n"


def test_print_gradient_is_identity():
    x = np.random.default_rng(1).normal(size=(2, 3))
    check_op(lambda t: tf.Print(t, [t], "p") * 2.0, [x], lambda a: a * 2.0)


def test_tf_print_prints_when_run_and_orders_with_control_dependencies(capsys):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.int32, [None], name="x")
        printed = tf.print("x =", x, {"total": tf.reduce_sum(x)}, [1, "a"], summarize=2)
        assert printed.type == "PrintV2"
        with tf.control_dependencies([printed]):
            y = tf.identity(x)
        with tf.Session() as sess:
            sess.run(y, {x: np.arange(7)})
    assert capsys.readouterr().err == "x = [0 1 ... 5 6] {'total': 21} [1, 'a']\n"


def test_tf_print_streams_separators_and_matrices(capsys, tmp_path):
    path = tmp_path / "printed.txt"
    with tf.Graph().as_default():
        m = tf.constant([[1.5, 2.0], [3.0, 4.25]])
        s = tf.constant("just a string")
        ops = [tf.print(m, output_stream=sys.stdout, sep="|", end="!\n"),
               tf.print("a", "b", 3, sep=", "),
               tf.print(s),
               tf.print(tf.constant(["u", "v"]), tf.constant(True)),
               tf.print("to a file", m[0], output_stream=f"file://{path}")]
        with tf.Session() as sess:
            for op in ops:
                sess.run(op)
    captured = capsys.readouterr()
    assert captured.out == "[[1.5 2]\n [3 4.25]]!\n"
    assert captured.err == 'a, b, 3\njust a string\n["u" "v"] True\n'
    assert path.read_text() == "to a file [1.5 2]\n"


def test_tf_print_rejects_unknown_streams():
    with tf.Graph().as_default(), pytest.raises(ValueError, match="output_stream"):
        tf.print("x", output_stream=object())
