"""`tf.debugging.assert_*` (also `tf.assert_*`): checks of values, ranks, shapes and dtypes.

As in TF1, a check whose outcome is known while the graph is built (constant values, static
ranks and shapes, dtypes) raises at once: `tf.errors.InvalidArgumentError` for values (also a
`ValueError`), `ValueError` for ranks and shapes, `TypeError` for dtypes. Otherwise it returns an
`Assert` op that raises `InvalidArgumentError` with the message and the data when run; use it as
`with tf.control_dependencies([tf.assert_positive(x)]): ...`.
"""

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.op_builder import convert_to_tensor, convert_to_tensor_like, name_scope
from tensorweave.framework.operation import user_call_site
from tensorweave.framework.tensor import Tensor
from tensorweave.ops import array_ops, control_ops, math_ops, reduction_ops
from tensorweave.ops.constant_op import static_value
from tensorweave.ops.debug_ops import assert_


def _static(t):
    value = static_value(t)
    return None if value is None or value.dtype == object else value


def _assert_static(holds, data):
    """Raises at graph construction when a check known there fails (as TF1's `_assert_static`)."""
    if holds:
        return
    while data and isinstance(data[0], str) and not data[0]:  # no message given
        data = data[1:]
    shown = [str(_static(d)) if isinstance(d, Tensor) and _static(d) is not None else
             "<unknown>" if isinstance(d, Tensor) else str(d) for d in data]
    raise errors.GraphConstructionError(None, None, "\n".join(shown) + f"\n\t(checked at {user_call_site()})")


def _pair(x, y):
    if isinstance(x, Tensor):
        return x, convert_to_tensor_like(y, x)
    if isinstance(y, Tensor):
        return convert_to_tensor_like(x, y), y
    x = convert_to_tensor(x, name="x")
    return x, convert_to_tensor_like(y, x)


def _compare(name, default_name, symbol, tf_fn, np_fn, x, y, data, summarize, message):
    with name_scope(name, default_name, [t for t in (x, y) if isinstance(t, Tensor)]):
        x, y = _pair(x, y)
        if data is None:
            data = [message or "", f"Condition x {symbol} y did not hold element-wise:",
                    f"x ({x.name}) = ", x, f"y ({y.name}) = ", y]
        xs, ys = _static(x), _static(y)
        if xs is not None and ys is not None:
            _assert_static(bool(np.all(np_fn(xs, ys))), data)
        condition = reduction_ops.reduce_all(tf_fn(x, y))
        return assert_(condition, data, summarize=summarize)


def _sign(name, default_name, symbol, tf_fn, np_fn, x, data, summarize, message):
    with name_scope(name, default_name, [x] if isinstance(x, Tensor) else []):
        x = convert_to_tensor(x, name="x")
        if data is None:
            data = [message or "", f"Condition x {symbol} 0 did not hold element-wise:", f"x ({x.name}) = ", x]
        xs = _static(x)
        if xs is not None:
            _assert_static(bool(np.all(np_fn(xs, 0))), data)
        zero = convert_to_tensor_like(0, x)
        return assert_(reduction_ops.reduce_all(tf_fn(x, zero)), data, summarize=summarize)


def assert_equal(x, y, data=None, summarize=None, message=None, name=None):
    """`tf.assert_equal`: an op checking `x == y` element-wise (with broadcasting)."""
    return _compare(name, "assert_equal", "==", math_ops.equal, np.equal, x, y, data, summarize, message)


def assert_none_equal(x, y, data=None, summarize=None, message=None, name=None):
    """`tf.assert_none_equal`: an op checking `x != y` element-wise."""
    return _compare(name, "assert_none_equal", "!=", math_ops.not_equal, np.not_equal, x, y, data, summarize,
                    message)


def assert_less(x, y, data=None, summarize=None, message=None, name=None):
    """`tf.assert_less`: an op checking `x < y` element-wise."""
    return _compare(name, "assert_less", "<", math_ops.less, np.less, x, y, data, summarize, message)


