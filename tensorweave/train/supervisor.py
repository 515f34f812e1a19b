"""`tf.train.Supervisor`: TF1's session setup for (distributed) training loops.

    sv = tf.train.Supervisor(is_chief=task_index == 0, logdir=logdir, global_step=global_step)
    with sv.managed_session(server.target) as sess:
        while not sv.should_stop() and step < steps:
            _, step = sess.run([train_op, global_step])

The chief restores the latest checkpoint in `logdir` or runs the init op; the other workers wait
until the chief has made the model ready. With a `logdir` the chief also saves checkpoints and
summaries on timer threads. The constructor finalizes the graph, as TF1's does.

`SessionManager` holds the create-and-initialize-or-wait logic; `Supervisor` adds the defaults,
the coordinator and the standard services.
"""

import contextlib
import os
import time

import numpy as np
from tensorboard.compat.proto.event_pb2 import SessionLog

from tensorweave.framework import errors
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.framework.graph_io import write_graph
from tensorweave.ops import control_ops, variables
from tensorweave.platform import tf_logging as logging
from tensorweave.runtime.session import Session
from tensorweave.summary.summary_ops import merge_all
from tensorweave.summary.writer import FileWriter
from tensorweave.train import training_util
from tensorweave.train.coordinator import Coordinator, LooperThread
from tensorweave.train.saver import Saver, get_checkpoint_state, latest_checkpoint


def _not_ready(sess, op):
    """None if ready op `op` reports nothing uninitialized, else a message naming what is.

    `op` is a string vector of uninitialized variable names (TF1's `report_uninitialized_variables`)
    or a bool vector of initialized flags (a stack of `is_variable_initialized`)."""
    if op is None:
        return None
    value = np.asarray(sess.run(op)).reshape(-1)
    if value.dtype == np.bool_:
        flags = op.op.inputs if op.op.type == "Pack" else []
        names = [f.op.inputs[0].op.name for f in flags] if len(flags) == value.size else \
            [f"#{i}" for i in range(value.size)]
        value = np.array([n for n, ok in zip(names, value, strict=True) if not ok], dtype=object)
    if value.size == 0:
        return None
    return "Variables not initialized: " + ", ".join(
        n.decode() if isinstance(n, bytes) else str(n) for n in value)


