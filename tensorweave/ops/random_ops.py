"""Random ops: normal, truncated normal, uniform (float and int) and shuffle.

Seeds follow TF1 (`op_builder.get_seed`): a graph seed and/or an op seed make an op draw the same
sequence of values in every session and every program run; with neither, each session draws
fresh entropy. Each op keeps one generator per session device (`Device.op_state`), so successive
runs of an op give new values while a new session replays the sequence from its start.
"""

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, get_seed, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_shape import TensorShape, unknown_shape
from tensorweave.ops import constant_op, math_ops

_MAXINT32 = 2**31 - 1
_FLOATS = (dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float64)


def _seed_attrs(seed):
    """TF1's (seed, seed2) attrs: (0, 0) means fresh entropy; an explicit (0, 0) is remapped."""
    seed1, seed2 = get_seed(seed)
    if seed1 is None:
        return {"seed": 0, "seed2": 0}
    if (seed1, seed2) == (0, 0):  # as TF: keep "seeded with zeros" distinct from "not seeded"
        seed2 = _MAXINT32
    return {"seed": int(seed1), "seed2": int(seed2)}


def _generator(op, device):
    """The op's generator on `device`: created once, then shared by every plan of the session."""
    seed, seed2 = op.get_attr("seed"), op.get_attr("seed2")

    def make():
        if seed == 0 and seed2 == 0:
            return np.random.Generator(np.random.PCG64())
        words = [seed & 0xFFFFFFFFFFFFFFFF, seed2 & 0xFFFFFFFFFFFFFFFF]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))
    return device.op_state(op, make)


def _shape_from_input(op, shape_t):
    static = constant_op.static_value(shape_t)
    if static is not None:
        return TensorShape([int(d) for d in np.asarray(static).reshape(-1)])
    if shape_t.shape.ndims is not None and shape_t.shape.ndims != 1:
        raise ValueError(f"{op.type}: shape must be a 1-D tensor, got shape {shape_t.shape}")
    n = shape_t.shape.as_list()[0] if shape_t.shape.ndims == 1 else None
    return unknown_shape(n)


def _check_shape_input(op, shape_t):
    if not shape_t.dtype.is_integer:
        raise TypeError(f"{op.type}: shape must be an int32 or int64 tensor, got {shape_t.dtype.name}")


def _float_sampler(type_name, draw):
    """Defines a float-valued random op of shape `shape`; `draw(gen, size, np_dtype)` samples it."""
    op_def = define_op(type_name, stateful=True, differentiable=False)

    @op_def.shape_fn
    def _shape(op):
        shape_t = op.inputs[0]
        _check_shape_input(op, shape_t)
        dtype = op.get_attr("dtype")
        if dtype not in _FLOATS:
            raise TypeError(f"{type_name} needs a floating dtype, got {dtype.name}")
        return [(dtype, _shape_from_input(op, shape_t))]

    @op_def.kernel
    def _kernel(op, device):
        gen = _generator(op, device)
        out = op.get_attr("dtype").as_numpy_dtype
        # NumPy's generators produce float32 and float64 directly; others go through float32.
        native = out if out in (np.float32, np.float64) else np.float32

        def sample(shape):
            values = draw(gen, tuple(int(d) for d in shape), native)
            return values if native is out else values.astype(out)
        return sample
    return op_def


def _draw_normal(gen, size, np_dtype):
    return gen.standard_normal(size, dtype=np_dtype)


def _draw_truncated(gen, size, np_dtype):
    """Standard normals with every value beyond two standard deviations redrawn, as TF does."""
    values = gen.standard_normal(size, dtype=np_dtype)
    flat = values.reshape(-1)
    bad = np.flatnonzero(np.abs(flat) > 2.0)
    while bad.size:
        redraw = gen.standard_normal(bad.size, dtype=np_dtype)
        flat[bad] = redraw
        bad = bad[np.abs(redraw) > 2.0]
    return values


def _draw_uniform(gen, size, np_dtype):
    return gen.random(size, dtype=np_dtype)


RandomStandardNormal = _float_sampler("RandomStandardNormal", _draw_normal)
TruncatedNormal = _float_sampler("TruncatedNormal", _draw_truncated)
RandomUniform = _float_sampler("RandomUniform", _draw_uniform)

RandomUniformInt = define_op("RandomUniformInt", stateful=True, differentiable=False)


@RandomUniformInt.shape_fn
def _uniform_int_shape(op):
    shape_t, minval, maxval = op.inputs
    _check_shape_input(op, shape_t)
    if minval.dtype is not maxval.dtype or not minval.dtype.is_integer:
        raise TypeError(f"RandomUniformInt: minval and maxval must be integers of one dtype, got "
                        f"{minval.dtype.name} and {maxval.dtype.name}")
    for t in (minval, maxval):
        if t.shape.ndims not in (None, 0):
            raise ValueError(f"RandomUniformInt: minval and maxval must be scalars, got shape {t.shape}")
    return [(minval.dtype, _shape_from_input(op, shape_t))]


