"""`tf.train.QueueRunner`: threads that keep running a queue's enqueue ops.

    qr = tf.train.QueueRunner(queue, [enqueue_op] * 4)
    tf.train.add_queue_runner(qr)
    coord = tf.train.Coordinator()
    threads = tf.train.start_queue_runners(sess, coord)

Each thread runs one enqueue op until the coordinator stops, the queue is closed
(`OutOfRangeError`, `CancelledError`) or an error is reported to the coordinator. When the last
thread ends the queue is closed; when the coordinator stops, pending enqueues are cancelled.
"""

import threading

from tensorweave.framework import errors
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.platform import tf_logging as logging


class QueueRunner:
    """`tf.train.QueueRunner(queue=None, enqueue_ops=None, close_op=None, cancel_op=None,
    queue_closed_exception_types=None)`."""

    def __init__(self, queue=None, enqueue_ops=None, close_op=None, cancel_op=None,
                 queue_closed_exception_types=None, queue_runner_def=None, import_scope=None):
        if queue_runner_def is not None:
            raise NotImplementedError("QueueRunner from a QueueRunnerDef is not supported in TensorWeave")
        if not queue or not enqueue_ops:
            raise ValueError("QueueRunner needs a queue and at least one enqueue op")
        self._queue = queue
        self._enqueue_ops = list(enqueue_ops)
        self._close_op = close_op if close_op is not None else queue.close()
        self._cancel_op = cancel_op if cancel_op is not None else queue.close(cancel_pending_enqueues=True)
        self._closed_types = tuple(queue_closed_exception_types or (errors.OutOfRangeError, errors.CancelledError))
        self._lock = threading.Lock()
        self._runs_per_session = {}
        self._exceptions_raised = []

    @property
    def queue(self):
        return self._queue

    @property
    def enqueue_ops(self):
        return self._enqueue_ops

    @property
    def close_op(self):
        return self._close_op

    @property
    def cancel_op(self):
        return self._cancel_op

    @property
    def queue_closed_exception_types(self):
        return self._closed_types

    @property
    def exceptions_raised(self):
        """Exceptions the threads raised when no coordinator took them."""
        return self._exceptions_raised

    @property
    def name(self):
        return self._queue.name

    def _run(self, sess, enqueue_op, coord):
        decremented = False
        try:
            while coord is None or not coord.should_stop():
                try:
                    sess.run(enqueue_op)
                except self._closed_types:
                    with self._lock:
                        self._runs_per_session[sess] -= 1
                        decremented = True
                        last = self._runs_per_session[sess] == 0
                    if last:
                        try:
                            sess.run(self._close_op)
                        except Exception as e:  # noqa: BLE001 - the session may be gone already
                            logging.vlog(1, "Ignored exception while closing the queue: %s", e)
                    return
        except Exception as e:
            if coord is not None:
                coord.request_stop(e)
                self._on_failure(sess, e)
            else:
                logging.error("Exception in QueueRunner: %s", e)
                with self._lock:
                    self._exceptions_raised.append(e)
                self._on_failure(sess, e)
                raise
        finally:
            if not decremented:
                with self._lock:
                    self._runs_per_session[sess] -= 1

    def _on_failure(self, sess, error):
        """Called after an enqueue op failed with `error` (reported already)."""

    def abandon_pending_runs(self, sess):
        """Ends waits of the enqueue ops that only further training could satisfy, once training
        has ended (`Supervisor.stop` calls it). Plain runners have none: their waits end with the
        cancel op at the coordinator's stop."""

    def _close_on_stop(self, sess, coord):
        coord.wait_for_stop()
        try:
            sess.run(self._cancel_op)
        except Exception as e:  # noqa: BLE001 - the session may be closed already
            logging.vlog(1, "Ignored exception while cancelling the queue: %s", e)

    def create_threads(self, sess, coord=None, daemon=False, start=False):
        """Threads running the enqueue ops in `sess` (plus one cancelling them when `coord`
        stops); started when `start`. Returns [] while threads of this runner still run there."""
        with self._lock:
            if self._runs_per_session.get(sess, 0) > 0:
                return []
            self._runs_per_session[sess] = len(self._enqueue_ops)
            self._exceptions_raised = []
        threads = [threading.Thread(target=self._run, args=(sess, op, coord), name=f"QueueRunner-{self.name}")
                   for op in self._enqueue_ops]
        if coord is not None:
            threads.append(threading.Thread(target=self._close_on_stop, args=(sess, coord),
                                            name=f"QueueRunnerCancel-{self.name}"))
        for t in threads:
            if coord is not None:
                coord.register_thread(t)
            t.daemon = daemon
            if start:
                t.start()
        return threads


def add_queue_runner(qr, collection=GraphKeys.QUEUE_RUNNERS):
    """`tf.train.add_queue_runner(qr)`: adds `qr` to the graph's queue runners."""
    get_default_graph().add_to_collection(collection, qr)


def start_queue_runners(sess=None, coord=None, daemon=True, start=True, collection=GraphKeys.QUEUE_RUNNERS):
    """`tf.train.start_queue_runners(sess=None, coord=None)`: starts the threads of every queue
    runner of the graph; returns them."""
    if sess is None:
        from tensorweave.framework.graph import get_default_session
        sess = get_default_session()
        if sess is None:
            raise ValueError("Cannot start queue runners: no default session is registered. Use `with "
                             "sess.as_default()` or pass an explicit session to start_queue_runners(sess=sess)")
    threads = []
    for qr in sess.graph.get_collection(collection):
        threads.extend(qr.create_threads(sess, coord=coord, daemon=daemon, start=start))
    return threads
