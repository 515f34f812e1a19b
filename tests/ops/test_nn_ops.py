"""`tf.nn`: forward values against NumPy references written here (convolution and pooling by
explicit loops), gradients against central differences, static shapes, cross-entropy forms
against each other, top-k/in-top-k semantics, dropout statistics and the TF1 call conventions."""

import math

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.ops import conv_ops, sliding_window
from tests.op_check import check_forward, check_gradient, check_op, run_op

RNG = np.random.default_rng(1234)


def _away_from(values, points, margin=0.05):
    """Moves values within `margin` of a kink (0, 6, ...) away from it, for finite differences."""
    values = np.array(values, dtype=np.float64)
    for p in points:
        close = np.abs(values - p) < margin
        values[close] = p + np.where(values[close] >= p, margin, -margin) * 2
    return values


# -- references ------------------------------------------------------------------------------------

def _out_size(size, k, stride, padding):
    if padding == "SAME":
        out = math.ceil(size / stride)
        pad = max((out - 1) * stride + k - size, 0)
        return out, pad // 2  # the odd padding element goes after (bottom/right)
    return math.ceil((size - k + 1) / stride), 0


def conv2d_ref(x, w, stride, padding):
    n, h, wd, c = x.shape
    kh, kw, _, co = w.shape
    oh, pt = _out_size(h, kh, stride, padding)
    ow, pl = _out_size(wd, kw, stride, padding)
    out = np.zeros((n, oh, ow, co), dtype=np.result_type(x, w))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for di in range(kh):
                    for dj in range(kw):
                        r, q = i * stride + di - pt, j * stride + dj - pl
                        if 0 <= r < h and 0 <= q < wd:
                            out[b, i, j] += x[b, r, q] @ w[di, dj]
    return out


def pool_ref(x, k, stride, padding, kind):
    n, h, wd, c = x.shape
    oh, pt = _out_size(h, k, stride, padding)
    ow, pl = _out_size(wd, k, stride, padding)
    out = np.zeros((n, oh, ow, c), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, q0 = i * stride - pt, j * stride - pl
            window = x[:, max(r0, 0):r0 + k, max(q0, 0):q0 + k, :]
            out[:, i, j] = window.max(axis=(1, 2)) if kind == "max" else window.mean(axis=(1, 2))
    return out


def log_softmax_ref(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# -- activations ---------------------------------------------------------------------------------

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805

ACTIVATIONS = [
    ("relu", tf.nn.relu, lambda x: np.maximum(x, 0), (0,)),
    ("relu6", tf.nn.relu6, lambda x: np.clip(x, 0, 6), (0, 6)),
    ("elu", tf.nn.elu, lambda x: np.where(x < 0, np.expm1(x), x), (0,)),
    ("selu", tf.nn.selu, lambda x: SELU_SCALE * np.where(x < 0, SELU_ALPHA * np.expm1(x), x), (0,)),
    ("softplus", tf.nn.softplus, lambda x: np.log1p(np.exp(x)), ()),
    ("softsign", tf.nn.softsign, lambda x: x / (1 + np.abs(x)), ()),
    ("leaky_relu", lambda x: tf.nn.leaky_relu(x, alpha=0.1), lambda x: np.where(x > 0, x, 0.1 * x), (0,)),
    ("leaky_relu_default", tf.nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x), (0,)),
]


@pytest.mark.parametrize("name,fn,ref,kinks", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_values_and_gradients(name, fn, ref, kinks):
    x = _away_from(RNG.uniform(-8, 8, size=(3, 5)), kinks)
    check_forward(fn, [x.astype(np.float32)], lambda v: ref(v.astype(np.float64)).astype(np.float32), rtol=1e-5)
    check_op(fn, [x], ref)


@pytest.mark.parametrize("name,fn,ref,kinks", ACTIVATIONS[:4], ids=[a[0] for a in ACTIVATIONS[:4]])
def test_activation_second_order(name, fn, ref, kinks):
    """The *Grad ops are differentiable too (gradient of a gradient)."""
    x = _away_from(RNG.uniform(-3, 3, size=(4,)), kinks, margin=0.1)

    def grad_of(v):
        y = fn(v)
        return tf.gradients(y * y, v)[0]
    check_gradient(grad_of, [x])


def test_softplus_is_stable_for_large_inputs():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], np.float32)
    got = run_op(tf.nn.softplus, [x])
    np.testing.assert_allclose(got, [0.0, np.exp(-50.0), np.log(2.0), 50.0, 1000.0], rtol=1e-6)
    assert np.all(np.isfinite(run_op(lambda v: tf.gradients(tf.nn.softplus(v), v)[0], [x])))


