"""Math ops: element-wise forward values against NumPy, gradients against central differences,
dtypes, broadcasting, add_n, tensordot, and the operators on Tensor."""

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import tensorweave as tf
from tensorweave.framework.op_def import get_op_def
from tensorweave.ops import array_ops
from tests.op_inputs import FLOATS, INTS, random_values, read_only, typed
from tests.op_check import check_forward, check_gradient, check_op, run_op

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BROADCAST_PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
SEEDS = st.integers(0, 2**32 - 1)


# -- binary element-wise ops -------------------------------------------------------------------

# (name, builder, NumPy reference, x domain, y domain, dtypes, differentiable)
BINARY = [
    ("add", tf.add, np.add, "any", "any", FLOATS + INTS, True),
    ("subtract", tf.subtract, np.subtract, "any", "any", FLOATS + INTS, True),
    ("multiply", tf.multiply, np.multiply, "any", "any", FLOATS + INTS, True),
    ("truediv", tf.truediv, np.true_divide, "any", "nonzero", FLOATS, True),
    ("divide", tf.divide, np.true_divide, "any", "nonzero", FLOATS, True),
    ("div", tf.div, np.true_divide, "any", "nonzero", FLOATS, True),
    ("div_int", tf.div, np.floor_divide, "any", "nonzero", INTS, False),
    ("floordiv", tf.floordiv, typed(lambda x, y: np.floor(x / y)), "any", "nonzero", FLOATS, False),
    ("floordiv_int", tf.floordiv, np.floor_divide, "any", "nonzero", INTS, False),
    ("floormod", tf.floormod, np.mod, "any", "nonzero", FLOATS + INTS, True),
    ("mod", tf.mod, np.mod, "any", "nonzero", FLOATS + INTS, True),
    ("pow", tf.pow, np.power, "positive", "exponent", FLOATS + INTS, True),
    ("maximum", tf.maximum, np.maximum, "any", "any", FLOATS + INTS, True),
    ("minimum", tf.minimum, np.minimum, "any", "any", FLOATS + INTS, True),
    ("squared_difference", tf.squared_difference, lambda x, y: np.square(x - y), "any", "any", FLOATS + INTS,
     True),
    ("equal", tf.equal, np.equal, "any", "any", FLOATS + INTS, False),
    ("not_equal", tf.not_equal, np.not_equal, "any", "any", FLOATS + INTS, False),
    ("less", tf.less, np.less, "any", "any", FLOATS + INTS, False),
    ("less_equal", tf.less_equal, np.less_equal, "any", "any", FLOATS + INTS, False),
    ("greater", tf.greater, np.greater, "any", "any", FLOATS + INTS, False),
    ("greater_equal", tf.greater_equal, np.greater_equal, "any", "any", FLOATS + INTS, False),
    ("logical_and", tf.logical_and, np.logical_and, "bool", "bool", (np.bool_,), False),
    ("logical_or", tf.logical_or, np.logical_or, "bool", "bool", (np.bool_,), False),
    ("logical_xor", tf.logical_xor, np.logical_xor, "bool", "bool", (np.bool_,), False),
]


@pytest.mark.parametrize("case", BINARY, ids=[c[0] for c in BINARY])
@FAST
@given(shapes=BROADCAST_PAIRS, seed=SEEDS)
def test_binary_ops_broadcast(case, shapes, seed):
    _, build, reference, x_domain, y_domain, dtypes, differentiable = case
    rng = np.random.default_rng(seed)
    (sx, sy) = shapes.input_shapes
    for dtype in dtypes:
        x, y = read_only(random_values(rng, sx, dtype, x_domain)), read_only(random_values(rng, sy, dtype, y_domain))
        check_forward(build, [x, y], reference)
    if differentiable:
        x, y = random_values(rng, sx, np.float64, x_domain), random_values(rng, sy, np.float64, y_domain)
        check_gradient(build, [x, y])


@pytest.mark.parametrize("build", [tf.add, tf.multiply, tf.maximum, tf.subtract])
def test_binary_ops_keep_float16(build):
    x = np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3)
    y = np.float16([0.5, -0.25, 2.0])
    got = run_op(build, [x, y])
    assert got.dtype == np.float16


