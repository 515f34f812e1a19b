"""`tf.train.MonitoredTrainingSession` and the standard hooks in one process: hook call order,
stopping, checkpoints every N steps, summaries TensorBoard reads, logging, NaN, final ops, feeds,
and a second session restoring the first one's checkpoint."""

import io
import logging
import os
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import tensorweave as tf
from tensorweave.summary.writer import FileWriterCache

XV = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
YV = np.random.default_rng(2).standard_normal((6, 1)).astype(np.float32)


def _model():
    """A linear model with a global step; returns (step, w, loss, train_op)."""
    step = tf.train.get_or_create_global_step()
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    y = tf.placeholder(tf.float32, [None, 1], name="y")
    w = tf.Variable(np.full((4, 1), 0.5, np.float32), name="w")
    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y), name="loss")
    tf.summary.scalar("train_loss", loss)
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step, name="train")
    return step, w, loss, train


def _feed():
    return {"x:0": XV, "y:0": YV}


@pytest.fixture(autouse=True)
def _close_writers():
    yield
    FileWriterCache.clear()


class _Recorder(tf.train.SessionRunHook):
    def __init__(self, calls):
        self.calls = calls

    def begin(self):
        self.calls.append("begin")

    def after_create_session(self, session, coord):
        self.calls.append("after_create_session")

    def before_run(self, run_context):
        self.calls.append("before_run")
        assert run_context.original_args.fetches is not None
        return tf.train.SessionRunArgs(tf.train.get_global_step())

    def after_run(self, run_context, run_values):
        self.calls.append(("after_run", int(run_values.results)))

    def end(self, session):
        self.calls.append("end")


def test_hooks_are_called_in_order_and_stop_at_step_stops():
    calls = []
    with tf.Graph().as_default():
        _step, _, _, train = _model()
        hooks = [_Recorder(calls), tf.train.StopAtStepHook(last_step=3)]
        with tf.train.MonitoredTrainingSession(hooks=hooks, log_step_count_steps=None) as sess:
            runs = 0
            while not sess.should_stop():
                sess.run(train, _feed())
                runs += 1
        assert runs == 3
    assert calls[:3] == ["begin", "after_create_session", "before_run"]
    assert [c[1] for c in calls if isinstance(c, tuple)] in ([0, 1, 2], [1, 2, 3])
    assert calls[-1] == "end"
    with pytest.raises(ValueError):
        tf.train.StopAtStepHook()


def test_run_after_should_stop_raises_and_num_steps_counts_from_the_start():
    with tf.Graph().as_default():
        _step, _, _, train = _model()
        with tf.train.MonitoredTrainingSession(hooks=[tf.train.StopAtStepHook(num_steps=2)]) as sess:
            sess.run(train, _feed())
            sess.run(train, _feed())
            assert sess.should_stop()
            with pytest.raises(RuntimeError, match="should_stop"):
                sess.run(train, _feed())


def test_checkpoints_every_n_steps_and_a_second_session_restores_and_continues(tmp_path):
    ckpt = str(tmp_path)
    with tf.Graph().as_default():
        step, w, _, train = _model()
        final = tf.train.FinalOpsHook(w)
        with tf.train.MonitoredTrainingSession(checkpoint_dir=ckpt, save_checkpoint_steps=5, save_summaries_steps=None,
                                               hooks=[tf.train.StopAtStepHook(last_step=12), final]) as sess:
            seen = []
            while not sess.should_stop():
                sess.run(train, _feed())
                seen.append(tf.train.latest_checkpoint(ckpt))
        trained = final.final_ops_values
        steps_saved = sorted({int(p.rsplit("-", 1)[1]) for p in seen})
        assert steps_saved == [0, 5, 10]
        assert tf.train.latest_checkpoint(ckpt).endswith("model.ckpt-12")  # saved at the end
        assert os.path.exists(os.path.join(ckpt, "graph.pbtxt"))
    with tf.Graph().as_default():
        step, w, _, train = _model()
        final = tf.train.FinalOpsHook(step)
        with tf.train.MonitoredTrainingSession(checkpoint_dir=ckpt, save_checkpoint_steps=5, save_summaries_steps=None,
                                               hooks=[tf.train.StopAtStepHook(num_steps=3), final]) as sess:
            assert tf.train.global_step(sess, step) == 12
            np.testing.assert_array_equal(sess.run(w), trained)
            while not sess.should_stop():
                sess.run(train, _feed())
        assert final.final_ops_values == 15