def test_activation_keeps_dtype_and_shape():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 3])
        for fn in (tf.nn.relu, tf.nn.relu6, tf.nn.elu, tf.nn.selu, tf.nn.softplus, tf.nn.softsign, tf.nn.leaky_relu):
            y = fn(x)
            assert y.dtype == tf.float32 and y.shape.as_list() == [None, 3]
        assert tf.nn.relu(x).op.type == "Relu" and tf.nn.leaky_relu(x, 0.3).op.get_attr("alpha") == 0.3
        with pytest.raises(Exception, match="floating"):
            tf.nn.elu(tf.constant([1, 2]))
    check_forward(tf.nn.relu, [np.array([-3, 0, 4], np.int32)], lambda v: np.maximum(v, 0))
    check_forward(tf.nn.relu6, [np.array([-3, 0, 4, 9], np.int64)], lambda v: np.clip(v, 0, 6))


# -- softmax -------------------------------------------------------------------------------------

def test_softmax_and_log_softmax():
    x = RNG.normal(size=(3, 4)) * 3
    check_op(tf.nn.softmax, [x], lambda v: np.exp(log_softmax_ref(v)))
    check_op(tf.nn.log_softmax, [x], log_softmax_ref)
    big = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    np.testing.assert_allclose(run_op(tf.nn.softmax, [big]), [[1, 0, 0]])
    np.testing.assert_allclose(run_op(tf.nn.log_softmax, [big]), [[0, -1000, -2000]])


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_softmax_on_any_axis(axis):
    x = RNG.normal(size=(2, 3, 4))
    check_op(lambda v: tf.nn.softmax(v, axis=axis), [x], lambda v: np.exp(log_softmax_ref(v, axis)))
    check_forward(lambda v: tf.nn.log_softmax(v, dim=axis), [x], lambda v: log_softmax_ref(v, axis))


# -- bias_add, xw_plus_b, l2 -------------------------------------------------------------------------

def test_bias_add_nhwc_and_nchw():
    x, b = RNG.normal(size=(2, 3, 4)), RNG.normal(size=(4,))
    check_op(tf.nn.bias_add, [x, b], lambda v, c: v + c)
    x4, b3 = RNG.normal(size=(2, 3, 2, 2)), RNG.normal(size=(3,))
    check_op(lambda v, c: tf.nn.bias_add(v, c, data_format="NCHW"), [x4, b3], lambda v, c: v + c[:, None, None])
    with tf.Graph().as_default(), pytest.raises(Exception, match="compatible"):
        tf.nn.bias_add(tf.zeros([2, 3]), tf.zeros([4]))


def test_bias_add_grad_is_differentiable():
    x, b = RNG.normal(size=(3, 2)), RNG.normal(size=(2,))
    def grad_of(v, c):
        y = tf.nn.bias_add(v, c)
        return tf.gradients(y * y, c)[0]  # BiasAddGrad, differentiated in turn
    check_gradient(grad_of, [x, b])


def test_xw_plus_b():
    x, w, b = RNG.normal(size=(3, 4)), RNG.normal(size=(4, 2)), RNG.normal(size=(2,))
    check_op(tf.nn.xw_plus_b, [x, w, b], lambda a, m, c: a @ m + c)


def test_l2_loss_and_l2_normalize():
    x = RNG.normal(size=(3, 4))
    check_op(tf.nn.l2_loss, [x], lambda v: np.sum(v * v) / 2)
    check_op(lambda v: tf.nn.l2_normalize(v, axis=1), [x],
             lambda v: v / np.sqrt(np.sum(v * v, axis=1, keepdims=True)))
    check_forward(lambda v: tf.nn.l2_normalize(v, 0), [np.zeros((3,))], lambda v: v)


def test_moments():
    x = RNG.normal(size=(4, 3, 2))
    check_op(lambda v: tf.nn.moments(v, axes=[0, 1])[0], [x], lambda v: v.mean(axis=(0, 1)))
    check_op(lambda v: tf.nn.moments(v, axes=[0, 1])[1], [x], lambda v: v.var(axis=(0, 1)))
    check_forward(lambda v: tf.nn.moments(v, [1], keep_dims=True)[1], [x], lambda v: v.var(axis=1, keepdims=True))


# -- convolution ---------------------------------------------------------------------------------

