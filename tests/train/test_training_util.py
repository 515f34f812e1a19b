"""Global step helpers, learning-rate schedules and tf.train.Coordinator."""

import math
import threading
import time

import numpy as np
import pytest

import tensorweave as tf


# -- global step ------------------------------------------------------------------------------------

def test_create_and_get_global_step():
    with tf.Graph().as_default() as g:
        assert tf.train.get_global_step() is None
        step = tf.train.create_global_step()
        assert step.op.name == "global_step" and step.dtype is tf.int64
        assert step.shape.as_list() == []
        assert tf.get_collection(tf.GraphKeys.GLOBAL_STEP) == [step]
        assert step in tf.global_variables() and step not in tf.trainable_variables()
        assert tf.train.get_global_step() is step
        assert tf.train.get_global_step(g) is step
        assert tf.train.get_or_create_global_step() is step
        with pytest.raises(ValueError, match='"global_step" already exists.'):
            tf.train.create_global_step()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert tf.train.global_step(sess, step) == 0
            assert isinstance(tf.train.global_step(sess, step), int)


def test_global_step_ignores_name_scopes_and_uses_other_graphs():
    other = tf.Graph()
    with tf.Graph().as_default():
        with tf.name_scope("somewhere"):
            step = tf.train.get_or_create_global_step()
        assert step.op.name == "global_step"
        other_step = tf.train.get_or_create_global_step(other)
    assert other_step.graph is other and other_step is not step


def test_get_global_step_by_tensor_name():
    with tf.Graph().as_default():
        v = tf.Variable(0, name="global_step", dtype=tf.int32)
        found = tf.train.get_global_step()
        assert found is not None and found.name == v.name


def test_assert_global_step():
    with tf.Graph().as_default():
        with pytest.raises(TypeError, match="integer type"):
            tf.train.assert_global_step(tf.Variable(0.0))
        with pytest.raises(TypeError, match="not scalar"):
            tf.train.assert_global_step(tf.Variable([0, 1]))
        with pytest.raises(TypeError, match="Variable or Tensor"):
            tf.train.assert_global_step(3)
        tf.train.assert_global_step(tf.Variable(0, dtype=tf.int64))


def test_minimize_increments_global_step():
    with tf.Graph().as_default():
        w = tf.Variable(1.0)
        step = tf.train.get_or_create_global_step()
        train = tf.train.GradientDescentOptimizer(0.1).minimize(w * w, global_step=step)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(5):
                sess.run(train)
            assert tf.train.global_step(sess, step) == 5


# -- learning-rate schedules ------------------------------------------------------------------------

def _schedule_values(build, steps):
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        lr = build(step)
        with tf.Session() as sess:
            return [float(sess.run(lr, {step: s})) for s in steps]


STEPS = [0, 1, 5, 10, 15, 20, 37, 100]


