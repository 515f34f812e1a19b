"""`tf.train.MonitoredSession` and `tf.train.MonitoredTrainingSession`: a session that runs hooks
around each step and recovers from the loss of a cluster task.

    with tf.train.MonitoredTrainingSession(master=server.target, is_chief=task_index == 0,
                                           checkpoint_dir=logdir, save_checkpoint_steps=100,
                                           hooks=[tf.train.StopAtStepHook(last_step=10000)]) as sess:
        while not sess.should_stop():
            sess.run(train_op)

Recovery. When a step fails with `UnavailableError` or `AbortedError` (a parameter server died or
restarted), the monitored session closes the broken session and creates a new one through its
session creator, retrying with exponential backoff while the cluster does not answer, for at
most `max_wait_secs`. The chief's creator restores every variable from the latest checkpoint (the
other workers wait until it has), hooks see `after_create_session` again, and the failed step is
run again on the new session; the caller's `run` returns its result and raises nothing. The
steps taken since the latest checkpoint are lost (the global step goes back to that checkpoint's).
"""

import os
import sys
import time

from tensorweave.framework import errors
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.ops import control_ops, variables
from tensorweave.platform import tf_logging as logging
from tensorweave.summary.summary_ops import merge_all
from tensorweave.train import basic_session_run_hooks as hooks_lib
from tensorweave.train import progress as progress_lib
from tensorweave.train import training_util
from tensorweave.train.coordinator import Coordinator
from tensorweave.train.saver import Saver
from tensorweave.train.session_run_hook import (
    SessionRunArgs,
    SessionRunContext,
    SessionRunHook,
    SessionRunValues,
)
from tensorweave.train.supervisor import SessionManager

# Errors that mean a task of the cluster was lost or restarted: the session is recreated.
_PREEMPTION_ERRORS = (errors.UnavailableError, errors.AbortedError)
_INITIAL_BACKOFF_SECS = 0.5
_MAX_BACKOFF_SECS = 30.0
# A non-chief polls this often for the chief to make the model ready (TF1 waited 30 s; a worker
# waiting through a parameter server's recovery should not lag the chief by that much).
_WORKER_RECOVERY_WAIT_SECS = 2.0
USE_DEFAULT = object()


class Scaffold:
    """`tf.train.Scaffold(init_op=None, init_feed_dict=None, init_fn=None, ready_op=None,
    ready_for_local_init_op=None, local_init_op=None, summary_op=None, saver=None)`: the ops a
    monitored session needs to initialize, check, summarize and save a model. `finalize()` builds
    each one not given (from its graph collection, else the default, as `Supervisor` does) and
    finalizes the graph. `init_fn(scaffold, session)` runs after `init_op`."""

    def __init__(self, init_op=None, init_feed_dict=None, init_fn=None, ready_op=None,
                 ready_for_local_init_op=None, local_init_op=None, summary_op=None, saver=None,
                 copy_from_scaffold=None):
        if copy_from_scaffold is not None:
            c = copy_from_scaffold
            init_op = init_op or c.init_op
            init_feed_dict = init_feed_dict or c.init_feed_dict
            init_fn = init_fn or c._user_init_fn
            ready_op = ready_op or c.ready_op
            ready_for_local_init_op = ready_for_local_init_op or c.ready_for_local_init_op
            local_init_op = local_init_op or c.local_init_op
            summary_op = summary_op or c.summary_op
            saver = saver or c.saver
        self._init_op, self._init_feed_dict, self._user_init_fn = init_op, init_feed_dict, init_fn
        self._init_fn = (lambda sess: init_fn(self, sess)) if init_fn else None
        self._ready_op, self._ready_for_local_init_op = ready_op, ready_for_local_init_op
        self._local_init_op, self._summary_op, self._saver = local_init_op, summary_op, saver
        self._finalized = False

    def finalize(self):
        """Builds the missing ops and finalizes the default graph; later calls do nothing."""
        if self._finalized:
            return self
        graph = get_default_graph()

        def default(value, key, build):
            if value is not None:
                return value
            found = graph.get_collection(key)
            if found:
                return found[0]
            value = build()
            if value is not None:
                graph.add_to_collection(key, value)
            return value

        self._init_op = default(self._init_op, GraphKeys.INIT_OP, variables.global_variables_initializer)
        self._ready_op = default(self._ready_op, GraphKeys.READY_OP, variables.report_uninitialized_variables)
        self._ready_for_local_init_op = default(
            self._ready_for_local_init_op, GraphKeys.READY_FOR_LOCAL_INIT_OP,
            lambda: variables.report_uninitialized_variables(variables.global_variables()))
        self._local_init_op = default(self._local_init_op, GraphKeys.LOCAL_INIT_OP, self.default_local_init_op)
        self._summary_op = default(self._summary_op, GraphKeys.SUMMARY_OP, merge_all)
        self._saver = default(self._saver, GraphKeys.SAVERS,
                              lambda: Saver() if variables.global_variables() else None)
        graph.finalize()
        self._finalized = True
        return self

    @staticmethod
    def default_local_init_op():
        """The local variable and table initializers, grouped."""
        return control_ops.group(variables.local_variables_initializer(),
                                 *get_default_graph().get_collection(GraphKeys.TABLE_INITIALIZERS))

    init_op = property(lambda self: self._init_op)
    init_feed_dict = property(lambda self: self._init_feed_dict)
    init_fn = property(lambda self: self._init_fn)
    ready_op = property(lambda self: self._ready_op)
    ready_for_local_init_op = property(lambda self: self._ready_for_local_init_op)
    local_init_op = property(lambda self: self._local_init_op)
    summary_op = property(lambda self: self._summary_op)
    saver = property(lambda self: self._saver)