def assert_less_equal(x, y, data=None, summarize=None, message=None, name=None):
    """`tf.assert_less_equal`: an op checking `x <= y` element-wise."""
    return _compare(name, "assert_less_equal", "<=", math_ops.less_equal, np.less_equal, x, y, data, summarize,
                    message)


def assert_greater(x, y, data=None, summarize=None, message=None, name=None):
    """`tf.assert_greater`: an op checking `x > y` element-wise."""
    return _compare(name, "assert_greater", ">", math_ops.greater, np.greater, x, y, data, summarize, message)


def assert_greater_equal(x, y, data=None, summarize=None, message=None, name=None):
    """`tf.assert_greater_equal`: an op checking `x >= y` element-wise."""
    return _compare(name, "assert_greater_equal", ">=", math_ops.greater_equal, np.greater_equal, x, y, data,
                    summarize, message)


def assert_positive(x, data=None, summarize=None, message=None, name=None):
    """`tf.assert_positive`: an op checking `x > 0` element-wise."""
    return _sign(name, "assert_positive", ">", math_ops.greater, np.greater, x, data, summarize, message)


def assert_non_negative(x, data=None, summarize=None, message=None, name=None):
    """`tf.assert_non_negative`: an op checking `x >= 0` element-wise."""
    return _sign(name, "assert_non_negative", ">=", math_ops.greater_equal, np.greater_equal, x, data,
                 summarize, message)


def assert_negative(x, data=None, summarize=None, message=None, name=None):
    """`tf.assert_negative`: an op checking `x < 0` element-wise."""
    return _sign(name, "assert_negative", "<", math_ops.less, np.less, x, data, summarize, message)


def assert_non_positive(x, data=None, summarize=None, message=None, name=None):
    """`tf.assert_non_positive`: an op checking `x <= 0` element-wise."""
    return _sign(name, "assert_non_positive", "<=", math_ops.less_equal, np.less_equal, x, data, summarize,
                 message)


def assert_near(x, y, rtol=None, atol=None, data=None, summarize=None, message=None, name=None):
    """`tf.assert_near`: an op checking `|x - y| <= atol + rtol * |y|` element-wise; both
    tolerances default to 10 times the dtype's machine epsilon."""
    with name_scope(name, "assert_near", [t for t in (x, y) if isinstance(t, Tensor)]):
        x, y = _pair(x, y)
        if not x.dtype.is_floating:
            raise TypeError(f"assert_near compares float tensors, got {x.dtype.name}")
        eps = float(np.finfo(x.dtype.as_numpy_dtype).eps)
        rtol = 10 * eps if rtol is None else rtol
        atol = 10 * eps if atol is None else atol
        if data is None:
            data = [message or "", f"x and y not equal to tolerance rtol = {rtol}, atol = {atol}",
                    f"x ({x.name}) = ", x, f"y ({y.name}) = ", y]
        xs, ys = _static(x), _static(y)
        if xs is not None and ys is not None:
            _assert_static(bool(np.all(np.abs(xs - ys) <= atol + rtol * np.abs(ys))), data)
        tol = convert_to_tensor_like(atol, x) + convert_to_tensor_like(rtol, x) * math_ops.abs(y)
        return assert_(reduction_ops.reduce_all(math_ops.less_equal(math_ops.abs(x - y), tol)), data,
                       summarize=summarize)


def _rank_check(name, default_name, at_least, x, rank, data, summarize, message):
    with name_scope(name, default_name, [x] if isinstance(x, Tensor) else []) as scope:
        x = convert_to_tensor(x, name="x")
        relation = "at least " if at_least else ""
        static_rank = _static(rank) if isinstance(rank, Tensor) else np.asarray(rank)
        if x.shape.ndims is not None and static_rank is not None:
            ok = x.shape.ndims >= int(static_rank) if at_least else x.shape.ndims == int(static_rank)
            if not ok:
                raise ValueError(f"{message or ''}  Tensor {x.name} must have rank {relation}{int(static_rank)}.  "
                                 f"Received rank {x.shape.ndims}, shape {x.shape}")
            return control_ops.no_op(name=scope)
        rank = convert_to_tensor(rank, dtype=dtypes.int32)
        if data is None:
            data = [message or "", f"Tensor {x.name} must have rank {relation}", rank, "Received shape: ",
                    array_ops.shape(x)]
        compare = math_ops.greater_equal if at_least else math_ops.equal
        return assert_(compare(array_ops.rank(x), rank), data, summarize=summarize)


