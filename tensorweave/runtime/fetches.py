"""Turning `Session.run` arguments into flat lists, and results back into the caller's structure."""

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.indexed_slices import IndexedSlices, IndexedSlicesValue
from tensorweave.framework.operation import Operation
from tensorweave.framework.tensor import Tensor


def flatten_fetches(graph, fetches):
    """(elements, rebuild): the graph elements named by any nesting of lists, tuples,
    namedtuples and dicts, and a function mapping their values back into that nesting."""
    elements = []

    def walk(fetch):
        if isinstance(fetch, (Tensor, Operation, str)) or (
                hasattr(fetch, "_as_graph_element") and not isinstance(fetch, (list, tuple, dict))):
            try:
                element = graph.as_graph_element(fetch)
            except (KeyError, ValueError, TypeError) as e:
                raise type(e)(f"Fetch argument {fetch!r} cannot be interpreted as a Tensor. ({e})") from None
            index = len(elements)
            elements.append(element)
            if isinstance(element, Operation):
                return lambda values: None
            return lambda values: values[index]
        if isinstance(fetch, IndexedSlices):
            parts = [walk(fetch.values), walk(fetch.indices),
                     walk(fetch.dense_shape) if fetch.dense_shape is not None else (lambda values: None)]
            return lambda values: IndexedSlicesValue(*(p(values) for p in parts))
        if fetch is None:
            raise TypeError("Fetch argument None has invalid type <class 'NoneType'>")
        if isinstance(fetch, dict):
            parts = [(k, walk(v)) for k, v in fetch.items()]
            kind = type(fetch)
            return lambda values: kind((k, p(values)) for k, p in parts)
        if isinstance(fetch, (list, tuple)):
            parts = [walk(f) for f in fetch]
            if hasattr(fetch, "_fields"):  # namedtuple
                kind = type(fetch)
                return lambda values: kind(*(p(values) for p in parts))
            if isinstance(fetch, tuple):
                return lambda values: tuple(p(values) for p in parts)
            return lambda values: [p(values) for p in parts]
        raise TypeError(f"Fetch argument {fetch!r} has invalid type {type(fetch).__name__}; expected a "
                        "Tensor, Operation, name, or a list/tuple/dict/namedtuple of them")

    rebuild = walk(fetches)
    return elements, rebuild


def feed_value(tensor, value):
    """`value` as an array for `tensor`, checked against its dtype and static shape."""
    dtype = tensor.dtype
    if isinstance(value, Tensor):
        raise TypeError(f"The value of a feed cannot be a tf.Tensor object ({value.name}). Acceptable feed "
                        "values include Python scalars, strings, lists, numpy ndarrays.")
    want = dtype.as_numpy_dtype
    if isinstance(value, np.ndarray) and value.dtype == want:
        array = value
    else:
        source = np.asarray(value)
        if not _castable(source.dtype, dtype):
            raise errors.FeedError(
                None, None, f"Cannot feed value of dtype {source.dtype} for Tensor {tensor.name!r}, which "
                f"has dtype {dtype.name} (created at {tensor.op.creation_site})")
        array = source.astype(want, copy=False) if dtype is not dtypes.string else source.astype(object)
    if not tensor.shape.is_compatible_with(array.shape):
        raise errors.FeedError(
            None, None, f"Cannot feed value of shape {array.shape} for Tensor {tensor.name!r}, which has "
            f"shape {tensor.shape} (created at {tensor.op.creation_site})")
    return array


def _castable(source, dtype):
    kind = source.kind
    if dtype is dtypes.string:
        return kind in "SUO"
    if dtype is dtypes.bool:
        return kind == "b"
    if dtype.is_integer:
        return kind in "iub"
    if dtype.is_floating:
        return kind in "iubf" or source == dtypes.bfloat16.as_numpy_dtype
    if dtype.is_complex:
        return kind in "iubfc"
    return False


def fetch_result(value):
    """The value handed back to the user: scalars as NumPy scalars, never a variable's storage,
    and strings as `bytes` (utf-8), as TF1 returns them (ported code calls `.decode()`)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OU":
            return _as_bytes(value)
        if value.ndim == 0:
            return value[()]
        if not value.flags.writeable:
            return value.copy()
    elif isinstance(value, str):
        return value.encode("utf-8")
    return value


def _as_bytes(array):
    if array.dtype.kind == "U" or any(isinstance(x, str) for x in array.flat):
        out = np.empty(array.shape, dtype=object)
        for index, x in np.ndenumerate(array):
            out[index] = x.encode("utf-8") if isinstance(x, str) else x
        array = out
    elif not array.flags.writeable:
        array = array.copy()
    return array[()] if array.ndim == 0 else array
