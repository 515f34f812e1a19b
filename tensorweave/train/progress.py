"""Training progress as one tqdm bar with steps per second and the latest loss.

A training loop reports its (global) step and loss to a `Progress`:

    with progress.Progress(total=FLAGS.train_steps, is_chief=is_chief) as bar:
        while ...:
            _, loss, step = sess.run([train_op, loss_op, global_step], feed_dict=...)
            bar.update(step, loss=loss)

Where the report goes depends on how the program was started. Under `tensorweave launch`, whose
tasks' output is piped, the launcher names a channel in `TENSORWEAVE_PROGRESS` and draws one bar
for the whole cluster: the chief's reports feed it and the other workers' are not sent. Otherwise
the program draws its own bar on stderr, and only when stderr is a terminal, so logs and pipes
get no bar characters.
"""

import json
import math
import os
import sys
import time

from tensorweave.distributed.progress_channel import ENV, ProgressSender

# Reports to the launcher are at most this often (plus the last one, sent on close).
SEND_INTERVAL_S = 0.1


def chief_from_tf_config(environ=None):
    """Whether `TF_CONFIG` makes this process the chief: worker 0, or a task of job "chief" or
    "master"; True when TF_CONFIG names no task (a program run on its own)."""
    environ = os.environ if environ is None else environ
    try:
        task = json.loads(environ.get("TF_CONFIG") or "{}").get("task") or {}
    except (ValueError, AttributeError):
        return True
    if not task:
        return True
    job, index = task.get("type"), int(task.get("index", 0))
    return job in ("chief", "master") or (job == "worker" and index == 0)


def _format_loss(loss):
    return f"{loss:.4g}" if math.isfinite(loss) else str(loss)


class Progress:
    """Reports training progress: to the launcher's bar under `tensorweave launch`, else to a
    tqdm bar of this process on stderr (shown only when stderr is a terminal).

    `total` is the step at which training ends (None: unknown). `update(step, loss)` takes the
    absolute step, such as the global step fetched with the train op, so workers sharing one
    global step report the cluster's progress. `is_chief` (default: from TF_CONFIG) decides who
    feeds the launcher's bar; a program on its own always draws its bar. `file` (default
    sys.stderr) and `enabled` (default: `file` is a terminal) override where and whether the local
    bar is drawn.
    """

    def __init__(self, total=None, *, is_chief=None, desc="training", file=None, enabled=None,
                 environ=None):
        environ = os.environ if environ is None else environ
        self.total = total
        self.step, self.loss = None, None
        self._sender, self._bar = None, None
        self._last_sent = -math.inf
        self._unsent = False
        channel = environ.get(ENV)
        if channel:
            if chief_from_tf_config(environ) if is_chief is None else is_chief:
                self._sender = ProgressSender(channel)
            return
        from tqdm import tqdm  # only a program drawing its own bar needs it
        file = sys.stderr if file is None else file
        if enabled is None:
            enabled = hasattr(file, "isatty") and file.isatty()
        self._bar = tqdm(total=total, desc=desc, unit="step", file=file, disable=not enabled,
                         dynamic_ncols=True)

    def update(self, step, loss=None):
        """Reports that training reached `step` (absolute, not an increment) with `loss`."""
        step = int(step)
        if loss is not None:
            self.loss = float(loss)
        if self.step is not None and step < self.step:
            step = self.step  # a stale global step read by a slower worker
        self.step = step
        if self._bar is not None:
            # Asynchronous workers may carry the global step past the total; tqdm would drop it.
            self._bar.update((step if self.total is None else min(step, self.total)) - self._bar.n)
            if loss is not None:
                self._bar.set_postfix(loss=_format_loss(self.loss), refresh=False)
        elif self._sender is not None:
            now = time.monotonic()
            if now - self._last_sent >= SEND_INTERVAL_S or (self.total is not None and step >= self.total):
                self._send(now)
            else:
                self._unsent = True

    def _send(self, now):
        self._sender.send(self.step, self.total, self.loss)
        self._last_sent, self._unsent = now, False

    def close(self):
        """Sends the last report (or closes the local bar)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._sender is not None:
            if self._unsent:
                self._send(time.monotonic())
            self._sender.close()
            self._sender = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