@RandomUniformInt.kernel
def _uniform_int_kernel(op, device):
    gen = _generator(op, device)
    out = op.outputs[0].dtype.as_numpy_dtype

    def sample(shape, minval, maxval):
        if not minval < maxval:
            raise op.error(errors.InvalidArgumentError, f"Need minval < maxval, got {minval} >= {maxval}")
        return gen.integers(minval, maxval, size=tuple(int(d) for d in shape), dtype=out)
    return sample


RandomShuffle = define_op("RandomShuffle", stateful=True, differentiable=False)


@RandomShuffle.shape_fn
def _shuffle_shape(op):
    return [(op.inputs[0].dtype, op.inputs[0].shape)]


@RandomShuffle.kernel
def _shuffle_kernel(op, device):
    gen = _generator(op, device)

    def shuffle(value):
        value = np.asarray(value)
        if value.ndim == 0:
            return value.copy()
        return value[gen.permutation(value.shape[0])]  # fancy indexing: a fresh array
    return shuffle


# -- Python wrappers -------------------------------------------------------------------------------

def _shape_tensor(shape):
    """`shape` as a 1-D int tensor (a constant unless it already is a tensor)."""
    if isinstance(shape, Tensor):
        return shape
    if isinstance(shape, TensorShape):
        shape = shape.as_list()
    elif isinstance(shape, (int, np.integer)):
        shape = [shape]
    dims = [int(d) for d in np.asarray(shape, dtype=np.int64).reshape(-1)]
    dtype = dtypes.int64 if any(abs(d) > _MAXINT32 for d in dims) else dtypes.int32
    return constant_op.constant(dims, dtype=dtype, name="shape")


def _float_dtype(dtype, fn_name):
    dtype = dtypes.as_dtype(dtype)
    if dtype not in _FLOATS:
        raise ValueError(f"Invalid dtype {dtype.name} for {fn_name}: a floating dtype is needed")
    return dtype


def random_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """`tf.random_normal`: values drawn from a normal distribution with `mean` and `stddev`."""
    dtype = _float_dtype(dtype, "random_normal")
    with name_scope(name, "random_normal", [shape, mean, stddev]) as scope:
        shape_t = _shape_tensor(shape)
        mean_t = convert_to_tensor(mean, dtype=dtype, name="mean")
        stddev_t = convert_to_tensor(stddev, dtype=dtype, name="stddev")
        rnd = apply_op("RandomStandardNormal", [shape_t], {"dtype": dtype, **_seed_attrs(seed)},
                       name="RandomStandardNormal")
        return math_ops.add(math_ops.multiply(rnd, stddev_t, name="mul"), mean_t, name=scope)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """`tf.truncated_normal`: normal values, each redrawn until it lies within two standard
    deviations of the mean."""
    dtype = _float_dtype(dtype, "truncated_normal")
    with name_scope(name, "truncated_normal", [shape, mean, stddev]) as scope:
        shape_t = _shape_tensor(shape)
        mean_t = convert_to_tensor(mean, dtype=dtype, name="mean")
        stddev_t = convert_to_tensor(stddev, dtype=dtype, name="stddev")
        rnd = apply_op("TruncatedNormal", [shape_t], {"dtype": dtype, **_seed_attrs(seed)},
                       name="TruncatedNormal")
        return math_ops.add(math_ops.multiply(rnd, stddev_t, name="mul"), mean_t, name=scope)


def random_uniform(shape, minval=0, maxval=None, dtype=dtypes.float32, seed=None, name=None):
    """`tf.random_uniform`: values uniform in [minval, maxval); maxval defaults to 1 for floats and
    is required for integer dtypes."""
    dtype = dtypes.as_dtype(dtype)
    if dtype not in _FLOATS and dtype not in (dtypes.int32, dtypes.int64):
        raise ValueError(f"Invalid dtype {dtype.name} for random_uniform")
    if maxval is None:
        if dtype.is_integer:
            raise ValueError(f"Must specify maxval for integer dtype {dtype!r}")
        maxval = 1
    with name_scope(name, "random_uniform", [shape, minval, maxval]) as scope:
        shape_t = _shape_tensor(shape)
        min_t = convert_to_tensor(minval, dtype=dtype, name="min")
        max_t = convert_to_tensor(maxval, dtype=dtype, name="max")
        if dtype.is_integer:
            return apply_op("RandomUniformInt", [shape_t, min_t, max_t], _seed_attrs(seed), name=scope)
        rnd = apply_op("RandomUniform", [shape_t], {"dtype": dtype, **_seed_attrs(seed)},
                       name="RandomUniform")
        scaled = math_ops.multiply(rnd, math_ops.subtract(max_t, min_t, name="sub"), name="mul")
        return math_ops.add(scaled, min_t, name=scope)


def random_shuffle(value, seed=None, name=None):
    """`tf.random_shuffle`: `value` with its first dimension randomly permuted."""
    with name_scope(name, "RandomShuffle", [value]) as scope:
        value = convert_to_tensor(value, name="value")
        return apply_op("RandomShuffle", [value], _seed_attrs(seed), name=scope)


__all__ = ["random_normal", "truncated_normal", "random_uniform", "random_shuffle"]