CONV_CASES = [  # (input h, w, kernel h, w, stride, padding)
    (5, 5, 3, 3, 1, "SAME"), (5, 5, 3, 3, 1, "VALID"), (7, 6, 3, 2, 2, "SAME"), (7, 6, 3, 2, 2, "VALID"),
    (5, 4, 2, 3, 2, "SAME"), (6, 7, 4, 4, 3, "SAME"), (4, 5, 5, 5, 2, "SAME"), (3, 3, 1, 1, 1, "VALID"),
]


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", CONV_CASES)
def test_conv2d_forward(h, w, kh, kw, stride, padding):
    x, f = RNG.normal(size=(2, h, w, 3)), RNG.normal(size=(kh, kw, 3, 4))
    conv = lambda a, b: tf.nn.conv2d(a, b, strides=[1, stride, stride, 1], padding=padding)  # noqa: E731
    check_forward(conv, [x, f], lambda a, b: conv2d_ref(a, b, stride, padding), rtol=1e-10, atol=1e-10)
    check_forward(conv, [x.astype(np.float32), f.astype(np.float32)],
                  lambda a, b: conv2d_ref(a, b, stride, padding), rtol=1e-4, atol=1e-5)


def test_window_geometry_follows_tf_rules():
    for size in range(1, 12):
        for k in range(1, 6):
            for s in range(1, 4):
                out, before, after = sliding_window.window_geometry(size, k, s, 1, "SAME")
                total = max((out - 1) * s + k - size, 0)
                assert (out, before, after) == (math.ceil(size / s), total // 2, total - total // 2)
                if size >= k:
                    valid = (math.ceil((size - k + 1) / s), 0, 0)
                    assert sliding_window.window_geometry(size, k, s, 1, "VALID") == valid


@pytest.mark.parametrize("seed", range(12))
def test_random_conv_and_pool_configurations(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 9, size=2)
    kh, kw = rng.integers(1, 5, size=2)
    stride, padding = int(rng.integers(1, 4)), str(rng.choice(["SAME", "VALID"]))
    if padding == "VALID" and (h < kh or w < kw):
        padding = "SAME"
    x, f = rng.normal(size=(2, h, w, 2)), rng.normal(size=(kh, kw, 2, 3))
    check_forward(lambda a, b: tf.nn.conv2d(a, b, [1, stride, stride, 1], padding), [x, f],
                  lambda a, b: conv2d_ref(a, b, stride, padding), rtol=1e-10, atol=1e-10)
    k = int(min(kh, h, w)) if padding == "VALID" else int(kh)
    for kind, pool in (("max", tf.nn.max_pool), ("avg", tf.nn.avg_pool)):
        check_forward(lambda a: pool(a, [1, k, k, 1], [1, stride, stride, 1], padding), [x],
                      lambda a: pool_ref(a, k, stride, padding, kind))


@pytest.mark.parametrize("h,w,kh,kw,stride,padding", [CONV_CASES[i] for i in (0, 2, 3, 4)])
def test_conv2d_gradients(h, w, kh, kw, stride, padding):
    x, f = RNG.normal(size=(1, h, w, 2)), RNG.normal(size=(kh, kw, 2, 2))
    check_gradient(lambda a, b: tf.nn.conv2d(a, b, [1, stride, stride, 1], padding), [x, f])


def test_conv2d_backprop_ops_and_their_gradients():
    x, f = RNG.normal(size=(1, 5, 4, 2)), RNG.normal(size=(3, 2, 2, 3))
    dy = RNG.normal(size=(1, 3, 2, 3))
    with tf.Graph().as_default():
        xt, ft, dyt = tf.constant(x), tf.constant(f), tf.constant(dy)
        y = tf.nn.conv2d(xt, ft, [1, 2, 2, 1], "SAME")
        gx, gf = tf.gradients(y, [xt, ft], grad_ys=dyt)
        assert (gx.op.type, gf.op.type) == ("Conv2DBackpropInput", "Conv2DBackpropFilter")
        bi = tf.nn.conv2d_backprop_input([1, 5, 4, 2], ft, dyt, [1, 2, 2, 1], "SAME")
        bf = tf.nn.conv2d_backprop_filter(xt, [3, 2, 2, 3], dyt, [1, 2, 2, 1], "SAME")
        assert bi.shape.as_list() == [1, 5, 4, 2] and bf.shape.as_list() == [3, 2, 2, 3]
        with tf.Session() as sess:
            a, b, c, d = sess.run([gx, gf, bi, bf])
    np.testing.assert_allclose(a, c)
    np.testing.assert_allclose(b, d)
    # The gradients are themselves differentiable (second order).
    check_gradient(lambda ft_, dy_: tf.nn.conv2d_backprop_input([1, 5, 4, 2], ft_, dy_, [1, 2, 2, 1], "SAME"),
                   [f, dy])
    check_gradient(lambda x_, dy_: tf.nn.conv2d_backprop_filter(x_, [3, 2, 2, 3], dy_, [1, 2, 2, 1], "SAME"),
                   [x, dy])


def test_conv2d_nchw_matches_nhwc():
    x, f = RNG.normal(size=(2, 6, 5, 3)), RNG.normal(size=(3, 3, 3, 2))
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    got = run_op(lambda a, b: tf.nn.conv2d(a, b, [1, 1, 2, 2], "SAME", data_format="NCHW"), [nchw, f])
    np.testing.assert_allclose(got.transpose(0, 2, 3, 1), conv2d_ref(x, f, 2, "SAME"), atol=1e-12)
    check_gradient(lambda a, b: tf.nn.conv2d(a, b, [1, 1, 2, 2], "VALID", data_format="NCHW"),
                   [nchw[:1, :2, :4, :4], f[:2, :2, :2]])


def test_conv2d_dilations():
    x, f = RNG.normal(size=(1, 7, 7, 1)), RNG.normal(size=(2, 2, 1, 1))
    dilated = np.zeros((3, 3, 1, 1))
    dilated[::2, ::2] = f
    check_forward(lambda a, b: tf.nn.conv2d(a, b, [1, 1, 1, 1], "SAME", dilations=[1, 2, 2, 1]), [x, f],
                  lambda a, b: conv2d_ref(a, dilated, 1, "SAME"))
    check_gradient(lambda a, b: tf.nn.conv2d(a, b, [1, 1, 1, 1], "VALID", dilations=[1, 2, 2, 1]),
                   [x[:, :5, :5], f])


def test_conv2d_static_shapes():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 28, 28, 1])
        assert tf.nn.conv2d(x, tf.zeros([5, 5, 1, 32]), [1, 1, 1, 1], "SAME").shape.as_list() == [None, 28, 28, 32]
        assert tf.nn.conv2d(x, tf.zeros([5, 5, 1, 8]), [1, 2, 2, 1], "SAME").shape.as_list() == [None, 14, 14, 8]
        assert tf.nn.conv2d(x, tf.zeros([5, 5, 1, 8]), [1, 3, 3, 1], "VALID").shape.as_list() == [None, 8, 8, 8]
        odd = tf.placeholder(tf.float32, [2, 7, None, 3])
        assert tf.nn.conv2d(odd, tf.zeros([3, 3, 3, 4]), [1, 2, 2, 1], "SAME").shape.as_list() == [2, 4, None, 4]
        assert tf.nn.conv2d(odd, tf.zeros([3, 3, 3, 4]), [1, 2, 2, 1], "VALID").shape.as_list() == [2, 3, None, 4]
        with pytest.raises(Exception, match="negative"):
            tf.nn.conv2d(odd, tf.zeros([9, 1, 3, 4]), [1, 1, 1, 1], "VALID")
        with pytest.raises(Exception, match="[Dd]epth"):
            tf.nn.conv2d(odd, tf.zeros([3, 3, 2, 4]), [1, 1, 1, 1], "SAME")
        with pytest.raises(ValueError, match="padding"):
            tf.nn.conv2d(x, tf.zeros([1, 1, 1, 1]), [1, 1, 1, 1], "FULL")
        with pytest.raises(ValueError, match="batch and depth"):
            tf.nn.conv2d(x, tf.zeros([1, 1, 1, 1]), [2, 1, 1, 1], "SAME")
        assert tf.nn.conv2d(x, filters=tf.zeros([1, 1, 1, 2]), strides=1, padding="SAME").shape.as_list() == \
            [None, 28, 28, 2]


