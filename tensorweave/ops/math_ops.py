"""Element-wise math ops: arithmetic with NumPy broadcasting, unary functions, comparisons and
logic; MatMul, AddN and `tensordot`; and the operators (`+ - * / // % ** @`, unary `-`, `abs`,
`~`, `& | ^`, `< <= > >=`) on tensors. `==` and `!=` stay identity, as in TF1.

Each op type is defined once: `define_binary` / `define_unary` register the shape rule and a
kernel that is the NumPy ufunc itself wherever the ufunc already keeps the dtype. Composite
functions (`logical_xor`, `tensordot`, ...) are built from these ops, as in TF1, so they need no
gradient of their own. Reductions, scans and `range` live in `reduction_ops`, clipping and norms
in `clip_ops`; both build on this module.
"""

import builtins

import numpy as np

from tensorweave.framework import batch_rules, dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, convert_to_tensor_like, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops import array_ops
from tensorweave.ops.broadcast import broadcast_static_shape, static_reduction_axes

# -- dtype families --------------------------------------------------------------------------------

_FLOATS = frozenset((dtypes.float16, dtypes.float32, dtypes.float64, dtypes.bfloat16))
_COMPLEX = frozenset((dtypes.complex64, dtypes.complex128))
_INTS = frozenset((dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64,
                   dtypes.uint8, dtypes.uint16, dtypes.uint32, dtypes.uint64))
_INEXACT = _FLOATS | _COMPLEX
_REAL = _FLOATS | _INTS
_NUMERIC = _REAL | _COMPLEX
_BOOL = frozenset((dtypes.bool,))
_ANY = None  # no restriction (Equal/NotEqual also compare bools and strings)


def _check_dtype(dtype, allowed, param="x"):
    if allowed is not None and dtype not in allowed:
        names = ", ".join(sorted(d.name for d in allowed))
        raise TypeError(f"Value passed to parameter '{param}' has DataType {dtype.name} not in list of "
                        f"allowed values: {names}")


# -- helpers shared by element-wise ops -----------------------------------------------------------


def _binary_inputs(x, y):
    """Converts x and y to tensors; a Python/NumPy operand takes the other's dtype."""
    if isinstance(x, Tensor):
        y = convert_to_tensor_like(y, x)
    elif isinstance(y, Tensor):
        x = convert_to_tensor_like(x, y)
    else:
        x = convert_to_tensor(x)
        y = convert_to_tensor_like(y, x)
    return x, y


def _binary_shape_fn(allowed, out_dtype=None):
    def infer(op):
        x, y = op.inputs
        if x.dtype is not y.dtype:
            raise TypeError(f"Input 'y' of '{op.type}' Op has type {y.dtype.name} that does not match type "
                            f"{x.dtype.name} of argument 'x'.")
        _check_dtype(x.dtype, allowed)
        return [(out_dtype or x.dtype, broadcast_static_shape(x.shape, y.shape))]
    return infer


def _unary_shape_fn(allowed, out_dtype=None):
    def infer(op):
        x = op.inputs[0]
        _check_dtype(x.dtype, allowed)
        return [(out_dtype or x.dtype, x.shape)]
    return infer


def _fixed_kernel(np_fn):
    return lambda op, device: np_fn


def _inplace_binary(ufunc):
    """`ufunc(a, b)` written into a donated `a` when the result has a's shape (else a new array)."""
    def kernel(op, device):
        def into_first(a, b):
            if a.__class__ is np.ndarray and (a.shape == np.shape(b) or np.ndim(b) == 0 or
                                               a.shape[a.ndim - np.ndim(b):] == np.shape(b)):
                return ufunc(a, b, out=a)
            return ufunc(a, b)
        return into_first
    return kernel


def _inplace_unary(ufunc):
    def kernel(op, device):
        return lambda x: ufunc(x, out=x) if x.__class__ is np.ndarray else ufunc(x)
    return kernel


def _allow_inplace(op_def, np_fn, unary):
    """NumPy ufuncs return fresh arrays and can write into a donated input."""
    if isinstance(np_fn, np.ufunc):
        op_def.fresh_outputs = True
        op_def.inplace(0)(_inplace_unary(np_fn) if unary else _inplace_binary(np_fn))


