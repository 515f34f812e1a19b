"""Initializers (`tf.zeros_initializer`, `tf.glorot_uniform_initializer`, ...), as in TF1.

An initializer is called as `init(shape, dtype=None, partition_info=None)` and returns a graph
tensor holding the initial value; `tf.get_variable` calls it inside the variable's
`Initializer` name scope.
"""

import math

import numpy as np

from tensorweave.framework import dtypes
from tensorweave.framework.op_builder import apply_op
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, as_shape
from tensorweave.ops import array_ops, constant_op, math_ops, random_ops

# scipy.stats.truncnorm.std(a=-2, b=2, loc=0., scale=1.): the stddev of a normal truncated at 2 sd.
_TRUNCATED_NORMAL_STDDEV = .87962566103423978


def _shape_arg(shape):
    """`shape` for ops that also take a dynamic shape: a 1-D int Tensor as is, else a list."""
    return shape if isinstance(shape, Tensor) else _shape_list(shape)


def _shape_list(shape):
    if isinstance(shape, (int, np.integer)):
        return [int(shape)]
    shape = as_shape(shape)
    if not shape.is_fully_defined():
        raise ValueError(f"An initializer needs a fully defined shape, got {shape}")
    return shape.as_list()


def _assert_float_dtype(dtype):
    dtype = dtypes.as_dtype(dtype)
    if not dtype.is_floating:
        raise ValueError(f"Expected floating point type, got {dtype!r}.")
    return dtype


class Initializer:
    """Base class of the initializers: `__call__(shape, dtype=None, partition_info=None)`."""

    def __call__(self, shape, dtype=None, partition_info=None):
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments, so that `cls.from_config(init.get_config())` rebuilds it."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Zeros(Initializer):
    """`tf.zeros_initializer(dtype=tf.float32)`: all zeros."""

    def __init__(self, dtype=dtypes.float32):
        self.dtype = dtypes.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        return array_ops.zeros(_shape_arg(shape), dtypes.as_dtype(dtype or self.dtype))

    def get_config(self):
        return {"dtype": self.dtype.name}


class Ones(Initializer):
    """`tf.ones_initializer(dtype=tf.float32)`: all ones."""

    def __init__(self, dtype=dtypes.float32):
        self.dtype = dtypes.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        return array_ops.ones(_shape_arg(shape), dtypes.as_dtype(dtype or self.dtype))

    def get_config(self):
        return {"dtype": self.dtype.name}


class Constant(Initializer):
    """`tf.constant_initializer(value=0, dtype=tf.float32, verify_shape=False)`: `value` broadcast
    from a scalar, or a list/array whose last element fills any remaining entries (as TF1)."""

    def __init__(self, value=0, dtype=dtypes.float32, verify_shape=False):
        if not (np.isscalar(value) or isinstance(value, (list, tuple, np.ndarray))):
            raise TypeError(f"Invalid type for initial value: {type(value).__name__} (expected Python "
                            "scalar, list or tuple of values, or numpy.ndarray).")
        self.value = value
        self.dtype = dtypes.as_dtype(dtype)
        self._verify_shape = verify_shape

    def __call__(self, shape, dtype=None, partition_info=None, verify_shape=None):
        dtype = dtypes.as_dtype(dtype or self.dtype)
        verify = self._verify_shape if verify_shape is None else verify_shape
        dims = _shape_list(shape)
        flat = np.asarray(self.value, dtype=dtype.as_numpy_dtype).reshape(-1)
        count = int(np.prod(dims, dtype=np.int64))
        if verify and list(np.shape(self.value)) != dims:
            raise TypeError(f"Expected Tensor's shape: {tuple(dims)}, got {np.shape(self.value)}.")
        if flat.size > count:
            raise ValueError(f"Too many elements provided. Needed at most {count}, but received {flat.size}")
        if flat.size == 0 and count:
            raise ValueError("constant_initializer got an empty value for a non-empty shape")
        if flat.size < count:
            flat = np.concatenate([flat, np.full(count - flat.size, flat[-1], dtype=flat.dtype)])
        return constant_op.constant(flat.reshape(dims), dtype=dtype)

    def get_config(self):
        return {"value": self.value, "dtype": self.dtype.name, "verify_shape": self._verify_shape}


