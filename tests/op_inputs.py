"""Inputs for op tests: random values away from non-differentiable points, read-only copies,
and NumPy references that keep the op's dtype."""

import numpy as np

FLOATS = (np.float32, np.float64)
INTS = (np.int32, np.int64)


def random_values(rng, shape, dtype, domain):
    """Random inputs inside a domain chosen away from each op's non-differentiable points."""
    if domain == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.dtype(dtype).kind == "i":
        low, high = {"any": (-6, 7), "nonzero": (1, 7), "positive": (1, 4), "exponent": (0, 4)}[domain]
        v = rng.integers(low, high, size=shape)
        if domain == "nonzero":
            v = v * rng.choice([-1, 1], size=shape)
        return v.astype(dtype)
    if domain == "any":
        v = rng.uniform(-2, 2, size=shape)
    elif domain == "nonzero":
        v = rng.uniform(0.5, 2, size=shape) * rng.choice([-1, 1], size=shape)
    elif domain == "positive":
        v = rng.uniform(0.5, 2, size=shape)
    elif domain == "exponent":
        v = rng.uniform(-2, 2, size=shape)
    else:
        raise ValueError(domain)
    return np.asarray(v, dtype=dtype)


def read_only(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False  # kernels must never write into their inputs
    return a


def typed(fn):
    """A NumPy reference whose result keeps the first input's dtype (as the op's declared dtype)."""
    return lambda *xs: np.asarray(fn(*xs)).astype(xs[0].dtype)