def define_binary(type_name, np_fn=None, *, grad=None, differentiable=True, compare=False, allowed=_NUMERIC,
                  kernel=None):
    """Defines a broadcasting element-wise op computed by `np_fn(x, y)` (ideally a NumPy ufunc).

    `compare`: the output is bool. `kernel`: a factory `(op, device) -> fn` instead of a fixed
    `np_fn`, for ops whose NumPy function depends on the dtype.
    """
    op_def = define_op(type_name, differentiable=differentiable)
    op_def.batch_rule = batch_rules.elementwise
    op_def.shape_fn(_binary_shape_fn(allowed, dtypes.bool if compare else None))
    op_def.kernel(kernel or _fixed_kernel(np_fn))
    if kernel is None and not compare:
        _allow_inplace(op_def, np_fn, unary=False)
    if grad is not None:
        op_def.gradient(grad)
    return op_def


def define_unary(type_name, np_fn=None, *, grad=None, differentiable=True, allowed=_NUMERIC, kernel=None):
    """Defines an element-wise op computed by `np_fn(x)` (ideally a NumPy ufunc)."""
    op_def = define_op(type_name, differentiable=differentiable)
    op_def.batch_rule = batch_rules.elementwise
    op_def.shape_fn(_unary_shape_fn(allowed))
    op_def.kernel(kernel or _fixed_kernel(np_fn))
    if kernel is None:
        _allow_inplace(op_def, np_fn, unary=True)
    if grad is not None:
        op_def.gradient(grad)
    return op_def


def sum_to(grad, x):
    """Sums a broadcast gradient `grad` back to the shape of input `x`."""
    if grad is None:
        return None
    if grad.shape.ndims is not None and grad.shape == x.shape and x.shape.is_fully_defined():
        return grad
    axes = static_reduction_axes(grad.shape, x.shape)
    if axes is not None:
        if axes:
            grad = _sum_keeping_dims(grad, axes)
        if grad.shape.ndims != x.shape.ndims or not grad.shape.is_fully_defined():
            grad = array_ops.reshape(grad, x.shape.as_list())
        return grad
    gx_axes, _ = array_ops.broadcast_gradient_args(array_ops.shape(x), array_ops.shape(grad))
    return array_ops.reshape(_sum_keeping_dims(grad, gx_axes), array_ops.shape(x))


def _sum_keeping_dims(x, axes):
    # The graph `reduction_ops.reduce_sum(x, axes, keepdims=True)` builds, bound here by the op's
    # name: reduction_ops builds on this module, so this module cannot import it.
    x = convert_to_tensor(x)
    axis_t = axes if isinstance(axes, Tensor) else array_ops.constant(axes, dtype=dtypes.int32)
    return apply_op("Sum", [x, axis_t], {"keep_dims": True}, name="Sum")


def _binary_grads(op, gx, gy):
    x, y = op.inputs
    return sum_to(gx, x), sum_to(gy, y)


def _is_int(op):
    return op.inputs[0].dtype in _INTS


def _by_dtype(float_fn, int_fn):
    """A kernel factory picking the NumPy function by the op's input dtype, once per plan."""
    return lambda op, device: int_fn if _is_int(op) else float_fn


def _int_divisor_checked(fn):
    def divide(x, y):
        if not np.all(y):
            raise ZeroDivisionError("Integer division by zero")
        return fn(x, y)
    return divide


def _trunc_divide(x, y):
    """C++ integer division: the quotient rounded toward zero."""
    q = np.floor_divide(x, y)
    return q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0))).astype(q.dtype)


def _floor_divide_float(x, y):
    # TF's FloorDiv on floats is floor(x / y); NumPy's floor_divide differs near integers (1 // 0.1).
    q = np.true_divide(x, y)
    return np.floor(q, out=q) if q.__class__ is np.ndarray else np.floor(q)


def _squared_difference(x, y):
    d = np.subtract(x, y)
    return np.multiply(d, d, out=d) if d.__class__ is np.ndarray else d * d


# -- arithmetic ------------------------------------------------------------------------------------

def _add_grad(op, grad):
    return _binary_grads(op, grad, grad)