def test_exponential_decay():
    got = _schedule_values(lambda s: tf.train.exponential_decay(0.1, s, 10, 0.5), STEPS)
    np.testing.assert_allclose(got, [0.1 * 0.5 ** (s / 10) for s in STEPS], rtol=1e-6)
    got = _schedule_values(lambda s: tf.train.exponential_decay(0.1, s, 10, 0.5, staircase=True), STEPS)
    np.testing.assert_allclose(got, [0.1 * 0.5 ** (s // 10) for s in STEPS], rtol=1e-6)


def test_natural_exp_decay():
    got = _schedule_values(lambda s: tf.train.natural_exp_decay(0.1, s, 10, 0.5), STEPS)
    np.testing.assert_allclose(got, [0.1 * math.exp(-0.5 * s / 10) for s in STEPS], rtol=1e-6)
    got = _schedule_values(lambda s: tf.train.natural_exp_decay(0.1, s, 10, 0.5, staircase=True), STEPS)
    np.testing.assert_allclose(got, [0.1 * math.exp(-0.5 * (s // 10)) for s in STEPS], rtol=1e-6)


def test_inverse_time_decay():
    got = _schedule_values(lambda s: tf.train.inverse_time_decay(0.1, s, 10, 0.5), STEPS)
    np.testing.assert_allclose(got, [0.1 / (1 + 0.5 * s / 10) for s in STEPS], rtol=1e-6)
    got = _schedule_values(lambda s: tf.train.inverse_time_decay(0.1, s, 10, 0.5, staircase=True), STEPS)
    np.testing.assert_allclose(got, [0.1 / (1 + 0.5 * (s // 10)) for s in STEPS], rtol=1e-6)


def test_polynomial_decay():
    def want(s, cycle=False, power=2.0, lr=0.1, end=0.01, steps=20):
        if cycle:
            steps = steps * max(1, math.ceil(s / steps))
        else:
            s = min(s, steps)
        return (lr - end) * (1 - s / steps) ** power + end
    got = _schedule_values(lambda s: tf.train.polynomial_decay(0.1, s, 20, 0.01, power=2.0), STEPS)
    np.testing.assert_allclose(got, [want(s) for s in STEPS], rtol=1e-5)
    got = _schedule_values(lambda s: tf.train.polynomial_decay(0.1, s, 20, 0.01, power=2.0, cycle=True), STEPS)
    np.testing.assert_allclose(got, [want(s, cycle=True) for s in STEPS], rtol=1e-5)
    got = _schedule_values(lambda s: tf.train.polynomial_decay(0.1, s, 20), [0, 10, 30])
    np.testing.assert_allclose(got, [0.1, 0.05005, 0.0001], rtol=1e-5)


def test_piecewise_constant():
    got = _schedule_values(lambda s: tf.train.piecewise_constant(s, [10, 20], [1.0, 0.5, 0.1]), STEPS)
    assert got == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, np.float32(0.1), np.float32(0.1)]
    with pytest.raises(ValueError, match="1 less than"):
        tf.train.piecewise_constant(tf.constant(1), [1, 2], [1.0, 2.0])
    with tf.Graph().as_default(), pytest.raises(ValueError, match="same dtype as x"):
        tf.train.piecewise_constant(tf.constant(1.0), [1, 2], [1.0, 2.0, 3.0])
    with tf.Graph().as_default(), pytest.raises(ValueError, match="same dtype"):
        tf.train.piecewise_constant(tf.constant(1), [1], [1.0, 2])


def test_decay_names_and_required_step():
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        assert tf.train.exponential_decay(0.1, step, 10, 0.9).op.name == "ExponentialDecay"
        assert tf.train.exponential_decay(0.1, step, 10, 0.9, name="lr").op.name == "lr"
        assert tf.train.piecewise_constant(step, [5], [0.1, 0.01]).op.name == "PiecewiseConstant"
    for fn in (tf.train.exponential_decay, tf.train.natural_exp_decay, tf.train.inverse_time_decay):
        with pytest.raises(ValueError, match="global_step is required"):
            fn(0.1, None, 10, 0.9)


def test_decay_follows_the_global_step_during_training():
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        lr = tf.train.exponential_decay(1.0, step, 2, 0.5, staircase=True)
        inc = tf.assign_add(step, 1)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            seen = []
            for _ in range(5):
                seen.append(float(sess.run(lr)))
                sess.run(inc)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]


# -- Coordinator ------------------------------------------------------------------------------------

def _worker(coord, work, stop_after=None, error=None):
    with coord.stop_on_exception():
        n = 0
        while not coord.should_stop():
            work.append(1)
            n += 1
            if error is not None and n == 3:
                raise error
            if stop_after is not None and n == stop_after:
                coord.request_stop()
            time.sleep(0.001)


def test_coordinator_stops_all_threads():
    coord = tf.train.Coordinator()
    work = []
    threads = [threading.Thread(target=_worker, args=(coord, work, 5 if i == 0 else None)) for i in range(3)]
    for t in threads:
        t.start()
    coord.join(threads, stop_grace_period_secs=5)
    assert coord.should_stop() and coord.joined
    assert not any(t.is_alive() for t in threads)


def test_coordinator_reraises_first_exception():
    coord = tf.train.Coordinator()
    threads = [threading.Thread(target=_worker, args=(coord, [], None, ValueError("boom")))]
    for t in threads:
        t.start()
    assert coord.wait_for_stop(5.0)
    with pytest.raises(ValueError, match="boom"):
        coord.raise_requested_exception()
    with pytest.raises(ValueError, match="boom"):
        coord.join(threads, stop_grace_period_secs=5)
    # After join, reporting raises at once.
    with pytest.raises(RuntimeError, match="late"):
        coord.request_stop(RuntimeError("late"))


def test_coordinator_clean_stop_exceptions_are_not_reported():
    coord = tf.train.Coordinator()
    coord.request_stop(tf.errors.OutOfRangeError(None, None, "end of input"))
    assert coord.should_stop()
    coord.join([])
    coord = tf.train.Coordinator(clean_stop_exception_types=(KeyError,))
    try:
        raise KeyError("k")
    except KeyError:
        import sys
        coord.request_stop(sys.exc_info())
    coord.join()


def test_coordinator_only_the_first_exception_counts():
    coord = tf.train.Coordinator()
    coord.request_stop(ValueError("first"))
    coord.request_stop(TypeError("second"))
    with pytest.raises(ValueError, match="first"):
        coord.join()


def test_coordinator_straggler_and_registered_threads():
    coord = tf.train.Coordinator()
    release = threading.Event()
    t = threading.Thread(target=release.wait, args=(5.0,), name="slowpoke")
    coord.register_thread(t)
    t.start()
    coord.request_stop()
    with pytest.raises(RuntimeError, match="slowpoke"):
        coord.join(stop_grace_period_secs=0.05)
    coord.clear_stop()
    assert not coord.should_stop() and not coord.joined
    coord.register_thread(t)
    coord.request_stop()
    coord.join(stop_grace_period_secs=0.05, ignore_live_threads=True)
    release.set()
    t.join()


def test_wait_for_stop_is_bounded():
    coord = tf.train.Coordinator()
    start = time.time()
    assert coord.wait_for_stop(0.05) is False
    assert time.time() - start < 2.0
    threading.Timer(0.05, coord.request_stop).start()
    assert coord.wait_for_stop(5.0) is True


def test_looper_thread():
    from tensorweave.train.coordinator import LooperThread
    coord = tf.train.Coordinator()
    calls = []
    looper = LooperThread.loop(coord, 0.01, target=calls.append, args=(1,))
    time.sleep(0.1)
    coord.request_stop()
    coord.join([looper], stop_grace_period_secs=5)
    assert len(calls) >= 2