def test_simple_ops_use_the_numpy_ufunc_itself():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        for fn, ufunc in ((tf.add, np.add), (tf.multiply, np.multiply), (tf.maximum, np.maximum),
                          (tf.less, np.less)):
            op = fn(x, x).op
            assert get_op_def(op.type).make_kernel(op, None) is ufunc
        op = tf.exp(x).op
        assert get_op_def("Exp").make_kernel(op, None) is np.exp


def test_integer_division_semantics():
    x = np.array([-7, 7, -7, 7], np.int32)
    y = np.array([2, -2, -2, 2], np.int32)
    check_forward(lambda a, b: tf.floordiv(a, b), [x, y], lambda a, b: np.array([-4, -4, 3, 3], np.int32))
    check_forward(lambda a, b: tf.floormod(a, b), [x, y], lambda a, b: np.array([1, -1, -1, 1], np.int32))
    check_forward(lambda a, b: tf.div(a, b), [x, y], lambda a, b: np.array([-4, -4, 3, 3], np.int32))
    check_forward(lambda a, b: a // b, [x, y], lambda a, b: np.array([-4, -4, 3, 3], np.int32))
    check_forward(lambda a, b: a % b, [x, y], lambda a, b: np.array([1, -1, -1, 1], np.int32))
    # `/` on integers is true division, as in Python 3 and TF1: int32 -> float64, int16 -> float32.
    check_forward(lambda a, b: a / b, [x, y], lambda a, b: a / b)
    check_forward(lambda a, b: tf.truediv(a, b), [x.astype(np.int16), y.astype(np.int16)],
                  lambda a, b: (a / b).astype(np.float32))


def test_float_floordiv_is_floor_of_quotient_like_tf():
    got = run_op(lambda a, b: tf.floordiv(a, b), [np.float64([1.0, -7.5]), np.float64([0.1, 2.0])])
    np.testing.assert_array_equal(got, [10.0, -4.0])  # TF: floor(1 / 0.1) = 10; Python's 1 // 0.1 is 9


def test_integer_division_by_zero_raises():
    with pytest.raises(tf.errors.InvalidArgumentError, match="division by zero"):
        run_op(lambda a, b: tf.floordiv(a, b), [np.int32([1, 2]), np.int32([1, 0])])


def test_real_div_on_integers_truncates_like_tf_kernel():
    with tf.Graph().as_default():
        x = tf.constant([-7, 7], tf.int32)
        y = tf.constant([2, 2], tf.int32)
        from tensorweave.framework.op_builder import apply_op
        z = [apply_op("RealDiv", [x, y]), apply_op("Div", [x, y])]
        with tf.Session() as sess:
            got = sess.run(z)
    for value in got:
        assert value.dtype == np.int32
        np.testing.assert_array_equal(value, [-3, 3])


def test_pow_integer_forward_and_gradient_wrt_exponent_with_nonpositive_base():
    check_forward(tf.pow, [np.int32([2, -3, 0]), np.int32([3, 2, 0])], np.power)
    # d/dy x^y is taken as 0 where x <= 0 (no NaN), as in TF.
    with tf.Graph().as_default():
        x = tf.constant([-2.0, 0.0, 2.0], tf.float64)
        y = tf.constant([2.0, 2.0, 2.0], tf.float64)
        gx, gy = tf.gradients(tf.reduce_sum(tf.pow(x, y)), [x, y])
        with tf.Session() as sess:
            gx, gy = sess.run([gx, gy])
    np.testing.assert_allclose(gx, [-4.0, 0.0, 4.0])
    np.testing.assert_allclose(gy, [0.0, 0.0, 4.0 * np.log(2.0)])


def test_maximum_minimum_gradient_goes_to_selected_input_and_x_on_ties():
    with tf.Graph().as_default():
        x = tf.constant([1.0, 3.0, 2.0], tf.float64)
        y = tf.constant([2.0, 1.0, 2.0], tf.float64)
        grads = tf.gradients(tf.reduce_sum(tf.maximum(x, y)), [x, y]) + \
            tf.gradients(tf.reduce_sum(tf.minimum(x, y)), [x, y])
        with tf.Session() as sess:
            gmax_x, gmax_y, gmin_x, gmin_y = sess.run(grads)
    np.testing.assert_array_equal(gmax_x, [0, 1, 1])
    np.testing.assert_array_equal(gmax_y, [1, 0, 0])
    np.testing.assert_array_equal(gmin_x, [1, 0, 1])
    np.testing.assert_array_equal(gmin_y, [0, 1, 0])


# -- unary element-wise ops -------------------------------------------------------------------

def _sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(x.dtype)


# (name, builder, reference, domain, dtypes, differentiable)
UNARY = [
    ("negative", tf.negative, np.negative, "any", FLOATS + INTS, True),
    ("abs", tf.abs, np.abs, "nonzero", FLOATS + INTS, True),
    ("sign", tf.sign, np.sign, "nonzero", FLOATS + INTS, True),
    ("square", tf.square, np.square, "any", FLOATS + INTS, True),
    ("exp", tf.exp, np.exp, "any", FLOATS, True),
    ("log", tf.log, np.log, "positive", FLOATS, True),
    ("log1p", tf.log1p, np.log1p, "positive", FLOATS, True),
    ("sqrt", tf.sqrt, np.sqrt, "positive", FLOATS, True),
    ("rsqrt", tf.rsqrt, typed(lambda x: 1 / np.sqrt(x)), "positive", FLOATS, True),
    ("reciprocal", tf.reciprocal, np.reciprocal, "nonzero", FLOATS, True),
    ("tanh", tf.tanh, np.tanh, "any", FLOATS, True),
    ("sigmoid", tf.sigmoid, _sigmoid, "any", FLOATS, True),
    ("sin", tf.sin, np.sin, "any", FLOATS, True),
    ("cos", tf.cos, np.cos, "any", FLOATS, True),
    ("floor", tf.floor, np.floor, "any", FLOATS, False),
    ("ceil", tf.ceil, np.ceil, "any", FLOATS, False),
    ("round", tf.round, np.round, "any", FLOATS + INTS, False),
]


@pytest.mark.parametrize("case", UNARY, ids=[c[0] for c in UNARY])
@FAST
@given(shape=SHAPES, seed=SEEDS)
def test_unary_ops(case, shape, seed):
    _, build, reference, domain, dtypes, differentiable = case
    rng = np.random.default_rng(seed)
    for dtype in dtypes:
        check_forward(build, [read_only(random_values(rng, shape, dtype, domain))], reference, rtol=2e-6)
    if differentiable:
        check_gradient(build, [random_values(rng, shape, np.float64, domain)])


@pytest.mark.parametrize("build,reference", [(tf.exp, np.exp), (tf.sigmoid, _sigmoid), (tf.sqrt, np.sqrt),
                                             (tf.tanh, np.tanh), (tf.square, np.square)])
def test_unary_ops_keep_float16(build, reference):
    x = np.linspace(0.1, 2, 6, dtype=np.float16)
    check_forward(build, [x], reference, rtol=1e-3, atol=1e-3)


def test_sigmoid_saturates_without_nan():
    got = run_op(tf.sigmoid, [np.float32([-1000.0, 0.0, 1000.0])])
    np.testing.assert_array_equal(got, np.float32([0.0, 0.5, 1.0]))


def test_round_is_bankers_rounding():
    x = np.float32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.6])
    check_forward(tf.round, [x], lambda a: np.float32([0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 3.0]))


