"""Math ops: element-wise arithmetic with NumPy broadcasting, matmul, reductions, and the
operators (`+ - * / // % ** @`, unary `-`, `abs`, `< <= > >=`) on tensors."""

import numpy as np

from tensorweave.framework import dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, convert_to_tensor_like
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops import array_ops
from tensorweave.ops.broadcast import broadcast_static_shape, static_reduction_axes

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


def _binary_shape(op):
    x, y = op.inputs
    if x.dtype is not y.dtype:
        raise TypeError(f"Input 'y' of '{op.type}' Op has type {y.dtype.name} that does not match type "
                        f"{x.dtype.name} of argument 'x'.")
    return [(x.dtype, broadcast_static_shape(x.shape, y.shape))]


def _compare_shape(op):
    (_, shape), = _binary_shape(op)
    return [(dtypes.bool, shape)]


def _unary_shape(op):
    return [(op.inputs[0].dtype, op.inputs[0].shape)]


def define_binary(type_name, np_fn, *, grad=None, differentiable=True, compare=False):
    """Defines a broadcasting element-wise op computed by `np_fn(x, y)`."""
    op_def = define_op(type_name, differentiable=differentiable)
    op_def.shape_fn(_compare_shape if compare else _binary_shape)
    op_def.kernel(lambda op, device: np_fn)
    if grad is not None:
        op_def.gradient(grad)
    return op_def


def define_unary(type_name, np_fn, *, grad=None, differentiable=True):
    """Defines an element-wise op computed by `np_fn(x)`."""
    op_def = define_op(type_name, differentiable=differentiable)
    op_def.shape_fn(_unary_shape)
    op_def.kernel(lambda op, device: np_fn)
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
            grad = reduce_sum(grad, axis=axes, keepdims=True)
        if grad.shape.ndims != x.shape.ndims or not grad.shape.is_fully_defined():
            grad = array_ops.reshape(grad, x.shape.as_list())
        return grad
    gx_axes, _ = array_ops.broadcast_gradient_args(array_ops.shape(x), array_ops.shape(grad))
    return array_ops.reshape(reduce_sum(grad, axis=gx_axes, keepdims=True), array_ops.shape(x))


def _binary_grads(op, gx, gy):
    x, y = op.inputs
    return sum_to(gx, x), sum_to(gy, y)


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


def _real_div(x, y):
    out = np.true_divide(x, y)
    return out if out.dtype == np.result_type(x, y) else out.astype(np.result_type(x, y))


@define_binary("RealDiv", _real_div).gradient
def _div_grad(op, grad):
    x, y = op.inputs
    return _binary_grads(op, grad / y, negative(grad) * x / (y * y))


AddN = define_op("AddN")


@AddN.shape_fn
def _add_n_shape(op):
    shape = op.inputs[0].shape
    for t in op.inputs[1:]:
        if t.dtype is not op.inputs[0].dtype:
            raise TypeError(f"AddN inputs must share one dtype, got {op.inputs[0].dtype.name} and {t.dtype.name}")
        shape = shape.merge_with(t.shape)
    return [(op.inputs[0].dtype, shape)]


@AddN.kernel
def _add_n_kernel(op, device):
    def add_n_values(*xs):
        out = np.add(xs[0], xs[1]) if len(xs) > 1 else np.array(xs[0], copy=True)
        for x in xs[2:]:
            np.add(out, x, out=out)
        return out
    return add_n_values


@AddN.gradient
def _add_n_grad(op, grad):
    return tuple(grad for _ in op.inputs)


def add_n(inputs, name=None):
    """`tf.add_n`: the element-wise sum of a list of tensors of one shape and dtype."""
    inputs = [convert_to_tensor(t) for t in inputs]
    if len(inputs) == 1:
        return inputs[0]
    return apply_op("AddN", inputs, name=name or "AddN")


@define_unary("Neg", np.negative).gradient
def _neg_grad(op, grad):
    return (negative(grad),)


@define_unary("Log", np.log).gradient
def _log_grad(op, grad):
    return (grad * reciprocal(op.inputs[0]),)


@define_unary("Exp", np.exp).gradient
def _exp_grad(op, grad):
    return (grad * op.outputs[0],)


@define_unary("Reciprocal", np.reciprocal).gradient
def _reciprocal_grad(op, grad):
    y = op.outputs[0]
    return (negative(grad) * y * y,)


