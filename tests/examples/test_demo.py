"""`make demo`: the seed program trained on a local cluster of 1 PS + 2 workers by `tensorweave launch`.

The test runs the command of the Makefile's `demo` recipe with this interpreter's venv, on an MNIST
copy prepared offline, so it needs neither the network nor `make`'s install step."""

import os
import re
import shlex
import signal
import subprocess
import sys

import pytest

from tensorweave.examples.tutorials.mnist import input_data

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 120  # the demo takes about 10 s on 2 cores
STEPS = 3000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist")
    input_data.read_data_sets(str(path), one_hot=True)  # extracts once; the tasks read the IDX cache
    return str(path)


def _demo_command():
    """The `demo` recipe of the Makefile as argv, with $(VENV)/bin/ the directory of this Python."""
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        text = f.read()
    recipe = re.search(r"^demo:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.MULTILINE)
    assert recipe, "the Makefile has no demo recipe"
    lines = recipe.group(1).splitlines()
    assert len(lines) == 1, f"expected a one-line demo recipe, got {lines}"
    line = lines[0].strip().replace("$(VENV)/bin/", os.path.dirname(sys.executable) + os.sep)
    assert "$" not in line, f"unexpanded make variable in the demo recipe: {line}"
    return shlex.split(line)


def test_demo_trains_the_seed_program_on_one_ps_and_two_workers(data_dir):
    command = _demo_command()
    assert command[1:6] == ["launch", "--ps", "1", "--workers", "2"], command
    env = dict(os.environ, TENSORWEAVE_OFFLINE="1", PYTHONHASHSEED="0")
    # 3000 steps rather than the demo's 1000: on a loaded machine the chief's 1000 steps take
    # about 3 s, which a slow start of worker 1 can miss entirely.
    process = subprocess.Popen([*command, "--data_dir", data_dir, "--steps", str(STEPS)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:  # timed out: the launcher and its tasks share a process group
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)
    assert process.returncode == 0, out + err
    # Both workers took part in the one run of STEPS global steps.
    local = {int(i): int(n) for i, n in re.findall(r"^\[worker:(\d)\] worker \d: (\d+) local steps", out,
                                                   re.MULTILINE)}
    assert sorted(local) == [0, 1] and all(0 < n < STEPS for n in local.values()), out
    assert sum(local.values()) >= STEPS, out
    accuracies = re.findall(r"^\[worker:0\] test accuracy: ([0-9.]+)$", out, re.MULTILINE)
    assert len(accuracies) == 1, out
    assert "[worker:1] test accuracy" not in out
    assert float(accuracies[0]) > 0.85, out
