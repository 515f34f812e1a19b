"""The standard `tf.train` session run hooks: stop at a step, save checkpoints and summaries, log
tensors, count steps per second, fail on NaN, run final ops, feed each step, wait for a step.

Hooks that act every N steps follow the global step (shared by all workers); `LoggingTensorHook`
follows this process's own iterations, as in TF1.
"""

import os
import time

import numpy as np
from tensorboard.compat.proto.event_pb2 import SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary

from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.framework.graph_io import write_graph
from tensorweave.platform import tf_logging as logging
from tensorweave.summary.writer import FileWriterCache
from tensorweave.train import training_util
from tensorweave.train.session_run_hook import SessionRunArgs, SessionRunHook


class NanLossDuringTrainingError(RuntimeError):
    """Raised by `NanTensorHook` when the loss is NaN."""

    def __str__(self):
        return "NaN loss during training."


class SecondOrStepTimer:
    """`tf.train.SecondOrStepTimer(every_secs=None, every_steps=None)`: triggers at most once every
    `every_secs` seconds or every `every_steps` steps (exactly one of them)."""

    def __init__(self, every_secs=None, every_steps=None):
        if (every_secs is None) == (every_steps is None):
            raise ValueError("Either every_secs or every_steps should be provided, but not both.")
        if (every_steps is not None and every_steps <= 0) or (every_secs is not None and every_secs <= 0):
            raise ValueError("every_secs and every_steps must be positive.")
        self._every_secs, self._every_steps = every_secs, every_steps
        self.reset()

    def reset(self):
        self._last_time, self._last_step = None, None

    def should_trigger_for_step(self, step):
        """True the first time, then when enough seconds or steps have passed since the last trigger."""
        if self._last_step is None:
            return True
        if self._last_step == step:
            return False
        if self._every_secs is not None:
            return time.time() >= self._last_time + self._every_secs
        return step >= self._last_step + self._every_steps

    def update_last_triggered_step(self, step):
        """Records a trigger at `step`; returns (seconds, steps) since the previous one (None first)."""
        now = time.time()
        elapsed = (None, None) if self._last_time is None else (now - self._last_time, step - self._last_step)
        self._last_time, self._last_step = now, step
        return elapsed

    def last_triggered_step(self):
        return self._last_step


def _global_step_tensor(hook_name):
    step = training_util.get_global_step()
    if step is None:
        raise RuntimeError(f"Global step should be created to use {hook_name}.")
    return step


def _as_graph_element(obj):
    return get_default_graph().as_graph_element(obj) if isinstance(obj, str) else obj


class StopAtStepHook(SessionRunHook):
    """`tf.train.StopAtStepHook(num_steps=None, last_step=None)`: requests a stop when the global
    step reaches `last_step`, or `num_steps` after the step the first session started at."""

    def __init__(self, num_steps=None, last_step=None):
        if (num_steps is None) == (last_step is None):
            raise ValueError("One of num_steps or last_step must be specified.")
        if num_steps is not None and num_steps < 0:
            raise ValueError("num_steps must be non-negative.")
        if last_step is not None and last_step < 0:
            raise ValueError("last_step must be non-negative.")
        self._num_steps, self._last_step = num_steps, last_step

    last_step = property(lambda self: self._last_step, doc="The step to stop at (known once a session exists).")

    def begin(self):
        self._global_step_tensor = _global_step_tensor("StopAtStepHook")

    def after_create_session(self, session, coord):
        step = training_util.global_step(session, self._global_step_tensor)
        if self._last_step is None:  # counted from the first session only, not after a recovery
            self._last_step = step + self._num_steps
        if step >= self._last_step:
            coord.request_stop()

    def before_run(self, run_context):
        return SessionRunArgs(self._global_step_tensor)

    def after_run(self, run_context, run_values):
        # The step read with the train op may be from before its increment: reread when close.
        if int(run_values.results) + 1 >= self._last_step and \
                training_util.global_step(run_context.session, self._global_step_tensor) >= self._last_step:
            run_context.request_stop()


class CheckpointSaverListener:
    """`tf.train.CheckpointSaverListener`: called around each save of a `CheckpointSaverHook`."""

    def begin(self):
        pass

    def before_save(self, session, global_step_value):
        pass

    def after_save(self, session, global_step_value):
        """May return True to request a stop."""

    def end(self, session, global_step_value):
        pass