# -- MatMul ------------------------------------------------------------------------------------

MatMul = define_op("MatMul")


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


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False,
           a_is_sparse=False, b_is_sparse=False, name=None):
    """`tf.matmul`: the matrix product of 2-D tensors `a` and `b` (optionally transposed)."""
    a, b = _binary_inputs(a, b)
    return apply_op("MatMul", [a, b], {"transpose_a": bool(transpose_a or adjoint_a),
                                       "transpose_b": bool(transpose_b or adjoint_b)},
                    name=name or "MatMul")


# -- reductions ------------------------------------------------------------------------------------

def _axis_list(axis, rank):
    if axis is None:
        return None if rank is None else list(range(rank))
    axes = [int(a) for a in np.asarray(axis).reshape(-1)]
    if rank is not None:
        for a in axes:
            if not -rank <= a < rank:
                raise ValueError(f"Invalid reduction axis {a} for input of rank {rank}")
        axes = [a % rank for a in axes]
    return axes


def _reduction_shape(op):
    x, axis_t = op.inputs
    keep = op.get_attr("keep_dims")
    dtype = dtypes.bool if op.type in ("Any", "All") else x.dtype
    axes = array_ops.static_value(axis_t)
    rank = x.shape.ndims
    if axes is None or rank is None:
        return [(dtype, TensorShape(None if not keep or rank is None else [None] * rank))]
    axes = set(_axis_list(axes, rank))
    dims = x.shape.as_list()
    if keep:
        return [(dtype, TensorShape([1 if i in axes else d for i, d in enumerate(dims)]))]
    return [(dtype, TensorShape([d for i, d in enumerate(dims) if i not in axes]))]


def define_reduction(type_name, np_fn, *, grad=None, differentiable=True):
    """Defines a reduction `np_fn(x, axis=tuple, keepdims=bool)` over the axes of input 1."""
    op_def = define_op(type_name, differentiable=differentiable)
    op_def.shape_fn(_reduction_shape)

    @op_def.kernel
    def _kernel(op, device):
        keep = op.get_attr("keep_dims")
        out_dtype = op.outputs[0].dtype.as_numpy_dtype

        def reduce(x, axes):
            axes = tuple(int(a) for a in np.asarray(axes).reshape(-1))
            return np.asarray(np_fn(x, axis=axes, keepdims=keep), dtype=out_dtype)
        return reduce
    if grad is not None:
        op_def.gradient(grad)
    return op_def


def _reduction_input(op_type, input_tensor, axis, keepdims, keep_dims, name, default_name):
    x = convert_to_tensor(input_tensor)
    keep = bool(keepdims if keepdims is not None else (keep_dims or False))
    if axis is None:
        rank = x.shape.ndims
        axis_t = array_ops.constant(list(range(rank)), dtype=dtypes.int32) if rank is not None else \
            _range_of_rank(x)
    elif isinstance(axis, Tensor):
        axis_t = axis
    else:
        axis_t = array_ops.constant(axis, dtype=dtypes.int32)
    return apply_op(op_type, [x, axis_t], {"keep_dims": keep}, name=name or default_name)


def _range_of_rank(x):
    return apply_op("Range", [array_ops.constant(0), array_ops.rank(x), array_ops.constant(1)])


def _reduced_shape_keepdims(op):
    """Shape of the reduction output with kept dims, as a list (static) or tensor (dynamic)."""
    x, axis_t = op.inputs
    axes = array_ops.static_value(axis_t)
    if axes is not None and x.shape.ndims is not None:
        axes = set(_axis_list(axes, x.shape.ndims))
        dims = x.shape.as_list()
        if all(d is not None for i, d in enumerate(dims) if i not in axes):
            return [1 if i in axes else d for i, d in enumerate(dims)]
    return apply_op("ReducedShape", [array_ops.shape(x), axis_t])


def _broadcast_back(op, grad):
    """The gradient of a reduction broadcast back to the input's shape."""
    x = op.inputs[0]
    if not op.get_attr("keep_dims"):
        grad = array_ops.reshape(grad, _reduced_shape_keepdims(op))
    if x.shape.is_fully_defined():
        return grad * array_ops.ones(x.shape, dtype=grad.dtype)
    return grad * array_ops.ones_like(x)