def test_conv_and_pool_process_the_batch_in_chunks(monkeypatch):
    """Tiny chunks (one image each) give the same values and gradients as one chunk."""
    x, f = RNG.normal(size=(3, 6, 5, 2)), RNG.normal(size=(3, 3, 2, 4))

    def build(a, b):
        y = tf.nn.conv2d(a, b, [1, 1, 1, 1], "SAME")
        pooled = tf.nn.max_pool(y, [1, 3, 3, 1], [1, 2, 2, 1], "SAME") + \
            tf.nn.avg_pool(y, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")
        return [pooled] + tf.gradients(pooled * pooled, [a, b])

    whole = run_op(build, [x, f])
    monkeypatch.setattr(sliding_window, "_CHUNK_BYTES", 1)
    chunked = run_op(build, [x, f])
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# -- pooling -------------------------------------------------------------------------------------

POOL_CASES = [(4, 4, 2, 2, "SAME"), (5, 5, 2, 2, "SAME"), (5, 5, 2, 2, "VALID"), (5, 6, 3, 2, "SAME"),
              (6, 5, 3, 2, "VALID"), (5, 5, 3, 1, "SAME"), (3, 4, 3, 3, "SAME")]


@pytest.mark.parametrize("h,w,k,stride,padding", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_forward_and_gradient(h, w, k, stride, padding, kind):
    pool = tf.nn.max_pool if kind == "max" else tf.nn.avg_pool
    x = RNG.permutation(2 * h * w * 2).reshape(2, h, w, 2) / 7.0  # distinct values: no ties
    build = lambda v: pool(v, ksize=[1, k, k, 1], strides=[1, stride, stride, 1], padding=padding)  # noqa: E731
    check_forward(build, [x], lambda v: pool_ref(v, k, stride, padding, kind))
    check_forward(build, [x.astype(np.float32)], lambda v: pool_ref(v, k, stride, padding, kind))
    check_gradient(build, [x])


def test_max_pool_gradient_goes_to_the_first_maximum():
    x = np.zeros((1, 4, 4, 1))
    x[0, 2:, 2:, 0] = [[1, 3], [3, 2]]
    got = run_op(lambda v: tf.gradients(tf.nn.max_pool(v, [1, 2, 2, 1], [1, 2, 2, 1], "VALID") * 10.0, v)[0], [x])
    want = np.zeros((4, 4))
    want[0, 0] = want[0, 2] = want[2, 0] = 10  # all-equal windows: the top-left element
    want[2, 3] = 10  # 3 appears twice: the first in row-major order
    np.testing.assert_array_equal(got[0, :, :, 0], want)
    # Overlapping windows add up where they share a maximum (values checked against TF 2.21).
    got = run_op(lambda v: tf.gradients(tf.nn.max_pool(v, [1, 3, 3, 1], [1, 1, 1, 1], "SAME"), v)[0], [x])
    np.testing.assert_array_equal(got[0, :, :, 0], [[3, 1, 1, 0], [1, 0, 0, 0], [1, 0, 1, 6], [0, 0, 2, 0]])


def test_max_pool_second_order():
    x = RNG.permutation(2 * 5 * 5).reshape(2, 5, 5, 1) / 5.0

    def grad_of(v):
        y = tf.nn.max_pool(v, [1, 3, 3, 1], [1, 2, 2, 1], "SAME")
        return tf.gradients(y * y, v)[0]
    check_gradient(grad_of, [x])


def test_pool_nchw_and_static_shapes():
    x = RNG.normal(size=(2, 3, 5, 5))
    got = run_op(lambda v: tf.nn.max_pool(v, [1, 1, 2, 2], [1, 1, 2, 2], "SAME", data_format="NCHW"), [x])
    np.testing.assert_allclose(got, pool_ref(x.transpose(0, 2, 3, 1), 2, 2, "SAME", "max").transpose(0, 3, 1, 2))
    check_gradient(lambda v: tf.nn.avg_pool(v, [1, 1, 2, 2], [1, 1, 1, 1], "VALID", data_format="NCHW"),
                   [x[:1, :2, :3, :3]])
    with tf.Graph().as_default():
        p = tf.placeholder(tf.float32, [None, 28, 28, 32])
        assert tf.nn.max_pool(p, [1, 2, 2, 1], [1, 2, 2, 1], "SAME").shape.as_list() == [None, 14, 14, 32]
        assert tf.nn.avg_pool(p, [1, 3, 3, 1], [1, 2, 2, 1], "VALID").shape.as_list() == [None, 13, 13, 32]


# -- cross entropies -------------------------------------------------------------------------------

def _onehot(labels, classes):
    return np.eye(classes)[labels]


def test_softmax_cross_entropy_forms_agree():
    logits = RNG.normal(size=(5, 4)) * 2
    labels = np.array([0, 3, 1, 1, 2])
    want = -log_softmax_ref(logits)[np.arange(5), labels]
    with tf.Graph().as_default():
        lg = tf.constant(logits)
        dense = tf.nn.softmax_cross_entropy_with_logits(labels=_onehot(labels, 4), logits=lg)
        dense_v2 = tf.nn.softmax_cross_entropy_with_logits_v2(labels=_onehot(labels, 4), logits=lg)
        sparse32 = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels.astype(np.int32), logits=lg)
        sparse64 = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels.astype(np.int64), logits=lg)
        manual = -tf.reduce_sum(_onehot(labels, 4) * tf.nn.log_softmax(lg), axis=1)
        grads = [tf.gradients(t, lg)[0] for t in (dense, dense_v2, sparse32, manual)]
        assert dense.shape.as_list() == [5] and sparse32.shape.as_list() == [5]
        with tf.Session() as sess:
            values = sess.run([dense, dense_v2, sparse32, sparse64, manual])
            grad_values = sess.run(grads)
    for v in values:
        np.testing.assert_allclose(v, want, rtol=1e-12)
    for g in grad_values:
        np.testing.assert_allclose(g, np.exp(log_softmax_ref(logits)) - _onehot(labels, 4), atol=1e-12)