class CheckpointSaverHook(SessionRunHook):
    """`tf.train.CheckpointSaverHook(checkpoint_dir, save_secs=None, save_steps=None, saver=None,
    checkpoint_basename="model.ckpt", scaffold=None, listeners=None)`: saves a checkpoint when a
    session is created, every `save_secs` seconds or `save_steps` global steps, and at the end."""

    def __init__(self, checkpoint_dir, save_secs=None, save_steps=None, saver=None,
                 checkpoint_basename="model.ckpt", scaffold=None, listeners=None):
        if saver is not None and scaffold is not None:
            raise ValueError("You cannot provide both saver and scaffold.")
        self._checkpoint_dir = os.fspath(checkpoint_dir)
        self._save_path = os.path.join(self._checkpoint_dir, checkpoint_basename)
        self._saver, self._scaffold = saver, scaffold
        self._timer = SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)
        self._listeners = list(listeners or [])

    def begin(self):
        self._summary_writer = FileWriterCache.get(self._checkpoint_dir)
        self._global_step_tensor = _global_step_tensor("CheckpointSaverHook")
        for listener in self._listeners:
            listener.begin()

    def after_create_session(self, session, coord):
        step = training_util.global_step(session, self._global_step_tensor)
        graph = get_default_graph()
        write_graph(graph, self._checkpoint_dir, "graph.pbtxt")
        self._summary_writer.add_graph(graph)
        self._save(session, step)  # the state the session starts from, so a failure loses nothing before it
        self._timer.update_last_triggered_step(step)

    def before_run(self, run_context):
        return SessionRunArgs(self._global_step_tensor)

    def after_run(self, run_context, run_values):
        if self._timer.should_trigger_for_step(int(run_values.results) + 1):
            step = training_util.global_step(run_context.session, self._global_step_tensor)
            if self._timer.should_trigger_for_step(step):
                self._timer.update_last_triggered_step(step)
                if self._save(run_context.session, step):
                    run_context.request_stop()

    def end(self, session):
        step = training_util.global_step(session, self._global_step_tensor)
        if step != self._timer.last_triggered_step():
            self._save(session, step)
        for listener in self._listeners:
            listener.end(session, step)

    def _get_saver(self):
        if self._saver is not None:
            return self._saver
        if self._scaffold is not None:
            return self._scaffold.saver
        savers = get_default_graph().get_collection(GraphKeys.SAVERS)
        if len(savers) != 1:
            raise RuntimeError(f"CheckpointSaverHook needs exactly one saver in the SAVERS collection, "
                               f"found {len(savers)}; pass saver= or scaffold=.")
        return savers[0]

    def _save(self, session, step):
        """Saves; returns True if a listener asked to stop."""
        logging.info("Saving checkpoints for %d into %s.", step, self._save_path)
        for listener in self._listeners:
            listener.before_save(session, step)
        prefix = self._get_saver().save(session, self._save_path, global_step=step)
        self._summary_writer.add_session_log(SessionLog(status=SessionLog.CHECKPOINT, checkpoint_path=prefix),
                                             step)
        stop = False
        for listener in self._listeners:
            stop = bool(listener.after_save(session, step)) or stop
        return stop


class SummarySaverHook(SessionRunHook):
    """`tf.train.SummarySaverHook(save_steps=None, save_secs=None, output_dir=None,
    summary_writer=None, scaffold=None, summary_op=None)`: runs the summary op every
    `save_steps` global steps or `save_secs` seconds and writes it to event files."""

    def __init__(self, save_steps=None, save_secs=None, output_dir=None, summary_writer=None, scaffold=None,
                 summary_op=None):
        if (scaffold is None) == (summary_op is None):
            raise ValueError("Exactly one of scaffold or summary_op must be provided.")
        self._summary_op, self._scaffold = summary_op, scaffold
        self._summary_writer, self._output_dir = summary_writer, output_dir
        self._timer = SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)

    def begin(self):
        if self._summary_writer is None and self._output_dir:
            self._summary_writer = FileWriterCache.get(self._output_dir)
        self._next_step = None
        self._global_step_tensor = _global_step_tensor("SummarySaverHook")

    def _summary_ops(self):
        op = self._scaffold.summary_op if self._scaffold is not None else self._summary_op
        if op is None:
            return None
        return list(op) if isinstance(op, (list, tuple)) else [op]

    def before_run(self, run_context):
        self._request_summary = self._next_step is None or self._timer.should_trigger_for_step(self._next_step)
        requests = {"global_step": self._global_step_tensor}
        ops = self._summary_ops()
        if self._request_summary and ops:
            requests["summary"] = ops
        return SessionRunArgs(requests)

    def after_run(self, run_context, run_values):
        if self._summary_writer is None:
            return
        step = int(run_values.results["global_step"]) + 1
        if self._next_step is None or self._request_summary:
            step = training_util.global_step(run_context.session, self._global_step_tensor)
        if self._next_step is None:
            self._summary_writer.add_session_log(SessionLog(status=SessionLog.START), step)
        if self._request_summary:
            self._timer.update_last_triggered_step(step)
            for summary in run_values.results.get("summary", ()):
                self._summary_writer.add_summary(summary, step)
        self._next_step = step + 1

    def end(self, session=None):
        if self._summary_writer is not None:
            self._summary_writer.flush()