def assert_rank(x, rank, data=None, summarize=None, message=None, name=None):
    """`tf.assert_rank`: checks that `x` has rank `rank`; a no-op when the static rank shows it."""
    return _rank_check(name, "assert_rank", False, x, rank, data, summarize, message)


def assert_rank_at_least(x, rank, data=None, summarize=None, message=None, name=None):
    """`tf.assert_rank_at_least`: checks that `x` has rank `rank` or more."""
    return _rank_check(name, "assert_rank_at_least", True, x, rank, data, summarize, message)


def assert_type(tensor, tf_type, message=None, name=None):
    """`tf.assert_type`: raises `TypeError` unless `tensor` has dtype `tf_type`; else a no-op."""
    tensor = convert_to_tensor(tensor)
    tf_type = dtypes.as_dtype(tf_type)
    if tensor.dtype is not tf_type:
        raise TypeError(f"{message or ''}  {tensor.name} must be of type {tf_type.name}; "
                        f"got {tensor.dtype.name}")
    with name_scope(name, "assert_type", [tensor]) as scope:
        return control_ops.no_op(name=scope + "statically_determined_correct_type")


def assert_shapes(shapes, data=None, summarize=None, message=None, name=None):
    """`tf.debugging.assert_shapes`: checks that tensors have the shapes given and that equal
    symbols name equal sizes.

        tf.debugging.assert_shapes([(x, ("N", "Q")), (y, ("N", "D")), (b, ()), (w, (3, None))])

    `shapes` is a list of (tensor, shape) pairs or a dict; a shape entry is an int, a symbol
    (str), or None for any size; a leading "..." allows any number of leading dimensions.
    Returns an op running the checks not decided while building the graph.
    """
    items = list(shapes.items()) if isinstance(shapes, dict) else list(shapes)
    with name_scope(name, "assert_shapes", [x for x, _ in items if isinstance(x, Tensor)]) as scope:
        prefix = f"{message}  " if message else ""
        sizes = {}  # symbol -> (static size or None, size tensor, description)
        checks = []
        for x, spec in items:
            x = convert_to_tensor(x)
            spec = list(spec)
            open_ended = bool(spec) and spec[0] == "..."
            if open_ended:
                spec = spec[1:]
            checks.append((assert_rank_at_least if open_ended else assert_rank)(x, len(spec), message=message))
            static = x.shape.as_list() if x.shape.ndims is not None else None
            for i, want in enumerate(spec):
                axis = i - len(spec) if open_ended else i
                have = static[axis] if static is not None else None
                where = f"dimension {axis} of {x.name}"
                if want is None:
                    continue
                if isinstance(want, str):
                    if want not in sizes:
                        sizes[want] = (have, lambda x=x, axis=axis: array_ops.shape(x)[axis], where)
                        continue
                    want_static, want_tensor, want_where = sizes[want]
                    if have is not None and want_static is not None:
                        if have != want_static:
                            raise ValueError(f"{prefix}{where} must equal {want_where} (both {want!r}): "
                                             f"{have} != {want_static}; shape of {x.name} is {x.shape}")
                        continue
                    checks.append(assert_equal(array_ops.shape(x)[axis], want_tensor(), data=data, summarize=summarize,
                                               message=f"{prefix}{where} must equal {want_where} (both {want!r})"))
                    continue
                if have is not None:
                    if have != int(want):
                        raise ValueError(f"{prefix}{where} must have size {int(want)}; received size {have}, "
                                         f"shape {x.shape}")
                    continue
                checks.append(assert_equal(array_ops.shape(x)[axis], int(want), data=data, summarize=summarize,
                                           message=f"{prefix}{where} must have size {int(want)}"))
        return control_ops.group(*checks, name=scope)