def test_summary_saver_hook_writes_event_files_tensorboard_reads(tmp_path):
    with tf.Graph().as_default():
        _, _, _, train = _model()
        with tf.train.MonitoredTrainingSession(checkpoint_dir=str(tmp_path), save_checkpoint_secs=None,
                                               save_summaries_steps=2, log_step_count_steps=2,
                                               hooks=[tf.train.StopAtStepHook(last_step=6)]) as sess:
            while not sess.should_stop():
                sess.run(train, _feed())
    FileWriterCache.clear()
    acc = event_accumulator.EventAccumulator(str(tmp_path)).Reload()
    assert [e.step for e in acc.Scalars("train_loss")] == [1, 3, 5]
    assert "global_step/sec" in acc.Tags()["scalars"]
    assert not any(n.startswith("model.ckpt") for n in os.listdir(tmp_path))  # checkpoints off


def test_logging_tensor_hook_logs_every_n_iter_and_at_end(caplog):
    with tf.Graph().as_default():
        step, _, loss, train = _model()
        every = tf.train.LoggingTensorHook({"loss": loss, "step": step}, every_n_iter=2)
        at_end = tf.train.LoggingTensorHook(["global_step:0"], at_end=True)
        with caplog.at_level(logging.INFO), \
                tf.train.MonitoredSession(hooks=[every, at_end, tf.train.FeedFnHook(_feed)]) as sess:
            for _ in range(4):
                sess.run(train)
    messages = [r.getMessage() for r in caplog.records]
    lines = [m for m in messages if m.startswith("loss = ")]
    assert len(lines) == 2 and all("step = " in line for line in lines), lines  # iterations 0 and 2
    assert "sec)" in lines[1]
    assert "global_step:0 = 4" in messages
    with pytest.raises(ValueError):
        tf.train.LoggingTensorHook({"loss": loss})


def test_nan_tensor_hook_raises_or_stops():
    with tf.Graph().as_default():
        tf.train.get_or_create_global_step()
        bad = tf.constant(np.nan, name="bad")
        with pytest.raises(tf.train.NanLossDuringTrainingError, match="NaN loss"), \
                tf.train.MonitoredSession(hooks=[tf.train.NanTensorHook(bad)]) as sess:
            sess.run(bad)
        with tf.train.MonitoredSession(hooks=[tf.train.NanTensorHook(bad, fail_on_nan_loss=False)]) as sess:
            sess.run(bad)
            assert sess.should_stop()


def test_final_ops_and_feed_fn_hooks():
    with tf.Graph().as_default():
        _step, w, loss, train = _model()
        final = tf.train.FinalOpsHook(loss, final_ops_feed_dict=_feed())
        with tf.train.MonitoredSession(hooks=[final, tf.train.FeedFnHook(_feed)]) as sess:
            sess.run(train)
            sess.run(train)
            last_w = sess.run(w)
            with pytest.raises(RuntimeError, match="Same tensor is fed"):
                sess.run(train, _feed())
        expected = np.mean((XV @ last_w - YV) ** 2)
        np.testing.assert_allclose(final.final_ops_values, expected, rtol=1e-5)


def test_out_of_range_ends_cleanly_and_the_graph_is_finalized():
    with tf.Graph().as_default() as g:
        _model()
        with tf.train.MonitoredSession() as sess:
            assert g.finalized
            raise tf.errors.OutOfRangeError(None, None, "end of input")
        assert sess.should_stop()


def test_singular_monitored_session_gives_the_raw_session():
    with tf.Graph().as_default():
        step, w, _, _ = _model()
        with tf.train.SingularMonitoredSession() as sess:
            assert tf.train.global_step(sess.raw_session(), step) == 0
            np.testing.assert_array_equal(sess.run(w), np.full((4, 1), 0.5, np.float32))


def test_a_progress_bar_shows_on_a_terminal_toward_the_last_step(monkeypatch):
    class _Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("TENSORWEAVE_PROGRESS", raising=False)
    with tf.Graph().as_default():
        _, _, _, train = _model()
        with tf.train.MonitoredTrainingSession(hooks=[tf.train.StopAtStepHook(last_step=5)]) as sess:
            while not sess.should_stop():
                sess.run(train, _feed())
    assert "5/5" in terminal.getvalue()


def test_no_progress_bar_when_stderr_is_not_a_terminal(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    monkeypatch.delenv("TENSORWEAVE_PROGRESS", raising=False)
    with tf.Graph().as_default():
        _, _, _, train = _model()
        with tf.train.MonitoredTrainingSession(hooks=[tf.train.StopAtStepHook(last_step=2)]) as sess:
            while not sess.should_stop():
                sess.run(train, _feed())
    assert "step" not in pipe.getvalue()