def test_softmax_cross_entropy_gradients():
    logits, soft = RNG.normal(size=(3, 4)), RNG.dirichlet(np.ones(4), size=3)
    check_gradient(lambda lg, lb: tf.nn.softmax_cross_entropy_with_logits_v2(labels=lb, logits=lg), [logits, soft])
    labels = np.array([1, 0, 3], np.int32)
    check_gradient(lambda lg, lb: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lb, logits=lg),
                   [logits, labels])
    # Second order: through the backprop output of the fused op.
    def dense_grad(lg):
        loss = tf.nn.softmax_cross_entropy_with_logits_v2(labels=soft, logits=lg)
        return tf.gradients(loss * loss, lg)[0]
    check_gradient(dense_grad, [logits])
    check_gradient(lambda lg: tf.gradients(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=lg) * tf.reduce_sum(lg, axis=1), lg)[0], [logits])


def test_v1_stops_gradient_into_labels_v2_does_not():
    with tf.Graph().as_default():
        labels = tf.placeholder(tf.float64, [2, 3])
        logits = tf.placeholder(tf.float64, [2, 3])
        v1 = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        v2 = tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
        assert tf.gradients(v1, labels)[0] is None
        g2 = tf.gradients(v2, labels)[0]
        lg = RNG.normal(size=(2, 3))
        with tf.Session() as sess:
            np.testing.assert_allclose(sess.run(g2, {labels: np.ones((2, 3)) / 3, logits: lg}), -log_softmax_ref(lg))


