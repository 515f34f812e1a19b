"""Numeric debugging ops: `check_numerics`, `add_check_numerics_ops`, `Assert`, `Print` and
`tf.print` (TF's StringFormat + PrintV2).

A failing check raises `tf.errors.InvalidArgumentError` at run time naming the checking op and
the line that created it (as every op error does), and for `CheckNumerics` also the op that
produced the bad tensor and where that op was created. Assert, Print and PrintV2 are stateful,
so they are never folded away or merged, and each prints or checks every time it runs.
The `assert_*` helpers built on `Assert` are in `check_ops`.
"""

import itertools
import logging
import sys

import numpy as np

from tensorweave.framework import batch_rules, dtypes, errors
from tensorweave.framework.indexed_slices import IndexedSlices
from tensorweave.framework.op_builder import (
    apply_op,
    colocate_with,
    control_dependencies,
    convert_to_tensor,
    graph_of,
    name_scope,
)
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops import array_ops, control_ops

_CHECKED_FLOATS = (dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float64)


# -- CheckNumerics ---------------------------------------------------------------------------------

CheckNumerics = define_op("CheckNumerics")
CheckNumerics.batch_rule = batch_rules.rows_of_first_input  # checking rows in chunks checks them all


@CheckNumerics.shape_fn
def _check_numerics_shape(op):
    x = op.inputs[0]
    if x.dtype not in _CHECKED_FLOATS:
        raise TypeError(f"check_numerics takes a float tensor (float16, bfloat16, float32, float64), "
                        f"got {x.dtype.name} for {x.name}")
    return [(x.dtype, x.shape)]


@CheckNumerics.kernel
def _check_numerics_kernel(op, device):
    message = op.get_attr("message")
    source = op.inputs[0]

    def check(x):
        if np.isfinite(x).all():
            return x
        raise op.error(errors.InvalidArgumentError, _numerics_report(np.asarray(x), message, source))
    return check


def _numerics_report(x, message, source):
    nans = int(np.count_nonzero(np.isnan(x)))
    infs = int(np.count_nonzero(np.isinf(x)))
    kind = "Inf and NaN" if nans and infs else "NaN" if nans else "Inf"
    producer = source.op
    return (f"{message} : Tensor had {kind} values ({nans} NaN, {infs} Inf of {x.size} elements) "
            f"in tensor {source.name}, produced by op {producer.name!r} of type {producer.type} "
            f"defined at {producer.creation_site}")


@CheckNumerics.gradient
def _check_numerics_grad(op, grad):
    message = ("Not a number (NaN) or infinity (Inf) values detected in gradient. " + op.get_attr("message"))
    if grad is None:
        return (None,)
    if isinstance(grad, IndexedSlices):
        return (IndexedSlices(check_numerics(grad.values, message), grad.indices, grad.dense_shape),)
    return (check_numerics(grad, message),)


def check_numerics(tensor, message, name=None):
    """`tf.check_numerics`: `tensor` itself, after checking that it holds no NaN or Inf.

    When it does, running the op raises `tf.errors.InvalidArgumentError` with `message`, whether
    NaN, Inf or both were found, and the op that produced `tensor` and where it was created.
    """
    tensor = convert_to_tensor(tensor)
    return apply_op("CheckNumerics", [tensor], {"message": str(message)}, name=name or "CheckNumerics")


def verify_tensor_all_finite(t, msg, name=None):
    """`tf.verify_tensor_all_finite` / `tf.debugging.assert_all_finite`: `t`, available only
    after a check that it holds no NaN or Inf (which raises `InvalidArgumentError` with `msg`)."""
    t = convert_to_tensor(t)
    with name_scope(name, "VerifyFinite", [t]) as scope, colocate_with(t.op):
        verify = check_numerics(t, message=msg)
        with control_dependencies([verify]):
            return array_ops.identity(t, name=scope)


def assert_all_finite(x, message=None, name=None):
    """`tf.debugging.assert_all_finite(x, message)`: see `verify_tensor_all_finite`."""
    return verify_tensor_all_finite(x, message or "", name=name)