class LoggingTensorHook(SessionRunHook):
    """`tf.train.LoggingTensorHook(tensors, every_n_iter=None, every_n_secs=None, at_end=False,
    formatter=None)`: logs the values of `tensors` (a dict of tag to tensor or name, or a list)
    every N local iterations or seconds, and/or at the end."""

    def __init__(self, tensors, every_n_iter=None, every_n_secs=None, at_end=False, formatter=None):
        only_log_at_end = at_end and every_n_iter is None and every_n_secs is None
        if not only_log_at_end and (every_n_iter is None) == (every_n_secs is None):
            raise ValueError("either at_end and/or exactly one of every_n_iter and every_n_secs must be provided.")
        if every_n_iter is not None and every_n_iter <= 0:
            raise ValueError(f"invalid every_n_iter={every_n_iter}.")
        if not isinstance(tensors, dict):
            self._tag_order = list(tensors)
            tensors = {t if isinstance(t, str) else t.name: t for t in tensors}
        else:
            self._tag_order = sorted(tensors)
        self._tensors = tensors
        self._formatter, self._log_at_end = formatter, at_end
        self._timer = None if only_log_at_end else SecondOrStepTimer(every_secs=every_n_secs,
                                                                     every_steps=every_n_iter)

    def begin(self):
        if self._timer is not None:
            self._timer.reset()
        self._iter_count = 0
        self._current = {tag: _as_graph_element(t) for tag, t in self._tensors.items()}

    def before_run(self, run_context):
        self._should_trigger = self._timer is not None and self._timer.should_trigger_for_step(self._iter_count)
        return SessionRunArgs(self._current) if self._should_trigger else None

    def _log(self, values, elapsed_secs=None):
        if self._formatter is not None:
            logging.info("%s", self._formatter(values))
            return
        line = ", ".join(f"{tag} = {values[tag]}" for tag in self._tag_order)
        if elapsed_secs is None:
            logging.info("%s", line)
        else:
            logging.info("%s (%.3f sec)", line, elapsed_secs)

    def after_run(self, run_context, run_values):
        if self._should_trigger:
            elapsed_secs, _ = self._timer.update_last_triggered_step(self._iter_count)
            self._log(run_values.results, elapsed_secs)
        self._iter_count += 1

    def end(self, session):
        if self._log_at_end:
            self._log(session.run(self._current))


class NanTensorHook(SessionRunHook):
    """`tf.train.NanTensorHook(loss_tensor, fail_on_nan_loss=True)`: raises
    `NanLossDuringTrainingError` (or, with fail_on_nan_loss=False, stops) when the loss is NaN."""

    def __init__(self, loss_tensor, fail_on_nan_loss=True):
        self._loss_tensor, self._fail_on_nan_loss = loss_tensor, fail_on_nan_loss

    def before_run(self, run_context):
        return SessionRunArgs(self._loss_tensor)

    def after_run(self, run_context, run_values):
        if np.isnan(run_values.results).any():
            if self._fail_on_nan_loss:
                logging.error("Model diverged with loss = NaN.")
                raise NanLossDuringTrainingError
            logging.warning("Model diverged with loss = NaN. Stopping training.")
            run_context.request_stop()