class SessionCreator:
    """`tf.train.SessionCreator`: makes the sessions of a MonitoredSession (`create_session()`)."""

    def create_session(self):
        raise NotImplementedError


class ChiefSessionCreator(SessionCreator):
    """`tf.train.ChiefSessionCreator(scaffold=None, master='', config=None, checkpoint_dir=None,
    checkpoint_filename_with_path=None)`: sessions whose model is restored from the latest
    checkpoint in `checkpoint_dir`, or initialized when there is none."""

    def __init__(self, scaffold=None, master="", config=None, checkpoint_dir=None,
                 checkpoint_filename_with_path=None):
        self._scaffold = scaffold or Scaffold()
        self._master, self._config = master, config
        self._checkpoint_dir, self._checkpoint_filename_with_path = checkpoint_dir, checkpoint_filename_with_path

    def _session_manager(self, recovery_wait_secs=30):
        s = self._scaffold
        return SessionManager(local_init_op=s.local_init_op, ready_op=s.ready_op,
                              ready_for_local_init_op=s.ready_for_local_init_op, graph=get_default_graph(),
                              recovery_wait_secs=recovery_wait_secs)

    def create_session(self):
        s = self._scaffold.finalize()
        return self._session_manager().prepare_session(
            self._master, saver=s.saver, checkpoint_dir=self._checkpoint_dir,
            checkpoint_filename_with_path=self._checkpoint_filename_with_path, config=self._config,
            init_op=s.init_op, init_feed_dict=s.init_feed_dict, init_fn=s.init_fn)


class WorkerSessionCreator(ChiefSessionCreator):
    """`tf.train.WorkerSessionCreator(scaffold=None, master='', config=None, max_wait_secs=1800)`:
    sessions that wait until another task (the chief) has made the model ready."""

    def __init__(self, scaffold=None, master="", config=None, max_wait_secs=30 * 60):
        super().__init__(scaffold, master, config)
        self._max_wait_secs = max_wait_secs

    def create_session(self):
        self._scaffold.finalize()
        return self._session_manager(_WORKER_RECOVERY_WAIT_SECS).wait_for_session(
            self._master, config=self._config, max_wait_secs=self._max_wait_secs)


class _StepContext:
    """What `run_step_fn`'s function gets: `session` (the raw session), `run_with_hooks`, and
    `request_stop()`."""

    def __init__(self, monitored, session):
        self._monitored, self._session = monitored, session

    session = property(lambda self: self._session)

    def run_with_hooks(self, *args, **kwargs):
        return self._monitored._run_hooked(*args, **kwargs)

    def request_stop(self):
        self._monitored._stop_requested = True


