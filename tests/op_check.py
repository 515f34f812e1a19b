"""The one shared helper for op tests: forward values against NumPy, gradients against central
finite differences.

    check_forward(lambda x, y: tf.add(x, y), [a, b], np.add)
    check_gradient(lambda x, y: x * y, [a, b])          # inputs float64 for accurate differences
    check_op(lambda x: tf.tanh(x), [a], np.tanh)        # both

`build` receives one placeholder per input array (same dtype and shape) and returns a tensor.
"""

import numpy as np

import tensorweave as tf


def _placeholders(arrays):
    return [tf.placeholder(tf.as_dtype(a.dtype), a.shape, name=f"in{i}") for i, a in enumerate(arrays)]


def run_op(build, arrays):
    """The value of `build(*placeholders)` fed with `arrays`, in a fresh graph and session."""
    arrays = [np.asarray(a) for a in arrays]
    with tf.Graph().as_default():
        phs = _placeholders(arrays)
        out = build(*phs)
        with tf.Session() as sess:
            return sess.run(out, dict(zip(phs, arrays, strict=True)))


def check_forward(build, arrays, reference, rtol=1e-5, atol=1e-6, check_dtype=True):
    """Asserts that the op's value equals `reference(*arrays)` (NumPy) in value, shape and dtype."""
    arrays = [np.asarray(a) for a in arrays]
    got = run_op(build, arrays)
    want = reference(*arrays)
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), (got, want)
        for g, w in zip(got, want, strict=True):
            _assert_close(g, w, rtol, atol, check_dtype)
    else:
        _assert_close(got, want, rtol, atol, check_dtype)
    return got


def _assert_close(got, want, rtol, atol, check_dtype):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != expected {want.shape}"
    if check_dtype:
        assert got.dtype == want.dtype, f"dtype {got.dtype} != expected {want.dtype}"
    if got.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, want)


def check_gradient(build, arrays, rtol=1e-4, atol=1e-6, seed=0, wrt=None):
    """Asserts tf.gradients matches central finite differences (computed in float64).

    `wrt`: indices of the inputs to check (default: all float inputs).
    """
    arrays = [np.asarray(a) for a in arrays]
    float_arrays = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    out_shape = np.shape(run_op(build, float_arrays))
    weights = np.random.default_rng(seed).uniform(0.5, 1.5, size=out_shape)
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else list(wrt)
    symbolic = _symbolic(build, float_arrays, weights)
    numeric = _numeric(build, float_arrays, weights, wrt)
    for i in wrt:
        np.testing.assert_allclose(symbolic[i], numeric[i], rtol=rtol, atol=atol,
                                   err_msg=f"gradient with respect to input {i}")


def _symbolic(build, arrays, weights):
    with tf.Graph().as_default():
        phs = _placeholders(arrays)
        out = build(*phs)
        loss = tf.reduce_sum(out * tf.constant(weights, dtype=out.dtype))
        float_phs = [p for p in phs if p.dtype.is_floating]
        grads = tf.gradients(loss, float_phs)
        with tf.Session() as sess:
            fetch = [g if g is not None else tf.zeros_like(p) for g, p in zip(grads, float_phs, strict=True)]
            values = sess.run(fetch, dict(zip(phs, arrays, strict=True)))
    it = iter(values)
    return [next(it) if p.dtype.kind == "f" else None for p in arrays]


def _numeric(build, arrays, weights, wrt, eps=1e-6):
    with tf.Graph().as_default():
        phs = _placeholders(arrays)
        out = build(*phs)
        with tf.Session() as sess:
            def f(values):
                y = sess.run(out, dict(zip(phs, values, strict=True)))
                return float(np.sum(np.asarray(y, dtype=np.float64) * weights))
            grads = [None] * len(arrays)
            for i in wrt:
                a = arrays[i]
                g = np.zeros(a.shape, dtype=np.float64)
                flat = g.reshape(-1)
                for j in range(a.size):
                    plus = [v.copy() for v in arrays]
                    minus = [v.copy() for v in arrays]
                    plus[i].reshape(-1)[j] += eps
                    minus[i].reshape(-1)[j] -= eps
                    flat[j] = (f(plus) - f(minus)) / (2 * eps)
                grads[i] = g
            return grads


def check_op(build, arrays, reference, grad=True, rtol=1e-5, atol=1e-6, grad_rtol=1e-4, grad_atol=1e-6):
    """check_forward, then (for float inputs, if `grad`) check_gradient."""
    check_forward(build, arrays, reference, rtol=rtol, atol=atol)
    if grad and any(np.asarray(a).dtype.kind == "f" for a in arrays):
        check_gradient(build, arrays, rtol=grad_rtol, atol=grad_atol)