Add = define_binary("Add", np.add, grad=_add_grad)
AddV2 = define_binary("AddV2", np.add, grad=_add_grad)


@define_binary("Sub", np.subtract).gradient
def _sub_grad(op, grad):
    return _binary_grads(op, grad, negative(grad))


@define_binary("Mul", np.multiply).gradient
def _mul_grad(op, grad):
    x, y = op.inputs
    return _binary_grads(op, grad * y, x * grad)


def _div_grad(op, grad):
    x, y = op.inputs
    return _binary_grads(op, grad / y, negative(grad) * x / (y * y))


# RealDiv divides floats; on integers it truncates like C++ (TF's kernel does the same).
define_binary("RealDiv", kernel=_by_dtype(np.true_divide, _int_divisor_checked(_trunc_divide)), grad=_div_grad)
# "Div" comes from older TF graphs: true division for floats, truncation for integers.
define_binary("Div", kernel=_by_dtype(np.true_divide, _int_divisor_checked(_trunc_divide)), grad=_div_grad)
define_binary("FloorDiv", kernel=_by_dtype(_floor_divide_float, _int_divisor_checked(np.floor_divide)),
              differentiable=False, allowed=_REAL)


@define_binary("FloorMod", kernel=_by_dtype(np.mod, _int_divisor_checked(np.mod)), allowed=_REAL).gradient
def _floor_mod_grad(op, grad):
    x, y = op.inputs
    return _binary_grads(op, grad, negative(grad) * floordiv(x, y))


@define_binary("Pow", np.power).gradient
def _pow_grad(op, grad):
    x, y = op.inputs
    z = op.outputs[0]
    gx = grad * y * pow(x, y - 1)
    # d/dy x^y = x^y log x, taken as 0 where x <= 0 (as TF); log sees 1 there, so no NaN leaks.
    positive = array_ops.cast(greater(x, 0), x.dtype)
    gy = grad * z * log(x * positive + (1 - positive))
    return _binary_grads(op, gx, gy)


def _maximum_or_minimum_grad(select_x):
    def grad_fn(op, grad):
        x, y = op.inputs
        gx = grad * array_ops.cast(select_x(x, y), grad.dtype)
        return _binary_grads(op, gx, grad - gx)
    return grad_fn


# Ties go to x, as in TF1 (x >= y for Maximum, x <= y for Minimum).
define_binary("Maximum", np.maximum, allowed=_REAL, grad=_maximum_or_minimum_grad(lambda x, y: greater_equal(x, y)))
define_binary("Minimum", np.minimum, allowed=_REAL, grad=_maximum_or_minimum_grad(lambda x, y: less_equal(x, y)))


@define_binary("SquaredDifference", _squared_difference).gradient
def _squared_difference_grad(op, grad):
    x, y = op.inputs
    gx = grad * 2.0 * (x - y)
    return _binary_grads(op, gx, negative(gx))


AddN = define_op("AddN")


@AddN.shape_fn
def _add_n_shape(op):
    shape = op.inputs[0].shape
    for t in op.inputs[1:]:
        if t.dtype is not op.inputs[0].dtype:
            raise TypeError(f"AddN inputs must share one dtype, got {op.inputs[0].dtype.name} and {t.dtype.name}")
        shape = shape.merge_with(t.shape)
    _check_dtype(op.inputs[0].dtype, _NUMERIC, "inputs")
    return [(op.inputs[0].dtype, shape)]


def _add_n_values(*xs):
    if len(xs) == 1:
        return xs[0]
    out = np.add(xs[0], xs[1])
    if out.__class__ is not np.ndarray:  # scalars: NumPy returns immutable scalars
        for x in xs[2:]:
            out = np.add(out, x)
        return out
    for x in xs[2:]:
        np.add(out, x, out=out)
    return out


AddN.kernel(_fixed_kernel(_add_n_values))


@AddN.gradient
def _add_n_grad(op, grad):
    return tuple(grad for _ in op.inputs)


# -- element-wise unary ops --------------------------------------------------------------------------

def _sigmoid_values(x):
    out = np.negative(x, out=np.empty_like(x))
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def _rsqrt_values(x):
    out = np.sqrt(x, out=np.empty_like(x))
    return np.reciprocal(out, out=out)


