"""AttrValue conversions: every kind of attr value round-trips, and kinds are named as TF names them."""

import ml_dtypes
import numpy as np
import pytest
from tensorboard.compat.proto import attr_value_pb2

import tensorweave as tf
from tensorweave.framework.attr_values import attr_value_of, has_kind, kind_of, python_attr_value

ATTR_VALUES = [
    tf.float32, tf.bfloat16, tf.string, tf.TensorShape([2, None]), tf.TensorShape(None), tf.TensorShape([]),
    np.arange(6, dtype=np.float32).reshape(2, 3), np.array(7, np.int64), np.array([True, False]),
    np.array([1.5, -2.25], ml_dtypes.bfloat16), np.array([0.5, 1e-3], np.float16),
    np.array([1 + 2j, -3j], np.complex128), np.array([[1 + 2j]], np.complex64), np.zeros((0, 3), np.int32),
    np.array([np.iinfo(np.uint64).max], np.uint64), np.array([-128, 127], np.int8),
    np.array([b"ab", b"\xff\x00"], dtype=object),
    True, False, 0, -5, 2**62, 0.25, "NHWC", "", b"\xff\xfe", [], [1, 2, 3], [0.5, 1.5], [True, False],
    ["VALID", "SAME"], [tf.int32, tf.float64], [tf.TensorShape([1]), tf.TensorShape(None)],
    [np.ones(2, np.float32), np.zeros((), np.int64)], None,
]


@pytest.mark.parametrize("value", ATTR_VALUES, ids=lambda v: type(v).__name__)
def test_attr_values_round_trip(value):
    av = attr_value_pb2.AttrValue.FromString(attr_value_of(value).SerializeToString())
    back = python_attr_value("any", av)
    _assert_same_attr(back, value)


def _assert_same_attr(back, value):
    if isinstance(value, list):
        assert isinstance(back, list) and len(back) == len(value)
        for b, v in zip(back, value, strict=True):
            _assert_same_attr(b, v)
    elif isinstance(value, np.ndarray):
        assert isinstance(back, np.ndarray) and back.dtype == value.dtype and back.shape == value.shape
        assert not back.flags.writeable
        if value.dtype == object:
            assert back.tolist() == value.tolist()
        else:
            assert back.tobytes() == value.tobytes()
    elif isinstance(value, tf.TensorShape):
        assert isinstance(back, tf.TensorShape) and back.as_tuple() == value.as_tuple()
    else:
        assert type(back) is type(value) and back == value


def test_colocation_attr_stays_bytes_and_mixed_lists_are_rejected():
    av = attr_value_of([b"loc:@W"])
    assert python_attr_value("_class", av) == [b"loc:@W"]
    assert python_attr_value("padding", attr_value_of(b"SAME")) == "SAME"
    with pytest.raises(TypeError):
        attr_value_of([1, "a"])
    with pytest.raises(TypeError):
        attr_value_of({"a": 1})


def test_kinds_are_checked_and_named_as_tf_schemas_name_them():
    cases = [(tf.int32, "type"), ([tf.int32, tf.float32], "list(type)"), (3, "int"), (True, "bool"), (0.5, "float"),
             ("SAME", "string"), ([1, 2], "list(int)"), ([b"loc:@W"], "list(string)"),
             (tf.TensorShape([2]), "shape"), (np.zeros(2, np.float32), "tensor")]
    for value, kind in cases:
        av = attr_value_of(value)
        assert kind_of(av) == kind and has_kind(av, kind), value
        assert not has_kind(av, "bool" if kind != "bool" else "int")
    assert has_kind(attr_value_of([]), "list(int)") and has_kind(attr_value_of([]), "list(type)")
    assert kind_of(attr_value_of([])) == "list" and kind_of(attr_value_pb2.AttrValue()) == "nothing"
    assert not has_kind(attr_value_of([1, 2]), "list(type)") and not has_kind(attr_value_of(tf.int32), "list(type)")
