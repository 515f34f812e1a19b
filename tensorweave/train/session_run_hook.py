"""`tf.train.SessionRunHook` and the values it exchanges with a `MonitoredSession`.

A hook sees the life of a monitored session:

    begin()                                  # once; the graph may still change
    after_create_session(session, coord)     # after each session is created (again after recovery)
    before_run(run_context) -> SessionRunArgs or None   # before each run: extra fetches and feeds
    after_run(run_context, run_values)       # after each run: results of those fetches
    end(session)                             # when the monitored session closes without error
"""

import collections


class SessionRunHook:
    """A hook into `MonitoredSession.run`: subclass and override the methods you need."""

    def begin(self):
        """Called once before the session is created; the graph may still be changed here."""

    def after_create_session(self, session, coord):
        """Called when a session has been created and its model is ready (restored or initialized),
        and again each time the monitored session recreates it after a failure."""

    def before_run(self, run_context):
        """Called before each `run`; may return `SessionRunArgs` to add fetches and feeds to it."""
        return

    def after_run(self, run_context, run_values):
        """Called after each `run`; `run_values.results` holds what `before_run` asked for."""

    def end(self, session):
        """Called when the monitored session closes without an error."""


class SessionRunArgs(collections.namedtuple("SessionRunArgs", ["fetches", "feed_dict", "options"])):
    """`SessionRunArgs(fetches, feed_dict=None, options=None)`: what a hook adds to a `run` call."""

    def __new__(cls, fetches, feed_dict=None, options=None):
        return super().__new__(cls, fetches, feed_dict, options)


class SessionRunContext:
    """The `run` call a hook is looking at: `original_args` (the caller's SessionRunArgs), the
    `session`, and `request_stop()` to end training after this step."""

    def __init__(self, original_args, session):
        self._original_args = original_args
        self._session = session
        self._stop_requested = False

    original_args = property(lambda self: self._original_args, doc="The caller's SessionRunArgs.")
    session = property(lambda self: self._session, doc="The session being run.")
    stop_requested = property(lambda self: self._stop_requested, doc="Whether a hook asked to stop.")

    def request_stop(self):
        """Asks the monitored session to stop: `should_stop()` becomes True after this run."""
        self._stop_requested = True


class SessionRunValues(collections.namedtuple("SessionRunValues", ["results", "options", "run_metadata"])):
    """`SessionRunValues(results, options, run_metadata)`: the results of a hook's fetches."""


__all__ = ["SessionRunArgs", "SessionRunContext", "SessionRunHook", "SessionRunValues"]