@define_unary("Neg", np.negative).gradient
def _neg_grad(op, grad):
    return (negative(grad),)


@define_unary("Abs", np.abs, allowed=_REAL).gradient
def _abs_grad(op, grad):
    return (grad * sign(op.inputs[0]),)


@define_unary("Sign", np.sign, allowed=_REAL).gradient
def _sign_grad(op, grad):
    return (array_ops.zeros_like(op.inputs[0]),)


@define_unary("Square", np.square).gradient
def _square_grad(op, grad):
    return (grad * (2.0 * op.inputs[0]),)


@define_unary("Exp", np.exp, allowed=_INEXACT).gradient
def _exp_grad(op, grad):
    return (grad * op.outputs[0],)


@define_unary("Log", np.log, allowed=_INEXACT).gradient
def _log_grad(op, grad):
    return (grad * reciprocal(op.inputs[0]),)


@define_unary("Log1p", np.log1p, allowed=_INEXACT).gradient
def _log1p_grad(op, grad):
    return (grad * reciprocal(1.0 + op.inputs[0]),)


@define_unary("Sqrt", np.sqrt, allowed=_INEXACT).gradient
def _sqrt_grad(op, grad):
    return (grad * 0.5 / op.outputs[0],)


@define_unary("Rsqrt", _rsqrt_values, allowed=_INEXACT).gradient
def _rsqrt_grad(op, grad):
    y = op.outputs[0]
    return (grad * (y * square(y)) * -0.5,)


@define_unary("Reciprocal", np.reciprocal).gradient
def _reciprocal_grad(op, grad):
    y = op.outputs[0]
    return (negative(grad) * y * y,)


@define_unary("Tanh", np.tanh, allowed=_INEXACT).gradient
def _tanh_grad(op, grad):
    y = op.outputs[0]
    return (grad * (1.0 - square(y)),)


@define_unary("Sigmoid", _sigmoid_values, allowed=_INEXACT).gradient
def _sigmoid_grad(op, grad):
    y = op.outputs[0]
    return (grad * y * (1.0 - y),)


@define_unary("Sin", np.sin, allowed=_INEXACT).gradient
def _sin_grad(op, grad):
    return (grad * cos(op.inputs[0]),)


@define_unary("Cos", np.cos, allowed=_INEXACT).gradient
def _cos_grad(op, grad):
    return (grad * negative(sin(op.inputs[0])),)


# Piecewise constant: TF gives these no gradient.
define_unary("Floor", np.floor, allowed=_FLOATS, differentiable=False)
define_unary("Ceil", np.ceil, allowed=_FLOATS, differentiable=False)
# np.rint rounds half to even, like TF's Round; integers are already round.
define_unary("Round", kernel=_by_dtype(np.rint, lambda x: x), allowed=_REAL, differentiable=False)

# -- comparisons and logic -------------------------------------------------------------------------

for _type, _fn, _allowed in (("Equal", np.equal, _ANY), ("NotEqual", np.not_equal, _ANY),
                             ("Less", np.less, _REAL), ("LessEqual", np.less_equal, _REAL),
                             ("Greater", np.greater, _REAL), ("GreaterEqual", np.greater_equal, _REAL)):
    define_binary(_type, _fn, compare=True, differentiable=False, allowed=_allowed)
del _type, _fn, _allowed
define_binary("LogicalAnd", np.logical_and, differentiable=False, allowed=_BOOL)
define_binary("LogicalOr", np.logical_or, differentiable=False, allowed=_BOOL)
define_unary("LogicalNot", np.logical_not, differentiable=False, allowed=_BOOL)

# -- MatMul ------------------------------------------------------------------------------------

MatMul = define_op("MatMul")
MatMul.batch_rule = batch_rules.matmul_rows
MatMul.fresh_outputs = True


@MatMul.shape_fn
def _matmul_shape(op):
    a, b = op.inputs
    ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
    if a.dtype is not b.dtype:
        raise TypeError(f"MatMul inputs must share one dtype, got {a.dtype.name} and {b.dtype.name}")
    sa, sb = a.shape.with_rank(2), b.shape.with_rank(2)
    m, ka = (sa[1], sa[0]) if ta else (sa[0], sa[1])
    kb, n = (sb[1], sb[0]) if tb else (sb[0], sb[1])
    if not ka.is_compatible_with(kb):
        raise ValueError(f"Dimensions must be equal, but are {ka} and {kb} for 'MatMul' with input "
                         f"shapes: {sa}, {sb} (transpose_a={ta}, transpose_b={tb})")
    return [(a.dtype, TensorShape([m, n]))]