def add_check_numerics_ops():
    """`tf.add_check_numerics_ops()`: an op that checks every float tensor in the default graph.

    As in TF1, each float output of each op gets a `check_numerics` whose message is the tensor's
    name, chained by control dependencies so the checks run one after another; the returned op
    runs them all. Run it with the training step (`sess.run([train_op, check_op], ...)`): a NaN
    or Inf raises `InvalidArgumentError` naming the op that produced it and where it was made.
    Variables and the ops that update them are left out (TF1 skipped their reference outputs).
    """
    from tensorweave.framework.graph import get_default_graph
    graph = get_default_graph()
    checks = []
    for op in graph.get_operations():
        d = op.op_def
        if d.ref_outputs or d.ref_inputs or d.async_kernel:  # variables, their updates, receives
            continue
        for output in op.outputs:
            if output.dtype not in _CHECKED_FLOATS:
                continue
            with control_dependencies(checks), colocate_with(op):
                checks = [check_numerics(output, message=output.name)]
    return control_ops.group(*checks)


# -- Assert ------------------------------------------------------------------------------------------

Assert = define_op("Assert", stateful=True, differentiable=False)


@Assert.shape_fn
def _assert_shape(op):
    condition = op.inputs[0]
    if condition.dtype is not dtypes.bool:
        raise TypeError(f"Assert's condition must be a bool tensor, got {condition.dtype.name}")
    elements = condition.shape.num_elements() if condition.shape.ndims is not None else None
    if elements is not None and elements != 1:
        raise ValueError(f"Assert's condition must be a scalar, got shape {condition.shape}")
    return []


@Assert.kernel
def _assert_kernel(op, device):
    summarize = op.get_attr("summarize")

    def check(condition, *data):
        if np.asarray(condition).reshape(-1)[0]:
            return
        shown = " ".join(f"[{summarize_legacy(d, summarize)}]" for d in data)
        raise op.error(errors.InvalidArgumentError, f"assertion failed: {shown}")
    return check


def assert_(condition, data, summarize=None, name=None):
    """`tf.Assert(condition, data, summarize=None)`: an op that raises
    `tf.errors.InvalidArgumentError` when run while `condition` is false; the message shows each
    entry of `data` (strings and tensors), at most `summarize` elements of each (default 3).

    Use it as `with tf.control_dependencies([tf.Assert(...)]): ...` or run it as a target.
    """
    with name_scope(name, "Assert", [condition] + [d for d in data if isinstance(d, Tensor)]) as scope:
        condition = convert_to_tensor(condition, dtype=dtypes.bool)
        data = [convert_to_tensor(d) for d in data]
        summarize = 3 if summarize is None else int(summarize)
        graph = graph_of([condition] + data)
        return graph.create_op("Assert", [condition] + data, {"summarize": summarize}, name=scope)


# -- Print (TF1's legacy printing identity) ---------------------------------------------------------

Print = define_op("Print", stateful=True)


@Print.shape_fn
def _print_shape(op):
    x = op.inputs[0]
    return [(x.dtype, x.shape)]


@Print.kernel
def _print_kernel(op, device):
    message, first_n, summarize = op.get_attr("message"), op.get_attr("first_n"), op.get_attr("summarize")
    runs = device.op_state(op, itertools.count)  # first_n counts across the session's runs

    def print_and_pass(x, *data):
        if first_n < 0 or next(runs) < first_n:
            text = message + "".join(f"[{summarize_legacy(d, summarize)}]" for d in data)
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        return x
    return print_and_pass


@Print.gradient
def _print_grad(op, grad):
    return (grad,) + (None,) * (len(op.inputs) - 1)


def print_legacy(input_, data, message=None, first_n=None, summarize=None, name=None):
    """`tf.Print(input_, data, message=None, first_n=None, summarize=None)`: `input_` itself;
    running it writes `message` then each tensor of `data` (at most `summarize` elements, default
    3) to stderr, on the first `first_n` runs only when `first_n` is given."""
    input_ = convert_to_tensor(input_)
    data = [convert_to_tensor(d) for d in data]
    attrs = {"message": message or "", "first_n": -1 if first_n is None else int(first_n),
             "summarize": 3 if summarize is None else int(summarize)}
    return apply_op("Print", [input_] + data, attrs, name=name or "Print")