def test_cross_entropy_over_other_axes_and_ranks():
    logits, soft = RNG.normal(size=(2, 3, 4)), RNG.dirichlet(np.ones(4), size=(2, 3))
    want = -np.sum(soft * log_softmax_ref(logits), axis=-1)
    check_op(lambda lg, lb: tf.nn.softmax_cross_entropy_with_logits_v2(labels=lb, logits=lg), [logits, soft],
             lambda lg, lb: want)
    moved = lambda t: np.ascontiguousarray(np.moveaxis(t, -1, 0))  # noqa: E731
    check_op(lambda lg, lb: tf.nn.softmax_cross_entropy_with_logits_v2(labels=lb, logits=lg, dim=0),
             [moved(logits), moved(soft)], lambda lg, lb: want)  # the other axes keep their order
    labels = np.array([[0, 3, 1], [2, 2, 0]], np.int64)
    check_op(lambda lg, lb: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lb, logits=lg), [logits, labels],
             lambda lg, lb: -np.take_along_axis(log_softmax_ref(lg), lb[..., None], -1)[..., 0])


def test_cross_entropy_needs_named_arguments():
    with tf.Graph().as_default():
        for fn in (tf.nn.softmax_cross_entropy_with_logits, tf.nn.softmax_cross_entropy_with_logits_v2,
                   tf.nn.sparse_softmax_cross_entropy_with_logits, tf.nn.sigmoid_cross_entropy_with_logits):
            with pytest.raises(ValueError, match="named arguments"):
                fn(tf.zeros([2, 3]), tf.zeros([2, 3]))
        with pytest.raises(ValueError, match="[Rr]ank"):
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.zeros([2, 3], tf.int32), logits=tf.zeros([2, 3]))


def test_sparse_cross_entropy_rejects_out_of_range_labels():
    with tf.Graph().as_default():
        labels = tf.placeholder(tf.int32, [None])
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.zeros([2, 3]), name="xent")
        with tf.Session() as sess:
            assert sess.run(loss, {labels: [0, 2]}).shape == (2,)
            for bad in ([0, 3], [-1, 0]):
                with pytest.raises(tf.errors.InvalidArgumentError, match=r"xent.*|outside the valid range") as info:
                    sess.run(loss, {labels: bad})
                assert "outside the valid range of [0, 3)" in str(info.value)
                assert "xent" in str(info.value)


def test_sigmoid_cross_entropy():
    logits = np.array([-100.0, -2.0, -0.5, 0.3, 1.7, 100.0])
    labels = np.array([0.0, 1.0, 0.3, 0.5, 0.0, 1.0])
    ref = lambda x, z: np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))  # noqa: E731
    check_op(lambda x, z: tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x), [logits, labels], ref,
             rtol=1e-12)
    got = run_op(lambda x, z: tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x),
                 [logits.astype(np.float32), labels.astype(np.float32)])
    np.testing.assert_allclose(got, ref(logits, labels), rtol=1e-6, atol=1e-30)  # no overflow or cancellation
    with tf.Graph().as_default(), pytest.raises(ValueError, match="same shape"):
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros([2]), logits=tf.zeros([3]))