class RandomUniform(Initializer):
    """`tf.random_uniform_initializer(minval=0, maxval=None, seed=None, dtype=tf.float32)`."""

    def __init__(self, minval=0, maxval=None, seed=None, dtype=dtypes.float32):
        self.minval = minval
        self.maxval = maxval
        self.seed = seed
        self.dtype = dtypes.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.random_uniform(_shape_arg(shape), self.minval, self.maxval,
                                         dtypes.as_dtype(dtype or self.dtype), seed=self.seed)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed, "dtype": self.dtype.name}


class RandomNormal(Initializer):
    """`tf.random_normal_initializer(mean=0.0, stddev=1.0, seed=None, dtype=tf.float32)`."""

    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=dtypes.float32):
        self.mean = mean
        self.stddev = stddev
        self.seed = seed
        self.dtype = _assert_float_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.random_normal(_shape_arg(shape), self.mean, self.stddev,
                                        _assert_float_dtype(dtype or self.dtype), seed=self.seed)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed, "dtype": self.dtype.name}


class TruncatedNormal(RandomNormal):
    """`tf.truncated_normal_initializer(mean=0.0, stddev=1.0, seed=None, dtype=tf.float32)`:
    normal values redrawn when more than two standard deviations from the mean."""

    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.truncated_normal(_shape_arg(shape), self.mean, self.stddev,
                                           _assert_float_dtype(dtype or self.dtype), seed=self.seed)


def _compute_fans(shape):
    """(fan_in, fan_out) of a weight shape; conv kernels count their receptive field, as TF."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = 1
    for dim in shape[:-2]:
        receptive_field *= dim
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class VarianceScaling(Initializer):
    """`tf.variance_scaling_initializer(scale=1.0, mode='fan_in', distribution='truncated_normal',
    seed=None, dtype=tf.float32)`: values with variance `scale / n`, n being fan_in, fan_out or
    their average. 'normal' and 'truncated_normal' draw a normal truncated at two standard
    deviations (its stddev corrected so the variance is as asked); 'untruncated_normal' a plain
    normal; 'uniform' values in [-limit, limit] with limit = sqrt(3 * scale / n)."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("normal", "uniform", "truncated_normal", "untruncated_normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 dtype=dtypes.float32):
        if scale <= 0.:
            raise ValueError("`scale` must be positive float.")
        if mode not in self._MODES:
            raise ValueError(f"Invalid `mode` argument: {mode}")
        distribution = distribution.lower()
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"Invalid `distribution` argument: {distribution}")
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.seed = seed
        self.dtype = _assert_float_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        dtype = _assert_float_dtype(dtype or self.dtype)
        dims = _shape_list(shape)
        scale_shape = dims if partition_info is None else _shape_list(partition_info.full_shape)
        fan_in, fan_out = _compute_fans(scale_shape)
        scale = self.scale
        if self.mode == "fan_in":
            scale /= max(1., fan_in)
        elif self.mode == "fan_out":
            scale /= max(1., fan_out)
        else:
            scale /= max(1., (fan_in + fan_out) / 2.)
        if self.distribution in ("normal", "truncated_normal"):
            stddev = math.sqrt(scale) / _TRUNCATED_NORMAL_STDDEV
            return random_ops.truncated_normal(dims, 0.0, stddev, dtype, seed=self.seed)
        if self.distribution == "untruncated_normal":
            return random_ops.random_normal(dims, 0.0, math.sqrt(scale), dtype, seed=self.seed)
        limit = math.sqrt(3.0 * scale)
        return random_ops.random_uniform(dims, -limit, limit, dtype, seed=self.seed)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed, "dtype": self.dtype.name}


