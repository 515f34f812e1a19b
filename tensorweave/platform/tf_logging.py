"""TF1's `tf.logging`, writing through the standard `logging` logger named 'tensorweave'.

As in TF1, the logger's threshold is unset (so WARN, through the root logger) until
`set_verbosity` changes it, and it prints to stderr as "LEVEL:tensorweave:message" unless the
program configured logging itself.
"""

import logging
import sys
import threading

DEBUG = logging.DEBUG
INFO = logging.INFO
WARN = logging.WARN
WARNING = logging.WARNING
ERROR = logging.ERROR
FATAL = logging.FATAL

_logger = logging.getLogger("tensorweave")
_handler_lock = threading.Lock()
_handler_added = False
_counts = {}  # call site -> calls so far, for log_every_n / log_first_n
_counts_lock = threading.Lock()


def get_logger():
    """The 'tensorweave' logger; gives it a stderr handler unless logging was configured."""
    global _handler_added
    if not _handler_added:
        with _handler_lock:
            if not _handler_added:
                if not logging.getLogger().handlers and not _logger.handlers:
                    handler = logging.StreamHandler(sys.stderr)
                    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
                    _logger.addHandler(handler)
                _handler_added = True
    return _logger


def _emit(level, msg, args, kwargs, depth):
    # stacklevel points the record's file:line at the program's call, not at this module.
    kwargs.setdefault("stacklevel", depth + 1)
    get_logger().log(level, msg, *args, **kwargs)


def log(level, msg, *args, **kwargs):
    """Logs `msg % args` at `level`."""
    _emit(level, msg, args, kwargs, 2)


def debug(msg, *args, **kwargs):
    """Logs `msg % args` at DEBUG."""
    _emit(DEBUG, msg, args, kwargs, 2)


def info(msg, *args, **kwargs):
    """Logs `msg % args` at INFO."""
    _emit(INFO, msg, args, kwargs, 2)


def warning(msg, *args, **kwargs):
    """Logs `msg % args` at WARNING (`warn` is the same)."""
    _emit(WARNING, msg, args, kwargs, 2)


warn = warning


def error(msg, *args, **kwargs):
    """Logs `msg % args` at ERROR."""
    _emit(ERROR, msg, args, kwargs, 2)


def fatal(msg, *args, **kwargs):
    """Logs at FATAL; as in TF1 it does not exit."""
    _emit(FATAL, msg, args, kwargs, 2)


def vlog(level, msg, *args, **kwargs):
    """Logs at `level` (TF1's verbose logging is plain logging at that level)."""
    _emit(level, msg, args, kwargs, 2)


def _next_count(depth):
    frame = sys._getframe(depth)
    site = (frame.f_code.co_filename, frame.f_lineno)
    with _counts_lock:
        count = _counts.get(site, 0)
        _counts[site] = count + 1
    return count


def log_every_n(level, msg, n, *args):
    """Logs `msg % args` on the 1st, (n+1)th, (2n+1)th... call from the same line."""
    if _next_count(2) % max(int(n), 1) == 0:
        _emit(level, msg, args, {}, 2)


def log_first_n(level, msg, n, *args):
    """Logs `msg % args` on the first `n` calls from the same line only."""
    if _next_count(2) < n:
        _emit(level, msg, args, {}, 2)


def log_if(level, msg, condition, *args):
    """Logs `msg % args` when `condition` holds."""
    if condition:
        _emit(level, msg, args, {}, 2)


def set_verbosity(v):
    """Sets the threshold: messages below level `v` are dropped."""
    get_logger().setLevel(v)


def get_verbosity():
    """The threshold in effect (the root logger's when none was set)."""
    return get_logger().getEffectiveLevel()


def flush():
    """Flushes the handlers of the tensorweave logger."""
    for handler in get_logger().handlers:
        handler.flush()
