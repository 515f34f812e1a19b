"""The adaptive optimizers against NumPy implementations of TF's update formulas, on a small
quadratic problem: loss = sum(c * w^2) / 2 + sum(d * w), so grad = c * w + d."""

import math

import numpy as np
import pytest

import tensorweave as tf

W0 = np.array([1.0, -2.0, 0.5, 3.0])
C = np.array([1.0, 2.0, 0.5, 4.0])
D = np.array([0.1, -0.3, 0.2, 0.0])


def _grad(w):
    return C * w + D


def _f32(x):
    """Python hyper-parameters become float32 constants (then cast to the variable's dtype)."""
    return float(np.float32(x))


# -- NumPy references (TF's documented formulas) -------------------------------------------------

def ref_momentum(steps, lr, momentum, nesterov=False):
    lr, momentum = _f32(lr), _f32(momentum)
    w, accum = W0.copy(), np.zeros_like(W0)
    for _ in range(steps):
        g = _grad(w)
        accum = accum * momentum + g
        w = w - (lr * g + lr * momentum * accum if nesterov else lr * accum)
    return w, {"momentum": accum}


def ref_adagrad(steps, lr, init=0.1):
    lr = _f32(lr)
    w, accum = W0.copy(), np.full_like(W0, init)
    for _ in range(steps):
        g = _grad(w)
        accum = accum + g * g
        w = w - lr * g / np.sqrt(accum)
    return w, {"accumulator": accum}


def ref_adam(steps, lr, beta1=0.9, beta2=0.999, epsilon=1e-8):
    # As in TF1, beta1^t and beta2^t accumulate in float32 variables, whatever the var dtype.
    beta1_power, beta2_power = np.float32(beta1), np.float32(beta2)
    lr, beta1, beta2, epsilon = (_f32(x) for x in (lr, beta1, beta2, epsilon))
    w, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for _ in range(steps):
        g = _grad(w)
        lr_t = lr * math.sqrt(1 - float(beta2_power)) / (1 - float(beta1_power))
        beta1_power, beta2_power = beta1_power * np.float32(beta1), beta2_power * np.float32(beta2)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr_t * m / (np.sqrt(v) + epsilon)
    return w, {"m": m, "v": v}


def ref_rmsprop(steps, lr, decay=0.9, momentum=0.0, epsilon=1e-10, centered=False):
    lr, decay, momentum, epsilon = (_f32(x) for x in (lr, decay, momentum, epsilon))
    w, ms, mom, mg = W0.copy(), np.ones_like(W0), np.zeros_like(W0), np.zeros_like(W0)
    for _ in range(steps):
        g = _grad(w)
        ms = decay * ms + (1 - decay) * g * g
        if centered:
            mg = decay * mg + (1 - decay) * g
            denom = np.sqrt(ms - mg * mg + epsilon)
        else:
            denom = np.sqrt(ms + epsilon)
        mom = momentum * mom + lr * g / denom
        w = w - mom
    slots = {"rms": ms, "momentum": mom}
    if centered:
        slots["mg"] = mg
    return w, slots


CASES = {
    "momentum": (lambda: tf.train.MomentumOptimizer(0.1, 0.9), lambda n: ref_momentum(n, 0.1, 0.9)),
    "nesterov": (lambda: tf.train.MomentumOptimizer(0.05, 0.8, use_nesterov=True),
                 lambda n: ref_momentum(n, 0.05, 0.8, nesterov=True)),
    "adagrad": (lambda: tf.train.AdagradOptimizer(0.3), lambda n: ref_adagrad(n, 0.3)),
    "adagrad_init": (lambda: tf.train.AdagradOptimizer(0.3, initial_accumulator_value=2.0),
                     lambda n: ref_adagrad(n, 0.3, init=2.0)),
    "adam": (lambda: tf.train.AdamOptimizer(0.1), lambda n: ref_adam(n, 0.1)),
    "adam_hyper": (lambda: tf.train.AdamOptimizer(0.05, beta1=0.5, beta2=0.9, epsilon=1e-3),
                   lambda n: ref_adam(n, 0.05, 0.5, 0.9, 1e-3)),
    "rmsprop": (lambda: tf.train.RMSPropOptimizer(0.01), lambda n: ref_rmsprop(n, 0.01)),
    "rmsprop_momentum": (lambda: tf.train.RMSPropOptimizer(0.01, decay=0.8, momentum=0.5, epsilon=1e-6),
                         lambda n: ref_rmsprop(n, 0.01, 0.8, 0.5, 1e-6)),
    "rmsprop_centered": (lambda: tf.train.RMSPropOptimizer(0.01, momentum=0.3, centered=True),
                         lambda n: ref_rmsprop(n, 0.01, 0.9, 0.3, 1e-10, centered=True)),
}


