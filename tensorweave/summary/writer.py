"""`tf.summary.FileWriter` and `tf.summary.FileWriterCache` over TensorBoard's event files."""

import inspect
import logging
import os
import sys
import threading
import time
import types
import warnings

import numpy as np
from tensorboard.compat.proto import event_pb2, graph_pb2, meta_graph_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

_log = logging.getLogger(__name__)


def use_tensorboard_file_layer():
    """Makes TensorBoard's event writer and reader use the file layer bundled with TensorBoard.

    Both reach files through `tensorboard.compat.tf`, which imports all of TensorFlow when it is
    installed (seconds, and its log lines) only to open local files. TensorBoard's own switch for
    this, an importable `tensorboard.compat.notf` module, selects its bundled stub instead. A
    process that has imported TensorFlow itself keeps TensorFlow's file layer (gs:// paths).
    """
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def _as_summary(summary):
    """A fresh `Summary` proto from a proto, its bytes, or a NumPy string scalar."""
    if isinstance(summary, np.ndarray):
        if summary.size != 1:
            raise TypeError("add_summary takes one serialized Summary, got an array "
                            "of shape %s" % (summary.shape,))
        summary = summary.item()
    if isinstance(summary, summary_pb2.Summary):
        copy = summary_pb2.Summary()
        copy.CopyFrom(summary)
        return copy
    if isinstance(summary, (bytes, bytearray)):
        return summary_pb2.Summary.FromString(bytes(summary))
    raise TypeError("add_summary takes a Summary proto or its serialized bytes, got %r"
                    % type(summary).__name__)


def _as_graph_def_with_shapes(graph):
    # TF1 asks for `_output_shapes` attrs so TensorBoard can label edges.
    as_graph_def = graph.as_graph_def
    parameters = inspect.signature(as_graph_def).parameters.values()
    if any(p.name == "add_shapes" or p.kind is p.VAR_KEYWORD for p in parameters):
        return as_graph_def(add_shapes=True)
    return as_graph_def()


def _graph_def_of(graph, graph_def):
    if graph is not None and graph_def is not None:
        raise ValueError("Please pass only graph, or graph_def (deprecated), but not both.")
    source = graph if graph is not None else graph_def
    if isinstance(source, graph_pb2.GraphDef):
        _log.warning("Passing a `GraphDef` to the SummaryWriter is deprecated. "
                     "Pass a `Graph` object instead, such as `sess.graph`.")
        return source
    if hasattr(source, "as_graph_def"):
        return _as_graph_def_with_shapes(source)
    raise TypeError("The passed graph must be an instance of `Graph` or the "
                    "deprecated `GraphDef`")


def _meta_graph_def(graph_def):
    # TF1 writes `meta_graph.create_meta_graph_def(graph_def=...)`; the graph
    # is what TensorBoard reads from it.
    return meta_graph_pb2.MetaGraphDef(graph_def=graph_def)