def test_sign_and_piecewise_constant_gradients():
    with tf.Graph().as_default():
        x = tf.constant([-1.5, 2.5], tf.float64)
        g_sign, g_floor = tf.gradients(tf.reduce_sum(tf.sign(x)), x)[0], \
            tf.gradients(tf.reduce_sum(tf.floor(x)), x)[0]
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(g_sign), [0.0, 0.0])
        assert g_floor is None  # TF gives Floor/Ceil/Round no gradient


def test_logical_not_and_scalar_inputs():
    check_forward(tf.logical_not, [np.array([True, False])], np.logical_not)
    check_forward(lambda a: tf.logical_and(a, True), [np.array([True, False])], lambda a: a)


# -- add_n, scalar_mul -----------------------------------------------------------------------------

def test_add_n():
    rng = np.random.default_rng(8)
    xs = [rng.uniform(-1, 1, size=(2, 3)) for _ in range(3)]
    check_op(lambda a, b, c: tf.add_n([a, b, c]), xs, lambda a, b, c: a + b + c)
    check_forward(lambda a, b, c: tf.add_n([a, b, c]), [np.float32(1), np.float32(2), np.float32(3)],
                  lambda a, b, c: np.float32(6))
    check_forward(lambda a: tf.add_n([a]), [xs[0]], lambda a: a)
    with tf.Graph().as_default():
        assert tf.add_n([tf.constant(1.0), tf.constant(2.0)]).op.type == "AddN"
        with pytest.raises(ValueError):
            tf.add_n([tf.constant(1.0), tf.constant([1.0, 2.0])])


