"""`tf.train.GlobalStepWaiterHook`: a MonitoredSession's first step waits until another thread
has advanced the global step to `wait_until_step` (logging that it waits); with 0 it starts at
once without polling; without a global step `begin` raises RuntimeError. Every wait is bounded."""

import logging
import threading
import time

import pytest

import tensorweave as tf

WAIT_S = 30.0  # bound on any wait in these tests


class _SessionGrabber(tf.train.SessionRunHook):
    """Hands the raw session to another thread once it exists."""

    def __init__(self):
        self.session = None
        self.ready = threading.Event()

    def after_create_session(self, session, coord):
        self.session = session
        self.ready.set()


class _CountingRuns(tf.train.SessionRunHook):
    """Counts the steps that reached this hook (it runs after the waiter in the hook list)."""

    def __init__(self):
        self.steps = 0

    def before_run(self, run_context):
        self.steps += 1


def _model():
    step = tf.train.get_or_create_global_step()
    advance = tf.assign_add(step, 1, name="advance")
    read = tf.identity(step, name="read_step")
    return step, advance, read


def _run_first_step(sess, fetch, out):
    try:
        out.append(sess.run(fetch))
    except BaseException as e:  # noqa: BLE001 - reported by the test thread
        out.append(e)


def test_first_step_waits_for_the_global_step_another_thread_advances(caplog):
    with tf.Graph().as_default():
        step, advance, read = _model()
        waiter = tf.train.GlobalStepWaiterHook(wait_until_step=3)
        waiter.poll_seconds = 0.02
        grabber, counting = _SessionGrabber(), _CountingRuns()
        with caplog.at_level(logging.INFO, logger="tensorweave"), \
                tf.train.MonitoredSession(hooks=[grabber, waiter, counting]) as sess:
            assert grabber.ready.wait(WAIT_S)
            out = []
            runner = threading.Thread(target=_run_first_step, args=(sess, read, out), daemon=True)
            runner.start()
            time.sleep(0.2)
            assert runner.is_alive() and counting.steps == 0  # still waiting at step 0
            for _ in range(3):
                grabber.session.run(advance)
            runner.join(WAIT_S)
            assert not runner.is_alive(), "the waiter did not return after the global step reached 3"
            assert out == [3], out
            assert counting.steps == 1
            assert sess.run(read) == 3  # later steps do not wait again
    assert any("Waiting for global step 3" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("initial_step, wait_until_step", [(0, 0), (0, -5), (5, 2)])
def test_no_wait_for_zero_a_negative_step_or_one_already_reached(initial_step, wait_until_step):
    with tf.Graph().as_default():
        step = tf.Variable(initial_step, dtype=tf.int64, name="global_step", trainable=False,
                           collections=[tf.GraphKeys.GLOBAL_VARIABLES, tf.GraphKeys.GLOBAL_STEP])
        waiter = tf.train.GlobalStepWaiterHook(wait_until_step)
        waiter.poll_seconds = WAIT_S  # a poll would show as a long sleep
        started = time.monotonic()
        with tf.train.MonitoredSession(hooks=[waiter]) as sess:
            assert sess.run(step) == initial_step
        assert time.monotonic() - started < WAIT_S / 2


def test_begin_without_a_global_step_raises():
    with tf.Graph().as_default():
        tf.Variable(1.0, name="not_a_step")
        with pytest.raises(RuntimeError, match="Global step should be created"):
            tf.train.GlobalStepWaiterHook(1).begin()