def _problem(dtype=tf.float32):
    w = tf.Variable(W0.astype(dtype.as_numpy_dtype), name="w")
    c = tf.constant(C, dtype=dtype)
    d = tf.constant(D, dtype=dtype)
    loss = 0.5 * tf.reduce_sum(c * w * w) + tf.reduce_sum(d * w)
    return w, loss


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("steps", [1, 5])
def test_matches_numpy_reference(case, steps):
    make_opt, reference = CASES[case]
    with tf.Graph().as_default():
        w, loss = _problem()
        opt = make_opt()
        train = opt.minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(steps):
                sess.run(train)
            got_w = sess.run(w)
            want_w, want_slots = reference(steps)
            np.testing.assert_allclose(got_w, want_w, rtol=2e-5, atol=1e-6)
            for name, want in want_slots.items():
                np.testing.assert_allclose(sess.run(opt.get_slot(w, name)), want, rtol=2e-5, atol=1e-6,
                                           err_msg=f"slot {name}")


@pytest.mark.parametrize("case", ["momentum", "adam", "rmsprop_centered", "adagrad"])
def test_float64_variables(case):
    make_opt, reference = CASES[case]
    with tf.Graph().as_default():
        w, loss = _problem(tf.float64)
        train = make_opt().minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(4):
                sess.run(train)
            got = sess.run(w)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, reference(4)[0], rtol=1e-6)


def test_optimizers_reduce_the_loss():
    for case in sorted(CASES):
        with tf.Graph().as_default():
            w, loss = _problem()
            train = CASES[case][0]().minimize(loss)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                before = sess.run(loss)
                for _ in range(30):
                    sess.run(train)
                assert sess.run(loss) < before, case


@pytest.mark.parametrize("make_opt,slots", [
    (lambda: tf.train.MomentumOptimizer(0.1, 0.9), {"momentum": "w/Momentum"}),
    (lambda: tf.train.AdagradOptimizer(0.1), {"accumulator": "w/Adagrad"}),
    (lambda: tf.train.AdamOptimizer(), {"m": "w/Adam", "v": "w/Adam_1"}),
    (lambda: tf.train.RMSPropOptimizer(0.1), {"rms": "w/RMSProp", "momentum": "w/RMSProp_1"}),
    (lambda: tf.train.RMSPropOptimizer(0.1, centered=True),
     {"rms": "w/RMSProp", "mg": "w/RMSProp_1", "momentum": "w/RMSProp_2"}),
])
def test_slot_names(make_opt, slots):
    with tf.Graph().as_default():
        w, loss = _problem()
        opt = make_opt()
        opt.minimize(loss)
        assert opt.get_slot_names() == sorted(slots)
        for slot_name, var_name in slots.items():
            slot = opt.get_slot(w, slot_name)
            assert slot.op.name == var_name
            assert slot.shape.as_list() == [4] and slot.dtype is tf.float32
            assert slot not in tf.trainable_variables() and slot in tf.global_variables()


def test_minimize_with_var_list_and_global_step():
    with tf.Graph().as_default():
        a = tf.Variable([1.0, 2.0], name="a")
        b = tf.Variable([3.0], name="b")
        loss = tf.reduce_sum(a * a) + tf.reduce_sum(b * b)
        step = tf.train.get_or_create_global_step()
        opt = tf.train.MomentumOptimizer(0.1, 0.5)
        train = opt.minimize(loss, global_step=step, var_list=[a])
        assert opt.get_slot(b, "momentum") is None
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for i in range(1, 4):
                sess.run(train)
                assert tf.train.global_step(sess, step) == i
            av, bv = sess.run([a, b])
    w, accum = np.array([1.0, 2.0]), np.zeros(2)
    for _ in range(3):
        accum = 0.5 * accum + 2 * w
        w = w - 0.1 * accum
    np.testing.assert_allclose(av, w, rtol=1e-6)
    np.testing.assert_array_equal(bv, [3.0])


