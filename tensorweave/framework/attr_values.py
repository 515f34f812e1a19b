"""Op attrs as TensorFlow's `AttrValue` protobufs, and back.

An attr is a DType, TensorShape, ndarray, bool, int, float or string, or a list of one of those.
Attr kinds are named as in TF's op schemas ("type", "list(int)", ...).
"""

import numpy as np
from tensorboard.compat.proto import attr_value_pb2

from tensorweave.framework import dtypes
from tensorweave.framework.tensor_protos import (MalformedProto, dtype_of_enum, make_tensor_proto,
                                                 ndarray_of, shape_of_proto)
from tensorweave.framework.tensor_shape import TensorShape

# The AttrValue field holding each kind of TF schema attr.
_FIELD_OF_KIND = {"string": "s", "int": "i", "float": "f", "bool": "b", "type": "type", "shape": "shape",
                  "tensor": "tensor", "func": "func"}
_KIND_OF_FIELD = {field: kind for kind, field in _FIELD_OF_KIND.items()}
_LIST_FIELDS = ("s", "i", "f", "b", "type", "shape", "tensor", "func")

# String attrs kept as bytes on import (TF's colocation groups); other strings become `str`.
_BYTES_ATTRS = frozenset(("_class",))


def attr_value_of(value):
    """A Python attr value (DType, TensorShape, ndarray, bool/int/float/str/bytes or a list of
    one of those) as an `AttrValue`."""
    out = attr_value_pb2.AttrValue()
    if value is None:
        return out
    if isinstance(value, (list, tuple)):
        out.list.SetInParent()
        if not value:
            return out
        kinds = {_scalar_kind(v) for v in value}
        if len(kinds) != 1:
            raise TypeError(f"a list attr must hold values of one kind, got {sorted(kinds)}")
        kind = kinds.pop()
        field = getattr(out.list, kind)
        for v in value:
            if kind in ("shape", "tensor"):
                field.add().CopyFrom(_scalar_field(kind, v))
            else:
                field.append(_scalar_field(kind, v))
        return out
    kind = _scalar_kind(value)
    if kind in ("shape", "tensor"):
        getattr(out, kind).CopyFrom(_scalar_field(kind, value))
    else:
        setattr(out, kind, _scalar_field(kind, value))
    return out


def _scalar_kind(value):
    if isinstance(value, dtypes.DType):
        return "type"
    if isinstance(value, TensorShape):
        return "shape"
    if isinstance(value, np.ndarray):
        return "tensor"
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    if isinstance(value, (float, np.floating)):
        return "f"
    if isinstance(value, (str, bytes)):
        return "s"
    raise TypeError(f"unsupported attr value of type {type(value).__name__}")


def _scalar_field(kind, value):
    if kind == "type":
        return value.as_datatype_enum
    if kind == "shape":
        return value.as_proto()
    if kind == "tensor":
        return make_tensor_proto(value)
    if kind == "b":
        return bool(value)
    if kind == "i":
        return int(value)
    if kind == "f":
        return float(value)
    return value.encode() if isinstance(value, str) else bytes(value)


def has_kind(av, kind):
    """Whether AttrValue `av` holds an attr of TF schema kind `kind` ("int", "list(type)", ...);
    an empty list is a list of any kind."""
    if kind.startswith("list(") and kind.endswith(")"):
        if av.WhichOneof("value") != "list":
            return False
        field = _FIELD_OF_KIND[kind[5:-1]]
        return all(f == field or not len(getattr(av.list, f)) for f in _LIST_FIELDS)
    return av.WhichOneof("value") == _FIELD_OF_KIND[kind]


def kind_of(av):
    """The TF schema kind of what AttrValue `av` holds ("string", "list(int)", "list", "nothing")."""
    field = av.WhichOneof("value")
    if field is None:
        return "nothing"
    if field != "list":
        return _KIND_OF_FIELD.get(field, field)
    fields = [f for f in _LIST_FIELDS if len(getattr(av.list, f))]
    return f"list({_KIND_OF_FIELD[fields[0]]})" if len(fields) == 1 else "list"


def python_attr_value(name, av):
    """The Python value of AttrValue `av` (the inverse of `attr_value_of`). Raises
    `MalformedProto` for what TensorWeave cannot hold (functions, lists of mixed kinds)."""
    kind = av.WhichOneof("value")
    if kind is None:
        return None
    if kind == "list":
        fields = [f for f in _LIST_FIELDS if len(getattr(av.list, f))]
        if len(fields) > 1:
            raise MalformedProto(f"attr {name!r} is a list mixing {fields}")
        if not fields:
            return []
        return [_python_scalar(name, fields[0], v) for v in getattr(av.list, fields[0])]
    return _python_scalar(name, kind, getattr(av, kind))


def _python_scalar(name, kind, v):
    if kind == "s":
        if name in _BYTES_ATTRS:
            return bytes(v)
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return bytes(v)
    if kind == "i":
        return int(v)
    if kind == "f":
        return float(v)
    if kind == "b":
        return bool(v)
    if kind == "type":
        return dtype_of_enum(v)
    if kind == "shape":
        return shape_of_proto(v)
    if kind == "tensor":
        return ndarray_of(v)
    raise MalformedProto(f"attr {name!r} holds a {kind}, which TensorWeave does not support")