# -- tf.print: StringFormat + PrintV2 ------------------------------------------------------------------

StringFormat = define_op("StringFormat", differentiable=False)


@StringFormat.shape_fn
def _string_format_shape(op):
    template, placeholder = op.get_attr("template"), op.get_attr("placeholder")
    if template.count(placeholder) != len(op.inputs):
        raise ValueError(f"template {template!r} has {template.count(placeholder)} placeholders "
                         f"{placeholder!r} but {len(op.inputs)} tensors were given to format")
    return [(dtypes.string, TensorShape([]))]


@StringFormat.kernel
def _string_format_kernel(op, device):
    pieces = op.get_attr("template").split(op.get_attr("placeholder"))
    summarize = op.get_attr("summarize")

    def format_values(*values):
        out = [pieces[0]]
        for value, piece in zip(values, pieces[1:], strict=True):
            out.append(summarize_v2(value, summarize))
            out.append(piece)
        return np.array("".join(out).encode(), dtype=object)
    return format_values


PrintV2 = define_op("PrintV2", stateful=True, differentiable=False)


@PrintV2.shape_fn
def _print_v2_shape(op):
    if op.inputs[0].dtype is not dtypes.string:
        raise TypeError(f"PrintV2 prints a string tensor, got {op.inputs[0].dtype.name}")
    return []


_LOG_LEVELS = {"log(info)": logging.INFO, "log(warning)": logging.WARNING, "log(error)": logging.ERROR}


@PrintV2.kernel
def _print_v2_kernel(op, device):
    stream, end = op.get_attr("output_stream"), op.get_attr("end")

    def write(text):
        text = _as_text(np.asarray(text).reshape(-1)[0])
        if stream in ("stderr", "stdout"):
            out = getattr(sys, stream)
            out.write(text + end)
            out.flush()
        elif stream in _LOG_LEVELS:
            from tensorweave.platform import tf_logging
            tf_logging.get_logger().log(_LOG_LEVELS[stream], "%s", text)
        elif stream.startswith("file://"):
            with open(stream[len("file://"):], "a", encoding="utf-8") as f:
                f.write(text + end)
        else:
            raise ValueError(f"unknown output_stream {stream!r}")
    return write


def _stream_name(output_stream):
    if output_stream is None or output_stream is sys.stderr or output_stream is sys.__stderr__:
        return "stderr"
    if output_stream is sys.stdout or output_stream is sys.__stdout__:
        return "stdout"
    from tensorweave.platform import tf_logging
    named = {tf_logging.info: "log(info)", tf_logging.warning: "log(warning)", tf_logging.error: "log(error)"}
    if output_stream in named:
        return named[output_stream]
    if isinstance(output_stream, str) and (output_stream in ("stderr", "stdout") or output_stream in _LOG_LEVELS
                                           or output_stream.startswith("file://")):
        return output_stream
    raise ValueError(f"tf.print: output_stream must be sys.stderr, sys.stdout, tf.logging.info/warning/error "
                     f"or a 'file://path', got {output_stream!r}")


def print_v2(*inputs, output_stream=None, summarize=3, sep=" ", end="\n", name=None):
    """`tf.print(*inputs, output_stream=sys.stderr, summarize=3, sep=" ", end="\\n")`: an op
    that, each time it runs, prints `inputs` (tensors and Python values, also nested in lists,
    tuples and dicts) separated by `sep`; a tensor shows at most `summarize` elements at each end
    of each dimension (-1: all). Run the op, or make others depend on it with
    `tf.control_dependencies([...])`. `output_stream` (default: standard error, as it is when
    the op runs) may be `sys.stderr`, `sys.stdout`, `tf.logging.info`/`warning`/`error`, or a
    "file://path" to append to."""
    stream = _stream_name(output_stream)
    tensors = [t for t in _flatten(inputs) if isinstance(t, Tensor)]
    with name_scope(name, "PrintV2", tensors) as scope:
        if len(inputs) == 1 and isinstance(inputs[0], Tensor) and inputs[0].dtype is dtypes.string \
                and inputs[0].shape.ndims == 0:
            text = inputs[0]  # a single string prints as it is, without quotes
        else:
            placeholder = _placeholder_for(inputs, sep)
            template = sep.join(_template(x, placeholder) for x in inputs)
            text = apply_op("StringFormat", tensors, {"template": template, "placeholder": placeholder,
                                                      "summarize": int(summarize)}, name="StringFormat")
        graph = graph_of([text])
        return graph.create_op("PrintV2", [text], {"output_stream": stream, "end": end}, name=scope)