def test_adam_beta_powers():
    with tf.Graph().as_default():
        w, loss = _problem()
        z = tf.Variable([0.0], name="a_first")  # first by name: the beta powers colocate with it
        opt = tf.train.AdamOptimizer(0.1, beta1=0.8, beta2=0.95)
        train = opt.minimize(loss + tf.reduce_sum(z * z))
        names = sorted(v.op.name for v in opt.variables())
        assert names == ["a_first/Adam", "a_first/Adam_1", "beta1_power", "beta2_power", "w/Adam", "w/Adam_1"]
        b1, b2 = opt._get_beta_accumulators()
        assert b1.op.colocation_groups() == z.op.colocation_groups()
        assert b1 not in tf.trainable_variables()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert sess.run([b1, b2]) == pytest.approx([0.8, 0.95])
            for t in range(1, 4):
                sess.run(train)
                assert sess.run(b1) == pytest.approx(0.8 ** (t + 1), rel=1e-6)
                assert sess.run(b2) == pytest.approx(0.95 ** (t + 1), rel=1e-6)
            np.testing.assert_allclose(sess.run(w), ref_adam(3, 0.1, 0.8, 0.95)[0], rtol=2e-5)


def test_learning_rate_tensor_from_decay():
    with tf.Graph().as_default():
        w, loss = _problem()
        step = tf.train.get_or_create_global_step()
        lr = tf.train.exponential_decay(0.1, step, decay_steps=1, decay_rate=0.5)
        train = tf.train.MomentumOptimizer(lr, 0.0).minimize(loss, global_step=step)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(train)
            got = sess.run(w)
    want = W0.copy()
    for k in range(3):
        want = want - 0.1 * 0.5 ** k * _grad(want)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_callable_and_placeholder_hyper_parameters():
    with tf.Graph().as_default():
        w, loss = _problem()
        lr = tf.placeholder(tf.float32, [])
        train = tf.train.AdamOptimizer(learning_rate=lambda: lr, beta1=lambda: 0.9).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train, {lr: 0.1})
            np.testing.assert_allclose(sess.run(w), ref_adam(1, 0.1)[0], rtol=2e-5)


def test_apply_gradients_shares_slots_across_calls():
    with tf.Graph().as_default():
        w, loss = _problem()
        opt = tf.train.AdamOptimizer(0.1)
        grads = opt.compute_gradients(loss)
        opt.apply_gradients(grads)
        opt.apply_gradients(grads)
        assert len(opt.variables()) == 4


def test_adagrad_validates_accumulator():
    with pytest.raises(ValueError, match="initial_accumulator_value must be positive"):
        tf.train.AdagradOptimizer(0.1, initial_accumulator_value=0.0)


def test_update_ops_do_not_touch_earlier_reads():
    """Variables are cells never written in place: a value fetched before a step is unchanged."""
    with tf.Graph().as_default():
        w, loss = _problem()
        opt = tf.train.AdamOptimizer(0.1)
        train = opt.minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            before = sess.run(w)
            snapshot = before.copy()
            sess.run(train)
            np.testing.assert_array_equal(before, snapshot)
            assert not np.array_equal(sess.run(w), snapshot)


def test_apply_op_shape_checks():
    from tensorweave.ops import training_ops
    with tf.Graph().as_default():
        w = tf.Variable(np.zeros(3, np.float32))
        m = tf.Variable(np.zeros(3, np.float32))
        with pytest.raises(Exception, match="scalar"):
            training_ops.apply_momentum(w, m, np.ones(3, np.float32), np.ones(3, np.float32), 0.9)
        with pytest.raises(Exception, match="gradient has shape"):
            training_ops.apply_momentum(w, m, 0.1, np.ones(4, np.float32), 0.9)
        with pytest.raises(Exception, match="dtype"):
            training_ops.apply_adagrad(w._ref(), m._ref(), tf.constant(0.1), tf.constant(np.ones(3)))


def test_training_op_names_and_colocation():
    with tf.Graph().as_default():
        w, loss = _problem()
        opt = tf.train.AdamOptimizer(0.1)
        opt.minimize(loss)
        g = w.graph
        apply_op = g.get_operation_by_name("Adam/update_w/ApplyAdam")
        assert apply_op.type == "ApplyAdam"
        assert apply_op.colocation_groups() == w.op.colocation_groups()


@pytest.mark.parametrize("case", sorted(CASES))
def test_scalar_variables(case):
    """0-d variables: NumPy ufuncs on 0-d arrays return scalars, the kernels must still store arrays."""
    make_opt, _ = CASES[case]
    with tf.Graph().as_default():
        w = tf.Variable(2.0)
        train = make_opt().minimize(w * w)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(train)
            value = sess.run(w)
    assert np.ndim(value) == 0 and float(value) < 2.0