class _MonitoredSession:
    """The common part of MonitoredSession and SingularMonitoredSession: hooks around each run,
    a Coordinator, and recreation of the session after a preemption error."""

    def __init__(self, session_creator, hooks, should_recover, stop_grace_period_secs=120,
                 max_wait_secs=7200):
        self._creator = session_creator or ChiefSessionCreator()
        self._hooks = list(hooks or [])
        self._should_recover = should_recover
        self._stop_grace_period_secs = stop_grace_period_secs
        self._max_wait_secs = max_wait_secs
        self._sess, self._coord = None, None
        self._stop_requested, self._closed = False, False
        for hook in self._hooks:
            hook.begin()
        self.graph = get_default_graph()
        self._create_session()

    # -- sessions --------------------------------------------------------------------------------

    def _create_session(self):
        """Creates the session, retrying preemption errors with backoff for up to max_wait_secs."""
        deadline = time.monotonic() + self._max_wait_secs
        delay = _INITIAL_BACKOFF_SECS
        while True:
            try:
                sess = self._creator.create_session()
                break
            except _PREEMPTION_ERRORS as e:
                left = deadline - time.monotonic()
                if not self._should_recover or left <= 0:
                    raise
                logging.info("The cluster did not answer while a session was being created (%s: %s); "
                             "retrying in %.1f s.", type(e).__name__, e, min(delay, left))
                time.sleep(min(delay, left))
                delay = min(2 * delay, _MAX_BACKOFF_SECS)
        self._sess, self._coord = sess, Coordinator()
        for hook in self._hooks:
            hook.after_create_session(sess, self._coord)

    def _close_broken_session(self):
        sess, self._sess = self._sess, None
        try:
            self._coord.request_stop()
            sess.close()
        except Exception as e:  # noqa: BLE001 - the session is already broken; only the new one matters
            logging.info("Closing the broken session failed: %s", e)

    def _recover(self, error):
        logging.warning("A step failed with %s (%s): recreating the session; the chief restores the latest "
                        "checkpoint.", type(error).__name__, error)
        self._close_broken_session()
        self._create_session()

    # -- steps -----------------------------------------------------------------------------------

    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """Runs `fetches` as `Session.run` does, with every hook's before_run/after_run around it.
        A preemption error recreates the session and runs the step again (see the module doc)."""
        while True:
            if self._sess is None:
                self._create_session()
            try:
                return self._run_hooked(fetches, feed_dict, options, run_metadata)
            except _PREEMPTION_ERRORS as e:
                if not self._should_recover:
                    raise
                self._recover(e)

    def run_step_fn(self, step_fn):
        """Calls `step_fn(step_context)` (with `.session`, `.run_with_hooks(...)`, `.request_stop()`)
        and returns its result, recovering from preemption errors as `run` does."""
        while True:
            if self._sess is None:
                self._create_session()
            try:
                return step_fn(_StepContext(self, self._sess))
            except _PREEMPTION_ERRORS as e:
                if not self._should_recover:
                    raise
                self._recover(e)

    def _run_hooked(self, fetches, feed_dict=None, options=None, run_metadata=None):
        if self.should_stop():
            raise RuntimeError("Run called even after should_stop requested.")
        context = SessionRunContext(SessionRunArgs(fetches, feed_dict, options), self._sess)
        all_fetches = {"caller": fetches}
        feeds = dict(feed_dict or {})
        for i, hook in enumerate(self._hooks):
            request = hook.before_run(context)
            if request is None:
                continue
            if request.fetches is not None:
                all_fetches[i] = request.fetches
            for key, value in (request.feed_dict or {}).items():
                if key in feeds:
                    raise RuntimeError(f"Same tensor is fed by a SessionRunHook and user: {key}")
                feeds[key] = value
        results = self._sess.run(all_fetches, feed_dict=feeds or None, options=options, run_metadata=run_metadata)
        for i, hook in enumerate(self._hooks):
            hook.after_run(context, SessionRunValues(results.get(i), options, run_metadata))
        self._stop_requested = self._stop_requested or context.stop_requested
        return results["caller"]

    def should_stop(self):
        """True once a hook or the coordinator asked to stop, or after close()."""
        return self._closed or self._stop_requested or (self._coord is not None and self._coord.should_stop())

    # -- closing ---------------------------------------------------------------------------------

    def close(self):
        """Calls every hook's end() and closes the session."""
        self._close(None)

    def _close(self, exception_type):
        if self._closed:
            return
        self._closed = True
        try:
            if exception_type is None and self._sess is not None:
                for hook in self._hooks:
                    hook.end(self._sess)
        finally:
            for hook in self._hooks:
                if isinstance(hook, _ProgressHook):  # the bar goes away on an error too
                    hook.close()
            try:
                if self._coord is not None:
                    self._coord.request_stop()
                    # As TF1: threads still running after the grace period are logged, and closing
                    # the session cancels their steps (a SyncReplicasOptimizer chief's queue runner
                    # waits for gradients that no worker sends once training has stopped).
                    self._coord.join(stop_grace_period_secs=self._stop_grace_period_secs,
                                     ignore_live_threads=True)
            finally:
                if self._sess is not None:
                    self._sess.close()
                    self._sess = None

    def __enter__(self):
        return self

    def __exit__(self, exception_type, exception_value, traceback):
        if exception_type in (errors.OutOfRangeError, StopIteration):
            exception_type = None  # the end of the input ends training cleanly
        self._close(exception_type)
        return exception_type is None and exception_value is not None