def _flatten(x):
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _flatten(item)]
    if isinstance(x, dict):
        return [leaf for key in x for leaf in _flatten(x[key])]
    return [x]


def _template(x, placeholder, nested=False):
    """`x` as Python's print shows it, with `placeholder` wherever one of its tensors goes."""
    if isinstance(x, Tensor):
        return placeholder
    if isinstance(x, list):
        return "[" + ", ".join(_template(v, placeholder, True) for v in x) + "]"
    if isinstance(x, tuple):
        return "(" + ", ".join(_template(v, placeholder, True) for v in x) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {_template(x[k], placeholder, True)}" for k in x) + "}"
    return repr(x) if nested else str(x)


def _placeholder_for(inputs, sep):
    """A placeholder that appears nowhere in the printed Python text."""
    text = sep + "".join(_template(x, "") for x in inputs)
    for n in itertools.count():
        placeholder = "{}" if n == 0 else "{" + "%" * n + "}"
        if placeholder not in text:
            return placeholder


# -- how values are printed --------------------------------------------------------------------------

def _as_text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _element(v, v2):
    if isinstance(v, (bytes, str)):
        return f'"{_as_text(v)}"' if v2 else _as_text(v)
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)) if v2 else str(int(v))
    if isinstance(v, (float, np.floating)) or type(v).__name__ == "bfloat16":
        return _float_text(v)
    return str(v)


def _float_text(v):
    """The shortest of 6, 9 or 17 significant digits that reads back as `v` (as TF prints)."""
    exact = float(v)
    for digits in (6, 9, 17):
        text = f"{exact:.{digits}g}"
        if np.asarray(float(text), dtype=np.asarray(v).dtype) == np.asarray(v) or not np.isfinite(exact):
            return text
    return text


def summarize_legacy(value, summarize):
    """A tensor as TF1's `Print` and `Assert` show it: the first `summarize` elements in row-major
    order, nested in brackets by dimension, "..." when some were left out; scalars bare."""
    a = np.asarray(value)
    if a.ndim == 0:
        return _as_text(a.item()) if a.dtype == object else _element(a[()], v2=False)
    flat = a.reshape(-1)
    limit = a.size if summarize < 0 else min(summarize, a.size)
    taken = [0]

    def dim(depth):
        n = a.shape[depth]
        if depth == a.ndim - 1:
            out = []
            for _ in range(n):
                if taken[0] >= limit:
                    return " ".join(out) + ("..." if depth != 0 else "")
                out.append(_element(flat[taken[0]], v2=False))
                taken[0] += 1
            return " ".join(out)
        out = ""
        for _ in range(n):
            opened = taken[0] < limit
            inner = dim(depth + 1)
            out += f"[{inner}]" if opened else inner
        return out
    text = dim(0)
    return text + "..." if limit < a.size else text


def summarize_v2(value, summarize):
    """A tensor as `tf.print` shows it: NumPy's layout without commas, the first and last
    `summarize` entries of each dimension with "..." between (-1: every entry)."""
    a = np.asarray(value)
    if a.ndim == 0:
        return _as_text(a.item()) if a.dtype == object else _element(a[()], v2=True)

    def dim(b, depth):
        if not isinstance(b, np.ndarray):  # an element of a 1-D array
            return _element(b, v2=True)
        n = b.shape[0]
        if 0 <= summarize and 2 * summarize < n:
            index = list(range(summarize)) + [None] + list(range(n - summarize, n))
        else:
            index = list(range(n))
        parts = ["..." if i is None else dim(b[i], depth + 1) for i in index]
        sep = " " if b.ndim == 1 else "\n" * (b.ndim - 1) + " " * (depth + 1)
        return "[" + sep.join(parts) + "]"
    return dim(a, 0)