# -- top-k -----------------------------------------------------------------------------------------

def test_in_top_k():
    predictions = np.array([[0.1, 0.3, 0.3, 0.2], [1, 2, 3, 4], [np.nan, 1, 2, 3], [5, 5, 5, 5]], np.float32)
    targets = np.array([1, 0, 2, 3], np.int32)
    with tf.Graph().as_default(), tf.Session() as sess:
        got = [sess.run(tf.nn.in_top_k(predictions, targets, k)) for k in (1, 2, 3, 4)]
        # Ties count for the target; a row with a non-finite prediction is never in the top k.
        assert [list(g) for g in got] == [[True, False, False, True], [True, False, False, True],
                                          [True, False, False, True], [True, True, False, True]]
        out_of_range = sess.run(tf.nn.in_top_k(predictions, np.array([4, -1, 1, 0], np.int64), 2))
        assert list(out_of_range) == [False, False, False, True]
        k = tf.placeholder(tf.int32, [])
        fed = tf.nn.in_top_k(tf.constant(predictions), tf.constant(targets), k)
        assert fed.dtype == tf.bool and fed.shape.as_list() == [4] and fed.op.type == "InTopKV2"
        assert list(sess.run(fed, {k: 4})) == [True, True, False, True]
        assert list(sess.run(tf.math.in_top_k(predictions, targets, 1))) == [True, False, False, True]