class MonitoredSession(_MonitoredSession):
    """`tf.train.MonitoredSession(session_creator=None, hooks=None, stop_grace_period_secs=120)`:
    a session that runs `hooks` around each step and recreates itself through `session_creator`
    (default `ChiefSessionCreator()`) when a task of the cluster is lost (see the module doc).
    Use it as a context manager; `OutOfRangeError` in the block ends training cleanly."""

    def __init__(self, session_creator=None, hooks=None, stop_grace_period_secs=120, max_wait_secs=7200):
        super().__init__(session_creator, hooks, should_recover=True,
                         stop_grace_period_secs=stop_grace_period_secs, max_wait_secs=max_wait_secs)


class SingularMonitoredSession(_MonitoredSession):
    """`tf.train.SingularMonitoredSession(hooks=None, scaffold=None, master='', config=None,
    checkpoint_dir=None, stop_grace_period_secs=120)`: a chief MonitoredSession that does not
    recover from errors, with `raw_session()` for direct runs."""

    def __init__(self, hooks=None, scaffold=None, master="", config=None, checkpoint_dir=None,
                 stop_grace_period_secs=120, checkpoint_filename_with_path=None):
        creator = ChiefSessionCreator(scaffold=scaffold, master=master, config=config,
                                      checkpoint_dir=checkpoint_dir,
                                      checkpoint_filename_with_path=checkpoint_filename_with_path)
        super().__init__(creator, hooks, should_recover=False, stop_grace_period_secs=stop_grace_period_secs)

    def raw_session(self):
        """The underlying Session."""
        return self._sess


def _interval(secs, steps, default_secs, default_steps):
    """TF1's rule: with both at USE_DEFAULT the defaults apply; naming one turns the other off."""
    if secs is USE_DEFAULT and steps is USE_DEFAULT:
        return default_secs, default_steps
    return (None if secs is USE_DEFAULT else secs), (None if steps is USE_DEFAULT else steps)