@MatMul.kernel
def _matmul_kernel(op, device):
    ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
    if not ta and not tb:
        return np.matmul
    if ta and not tb:
        return lambda a, b: np.matmul(a.T, b)
    if tb and not ta:
        return lambda a, b: np.matmul(a, b.T)
    return lambda a, b: np.matmul(a.T, b.T)


@MatMul.gradient
def _matmul_grad(op, grad):
    a, b = op.inputs
    ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
    if not ta and not tb:
        return matmul(grad, b, transpose_b=True), matmul(a, grad, transpose_a=True)
    if not ta and tb:
        return matmul(grad, b), matmul(grad, a, transpose_a=True)
    if ta and not tb:
        return matmul(b, grad, transpose_b=True), matmul(a, grad)
    return matmul(b, grad, transpose_a=True, transpose_b=True), matmul(grad, a, transpose_a=True,
                                                                       transpose_b=True)


# -- Python wrappers -------------------------------------------------------------------------------

def _binary_wrapper(op_type, default_name, tf_name=None):
    def fn(x, y, name=None):
        x, y = _binary_inputs(x, y)
        return apply_op(op_type, [x, y], name=name or default_name)
    fn.__name__ = tf_name or default_name
    fn.__qualname__ = fn.__name__
    fn.__doc__ = f"`tf.{tf_name or default_name}(x, y, name=None)`: element-wise {op_type} with NumPy broadcasting."
    return fn


def _unary_wrapper(op_type, tf_name):
    def fn(x, name=None):
        return apply_op(op_type, [convert_to_tensor(x)], name=name or op_type)
    fn.__name__ = tf_name
    fn.__qualname__ = tf_name
    fn.__doc__ = f"`tf.{tf_name}(x, name=None)`: element-wise {op_type}."
    return fn


add = _binary_wrapper("Add", "Add", "add")
subtract = _binary_wrapper("Sub", "Sub", "subtract")
multiply = _binary_wrapper("Mul", "Mul", "multiply")
floordiv = _binary_wrapper("FloorDiv", "floordiv")
floormod = _binary_wrapper("FloorMod", "FloorMod", "floormod")
mod = floormod
pow = _binary_wrapper("Pow", "Pow", "pow")  # noqa: A001 - TF's public name
maximum = _binary_wrapper("Maximum", "Maximum", "maximum")
minimum = _binary_wrapper("Minimum", "Minimum", "minimum")
squared_difference = _binary_wrapper("SquaredDifference", "SquaredDifference", "squared_difference")
equal = _binary_wrapper("Equal", "Equal", "equal")
not_equal = _binary_wrapper("NotEqual", "NotEqual", "not_equal")
less = _binary_wrapper("Less", "Less", "less")
less_equal = _binary_wrapper("LessEqual", "LessEqual", "less_equal")
greater = _binary_wrapper("Greater", "Greater", "greater")
greater_equal = _binary_wrapper("GreaterEqual", "GreaterEqual", "greater_equal")
logical_and = _binary_wrapper("LogicalAnd", "LogicalAnd", "logical_and")
logical_or = _binary_wrapper("LogicalOr", "LogicalOr", "logical_or")

negative = _unary_wrapper("Neg", "negative")
abs = _unary_wrapper("Abs", "abs")  # noqa: A001
sign = _unary_wrapper("Sign", "sign")
square = _unary_wrapper("Square", "square")
exp = _unary_wrapper("Exp", "exp")
log = _unary_wrapper("Log", "log")
log1p = _unary_wrapper("Log1p", "log1p")
sqrt = _unary_wrapper("Sqrt", "sqrt")
rsqrt = _unary_wrapper("Rsqrt", "rsqrt")
reciprocal = _unary_wrapper("Reciprocal", "reciprocal")
tanh = _unary_wrapper("Tanh", "tanh")
sigmoid = _unary_wrapper("Sigmoid", "sigmoid")
sin = _unary_wrapper("Sin", "sin")
cos = _unary_wrapper("Cos", "cos")
floor = _unary_wrapper("Floor", "floor")
ceil = _unary_wrapper("Ceil", "ceil")
round = _unary_wrapper("Round", "round")  # noqa: A001
logical_not = _unary_wrapper("LogicalNot", "logical_not")


