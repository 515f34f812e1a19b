"""Constants: the Const op and `tf.constant`, the conversion of Python values to tensors (TF1's
autopacking of lists that hold tensors included), and what is known of a tensor's value while the
graph is built (`static_value`, `partial_value`, `constant_value_as_shape`, `static_int`)."""

import numpy as np

from tensorweave.framework import dtypes
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, register_tensor_conversion_function
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, as_shape, unknown_shape


# -- Const ----------------------------------------------------------------------------------------

Const = define_op("Const", differentiable=False)


@Const.shape_fn
def _const_shape(op):
    value = op.get_attr("value")
    return [(op.get_attr("dtype"), TensorShape(value.shape))]


@Const.kernel
def _const_kernel(op, device):
    value = op.get_attr("value")
    return lambda: value


def constant(value, dtype=None, shape=None, name="Const", verify_shape=False):
    """`tf.constant`: a tensor holding `value` (broadcast from a scalar if `shape` is given)."""
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.dtype_of_value(value)
    array = np.asarray(value, dtype=dtype.as_numpy_dtype) if dtype is not dtypes.string \
        else np.asarray(value, dtype=object)
    if shape is not None:
        shape = tuple(int(d) for d in as_shape(shape).as_list())
        if array.shape != shape:
            if verify_shape:
                raise TypeError(f"Expected Tensor's shape: {shape}, got {array.shape}.")
            if array.size == 1:
                array = np.full(shape, array.reshape(()), dtype=array.dtype)
            elif array.size == int(np.prod(shape)):
                array = array.reshape(shape)
            else:
                raise ValueError(f"Too many elements provided. Needed at most {int(np.prod(shape))}, "
                                 f"but received {array.size}")
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return apply_op("Const", [], {"value": array, "dtype": dtype}, name=name)


def _constant_conversion(value, dtype, name):
    return constant(value, dtype=dtype, name=name or "Const")


register_tensor_conversion_function((int, float, bool, complex, str, bytes, list, tuple, np.ndarray,
                                     np.generic), _constant_conversion)


def _is_graph_value(value):
    return isinstance(value, Tensor) or hasattr(value, "_ref")  # a Tensor or a Variable


def _contains_tensor(value):
    if _is_graph_value(value):
        return True
    return isinstance(value, (list, tuple)) and any(_contains_tensor(v) for v in value)


def _first_graph_dtype(value):
    if _is_graph_value(value):
        return value.dtype.base_dtype
    for v in value if isinstance(value, (list, tuple)) else ():
        dtype = _first_graph_dtype(v)
        if dtype is not None:
            return dtype
    return None


def _autopack(value, dtype, name):
    parts = []
    for v in value:
        if _is_graph_value(v):
            parts.append(convert_to_tensor(v, dtype=dtype))
        elif isinstance(v, (list, tuple)) and _contains_tensor(v):
            parts.append(_autopack(v, dtype, None))
        else:
            parts.append(constant(v, dtype=dtype))
    return apply_op("Pack", parts, {"N": len(parts), "T": dtype, "axis": 0}, name=name or "packed")


def _autopacking_conversion(value, dtype, name):
    """TF1's autopacking: a (nested) list holding Tensors, e.g. `[tf.shape(x)[0], -1]`, becomes a
    Pack of its elements; Python numbers in it take the Tensors' dtype. Other lists are constants."""
    if not _contains_tensor(value):
        return _constant_conversion(value, dtype, name)
    return _autopack(value, dtypes.as_dtype(dtype) if dtype is not None else _first_graph_dtype(value), name)


register_tensor_conversion_function((list, tuple), _autopacking_conversion, priority=99)


# -- What is known of a value while the graph is built ---------------------------------------------

def static_value(t):
    """The value of `t` if it is known while building the graph (a Const), else None."""
    if isinstance(t, Tensor):
        return t.op.get_attr("value") if t.op.type == "Const" else None
    return np.asarray(t)


def partial_value(t):
    """What is statically known of an integer tensor's value, element by element.

    A Python int for a known scalar, a list (with None for unknown elements) for a vector, or
    None when nothing is known. Follows Const, Shape, Pack, ConcatV2, StridedSlice, Cast and
    Identity, so `tf.reshape(x, [tf.shape(x)[0], -1])` keeps every dimension that is known.
    """
    if not isinstance(t, Tensor):
        return np.asarray(t).tolist()
    op = t.op
    value = None
    if op.type == "Const":
        value = op.get_attr("value").tolist()
    elif op.type == "Shape":
        s = op.inputs[0].shape
        value = None if s.ndims is None else s.as_list()
    elif op.type in ("Identity", "Cast") and op.inputs[0].dtype.is_integer and t.dtype.is_integer:
        value = partial_value(op.inputs[0])
    elif op.type == "Pack" and op.get_attr("axis") == 0 and all(x.shape.ndims == 0 for x in op.inputs):
        value = [partial_value(x) for x in op.inputs]
    elif op.type == "ConcatV2" and t.shape.ndims == 1:
        parts = []
        for x in op.inputs[:-1]:
            part = partial_value(x)
            if not isinstance(part, list):
                n = x.shape[0].value if x.shape.ndims == 1 else None
                if n is None:
                    parts = None
                    break
                part = [None] * n
            parts.extend(part)
        value = parts
    elif op.type == "StridedSlice" and op.inputs[0].shape.ndims == 1:
        base = partial_value(op.inputs[0])
        spec = [static_value(x) for x in op.inputs[1:]]
        if isinstance(base, list) and all(v is not None for v in spec):
            # slicing_ops imports this module, so StridedSlice's index rule is imported where it is used.
            from tensorweave.ops.slicing_ops import _MASKS, _strided_index
            masks = [op.get_attr(m) for m in _MASKS]
            try:
                picked = np.array(base, dtype=object)[_strided_index(*spec, *masks)]
            except (IndexError, ValueError):
                picked = None
            value = picked.tolist() if isinstance(picked, np.ndarray) else picked
    if value is None and t.shape.ndims == 1 and t.shape[0].value is not None:
        value = [None] * t.shape[0].value
    if isinstance(value, list) and t.shape.ndims == 1 and any(isinstance(v, list) for v in value):
        return [None] * len(value)
    return value


def constant_value_as_shape(t):
    """The (partial) `TensorShape` that a 1-D int tensor holds; -1 or unknown entries are None."""
    value = partial_value(t)
    if isinstance(t, Tensor) and t.shape.ndims == 0:
        return TensorShape(None) if value is None or value == -1 else TensorShape([value])
    if not isinstance(value, list):
        return unknown_shape()
    return TensorShape([None if d is None or d < 0 else d for d in value])


def static_int(t):
    """A scalar int tensor's (or 1-element vector's) value if known while building the graph, else None."""
    value = static_value(t)
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise ValueError(f"Expected a scalar, got a tensor of shape {np.shape(value)}")
    return int(flat[0])


__all__ = ["constant", "static_value", "partial_value", "constant_value_as_shape"]