def MonitoredTrainingSession(master="", is_chief=True, checkpoint_dir=None, scaffold=None, hooks=None,
                             chief_only_hooks=None, save_checkpoint_secs=USE_DEFAULT,
                             save_summaries_steps=USE_DEFAULT, save_summaries_secs=USE_DEFAULT, config=None,
                             stop_grace_period_secs=120, log_step_count_steps=100, max_wait_secs=7200,
                             save_checkpoint_steps=USE_DEFAULT, summary_dir=None):
    """`tf.train.MonitoredTrainingSession(...)`: a MonitoredSession for training, as in TF1.

    The chief restores the latest checkpoint in `checkpoint_dir` or initializes the model, and
    adds the standard hooks: a checkpoint every `save_checkpoint_secs` (default 600) or
    `save_checkpoint_steps` global steps (None or 0 disables), summaries to `summary_dir`
    (default: checkpoint_dir) every `save_summaries_steps` (default 100) or
    `save_summaries_secs`, and `global_step/sec` every `log_step_count_steps`. Other workers wait
    up to `max_wait_secs` for the chief. A lost task is recovered from (see the module doc), the
    wait for the cluster bounded by `max_wait_secs`. When stderr is a terminal (or under
    `tensorweave launch`) a progress bar shows steps/s toward a StopAtStepHook's last step.
    """
    save_checkpoint_secs, save_checkpoint_steps = _interval(save_checkpoint_secs, save_checkpoint_steps, 600, None)
    save_summaries_secs, save_summaries_steps = _interval(save_summaries_secs, save_summaries_steps, None, 100)
    scaffold = scaffold or Scaffold()
    all_hooks = []  # as TF1: the chief's hooks, the standard ones, then the caller's
    if not is_chief:
        creator = WorkerSessionCreator(scaffold=scaffold, master=master, config=config, max_wait_secs=max_wait_secs)
    else:
        creator = ChiefSessionCreator(scaffold=scaffold, master=master, config=config, checkpoint_dir=checkpoint_dir)
        all_hooks.extend(chief_only_hooks or [])
        summary_dir = summary_dir or checkpoint_dir
        if summary_dir:
            if log_step_count_steps and log_step_count_steps > 0:
                all_hooks.append(hooks_lib.StepCounterHook(output_dir=summary_dir, every_n_steps=log_step_count_steps))
            if (save_summaries_steps and save_summaries_steps > 0) or (save_summaries_secs and save_summaries_secs > 0):
                all_hooks.append(hooks_lib.SummarySaverHook(scaffold=scaffold, save_steps=save_summaries_steps or None,
                                                            save_secs=save_summaries_secs or None,
                                                            output_dir=summary_dir))
        if checkpoint_dir and ((save_checkpoint_secs and save_checkpoint_secs > 0)
                               or (save_checkpoint_steps and save_checkpoint_steps > 0)):
            all_hooks.append(hooks_lib.CheckpointSaverHook(checkpoint_dir, save_secs=save_checkpoint_secs or None,
                                                           save_steps=save_checkpoint_steps or None,
                                                           scaffold=scaffold))
    all_hooks.extend(hooks or [])
    progress = _ProgressHook.if_shown(all_hooks, is_chief)
    if progress is not None:
        all_hooks.append(progress)
    return MonitoredSession(session_creator=creator, hooks=all_hooks,
                            stop_grace_period_secs=stop_grace_period_secs, max_wait_secs=max_wait_secs)


class _ProgressHook(SessionRunHook):
    """Reports the global step to a `Progress` bar, toward the last step of a StopAtStepHook."""

    def __init__(self, stop_hooks, is_chief):
        self._stop_hooks, self._is_chief = stop_hooks, is_chief
        self._progress = None

    @classmethod
    def if_shown(cls, hooks, is_chief):
        """The hook when a bar would show (stderr a terminal, or under the launcher) and there is a
        global step; else None."""
        if not (os.environ.get(progress_lib.ENV) or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())):
            return None
        if training_util.get_global_step() is None:
            return None
        return cls([h for h in hooks if isinstance(h, hooks_lib.StopAtStepHook)], is_chief)

    def begin(self):
        self._global_step_tensor = training_util.get_global_step()

    def after_create_session(self, session, coord):
        if self._progress is None:
            totals = [h.last_step for h in self._stop_hooks if h.last_step is not None]
            self._progress = progress_lib.Progress(total=min(totals) if totals else None, is_chief=self._is_chief)

    def before_run(self, run_context):
        return SessionRunArgs(self._global_step_tensor)

    def after_run(self, run_context, run_values):
        self._progress.update(int(run_values.results) + 1)

    def end(self, session):
        self.close()

    def close(self):
        if self._progress is not None:
            self._progress.close()


__all__ = [
    "ChiefSessionCreator",
    "MonitoredSession",
    "MonitoredTrainingSession",
    "Scaffold",
    "SessionCreator",
    "SingularMonitoredSession",
    "WorkerSessionCreator",
]