class SessionManager:
    """`tf.train.SessionManager(local_init_op=None, ready_op=None, ready_for_local_init_op=None,
    graph=None, recovery_wait_secs=30, local_init_run_options=None)`: creates sessions whose
    model is ready: `prepare_session` (the chief) initializes or restores it, `wait_for_session`
    (the other workers) waits until another process has."""

    def __init__(self, local_init_op=None, ready_op=None, ready_for_local_init_op=None, graph=None,
                 recovery_wait_secs=30, local_init_run_options=None):
        self._local_init_op = local_init_op
        self._ready_op = ready_op
        self._ready_for_local_init_op = ready_for_local_init_op
        self._graph = graph if graph is not None else get_default_graph()
        self._recovery_wait_secs = recovery_wait_secs
        self._local_init_run_options = local_init_run_options

    def prepare_session(self, master, init_op=None, saver=None, checkpoint_dir=None,
                        checkpoint_filename_with_path=None, wait_for_checkpoint=False, max_wait_secs=7200,
                        config=None, init_feed_dict=None, init_fn=None):
        """A session whose model is restored from the latest checkpoint (of `checkpoint_dir`, or
        `checkpoint_filename_with_path`), else initialized by `init_op` and `init_fn(sess)`; then
        `local_init_op` runs. Raises RuntimeError if the ready op still reports variables."""
        sess = Session(master, graph=self._graph, config=config)
        try:
            restored = self._restore(sess, saver, checkpoint_dir, checkpoint_filename_with_path,
                                     wait_for_checkpoint, max_wait_secs)
            if not restored:
                if init_op is None and init_fn is None and self._local_init_op is None:
                    raise RuntimeError("Model is not initialized and no init_op, init_fn or local_init_op "
                                       "was given")
                if init_op is not None:
                    sess.run(init_op, feed_dict=init_feed_dict)
                if init_fn is not None:
                    init_fn(sess)
            message = self._try_run_local_init_op(sess)
            if message is None:
                message = _not_ready(sess, self._ready_op)
            if message is not None:
                raise RuntimeError(f"Init operations did not make the model ready ({message}); init_op: "
                                   f"{init_op and init_op.name}, init_fn: {init_fn}, local_init_op: "
                                   f"{self._local_init_op and self._local_init_op.name}")
        except BaseException:
            sess.close()
            raise
        return sess

    def _restore(self, sess, saver, checkpoint_dir, checkpoint_filename_with_path, wait_for_checkpoint,
                 max_wait_secs):
        if saver is None or not (checkpoint_dir or checkpoint_filename_with_path):
            return False
        if checkpoint_filename_with_path:
            saver.restore(sess, checkpoint_filename_with_path)
            return True
        deadline = time.time() + max_wait_secs
        prefix = latest_checkpoint(checkpoint_dir)
        while prefix is None and wait_for_checkpoint and time.time() < deadline:
            logging.info("Waiting for a checkpoint to appear in %s.", checkpoint_dir)
            time.sleep(min(self._recovery_wait_secs, max(deadline - time.time(), 0.0)))
            prefix = latest_checkpoint(checkpoint_dir)
        if prefix is None:
            return False
        saver.restore(sess, prefix)
        state = get_checkpoint_state(checkpoint_dir)
        saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        logging.info("Restored model from %s.", prefix)
        return True

    def wait_for_session(self, master, config=None, max_wait_secs=float("inf")):
        """A session on `master` once its model is ready (another process initialized it), polled
        every `recovery_wait_secs`. Raises DeadlineExceededError after `max_wait_secs`."""
        max_wait_secs = float("inf") if max_wait_secs is None else max_wait_secs
        deadline = time.time() + max_wait_secs
        sess = Session(master, graph=self._graph, config=config)
        try:
            while True:
                message = self._try_run_local_init_op(sess)
                if message is None:
                    message = _not_ready(sess, self._ready_op)
                if message is None:
                    return sess
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise errors.DeadlineExceededError(
                        None, None, f"Session was not ready after waiting {max_wait_secs} secs: {message}")
                logging.info("Waiting for the model to be ready (%s).", message)
                time.sleep(min(self._recovery_wait_secs, remaining))
        except BaseException:
            sess.close()
            raise

    def _try_run_local_init_op(self, sess):
        """Runs `local_init_op` once `ready_for_local_init_op` allows; None, or why it did not."""
        if self._local_init_op is None:
            return None
        message = _not_ready(sess, self._ready_for_local_init_op)
        if message is None:
            sess.run(self._local_init_op, options=self._local_init_run_options)
        return message


class _CheckpointThread(LooperThread):
    """Saves a checkpoint every `save_model_secs`, and once more when the supervisor stops (TF1
    saved only on the timer; the last save keeps the steps run since)."""

    def __init__(self, sv, sess):
        super().__init__(sv.coord, sv.save_model_secs)
        self._sv, self._sess = sv, sess

    def run_loop(self):
        self._sv.save_checkpoint(self._sess)

    def stop_loop(self):
        try:
            self._sv.save_checkpoint(self._sess)
        except Exception as e:  # noqa: BLE001 - the session may be gone; the timer saves stand
            logging.warning("Final checkpoint on stop failed: %s", e)


class _SummaryThread(LooperThread):
    """Runs the summary op and writes its result every `save_summaries_secs`."""

    def __init__(self, sv, sess):
        super().__init__(sv.coord, sv.save_summaries_secs)
        self._sv, self._sess = sv, sess

    def run_loop(self):
        sv = self._sv
        if sv.global_step is not None:
            summary, step = self._sess.run([sv.summary_op, sv.global_step])
        else:
            summary, step = self._sess.run(sv.summary_op), None
        sv.summary_computed(self._sess, summary, step)