# -- sparse gradients (IndexedSlices from gather) ---------------------------------------------------

E0 = np.arange(10.0).reshape(5, 2) / 10.0
IDS = [0, 2, 2, 4]


def _sparse_grad(e):
    """Gradient of sum(gather(e, IDS) ** 2) / 2: rows of IDS, repeated rows summed."""
    g = np.zeros_like(e)
    for i in IDS:
        g[i] += e[i]
    return g


def _sparse_reference(step, slots, steps):
    """Applies `step(w_rows, slot_rows, g_rows)` to the touched rows only, as TF's SparseApply ops."""
    e = E0.copy()
    rows = sorted(set(IDS))
    for _ in range(steps):
        g = _sparse_grad(e)
        e[rows], new_slots = step(e[rows], [s[rows] for s in slots], g[rows])
        for s, n in zip(slots, new_slots, strict=True):
            s[rows] = n
    return e


def _momentum_rows(w, slots, g, lr=_f32(0.1), mom=_f32(0.9)):
    accum = slots[0] * mom + g
    return w - lr * accum, [accum]


def _rms_rows(w, slots, g, lr=_f32(0.01), rho=_f32(0.9), mom=_f32(0.5), eps=_f32(1e-10)):
    ms, m = slots
    ms = rho * ms + (1 - rho) * g * g
    m = mom * m + lr * g / np.sqrt(ms + eps)
    return w - m, [ms, m]


def _adagrad_rows(w, slots, g, lr=_f32(0.3)):
    accum = slots[0] + g * g
    return w - lr * g / np.sqrt(accum), [accum]


SPARSE_CASES = {
    "momentum": (lambda: tf.train.MomentumOptimizer(0.1, 0.9),
                 lambda n: _sparse_reference(_momentum_rows, [np.zeros_like(E0)], n)),
    "rmsprop": (lambda: tf.train.RMSPropOptimizer(0.01, momentum=0.5),
                lambda n: _sparse_reference(_rms_rows, [np.ones_like(E0), np.zeros_like(E0)], n)),
    "adagrad": (lambda: tf.train.AdagradOptimizer(0.3),
                lambda n: _sparse_reference(_adagrad_rows, [np.full_like(E0, 0.1)], n)),
}


@pytest.mark.parametrize("case", sorted(SPARSE_CASES))
def test_sparse_updates_touch_only_gathered_rows(case):
    make_opt, reference = SPARSE_CASES[case]
    with tf.Graph().as_default():
        e = tf.Variable(E0.astype(np.float32), name="emb")
        rows = tf.gather(e, tf.constant(IDS))
        loss = 0.5 * tf.reduce_sum(rows * rows)
        opt = make_opt()
        grads = opt.compute_gradients(loss)
        assert type(grads[0][0]).__name__ == "IndexedSlices"
        train = opt.apply_gradients(grads)
        assert any(op.type.startswith("SparseApply") for op in e.graph.get_operations())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(train)
            got = sess.run(e)
    np.testing.assert_allclose(got, reference(3), rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(got[[1, 3]], E0[[1, 3]].astype(np.float32))


def test_sparse_adam_equals_dense_adam_on_the_densified_gradient():
    with tf.Graph().as_default():
        e = tf.Variable(E0.astype(np.float32), name="emb")
        loss = 0.5 * tf.reduce_sum(tf.square(tf.gather(e, tf.constant(IDS))))
        train = tf.train.AdamOptimizer(0.1).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(train)
            got = sess.run(e)
    want, m, v = E0.copy(), np.zeros_like(E0), np.zeros_like(E0)
    b1, b2 = _f32(0.9), _f32(0.999)
    b1p, b2p = np.float32(0.9), np.float32(0.999)
    for _ in range(3):
        g = _sparse_grad(want)
        lr_t = _f32(0.1) * math.sqrt(1 - float(b2p)) / (1 - float(b1p))
        b1p, b2p = b1p * np.float32(b1), b2p * np.float32(b2)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        want = want - lr_t * m / (np.sqrt(v) + _f32(1e-8))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_sparse_apply_rejects_out_of_range_rows():
    from tensorweave.ops import training_ops
    with tf.Graph().as_default():
        e = tf.Variable(np.zeros((3, 2), np.float32))
        acc = tf.Variable(np.zeros((3, 2), np.float32))
        up = training_ops.sparse_apply_momentum(e, acc, 0.1, np.ones((1, 2), np.float32), [3], 0.9)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
                sess.run(up)