def test_scalar_mul():
    x = np.float32([[1, 2], [3, 4]])
    check_forward(lambda t: tf.scalar_mul(2.5, t), [x], lambda a: a * np.float32(2.5))
    check_op(lambda s, t: tf.scalar_mul(s, t), [np.float64(3.0), x.astype(np.float64)], lambda s, a: s * a)
    with tf.Graph().as_default():
        with pytest.raises(ValueError):
            tf.scalar_mul(tf.constant([1.0, 2.0]), tf.constant([1.0, 2.0]))


# -- tensordot ---------------------------------------------------------------------------------

def test_tensordot_without_transposes():
    rng = np.random.default_rng(12)
    a, b = rng.uniform(-1, 1, size=(2, 3, 4)), rng.uniform(-1, 1, size=(3, 4, 5))
    check_op(lambda x, y: tf.tensordot(x, y, 2), [a, b], lambda x, y: np.tensordot(x, y, 2))
    check_op(lambda x, y: tf.tensordot(x, y, [[2], [0]]), [a, rng.uniform(-1, 1, size=(4, 2))],
             lambda x, y: np.tensordot(x, y, [[2], [0]]))
    check_op(lambda x, y: tf.tensordot(x, y, 0), [a[0, 0], b[0, 0]], lambda x, y: np.tensordot(x, y, 0))
    check_forward(lambda x, y: tf.tensordot(x, y, 1), [a[0].astype(np.float32), b[0].astype(np.float32)],
                  lambda x, y: np.tensordot(x, y, 1), rtol=1e-5)
    with tf.Graph().as_default():  # an unknown batch dimension
        x = tf.placeholder(tf.float64, [None, 3, 4])
        out = tf.tensordot(x, tf.constant(b[:, :, 0]), [[1, 2], [0, 1]])
        assert out.shape.as_list() == [None]
        with tf.Session() as sess:
            np.testing.assert_allclose(sess.run(out, {x: a}), np.tensordot(a, b[:, :, 0], 2))


@pytest.mark.skipif(not hasattr(array_ops, "transpose"), reason="array_ops.transpose not available yet")
def test_tensordot_with_transposes():
    rng = np.random.default_rng(13)
    a, b = rng.uniform(-1, 1, size=(2, 3, 4)), rng.uniform(-1, 1, size=(5, 3))
    check_op(lambda x, y: tf.tensordot(x, y, [[1], [1]]), [a, b], lambda x, y: np.tensordot(x, y, [[1], [1]]))
    check_op(lambda x, y: tf.tensordot(x, y, [[0, 2], [2, 0]]), [a, rng.uniform(-1, 1, size=(4, 5, 2))],
             lambda x, y: np.tensordot(x, y, [[0, 2], [2, 0]]))


def test_tensordot_rejects_mismatched_axes():
    with tf.Graph().as_default():
        with pytest.raises(ValueError):
            tf.tensordot(tf.zeros([2, 3]), tf.zeros([4, 5]), 1)
        with pytest.raises(ValueError):
            tf.tensordot(tf.zeros([2, 3]), tf.zeros([3, 5]), [[1], [0, 1]])


# -- operators -----------------------------------------------------------------------------------