class FileWriter:
    """Writes `Summary` protos and graphs to an event file in `logdir`, as TF1.

    The file is `events.out.tfevents.<time>.<hostname>.<pid>.<n><filename_suffix>`
    (TensorBoard's writer adds pid and a counter so writers never share a file)
    and starts with a `file_version: "brain.Event:2"` event. Events are queued
    (`max_queue`) and written by a background thread, flushed every
    `flush_secs` seconds, on `flush()` and on `close()`. Given `graph` (an
    object with `as_graph_def()`, such as `sess.graph`) or `graph_def`, the
    graph and a meta graph holding it are written first. `session` is
    accepted for TF1 compatibility; events are always written by this process.
    """

    def __init__(self, logdir, graph=None, max_queue=10, flush_secs=120,
                 graph_def=None, filename_suffix=None, session=None):
        self._logdir = os.fspath(logdir)
        self._max_queue = max_queue
        self._flush_secs = flush_secs
        self._filename_suffix = filename_suffix or ""
        self._session = session
        self._lock = threading.Lock()
        self._event_writer = self._open_event_writer()
        self._closed = False
        # Metadata is kept only on the first value of each tag, as TF1 does:
        # TensorBoard reads it from there.
        self._seen_summary_tags = set()
        self._session_run_tags = set()
        if graph is not None or graph_def is not None:
            true_graph_def = _graph_def_of(graph, graph_def)
            self._add_graph_def(true_graph_def, None)
            self.add_meta_graph(_meta_graph_def(true_graph_def))

    def _open_event_writer(self):
        use_tensorboard_file_layer()
        return EventFileWriter(self._logdir, self._max_queue, self._flush_secs,
                               self._filename_suffix)

    @property
    def event_writer(self):
        """The underlying TensorBoard `EventFileWriter`."""
        return self._event_writer

    def __enter__(self):
        return self

    def __exit__(self, unused_type, unused_value, unused_traceback):
        self.close()

    def get_logdir(self):
        """Returns the directory where the event file is written."""
        return self._logdir

    def _warn_if_closed(self):
        if self._closed:
            warnings.warn("Attempting to use a closed FileWriter. The operation will be "
                          "a noop unless the FileWriter is explicitly reopened.", stacklevel=3)
            return True
        return False

    def add_event(self, event):
        """Adds an `Event` proto to the event file as it is."""
        if not isinstance(event, event_pb2.Event):
            raise TypeError("Expected an event_pb2.Event proto, but got %s" % type(event))
        with self._lock:
            if not self._warn_if_closed():
                self._event_writer.add_event(event)

    def _add_event(self, event, step):
        event.wall_time = time.time()
        if step is not None:
            event.step = int(step)
        self.add_event(event)

    def add_summary(self, summary, global_step=None):
        """Adds a `Summary` to the event file at `global_step`.

        `summary` is a `Summary` proto or its serialized bytes, as returned by
        `sess.run(merged_summary_op)` (NumPy bytes or 0-d object arrays work).
        """
        summary = _as_summary(summary)
        for value in summary.value:
            if value.tag in self._seen_summary_tags:
                value.ClearField("metadata")
            else:
                self._seen_summary_tags.add(value.tag)
        self._add_event(event_pb2.Event(summary=summary), global_step)

    def add_session_log(self, session_log, global_step=None):
        """Adds a `SessionLog` proto (START, STOP, CHECKPOINT) to the event file."""
        self._add_event(event_pb2.Event(session_log=session_log), global_step)

    def _add_graph_def(self, graph_def, global_step):
        self._add_event(event_pb2.Event(graph_def=graph_def.SerializeToString()),
                        global_step)

    def add_graph(self, graph, global_step=None, graph_def=None):
        """Adds a graph to the event file so TensorBoard's Graphs tab shows it.

        `graph` is an object with `as_graph_def()` (such as `sess.graph`) or a
        `GraphDef` proto; `graph_def` is TF1's deprecated spelling of the latter.
        """
        self._add_graph_def(_graph_def_of(graph, graph_def), global_step)

    def add_meta_graph(self, meta_graph_def, global_step=None):
        """Adds a `MetaGraphDef` proto to the event file."""
        if not isinstance(meta_graph_def, meta_graph_pb2.MetaGraphDef):
            raise TypeError("meta_graph_def must be type MetaGraphDef, saw type: %s"
                            % type(meta_graph_def))
        self._add_event(
            event_pb2.Event(meta_graph_def=meta_graph_def.SerializeToString()), global_step)

    def add_run_metadata(self, run_metadata, tag, global_step=None):
        """Adds a `RunMetadata` proto (step stats, partition graphs) under `tag`.

        Each tag may be used once per writer, as in TF1.
        """
        if tag in self._session_run_tags:
            raise ValueError("The provided tag was already used for this event type")
        self._session_run_tags.add(tag)
        tagged = event_pb2.TaggedRunMetadata(
            tag=tag, run_metadata=run_metadata.SerializeToString())
        self._add_event(event_pb2.Event(tagged_run_metadata=tagged), global_step)

    def flush(self):
        """Writes every pending event to disk."""
        with self._lock:
            if not self._warn_if_closed():
                self._event_writer.flush()

    def close(self):
        """Flushes pending events and closes the file; `reopen()` starts a new one."""
        with self._lock:
            if not self._closed:
                self._event_writer.close()
                self._closed = True

    def reopen(self):
        """After `close()`, opens a new event file in the same directory.

        Does nothing if the writer is open.
        """
        with self._lock:
            if self._closed:
                self._event_writer = self._open_event_writer()
                self._closed = False


def _default_graph():
    # Imported late: writing event files needs no graph, only the cache does.
    from tensorweave.framework.graph import get_default_graph
    return get_default_graph()


class FileWriterCache:
    """One shared `FileWriter` per logdir, as TF1's `tf.summary.FileWriterCache`."""

    _cache = {}
    _lock = threading.RLock()

    @staticmethod
    def clear():
        """Closes every cached writer and empties the cache."""
        with FileWriterCache._lock:
            for writer in FileWriterCache._cache.values():
                writer.close()
            FileWriterCache._cache = {}

    @staticmethod
    def get(logdir):
        """Returns the writer for `logdir`, creating it with the default graph."""
        with FileWriterCache._lock:
            if logdir not in FileWriterCache._cache:
                FileWriterCache._cache[logdir] = FileWriter(logdir, graph=_default_graph())
            return FileWriterCache._cache[logdir]
