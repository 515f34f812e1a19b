"""The launcher's one progress bar for the cluster, fed by the chief's reports."""

import io
import textwrap

import pytest

from tensorweave.distributed.launcher import Launch

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from tensorweave.train.progress import Progress
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    total = int(sys.argv[1])
    with Progress(total=total) as bar:       # the chief is worker 0, from TF_CONFIG
        for step in range(1, total + 1):
            bar.update(step * 10 if task else step, loss=1.0 / step)
            time.sleep(0.01)
    print("done", task)
""")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def _launch(script, stderr, **kwargs):
    stdout = io.StringIO()
    launch = Launch(script, ["20"], ps=0, workers=2, stdout=stdout, stderr=stderr, **kwargs)
    try:
        launch.start()
        assert launch.wait(timeout=60) == 0, stdout.getvalue() + stderr.getvalue()
    finally:
        launch.stop()
    return launch, stdout.getvalue()


def test_progress_is_collected_from_the_chief_without_a_terminal(script):
    stderr = io.StringIO()
    launch, stdout = _launch(script, stderr)
    assert (launch.progress.step, launch.progress.total, launch.progress.loss) == (20, 20, 1.0 / 20)
    assert launch.progress.reports >= 2
    assert "cluster" not in stderr.getvalue() and "\r" not in stderr.getvalue()  # no bar drawn
    assert "[worker:0] done 0" in stdout and "[worker:1] done 1" in stdout


def test_the_bar_is_drawn_on_a_terminal_with_rate_and_loss(script):
    stderr = _Terminal()
    launch, _ = _launch(script, stderr)
    text = stderr.getvalue()
    assert "cluster" in text and "20/20" in text and "step/s" in text and "loss=0.05" in text


def test_progress_always_draws_even_without_a_terminal(script):
    stderr = io.StringIO()
    _launch(script, stderr, progress="always")
    assert "20/20" in stderr.getvalue()


def test_progress_never_opens_no_channel(script):
    launch, _ = _launch(script, io.StringIO(), progress="never")
    assert launch.progress.step is None and launch.progress.reports == 0


def test_an_unknown_progress_mode_is_refused(script):
    with pytest.raises(ValueError, match="progress"):
        Launch(script, progress="sometimes")