class StepCounterHook(SessionRunHook):
    """`tf.train.StepCounterHook(every_n_steps=100, every_n_secs=None, output_dir=None,
    summary_writer=None)`: logs and writes the summary `global_step/sec`."""

    def __init__(self, every_n_steps=100, every_n_secs=None, output_dir=None, summary_writer=None):
        if (every_n_steps is None) == (every_n_secs is None):
            raise ValueError("exactly one of every_n_steps and every_n_secs should be provided.")
        self._timer = SecondOrStepTimer(every_steps=every_n_steps, every_secs=every_n_secs)
        self._summary_writer, self._output_dir = summary_writer, output_dir
        self._summary_tag = "global_step/sec"

    def begin(self):
        if self._summary_writer is None and self._output_dir:
            self._summary_writer = FileWriterCache.get(self._output_dir)
        self._global_step_tensor = _global_step_tensor("StepCounterHook")

    def before_run(self, run_context):
        return SessionRunArgs(self._global_step_tensor)

    def after_run(self, run_context, run_values):
        step = int(run_values.results)
        if self._timer.should_trigger_for_step(step):
            elapsed_secs, elapsed_steps = self._timer.update_last_triggered_step(step)
            if elapsed_secs:
                rate = elapsed_steps / elapsed_secs
                if self._summary_writer is not None:
                    summary = Summary(value=[Summary.Value(tag=self._summary_tag, simple_value=rate)])
                    self._summary_writer.add_summary(summary, step)
                logging.info("%s: %g", self._summary_tag, rate)


class FinalOpsHook(SessionRunHook):
    """`tf.train.FinalOpsHook(final_ops, final_ops_feed_dict=None)`: runs `final_ops` when the
    session ends; their values are then `final_ops_values`."""

    def __init__(self, final_ops, final_ops_feed_dict=None):
        self._final_ops, self._final_ops_feed_dict = final_ops, final_ops_feed_dict
        self._final_ops_values = None

    final_ops_values = property(lambda self: self._final_ops_values, doc="The values of final_ops at the end.")

    def end(self, session):
        if self._final_ops is not None:
            self._final_ops_values = session.run(self._final_ops, feed_dict=self._final_ops_feed_dict)


class FeedFnHook(SessionRunHook):
    """`tf.train.FeedFnHook(feed_fn)`: feeds `feed_fn()` (a feed dict) into every run."""

    def __init__(self, feed_fn):
        self.feed_fn = feed_fn

    def before_run(self, run_context):
        return SessionRunArgs(fetches=None, feed_dict=self.feed_fn())


class GlobalStepWaiterHook(SessionRunHook):
    """`tf.train.GlobalStepWaiterHook(wait_until_step)`: before its first step, waits until the
    global step reaches `wait_until_step` (no wait when it is 0 or less). Starts workers of a
    cluster gradually, e.g. `wait_until_step=int(K * log(task_index + 1))` with the chief at 0.
    The wait polls the global step every `poll_seconds` and has no deadline, as in TF1."""

    poll_seconds = 0.5
    _LOG_EVERY_STEPS = 1000

    def __init__(self, wait_until_step):
        self._wait_until_step = wait_until_step

    def begin(self):
        self._worker_is_started = False
        self._global_step_tensor = training_util.get_global_step()
        if self._global_step_tensor is None:
            raise RuntimeError("Global step should be created to use _GlobalStepWaiterHook.")

    def before_run(self, run_context):
        if self._worker_is_started:
            return None
        if self._wait_until_step <= 0:
            self._worker_is_started = True
            return None
        logging.info("Waiting for global step %d before starting training.", self._wait_until_step)
        last_logged_step = 0
        while True:
            current_step = int(run_context.session.run(self._global_step_tensor))
            if current_step >= self._wait_until_step:
                self._worker_is_started = True
                return None
            if current_step - last_logged_step > self._LOG_EVERY_STEPS:
                logging.info("Waiting for global step %d before starting training. Current step is %d.",
                             self._wait_until_step, current_step)
                last_logged_step = current_step
            time.sleep(self.poll_seconds)


__all__ = [
    "CheckpointSaverHook",
    "CheckpointSaverListener",
    "FeedFnHook",
    "FinalOpsHook",
    "GlobalStepWaiterHook",
    "LoggingTensorHook",
    "NanLossDuringTrainingError",
    "NanTensorHook",
    "SecondOrStepTimer",
    "StepCounterHook",
    "StopAtStepHook",
    "SummarySaverHook",
]