class Supervisor:
    """`tf.train.Supervisor(graph=None, ready_op=USE_DEFAULT, is_chief=True, init_op=USE_DEFAULT,
    logdir=None, summary_op=USE_DEFAULT, saver=USE_DEFAULT, global_step=USE_DEFAULT,
    save_summaries_secs=120, save_model_secs=600, recovery_wait_secs=30, ...)`.

    Each `USE_DEFAULT` argument is taken from its graph collection or built: ready_op =
    `report_uninitialized_variables()`, init_op = `global_variables_initializer()`, local_init_op =
    the local variable and table initializers, summary_op = `merge_all()`, saver = `Saver()` (when
    the graph has variables), global_step = `get_global_step()`, summary_writer = a `FileWriter`
    on logdir (chief only). Pass None to go without one. The graph is finalized. A ready op
    passed in may also be a bool vector of initialized flags.
    """

    USE_DEFAULT = object()

    def __init__(self, graph=None, ready_op=USE_DEFAULT, ready_for_local_init_op=USE_DEFAULT, is_chief=True,
                 init_op=USE_DEFAULT, init_feed_dict=None, local_init_op=USE_DEFAULT, logdir=None,
                 summary_op=USE_DEFAULT, saver=USE_DEFAULT, global_step=USE_DEFAULT, save_summaries_secs=120,
                 save_model_secs=600, recovery_wait_secs=30, stop_grace_secs=120,
                 checkpoint_basename="model.ckpt", session_manager=None, summary_writer=USE_DEFAULT,
                 init_fn=None, local_init_run_options=None):
        self._graph = graph if graph is not None else get_default_graph()
        with self._graph.as_default():
            self._ready_op = self._default(ready_op, GraphKeys.READY_OP, variables.report_uninitialized_variables)
            self._ready_for_local_init_op = self._default(ready_for_local_init_op,
                                                          GraphKeys.READY_FOR_LOCAL_INIT_OP, lambda: None)
            self._init_op = self._default(init_op, GraphKeys.INIT_OP, variables.global_variables_initializer)
            self._local_init_op = self._default(local_init_op, GraphKeys.LOCAL_INIT_OP, self._local_initializer)
            self._summary_op = self._default(summary_op, GraphKeys.SUMMARY_OP, merge_all)
            self._saver = self._default(saver, GraphKeys.SAVERS,
                                        lambda: Saver() if variables.global_variables() else None)
            self._global_step = training_util.get_global_step(self._graph) \
                if global_step is self.USE_DEFAULT else global_step
        self._init_feed_dict = init_feed_dict
        self._init_fn = init_fn
        self._is_chief = is_chief
        self._logdir = os.fspath(logdir) if logdir else None
        self._save_path = os.path.join(self._logdir, checkpoint_basename) if self._logdir else None
        self._save_summaries_secs = save_summaries_secs
        self._save_model_secs = save_model_secs
        self._recovery_wait_secs = recovery_wait_secs
        self._stop_grace_secs = stop_grace_secs
        if summary_writer is self.USE_DEFAULT:
            summary_writer = FileWriter(self._logdir) if self._logdir and is_chief else None
        self._summary_writer = summary_writer
        self._graph_written = False
        self._coord = Coordinator()
        self._started_threads = []
        self._started_queue_runners = []  # (runner, session), told when training ends
        self._session_manager = session_manager or SessionManager(
            local_init_op=self._local_init_op, ready_op=self._ready_op,
            ready_for_local_init_op=self._ready_for_local_init_op, graph=self._graph,
            recovery_wait_secs=recovery_wait_secs, local_init_run_options=local_init_run_options)
        self._graph.finalize()

    def _default(self, value, key, build):
        """`value`, or for USE_DEFAULT the first of collection `key`, else `build()` (recorded there)."""
        if value is not self.USE_DEFAULT:
            return value
        found = self._graph.get_collection(key)
        if found:
            return found[0]
        value = build()
        if value is not None:
            self._graph.add_to_collection(key, value)
        return value

    @staticmethod
    def _local_initializer():
        return control_ops.group(variables.local_variables_initializer(),
                                 *get_default_graph().get_collection(GraphKeys.TABLE_INITIALIZERS))

    # -- sessions ------------------------------------------------------------------------------

    def prepare_or_wait_for_session(self, master="", config=None, wait_for_checkpoint=False, max_wait_secs=7200,
                                    start_standard_services=True):
        """A session on `master` whose model is ready. The chief restores the latest checkpoint in
        logdir or initializes the model (and, with `start_standard_services`, starts the checkpoint
        and summary threads); the other workers wait up to `max_wait_secs` for the chief."""
        self._coord.clear_stop()
        if self._summary_writer is not None:
            self._summary_writer.reopen()
        if self._is_chief:
            sess = self._session_manager.prepare_session(
                master, init_op=self._init_op, saver=self._saver, checkpoint_dir=self._logdir,
                wait_for_checkpoint=wait_for_checkpoint, max_wait_secs=max_wait_secs, config=config,
                init_feed_dict=self._init_feed_dict, init_fn=self._init_fn)
            self._write_graph()
            if start_standard_services:
                self.start_standard_services(sess)
        else:
            sess = self._session_manager.wait_for_session(master, config=config, max_wait_secs=max_wait_secs)
        return sess

    @contextlib.contextmanager
    def managed_session(self, master="", config=None, start_standard_services=True, close_summary_writer=True):
        """A context manager around `prepare_or_wait_for_session`: on exit the services stop and
        the session closes. An exception in the block is re-raised after the stop, except
        `tf.errors.OutOfRangeError` (the end of the input), which ends training cleanly."""
        sess = None
        try:
            sess = self.prepare_or_wait_for_session(master=master, config=config,
                                                    start_standard_services=start_standard_services)
            yield sess
        except Exception as e:  # noqa: BLE001 - reported to the coordinator; stop() re-raises it
            self.request_stop(e)
        finally:
            try:
                self.stop(close_summary_writer=close_summary_writer)
            finally:
                if sess is not None:
                    sess.close()

    # -- services --------------------------------------------------------------------------------

    def start_standard_services(self, sess):
        """Starts the chief's threads: checkpoints every `save_model_secs` (with a logdir and a
        saver) and summaries every `save_summaries_secs` (with a summary op and writer)."""
        if not self._is_chief:
            raise RuntimeError("Only the chief supervisor can start standard services: they write to logdir.")
        if self._summary_writer is not None:
            step = None if self._global_step is None else training_util.global_step(sess, self._global_step)
            self._summary_writer.add_session_log(SessionLog(status=SessionLog.START), step)
        threads = []
        if self._summary_op is not None and self._summary_writer is not None and self._save_summaries_secs:
            threads.append(_SummaryThread(self, sess))
        if self._saver is not None and self._logdir and self._save_model_secs:
            threads.append(_CheckpointThread(self, sess))
        for t in threads:
            t.start()
        self._started_threads.extend(threads)
        return threads

    def start_queue_runners(self, sess, queue_runners=None):
        """Starts the threads of `queue_runners` (default: the graph's QUEUE_RUNNERS collection)
        under the supervisor's coordinator; `stop()` joins them. Returns the threads."""
        if queue_runners is None:
            queue_runners = self._graph.get_collection(GraphKeys.QUEUE_RUNNERS)
        threads = []
        for qr in queue_runners:
            threads.extend(qr.create_threads(sess, coord=self._coord, daemon=True, start=True))
            self._started_queue_runners.append((qr, sess))
        self._started_threads.extend(threads)
        return threads

    def loop(self, timer_interval_secs, target, args=None, kwargs=None):
        """Starts a thread calling `target(*args, **kwargs)` every `timer_interval_secs` until the
        supervisor stops; `stop()` joins it."""
        looper = LooperThread(self._coord, timer_interval_secs, target=target, args=args, kwargs=kwargs)
        looper.start()
        self._started_threads.append(looper)
        return looper

    def save_checkpoint(self, sess):
        """Saves the model to `<logdir>/<checkpoint_basename>-<global step>`; returns the prefix."""
        prefix = self._saver.save(sess, self._save_path, global_step=self._global_step)
        if self._summary_writer is not None:
            step = None if self._global_step is None else training_util.global_step(sess, self._global_step)
            self._summary_writer.add_session_log(
                SessionLog(status=SessionLog.CHECKPOINT, checkpoint_path=prefix), step)
        return prefix

    def summary_computed(self, sess, summary, global_step=None):
        """Writes `summary` (a serialized Summary) to the summary writer at `global_step`."""
        if self._summary_writer is None:
            raise RuntimeError("Writing a summary requires a summary writer.")
        if global_step is None and self._global_step is not None:
            global_step = training_util.global_step(sess, self._global_step)
        self._summary_writer.add_summary(summary, global_step)

    def _write_graph(self):
        if self._graph_written or not self._is_chief:
            return
        if self._logdir:
            write_graph(self._graph, self._logdir, "graph.pbtxt")
        if self._summary_writer is not None:
            self._summary_writer.add_graph(self._graph)
        self._graph_written = True

    # -- stopping --------------------------------------------------------------------------------

    def request_stop(self, ex=None):
        """Asks the training loop and the service threads to stop; `ex` is re-raised by `stop()`."""
        self._coord.request_stop(ex=ex)

    def should_stop(self):
        """True once a stop was requested."""
        return self._coord.should_stop()

    def stop_on_exception(self):
        """A block whose exception is reported with `request_stop` instead of raised."""
        return self._coord.stop_on_exception()

    def wait_for_stop(self):
        """Blocks until a stop is requested."""
        self._coord.wait_for_stop()

    def stop(self, threads=None, close_summary_writer=True, ignore_live_threads=False):
        """Stops the service threads (and `threads`), waiting up to `stop_grace_secs`, closes the
        summary writer, and re-raises an exception reported with `request_stop`. The queue runners
        it started are told that training ended (`QueueRunner.abandon_pending_runs`)."""
        self._coord.request_stop()
        # Training has ended: a queue runner waiting for what only training could bring (the
        # chief's SyncReplicasOptimizer runner waiting for gradients) stops waiting.
        runners, self._started_queue_runners = self._started_queue_runners, []
        for qr, sess in runners:
            qr.abandon_pending_runs(sess)
        try:
            self._coord.join(list(self._started_threads) + list(threads or ()),
                             stop_grace_period_secs=self._stop_grace_secs,
                             ignore_live_threads=ignore_live_threads)
        finally:
            self._started_threads = []
            if close_summary_writer and self._summary_writer is not None:
                self._summary_writer.add_session_log(SessionLog(status=SessionLog.STOP))
                self._summary_writer.close()
                self._graph_written = False

    # -- properties ------------------------------------------------------------------------------

    is_chief = property(lambda self: self._is_chief, doc="Whether this supervisor initializes the model.")
    coord = property(lambda self: self._coord, doc="The Coordinator of the training threads.")
    session_manager = property(lambda self: self._session_manager, doc="The SessionManager used.")
    init_op = property(lambda self: self._init_op, doc="The op initializing the model (chief).")
    init_feed_dict = property(lambda self: self._init_feed_dict, doc="The feeds for init_op.")
    local_init_op = property(lambda self: self._local_init_op, doc="The op run by every worker.")
    ready_op = property(lambda self: self._ready_op, doc="The op naming uninitialized variables.")
    ready_for_local_init_op = property(lambda self: self._ready_for_local_init_op,
                                       doc="The op gating local_init_op.")
    summary_op = property(lambda self: self._summary_op, doc="The op computing summaries.")
    summary_writer = property(lambda self: self._summary_writer, doc="The FileWriter of logdir (chief).")
    saver = property(lambda self: self._saver, doc="The Saver of the checkpoints.")
    global_step = property(lambda self: self._global_step, doc="The global step tensor, or None.")
    save_path = property(lambda self: self._save_path, doc="The checkpoint prefix in logdir.")
    save_model_secs = property(lambda self: self._save_model_secs, doc="Seconds between checkpoints.")
    save_summaries_secs = property(lambda self: self._save_summaries_secs, doc="Seconds between summaries.")


__all__ = ["SessionManager", "Supervisor"]