def test_top_k_values_indices_and_gradient():
    x = np.array([[1, 3, 3, 2, 3, 0], [6, 5, 4, 3, 2, 1]], np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        result = tf.nn.top_k(x, 3)
        assert result.values.shape.as_list() == [2, 3] and result.indices.dtype == tf.int32
        values, indices = sess.run(result)
    np.testing.assert_array_equal(values, [[3, 3, 3], [6, 5, 4]])
    np.testing.assert_array_equal(indices, [[1, 2, 4], [0, 1, 2]])  # ties: lower index first
    big = RNG.permutation(200).reshape(2, 100).astype(np.float64)  # exercises the partition path
    check_forward(lambda v: tf.nn.top_k(v, k=5).values, [big], lambda v: -np.sort(-v, axis=1)[:, :5])
    check_forward(lambda v: tf.nn.top_k(v, k=5).indices, [big],
                  lambda v: np.argsort(-v, axis=1)[:, :5].astype(np.int32))
    check_gradient(lambda v: tf.nn.top_k(v, k=2).values, [RNG.permutation(12).reshape(2, 2, 3) / 3.0])
    with tf.Graph().as_default(), pytest.raises(Exception, match="at least k"):
        tf.nn.top_k(tf.zeros([2, 3]), 4)


# -- dropout and embeddings ----------------------------------------------------------------------------

def test_dropout_statistics_and_fed_keep_prob():
    with tf.Graph().as_default():
        x = tf.ones([200, 500])
        keep_prob = tf.placeholder(tf.float32, [])
        y = tf.nn.dropout(x, keep_prob, seed=7)
        assert y.shape.as_list() == [200, 500]
        with tf.Session() as sess:
            out = sess.run(y, {keep_prob: 0.3})
            kept = out != 0
            assert abs(kept.mean() - 0.3) < 0.01
            np.testing.assert_allclose(out[kept], 1 / 0.3, rtol=1e-6)
            assert abs(out.mean() - 1.0) < 0.03
            np.testing.assert_array_equal(sess.run(y, {keep_prob: 1.0}), np.ones((200, 500), np.float32))
            again = sess.run(y, {keep_prob: 0.3})
            assert (again != out).any()  # a fresh mask each run


def test_dropout_rate_noise_shape_gradient_and_identity():
    with tf.Graph().as_default():
        x = tf.constant(RNG.normal(size=(4, 50)))
        assert tf.nn.dropout(x, keep_prob=1.0) is x
        y = tf.nn.dropout(x, rate=0.5, noise_shape=[4, 1])
        g = tf.gradients(tf.reduce_sum(y), x)[0]
        with tf.Session() as sess:
            yv, gv, xv = sess.run([y, g, x])
        rows_kept = (yv != 0).all(axis=1)
        assert ((yv == 0).all(axis=1) | rows_kept).all()  # whole rows dropped together
        np.testing.assert_allclose(yv[rows_kept], 2 * xv[rows_kept])
        np.testing.assert_allclose(gv, np.where(rows_kept[:, None], 2.0, 0.0) * np.ones((4, 50)))
        with pytest.raises(ValueError):
            tf.nn.dropout(x, keep_prob=1.5)
        with pytest.raises(ValueError):
            tf.nn.dropout(x, keep_prob=0.5, rate=0.5)


def test_embedding_lookup_and_sparse_gradient():
    params, ids = RNG.normal(size=(6, 3)), np.array([[4, 0], [4, 5]], np.int32)
    with tf.Graph().as_default():
        p = tf.constant(params)
        emb = tf.nn.embedding_lookup(p, ids)
        grad = tf.gradients(tf.reduce_sum(emb * 2.0), p)[0]
        assert emb.shape.as_list() == [2, 2, 3] and isinstance(grad, tf.IndexedSlices)
        shards = [tf.constant(params[0::2]), tf.constant(params[1::2])]  # 'mod': row i in shard i % 2
        mod = tf.nn.embedding_lookup(shards, ids)
        div = tf.nn.embedding_lookup([tf.constant(params[:3]), tf.constant(params[3:])], ids,
                                     partition_strategy="div")
        with tf.Session() as sess:
            e, dense, m, d = sess.run([emb, tf.convert_to_tensor(grad), mod, div])
    np.testing.assert_allclose(e, params[ids])
    want = np.zeros_like(params)
    np.add.at(want, ids.reshape(-1), 2.0)
    np.testing.assert_allclose(dense, want)
    np.testing.assert_allclose(m, params[ids])
    np.testing.assert_allclose(d, params[ids])


def test_public_names_exist():
    from tensorweave.compat.v1_api import NN
    for public, target in NN.items():
        module, attr = target.split(":")
        assert getattr(tf.nn, public) is not None, public
    assert tf.nn.conv2d is conv_ops.conv2d


def test_same_values_when_the_runtime_runs_a_large_feed_in_row_chunks(monkeypatch):
    from tensorweave.runtime import chunking
    x, labels = RNG.normal(size=(11, 6, 6, 2)), RNG.integers(0, 5, size=11).astype(np.int32)
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float64, [None, 6, 6, 2])
        targets = tf.placeholder(tf.int32, [None])
        h = tf.nn.bias_add(tf.nn.conv2d(images, tf.constant(RNG.normal(size=(3, 3, 2, 3))), [1, 1, 1, 1], "SAME"),
                           tf.constant(RNG.normal(size=3)))
        h = tf.nn.max_pool(tf.nn.relu(h), 2, 2, "SAME") + tf.nn.avg_pool(tf.nn.elu(h), 2, 2, "SAME")
        logits = tf.matmul(tf.reshape(h, [-1, 27]), tf.constant(RNG.normal(size=(27, 5))))
        fetches = [tf.nn.softmax(logits), tf.nn.log_softmax(logits), tf.nn.top_k(logits, 2).values,
                   tf.nn.in_top_k(logits, targets, 2),
                   tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits),
                   tf.nn.softmax_cross_entropy_with_logits_v2(labels=tf.one_hot(targets, 5, dtype=tf.float64),
                                                              logits=logits)]
        with tf.Session() as sess:
            whole = sess.run(fetches, {images: x, targets: labels})
            monkeypatch.setattr(chunking, "CHUNK_ROWS", 2)
            chunked = sess.run(fetches, {images: x, targets: labels})
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_batch_rules_declare_which_inputs_carry_rows():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 4, 4, 2])
        conv = tf.nn.conv2d(x, tf.zeros([2, 2, 2, 3]), [1, 1, 1, 1], "SAME")
        assert conv.op.op_def.batch_rule(conv.op, [True, False])
        assert not conv.op.op_def.batch_rule(conv.op, [False, True])
        vector_softmax = tf.nn.softmax(tf.placeholder(tf.float32, [None]))
        assert not vector_softmax.op.op_def.batch_rule(vector_softmax.op, [True])
        itk = tf.nn.in_top_k(tf.placeholder(tf.float32, [None, 3]), tf.placeholder(tf.int32, [None]), 1)
        assert itk.op.op_def.batch_rule(itk.op, [True, True, False])
        assert tf.nn.l2_loss(x).op.op_def.batch_rule is None  # sums over the rows
        sizes_op = tf.gradients(conv, x)[0].op
        assert sizes_op.type == "Conv2DBackpropInput" and sizes_op.op_def.batch_rule is None


def test_second_order_softsign_matches_finite_differences():
    x = np.array([[-1.5, -0.3, 0.4, 2.0]])
    check_gradient(lambda t: tf.gradients(tf.reduce_sum(tf.nn.softsign(t) * t), t)[0], [x])
