"""`tensorweave.train.progress`: a program's own bar, and reports to the launcher's channel."""

import io
import json
import math
import socket

from tensorweave.distributed import progress_channel
from tensorweave.train.progress import Progress, chief_from_tf_config


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _tf_config(job, index):
    return {"TF_CONFIG": json.dumps({"cluster": {}, "task": {"type": job, "index": index}})}


def test_local_bar_shows_steps_per_second_and_the_latest_loss():
    out = _Terminal()
    with Progress(total=5, file=out, environ={}) as bar:
        for step in range(1, 6):
            bar.update(step, loss=1.0 / step)
    text = out.getvalue()
    assert "5/5" in text and "step/s" in text and "loss=0.2" in text


def test_local_bar_is_off_when_stderr_is_not_a_terminal():
    out = io.StringIO()
    with Progress(total=3, file=out, environ={}) as bar:
        for step in range(1, 4):
            bar.update(step, loss=0.5)
    assert out.getvalue() == ""
    assert (bar.step, bar.loss) == (3, 0.5)


def test_a_stale_global_step_does_not_move_the_bar_back():
    with Progress(total=10, file=io.StringIO(), environ={}) as bar:
        bar.update(7)
        bar.update(5, loss=2.0)
    assert (bar.step, bar.loss) == (7, 2.0)


def test_chief_from_tf_config():
    assert chief_from_tf_config({})
    assert chief_from_tf_config(_tf_config("worker", 0))
    assert chief_from_tf_config(_tf_config("chief", 0))
    assert not chief_from_tf_config(_tf_config("worker", 1))
    assert not chief_from_tf_config(_tf_config("ps", 0))


def test_chief_reports_reach_the_listener_and_others_send_nothing():
    listener = progress_channel.ProgressListener()
    try:
        env = {progress_channel.ENV: listener.path, **_tf_config("worker", 1)}
        with Progress(total=4, environ=env) as bar:
            bar.update(1, loss=3.0)
        assert listener.receive(timeout=0) is None
        env = {progress_channel.ENV: listener.path, **_tf_config("worker", 0)}
        with Progress(total=4, environ=env) as bar:
            for step in range(1, 4):
                bar.update(step, loss=1.0 / step)  # throttled: the first is sent, the rest wait
        reports = []
        while (report := listener.receive(timeout=0.5)) is not None:
            reports.append(report)
        assert reports[0] == (1, 4, 1.0)
        assert reports[-1] == (3, 4, 1.0 / 3)  # sent on close
    finally:
        listener.close()


def test_the_listener_skips_malformed_datagrams():
    listener = progress_channel.ProgressListener()
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for junk in (b"\xff", b"[1]", b'{"step": "1"}', b'{"step": true}', b'{"step": 1, "loss": [1]}',
                     b'{"step": 1, "total": 1.5}', b"x" * (progress_channel.MAX_DATAGRAM + 10)):
            sender.sendto(junk, listener.path)
        sender.sendto(progress_channel.encode_report(9, None, math.nan), listener.path)
        step, total, loss = listener.receive(timeout=1)
        assert (step, total) == (9, None) and math.isnan(loss)
        assert listener.receive(timeout=0) is None
    finally:
        sender.close()
        listener.close()


def test_reports_are_dropped_not_blocking_when_no_launcher_listens(tmp_path):
    sender = progress_channel.ProgressSender(str(tmp_path / "gone.sock"))
    assert sender.send(1, 2, 0.5) is False
    sender.close()