def test_arithmetic_operators_and_reflected_forms():
    rng = np.random.default_rng(14)
    x = rng.uniform(0.5, 2, size=(2, 3)).astype(np.float32)
    y = rng.uniform(0.5, 2, size=(2, 3)).astype(np.float32)
    ops = [
        (lambda a, b: a + b, lambda a, b: a + b), (lambda a, b: a - b, lambda a, b: a - b),
        (lambda a, b: a * b, lambda a, b: a * b), (lambda a, b: a / b, lambda a, b: a / b),
        (lambda a, b: a // b, lambda a, b: np.floor(a / b)), (lambda a, b: a % b, np.mod),
        (lambda a, b: a ** b, np.power),
        (lambda a, b: 2.0 * a, lambda a, b: np.float32(2.0) * a), (lambda a, b: 1 - a, lambda a, b: 1 - a),
        (lambda a, b: 3 / a, lambda a, b: np.float32(3) / a), (lambda a, b: 2 ** a, lambda a, b: np.float32(2) ** a),
        (lambda a, b: 5 // a, lambda a, b: np.floor(np.float32(5) / a)), (lambda a, b: 5 % a, lambda a, b: 5 % a),
        (lambda a, b: -a, lambda a, b: -a), (lambda a, b: abs(a - 1), lambda a, b: np.abs(a - 1)),
        (lambda a, b: np.ones(3) + a, lambda a, b: a + 1), (lambda a, b: np.full(3, 2.0) * a, lambda a, b: 2 * a),
        (lambda a, b: np.ones(3, np.float32) - a, lambda a, b: 1 - a),
        (lambda a, b: np.float32(2) * a, lambda a, b: 2 * a),
    ]
    for build, reference in ops:
        check_forward(build, [x, y], lambda a, b: np.asarray(reference(a, b)).astype(np.float32), rtol=1e-5)
    m = rng.uniform(-1, 1, size=(3, 2)).astype(np.float32)
    check_forward(lambda a, b: a @ b, [x, m], np.matmul, rtol=1e-5)
    check_forward(lambda a, b: a.__rmatmul__(b), [m, x], lambda a, b: b @ a, rtol=1e-5)
    check_forward(lambda a: np.eye(2) @ a, [x], lambda a: a, rtol=1e-5)


def test_operators_keep_the_tensor_dtype_and_build_tf1_ops():
    with tf.Graph().as_default():
        f32 = tf.placeholder(tf.float32, [3])
        f16 = tf.placeholder(tf.float16, [3])
        i32 = tf.placeholder(tf.int32, [3])
        assert (f32 * 2.0).dtype == tf.float32
        assert (2.0 * f32).dtype == tf.float32
        assert (f16 * 0.5).dtype == tf.float16
        assert (1 - f16).dtype == tf.float16
        assert (i32 + 1).dtype == tf.int32
        assert (i32 / 2).dtype == tf.float64
        assert (i32 // 2).dtype == tf.int32
        assert (np.ones(3) + f32).dtype == tf.float32
        assert (f32 + f32).op.type == "AddV2" and (f32 + f32).op.name.startswith("add")
        assert tf.add(f32, f32).op.type == "Add"
        assert (f32 - 1).op.type == "Sub" and (f32 * 2).op.type == "Mul"
        assert (f32 / 2).op.type == "RealDiv" and (f32 // 2).op.type == "FloorDiv"
        assert (f32 % 2).op.type == "FloorMod" and (f32 ** 2).op.type == "Pow"
        assert (-f32).op.type == "Neg" and abs(f32).op.type == "Abs"
        assert (f32 < 1).op.type == "Less" and (f32 <= 1).op.type == "LessEqual"
        assert (f32 > 1).op.type == "Greater" and (f32 >= 1).op.type == "GreaterEqual"
        assert (1 < f32).op.type == "Greater" and (np.ones(3) < f32).op.type == "Greater"
        assert (f32 < 1).dtype == tf.bool
        with pytest.raises(ValueError, match="does not match"):
            f32 + i32
        with pytest.raises(ValueError):
            i32 * 2.5


def test_comparison_and_logical_operators():
    x = np.float32([0.5, 1.0, 1.5])
    check_forward(lambda a: a < 1, [x], lambda a: a < 1)
    check_forward(lambda a: a <= 1, [x], lambda a: a <= 1)
    check_forward(lambda a: a > 1, [x], lambda a: a > 1)
    check_forward(lambda a: a >= 1, [x], lambda a: a >= 1)
    check_forward(lambda a: 1 < a, [x], lambda a: 1 < a)
    check_forward(lambda a: np.ones(3) <= a, [x], lambda a: 1 <= a)
    p, q = np.array([True, True, False, False]), np.array([True, False, True, False])
    check_forward(lambda a, b: a & b, [p, q], np.logical_and)
    check_forward(lambda a, b: a | b, [p, q], np.logical_or)
    check_forward(lambda a, b: a ^ b, [p, q], np.logical_xor)
    check_forward(lambda a, b: ~a, [p, q], lambda a, b: ~a)
    check_forward(lambda a: True & a, [p], lambda a: a)
    with tf.Graph().as_default():
        b = tf.placeholder(tf.bool, [4])
        assert (b & b).op.type == "LogicalAnd" and (b | b).op.type == "LogicalOr"
        assert (~b).op.type == "LogicalNot"
        with pytest.raises(ValueError, match="allowed values"):
            tf.placeholder(tf.float32) & tf.placeholder(tf.float32)


def test_eq_is_identity_and_tensors_hash_by_identity():
    with tf.Graph().as_default():
        t1 = tf.constant([1.0, 2.0])
        t2 = tf.constant([1.0, 2.0])
        assert (t1 == t2) is False
        assert (t1 == t1) is True
        assert (t1 != t2) is True
        assert "__eq__" not in vars(tf.Tensor) and "__ne__" not in vars(tf.Tensor)
        assert hash(t1) == object.__hash__(t1)
        s = {t1, t2, t1}
        assert len(s) == 2
        d = {t1: 1, t2: 2}
        assert d[t1] == 1 and d[t2] == 2
        assert t1 in [t2, t1] and t1 not in [t2]


# -- shape and dtype errors ----------------------------------------------------------------------

def test_errors_name_the_op_and_the_problem():
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32, [2, 3], name="a")
        with pytest.raises(ValueError, match="Dimensions must be equal") as info:
            tf.add(a, tf.placeholder(tf.float32, [4]), name="bad_add")
        assert "bad_add" in str(info.value) and "test_math_ops.py" in str(info.value)
        with pytest.raises(ValueError, match="allowed values"):
            tf.exp(tf.placeholder(tf.int32, [2]))
        with pytest.raises(ValueError, match="allowed values"):
            tf.reduce_any(a)
        with pytest.raises(ValueError, match="Invalid reduction axis"):
            tf.reduce_sum(a, axis=2)
        with pytest.raises(ValueError, match="Invalid reduction axis"):
            tf.reduce_sum(a, axis=-3)
        with pytest.raises(ValueError, match="range"):
            tf.argmax(a, 2)
        with pytest.raises(ValueError, match="does not match"):
            tf.maximum(a, tf.placeholder(tf.float64, [2, 3]))
        with pytest.raises(ValueError, match="allowed values"):
            tf.logical_or(a, a)
        assert tf.add(a, tf.placeholder(tf.float32, [None, 1])).shape.as_list() == [2, 3]
        assert tf.multiply(a, tf.placeholder(tf.float32)).shape.ndims is None


def test_read_only_inputs_are_never_written():
    x = read_only(np.random.default_rng(15).uniform(0.5, 2, size=(3, 4)))
    before = x.copy()
    builds = [tf.sigmoid, tf.rsqrt, tf.square, lambda t: tf.squared_difference(t, 1.0),
              lambda t: tf.add_n([t, t, t]), lambda t: tf.cumsum(t, 1, exclusive=True, reverse=True),
              lambda t: tf.reduce_sum(t, 0), tf.round, lambda t: tf.floordiv(t, 0.3)]
    for build in builds:
        run_op(build, [x])
    np.testing.assert_array_equal(x, before)


def test_gradients_through_unknown_shapes():
    rng = np.random.default_rng(16)
    xv, yv, zv = rng.uniform(0.5, 1, (4, 3)), rng.uniform(0.5, 1, (3,)), np.float64(0.3)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [None, 3])
        y = tf.placeholder(tf.float64, None)
        z = tf.placeholder(tf.float64)  # unknown rank
        out = x * y + z
        fed_axis = tf.placeholder(tf.int32, [1])
        loss = tf.reduce_sum(out * out) + tf.reduce_mean(tf.reduce_prod(x, axis=fed_axis))
        grads = tf.gradients(loss, [x, y, z])
        with tf.Session() as sess:
            gx, gy, gz = sess.run(grads, {x: xv, y: yv, z: zv, fed_axis: [1]})
    o = xv * yv + zv
    np.testing.assert_allclose(gx, 2 * o * yv + np.prod(xv, 1, keepdims=True) / xv / 4)
    np.testing.assert_allclose(gy, (2 * o * xv).sum(0))
    np.testing.assert_allclose(gz, (2 * o).sum())


def test_equal_compares_strings_and_bools():
    check_forward(tf.equal, [np.array([True, False]), np.array([True, True])], np.equal)
    with tf.Graph().as_default():
        eq = tf.equal(tf.constant(["a", "b"]), tf.constant(["a", "c"]))
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(eq), [True, False])