def _float_for_int(dtype):
    # TF1's truediv: 8- and 16-bit integers divide as float32, wider ones as float64.
    return dtypes.float32 if dtype.size <= 2 else dtypes.float64


def truediv(x, y, name=None):
    """`tf.truediv`: x / y; integer inputs are divided as floats (as in Python 3)."""
    x, y = _binary_inputs(x, y)
    if x.dtype in _INTS and x.dtype is y.dtype:
        target = _float_for_int(x.dtype)
        x, y = array_ops.cast(x, target), array_ops.cast(y, target)
    return apply_op("RealDiv", [x, y], name=name or "truediv")


def divide(x, y, name=None):
    """`tf.divide`: x / y with Python 3 semantics (integers divide as floats)."""
    return truediv(x, y, name=name)


def div(x, y, name=None):
    """`tf.div`: Python 2 division: floor division for integers, true division for floats."""
    x, y = _binary_inputs(x, y)
    if x.dtype in _INTS:
        return apply_op("FloorDiv", [x, y], name=name or "div")
    return apply_op("RealDiv", [x, y], name=name or "div")


def logical_xor(x, y, name="LogicalXor"):
    """`tf.logical_xor`: element-wise x XOR y, as (x OR y) AND NOT (x AND y)."""
    x, y = _binary_inputs(x, y)
    return apply_op("LogicalAnd", [logical_or(x, y), logical_not(logical_and(x, y))], name=name)


def add_n(inputs, name=None):
    """`tf.add_n`: the element-wise sum of a list of tensors of one shape and dtype."""
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise ValueError("inputs must be a non-empty list of tensors of one shape and dtype")
    inputs = [convert_to_tensor(t) for t in inputs]
    if len(inputs) == 1:
        return array_ops.identity(inputs[0], name=name) if name else inputs[0]
    return apply_op("AddN", inputs, name=name or "AddN")


def scalar_mul(scalar, x, name=None):
    """`tf.scalar_mul`: multiplies every element of `x` by the 0-D `scalar`."""
    x = convert_to_tensor(x)
    scalar = convert_to_tensor_like(scalar, x)
    if scalar.shape.ndims != 0:
        raise ValueError(f"Only scalar multiply works, got shape {scalar.shape}")
    return apply_op("Mul", [scalar, x], name=name or "scalar_mul")


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False,
           a_is_sparse=False, b_is_sparse=False, name=None):
    """`tf.matmul`: the matrix product of 2-D tensors `a` and `b` (optionally transposed)."""
    a, b = _binary_inputs(a, b)
    return apply_op("MatMul", [a, b], {"transpose_a": bool(transpose_a or adjoint_a),
                                       "transpose_b": bool(transpose_b or adjoint_b)},
                    name=name or "MatMul")


# -- tensordot -------------------------------------------------------------------------------------

def _tensordot_axes(axes, rank_a, rank_b):
    if isinstance(axes, (int, np.integer)):
        if axes < 0 or axes > builtins.min(rank_a, rank_b):
            raise ValueError(f"'axes' must be between 0 and the smaller rank ({rank_a}, {rank_b}), got {axes}")
        return list(builtins.range(rank_a - axes, rank_a)), list(builtins.range(axes))
    if isinstance(axes, Tensor):
        raise ValueError("tensordot needs 'axes' known while building the graph (an int or a pair of lists)")
    if len(axes) != 2:
        raise ValueError(f"'axes' must be an int or a pair of axis lists, got {axes!r}")
    a_axes, b_axes = ([int(v) for v in np.asarray(ax).reshape(-1)] for ax in axes)
    if len(a_axes) != len(b_axes):
        raise ValueError(f"Different number of contraction axes 'a' and 'b', {len(a_axes)} != {len(b_axes)}")
    return [v % rank_a for v in a_axes], [v % rank_b for v in b_axes]


