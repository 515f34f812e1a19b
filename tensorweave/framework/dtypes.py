"""Tensor element types, numbered as TensorFlow's `DataType` enum so GraphDefs interoperate."""

import builtins

import ml_dtypes
import numpy as np


class DType:
    """An element type: a name, its `DataType` enum value and its NumPy dtype."""

    __slots__ = ("name", "as_datatype_enum", "as_numpy_dtype", "_np")

    def __init__(self, name, enum, np_type):
        self.name = name
        self.as_datatype_enum = enum
        self.as_numpy_dtype = np_type
        self._np = np.dtype(np_type) if np_type is not object else np.dtype(object)

    @property
    def base_dtype(self):
        return self

    @property
    def real_dtype(self):
        return {complex64: float32, complex128: float64}.get(self, self)

    @property
    def is_floating(self):
        return self in _FLOATING

    @property
    def is_integer(self):
        return self in _INTEGER

    @property
    def is_unsigned(self):
        return self in (uint8, uint16, uint32, uint64)

    @property
    def is_complex(self):
        return self in (complex64, complex128)

    @property
    def is_bool(self):
        return self is bool

    @property
    def is_numpy_compatible(self):
        return True

    @property
    def size(self):
        return self._np.itemsize

    @property
    def min(self):
        if self.is_floating:
            return float(ml_dtypes.finfo(self._np).min) if self in (bfloat16,) else float(np.finfo(self._np).min)
        if self.is_integer:
            return int(np.iinfo(self._np).min)
        raise TypeError(f"Cannot find minimum value of {self.name}.")

    @property
    def max(self):
        if self.is_floating:
            return float(ml_dtypes.finfo(self._np).max) if self in (bfloat16,) else float(np.finfo(self._np).max)
        if self.is_integer:
            return int(np.iinfo(self._np).max)
        raise TypeError(f"Cannot find maximum value of {self.name}.")

    def is_compatible_with(self, other):
        return self is as_dtype(other)

    def __repr__(self):
        return f"tf.{self.name}"

    def __reduce__(self):
        return as_dtype, (self.name,)


float16 = DType("float16", 19, np.float16)
half = float16
float32 = DType("float32", 1, np.float32)
float64 = DType("float64", 2, np.float64)
double = float64
bfloat16 = DType("bfloat16", 14, ml_dtypes.bfloat16)
int8 = DType("int8", 6, np.int8)
int16 = DType("int16", 5, np.int16)
int32 = DType("int32", 3, np.int32)
int64 = DType("int64", 9, np.int64)
uint8 = DType("uint8", 4, np.uint8)
uint16 = DType("uint16", 17, np.uint16)
uint32 = DType("uint32", 22, np.uint32)
uint64 = DType("uint64", 23, np.uint64)
bool = DType("bool", 10, np.bool_)  # noqa: A001 - TF's public name
string = DType("string", 7, object)
complex64 = DType("complex64", 8, np.complex64)
complex128 = DType("complex128", 18, np.complex128)

_ALL = (float16, float32, float64, bfloat16, int8, int16, int32, int64, uint8, uint16, uint32,
        uint64, bool, string, complex64, complex128)
_FLOATING = frozenset((float16, float32, float64, bfloat16))
_INTEGER = frozenset((int8, int16, int32, int64, uint8, uint16, uint32, uint64))
_BY_NAME = {d.name: d for d in _ALL}
_BY_NAME.update(half=float16, double=float64)
_BY_ENUM = {d.as_datatype_enum: d for d in _ALL}
_BY_NP = {d._np: d for d in _ALL if d is not string}


def as_dtype(type_value):
    """Converts a DType, NumPy dtype or type, `DataType` enum value or name to a `DType`."""
    if isinstance(type_value, DType):
        return type_value
    if isinstance(type_value, str):
        try:
            return _BY_NAME[type_value]
        except KeyError:
            raise TypeError(f"Cannot convert value {type_value!r} to a TensorWeave DType.") from None
    if isinstance(type_value, int) and not isinstance(type_value, np.generic) and type_value in _BY_ENUM:
        return _BY_ENUM[type_value]
    if type_value in (str, bytes):
        return string
    if type_value is float:
        return float32
    if type_value is int:
        return int32
    try:
        npd = np.dtype(type_value)
    except TypeError:
        raise TypeError(f"Cannot convert value {type_value!r} to a TensorWeave DType.") from None
    if npd.kind in "SUO":
        return string
    try:
        return _BY_NP[npd]
    except KeyError:
        raise TypeError(f"Cannot convert value {type_value!r} to a TensorWeave DType.") from None


def dtype_of_value(value):
    """The DType TF1 infers for a Python or NumPy value (Python floats are float32, ints int32)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return as_dtype(value.dtype)
    if isinstance(value, builtins.bool):
        return bool
    if isinstance(value, int):
        return int32 if -2**31 <= value < 2**31 else int64
    if isinstance(value, float):
        return float32
    if isinstance(value, complex):
        return complex64
    if isinstance(value, (str, bytes)):
        return string
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            return float32
        if arr.dtype.kind in "iu":
            return int32 if arr.size == 0 or (arr.min() >= -2**31 and arr.max() < 2**31) else int64
        if arr.dtype.kind == "c":
            return complex64
        return as_dtype(arr.dtype)
    raise TypeError(f"Cannot infer a dtype for value of type {type(value).__name__}.")