class GlorotUniform(VarianceScaling):
    """`tf.glorot_uniform_initializer(seed=None, dtype=tf.float32)` (Xavier uniform): uniform in
    [-limit, limit], limit = sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, seed=None, dtype=dtypes.float32):
        super().__init__(scale=1.0, mode="fan_avg", distribution="uniform", seed=seed, dtype=dtype)

    def get_config(self):
        return {"seed": self.seed, "dtype": self.dtype.name}


class GlorotNormal(VarianceScaling):
    """`tf.glorot_normal_initializer(seed=None, dtype=tf.float32)` (Xavier normal): a truncated
    normal with stddev sqrt(2 / (fan_in + fan_out))."""

    def __init__(self, seed=None, dtype=dtypes.float32):
        super().__init__(scale=1.0, mode="fan_avg", distribution="truncated_normal", seed=seed, dtype=dtype)

    def get_config(self):
        return {"seed": self.seed, "dtype": self.dtype.name}


# The orthogonal factor Q of a QR decomposition, its columns signed so that diag(R) > 0 (which
# makes Q uniformly distributed when the input is Gaussian), transposed if `transpose`. TF composes
# this from Qr, DiagPart, Sign and Transpose; one private op keeps the initializer independent of
# linear-algebra ops.
OrthogonalBasis = define_op("_OrthogonalBasis", differentiable=False)


@OrthogonalBasis.shape_fn
def _orthogonal_basis_shape(op):
    a = op.inputs[0]
    if a.shape.ndims != 2:
        raise ValueError(f"_OrthogonalBasis needs a matrix, got shape {a.shape}")
    rows, cols = a.shape.as_list()
    if rows is not None and cols is not None and rows < cols:
        raise ValueError(f"_OrthogonalBasis needs at least as many rows as columns, got {a.shape}")
    return [(a.dtype, TensorShape([cols, rows]) if op.get_attr("transpose") else a.shape)]


@OrthogonalBasis.kernel
def _orthogonal_basis_kernel(op, device):
    transpose = op.get_attr("transpose")

    def basis(a):
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diagonal(r))
        q = q.astype(a.dtype, copy=False)
        return np.ascontiguousarray(q.T) if transpose else q
    return basis


class Orthogonal(Initializer):
    """`tf.orthogonal_initializer(gain=1.0, seed=None, dtype=tf.float32)`: a random orthogonal
    matrix (rows or columns orthonormal), reshaped to `shape` and times `gain`; the shape is
    flattened to (prod(shape[:-1]), shape[-1]) and must have at least two dimensions."""

    def __init__(self, gain=1.0, seed=None, dtype=dtypes.float32):
        self.gain = gain
        self.seed = seed
        self.dtype = _assert_float_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        dtype = _assert_float_dtype(dtype or self.dtype)
        dims = _shape_list(shape)
        if len(dims) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional")
        num_rows = int(np.prod(dims[:-1]))
        num_cols = dims[-1]
        flat_shape = (num_cols, num_rows) if num_rows < num_cols else (num_rows, num_cols)
        a = random_ops.random_normal(flat_shape, dtype=dtype, seed=self.seed)
        q = apply_op("_OrthogonalBasis", [a], {"transpose": num_rows < num_cols}, name="OrthogonalBasis")
        return math_ops.multiply(constant_op.constant(self.gain, dtype=dtype), array_ops.reshape(q, dims))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed, "dtype": self.dtype.name}


# TF1's public names.
zeros_initializer = Zeros
ones_initializer = Ones
constant_initializer = Constant
random_uniform_initializer = RandomUniform
random_normal_initializer = RandomNormal
truncated_normal_initializer = TruncatedNormal
variance_scaling_initializer = VarianceScaling
glorot_uniform_initializer = GlorotUniform
glorot_normal_initializer = GlorotNormal
orthogonal_initializer = Orthogonal


def he_normal(seed=None):
    """He normal: a truncated normal with stddev sqrt(2 / fan_in)."""
    return VarianceScaling(scale=2., mode="fan_in", distribution="truncated_normal", seed=seed)


def he_uniform(seed=None):
    """He uniform: uniform in [-limit, limit], limit = sqrt(6 / fan_in)."""
    return VarianceScaling(scale=2., mode="fan_in", distribution="uniform", seed=seed)


def lecun_normal(seed=None):
    """LeCun normal: a truncated normal with stddev sqrt(1 / fan_in)."""
    return VarianceScaling(scale=1., mode="fan_in", distribution="truncated_normal", seed=seed)


def lecun_uniform(seed=None):
    """LeCun uniform: uniform in [-limit, limit], limit = sqrt(3 / fan_in)."""
    return VarianceScaling(scale=1., mode="fan_in", distribution="uniform", seed=seed)


__all__ = ["Initializer", "zeros_initializer", "ones_initializer", "constant_initializer",
           "random_uniform_initializer", "random_normal_initializer", "truncated_normal_initializer",
           "variance_scaling_initializer", "glorot_uniform_initializer", "glorot_normal_initializer",
           "orthogonal_initializer", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform"]
