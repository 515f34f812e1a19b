"""The channel by which the chief of a launched cluster reports training progress to `tensorweave launch`.

The tasks' output is piped through the launcher, so a task cannot draw a progress bar itself. The
launcher binds a Unix datagram socket in a directory only its user can enter and names it in the
tasks' environment (`ENV`); a report is one datagram of JSON, `{"step": int, "total": int or null,
"loss": float or null}`. Sending never blocks: a full buffer or a launcher that has gone drops the
report, since progress is advisory. Received datagrams are bounded in size, parsed as JSON only,
and checked field by field.
"""

import json
import math
import os
import shutil
import socket
import tempfile

ENV = "TENSORWEAVE_PROGRESS"
MAX_DATAGRAM = 512


def encode_report(step, total=None, loss=None):
    """One report as datagram bytes."""
    loss = None if loss is None else float(loss)
    if loss is not None and not math.isfinite(loss):
        loss = str(loss)  # JSON has no NaN or Inf; the bar shows the word
    return json.dumps({"step": int(step), "total": None if total is None else int(total),
                       "loss": loss}).encode()


def decode_report(data):
    """The (step, total, loss) of a datagram, or None when it is not a well-formed report."""
    if len(data) > MAX_DATAGRAM:
        return None
    try:
        report = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    step, total, loss = report.get("step"), report.get("total"), report.get("loss")
    if not _is_int(step) or not (total is None or _is_int(total)):
        return None
    if loss is not None and not (isinstance(loss, (int, float, str)) and not isinstance(loss, bool)):
        return None
    if isinstance(loss, str):
        loss = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(loss)
    return step, total, None if loss is None else float(loss)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class ProgressSender:
    """Sends reports to the launcher's socket at `path` (the value of `ENV`), never blocking."""

    def __init__(self, path):
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def send(self, step, total=None, loss=None):
        """Sends one report; returns False when it was dropped."""
        try:
            self._socket.sendto(encode_report(step, total, loss), self.path)
            return True
        except OSError:  # buffer full, or no launcher listening any more
            return False

    def close(self):
        self._socket.close()


class ProgressListener:
    """The launcher's end: binds a socket in a private temporary directory (`path`, to put in
    the tasks' environment as `ENV`); `receive(timeout)` returns the next well-formed report as
    (step, total, loss), skipping malformed ones, or None when none came within `timeout` seconds
    (0: only what has arrived)."""

    def __init__(self):
        self._dir = tempfile.mkdtemp(prefix="tensorweave-progress-")  # mode 0700
        self.path = os.path.join(self._dir, "progress.sock")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)

    def receive(self, timeout):
        self._socket.settimeout(timeout)
        while True:
            try:
                data = self._socket.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, TimeoutError):  # nothing within `timeout`
                return None
            report = decode_report(data)
            if report is not None:
                return report

    def close(self):
        self._socket.close()
        shutil.rmtree(self._dir, ignore_errors=True)