def _sum_grad(op, grad):
    return _broadcast_back(op, grad), None


def _mean_grad(op, grad):
    x, out = op.inputs[0], op.outputs[0]
    n_in, n_out = x.shape.num_elements(), out.shape.num_elements()
    if n_in is not None and n_out is not None:
        scale = array_ops.constant(n_out / max(n_in, 1), dtype=grad.dtype)
    else:
        scale = array_ops.cast(array_ops.size(out), grad.dtype) / array_ops.cast(array_ops.size(x), grad.dtype)
    return _broadcast_back(op, grad) * scale, None


Sum = define_reduction("Sum", np.sum, grad=_sum_grad)
Mean = define_reduction("Mean", np.mean, grad=_mean_grad)

ReducedShape = define_op("ReducedShape", differentiable=False)


@ReducedShape.shape_fn
def _reduced_shape_shape(op):
    return [(dtypes.int32, op.inputs[0].shape)]


@ReducedShape.kernel
def _reduced_shape_kernel(op, device):
    def reduced(shape, axes):
        out = np.array(shape, dtype=np.int32)
        out[np.asarray(axes, dtype=np.int64).reshape(-1) % max(len(out), 1)] = 1
        return out
    return reduced


Range = define_op("Range", differentiable=False)


@Range.shape_fn
def _range_shape(op):
    start, limit, delta = (array_ops.static_value(t) for t in op.inputs)
    dtype = op.inputs[0].dtype
    if start is not None and limit is not None and delta is not None:
        return [(dtype, TensorShape([len(range(int(start), int(limit), int(delta)))
                                     if dtype.is_integer else
                                     int(np.ceil((float(limit) - float(start)) / float(delta)))]))]
    return [(dtype, TensorShape([None]))]


@Range.kernel
def _range_kernel(op, device):
    dtype = op.outputs[0].dtype.as_numpy_dtype
    return lambda start, limit, delta: np.arange(start, limit, delta, dtype=dtype)


def reduce_sum(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None):
    """`tf.reduce_sum`: the sum over `axis` (all axes if None)."""
    axis = reduction_indices if axis is None else axis
    return _reduction_input("Sum", input_tensor, axis, keepdims, keep_dims, name, "Sum")


def reduce_mean(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None):
    """`tf.reduce_mean`: the mean over `axis` (all axes if None)."""
    axis = reduction_indices if axis is None else axis
    return _reduction_input("Mean", input_tensor, axis, keepdims, keep_dims, name, "Mean")


# -- Python wrappers and operators -------------------------------------------------------------

def _binary_wrapper(op_type, default_name):
    def fn(x, y, name=None):
        x, y = _binary_inputs(x, y)
        return apply_op(op_type, [x, y], name=name or default_name)
    fn.__name__ = default_name
    fn.__doc__ = f"`tf.{default_name}`: element-wise {op_type} with NumPy broadcasting."
    return fn


def _unary_wrapper(op_type, default_name):
    def fn(x, name=None):
        return apply_op(op_type, [convert_to_tensor(x)], name=name or default_name)
    fn.__name__ = default_name
    fn.__doc__ = f"`tf.{default_name}`: element-wise {op_type}."
    return fn


add = _binary_wrapper("AddV2", "add")
subtract = _binary_wrapper("Sub", "sub")
multiply = _binary_wrapper("Mul", "mul")
divide_real = _binary_wrapper("RealDiv", "truediv")
negative = _unary_wrapper("Neg", "Neg")
log = _unary_wrapper("Log", "Log")
exp = _unary_wrapper("Exp", "Exp")
reciprocal = _unary_wrapper("Reciprocal", "Reciprocal")


def truediv(x, y, name=None):
    """`tf.truediv`: x / y; integer inputs are divided as floats (as in Python 3)."""
    x, y = _binary_inputs(x, y)
    if x.dtype.is_integer:
        target = dtypes.float64 if x.dtype.size > 2 else dtypes.float32
        x, y = array_ops.cast(x, target), array_ops.cast(y, target)
    return apply_op("RealDiv", [x, y], name=name or "truediv")


div = truediv
divide = truediv


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


install_operators({"add": add, "sub": subtract, "mul": multiply, "truediv": truediv, "matmul": matmul})
Tensor.__neg__ = lambda self: negative(self)
