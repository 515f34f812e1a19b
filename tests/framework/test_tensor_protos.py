"""TensorProto conversions: TF's typed value fields, repetition of the last value, malformed protos."""

import ml_dtypes
import numpy as np
import pytest
from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

from tensorweave.framework.tensor_protos import make_ndarray, make_tensor_proto


def test_tensor_protos_in_tf_typed_fields():
    """TF writes small constants in typed fields and repeats the last value to fill the shape."""
    def proto(dtype, dims, **fields):
        return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]), **fields)
    cases = [
        (proto(types_pb2.DT_FLOAT, [2, 2], float_val=[0.5]), np.full((2, 2), 0.5, np.float32)),
        (proto(types_pb2.DT_FLOAT, [3], float_val=[1, 2]), np.array([1, 2, 2], np.float32)),
        (proto(types_pb2.DT_FLOAT, [2]), np.zeros(2, np.float32)),
        (proto(types_pb2.DT_INT32, [], int_val=[42]), np.array(42, np.int32)),
        (proto(types_pb2.DT_INT64, [2], int64_val=[-1, 2**40]), np.array([-1, 2**40], np.int64)),
        (proto(types_pb2.DT_BOOL, [2], bool_val=[True, False]), np.array([True, False])),
        (proto(types_pb2.DT_HALF, [1], half_val=[np.float16(1.5).view(np.uint16)]), np.array([1.5], np.float16)),
        (proto(types_pb2.DT_BFLOAT16, [1], half_val=[int(np.array(2.0, ml_dtypes.bfloat16).view(np.uint16))]),
         np.array([2.0], ml_dtypes.bfloat16)),
        (proto(types_pb2.DT_COMPLEX64, [1], scomplex_val=[1, -2]), np.array([1 - 2j], np.complex64)),
        (proto(types_pb2.DT_DOUBLE, [1], double_val=[0.1]), np.array([0.1])),
        (proto(types_pb2.DT_STRING, [2], string_val=[b"a", b"b"]), np.array([b"a", b"b"], object)),
        (proto(types_pb2.DT_UINT8, [2], int_val=[255, 1]), np.array([255, 1], np.uint8)),
    ]
    for p, expected in cases:
        got = make_ndarray(p)
        assert got.dtype == expected.dtype and got.shape == expected.shape, p
        assert got.tolist() == expected.tolist()
    with pytest.raises(ValueError, match="3 values"):
        make_ndarray(proto(types_pb2.DT_FLOAT, [2], float_val=[1, 2, 3]))
    with pytest.raises(ValueError, match="fully defined"):
        make_ndarray(proto(types_pb2.DT_FLOAT, [-1], float_val=[1]))


def test_make_tensor_proto_writes_raw_bytes_and_strings():
    proto = make_tensor_proto([[1, 2], [3, 4]], dtype="int64")
    assert proto.dtype == types_pb2.DT_INT64 and len(proto.tensor_content) == 32
    assert make_ndarray(proto).tolist() == [[1, 2], [3, 4]]
    proto = make_tensor_proto([b"a", b"\xff"])
    assert list(proto.string_val) == [b"a", b"\xff"] and make_ndarray(proto).tolist() == [b"a", b"\xff"]
    assert make_ndarray(make_tensor_proto(1.5, shape=[2, 2])).tolist() == [[1.5, 1.5], [1.5, 1.5]]