def tensordot(a, b, axes, name=None):
    """`tf.tensordot`: sums the products of `a` and `b` over the given axes.

    `axes` is an int N (the last N axes of `a` with the first N of `b`) or a pair of axis
    lists. Built from transposes, reshapes and one matmul, as in TF; ranks must be known and
    at most one free dimension may be unknown.
    """
    with name_scope(name, "Tensordot", [a, b]) as scope:
        a, b = _binary_inputs(a, b)
        if a.shape.ndims is None or b.shape.ndims is None:
            raise ValueError("tensordot needs inputs of known rank")
        a_axes, b_axes = _tensordot_axes(axes, a.shape.ndims, b.shape.ndims)
        da, db = a.shape.as_list(), b.shape.as_list()
        for i, j in zip(a_axes, b_axes, strict=True):
            if da[i] is None or db[j] is None:
                raise ValueError("tensordot needs the contracted dimensions known while building the graph")
            if da[i] != db[j]:
                raise ValueError(f"tensordot: contracted dimensions differ: axis {i} of a has {da[i]}, "
                                 f"axis {j} of b has {db[j]}")
        a_free = [i for i in builtins.range(len(da)) if i not in a_axes]
        b_free = [i for i in builtins.range(len(db)) if i not in b_axes]
        free_dims = [da[i] for i in a_free] + [db[i] for i in b_free]
        if free_dims.count(None) > 1:
            raise ValueError("tensordot supports at most one unknown free dimension")
        k = int(np.prod([da[i] for i in a_axes], dtype=np.int64))
        a2 = _transpose_if_needed(a, a_free + a_axes)
        b2 = _transpose_if_needed(b, b_axes + b_free)
        m = _product_or_unknown([da[i] for i in a_free])
        n = _product_or_unknown([db[i] for i in b_free])
        product = matmul(array_ops.reshape(a2, [m, k]), array_ops.reshape(b2, [k, n]))
        return array_ops.reshape(product, [-1 if d is None else d for d in free_dims], name=scope)


def _product_or_unknown(dims):
    return -1 if None in dims else int(np.prod(dims, dtype=np.int64))


def _transpose_if_needed(t, perm):
    if perm == list(builtins.range(len(perm))):
        return t
    return array_ops.transpose(t, perm)


# -- operators on Tensor ---------------------------------------------------------------------------

def _install_operator(name, fn, reflected=False):
    def method(self, other):
        return fn(other, self) if reflected else fn(self, other)
    method.__name__ = name
    setattr(Tensor, name, method)


def install_operators(table):
    """Installs `Tensor.__op__` and `__rop__` from {name: binary function}."""
    for name, fn in table.items():
        _install_operator(f"__{name}__", fn)
        _install_operator(f"__r{name}__", fn, reflected=True)


def _named(fn, name):
    return lambda x, y: fn(x, y, name=name)


# Operators name their ops as TF1's do ("add", "mul", "truediv", "and", ...).
install_operators({
    "add": _binary_wrapper("AddV2", "add"),
    "sub": _binary_wrapper("Sub", "sub"),
    "mul": _binary_wrapper("Mul", "mul"),
    "truediv": truediv,
    "floordiv": floordiv,
    "mod": _named(floormod, "mod"),
    "pow": _named(pow, "pow"),
    "matmul": _named(matmul, "matmul"),
    "and": _named(logical_and, "and"),
    "or": _named(logical_or, "or"),
    "xor": _named(logical_xor, "xor"),
})
# Comparisons have no reflected forms: Python turns `2 < t` into `t > 2` itself. `==` and `!=`
# are never defined: tensors compare and hash by identity.
Tensor.__lt__ = lambda self, other: less(self, other)
Tensor.__le__ = lambda self, other: less_equal(self, other)
Tensor.__gt__ = lambda self, other: greater(self, other)
Tensor.__ge__ = lambda self, other: greater_equal(self, other)
Tensor.__neg__ = lambda self: negative(self, name="Neg")
Tensor.__abs__ = lambda self: abs(self, name="Abs")
Tensor.__invert__ = lambda self: logical_not(self, name="LogicalNot")
