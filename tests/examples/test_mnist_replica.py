"""TF1's distributed `mnist_replica.py` on real MNIST: one PS and two workers started by
`tensorweave launch`, training one softmax model asynchronously (between-graph replication) and
synchronously (`--sync_replicas`)."""

import os
import re
import signal
import subprocess
import sys

import pytest

from tensorweave.examples.tutorials.mnist import input_data, mnist_replica

pytestmark = pytest.mark.slow

TIMEOUT_S = 240
TRAIN_STEPS = 1000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist")
    input_data.read_data_sets(str(path), one_hot=True)  # extracts once; the tasks read the IDX cache
    return str(path)


def _tensorweave():
    return [os.path.join(os.path.dirname(sys.executable), "tensorweave")]


def _launch(data_dir, *flags):
    """Runs mnist_replica.py under `tensorweave launch` (1 PS, 2 workers); (returncode, out, err)."""
    env = dict(os.environ, TENSORWEAVE_OFFLINE="1", PYTHONHASHSEED="0")
    process = subprocess.Popen(
        [*_tensorweave(), "launch", "--ps", "1", "--workers", "2", mnist_replica.__file__,
         "--data_dir", data_dir, "--job_name={job}", "--task_index={task}", "--ps_hosts={ps_hosts}",
         "--worker_hosts={worker_hosts}", "--train_steps", str(TRAIN_STEPS), "--seed", "1", *flags],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()  # the launch's own children die with its session
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.communicate(timeout=30)
    return process.returncode, out, err


def _local_steps(out):
    """{worker index: local steps} from the workers' "Training elapsed time" lines."""
    return {int(i): int(n) for i, n in re.findall(r"\[worker:(\d)\] Training elapsed time: \S+ s \((\d+) local",
                                                  out)}


def _chief_accuracy(out):
    accuracies = re.findall(r"^\[worker:0\] test accuracy ([0-9.]+)$", out, re.MULTILINE)
    assert len(accuracies) == 1, out
    assert "[worker:1] test accuracy" not in out
    return float(accuracies[0])


def test_two_workers_train_one_model_asynchronously_to_90_percent(data_dir):
    returncode, out, err = _launch(data_dir)
    assert returncode == 0, out + err
    lines = out.splitlines()
    for index in (0, 1):
        steps = [int(m.group(1)) for m in (re.match(
            rf"\[worker:{index}\] Worker {index}: training step \d+ done \(global step: (\d+)\)", line)
            for line in lines) if m]
        assert steps, f"worker {index} printed no training step:\n{out}"
    # Both workers advanced the one shared global step: each did only part of the steps.
    local = _local_steps(out)
    assert sorted(local) == [0, 1] and all(0 < n < TRAIN_STEPS for n in local.values()), out
    assert sum(local.values()) >= TRAIN_STEPS
    assert _chief_accuracy(out) >= 0.90, out


def test_two_workers_train_one_model_synchronously_to_90_percent(data_dir):
    """--sync_replicas: each update is the mean of two fresh gradients (replicas_to_aggregate
    defaults to the number of workers), applied by the chief's queue runner; every task ends."""
    returncode, out, err = _launch(data_dir, "--sync_replicas")
    assert returncode == 0, out + err
    for index in (0, 1):
        assert re.search(rf"^\[worker:{index}\] Worker {index}: training step \d+ done", out, re.MULTILINE), out
    local = _local_steps(out)
    assert sorted(local) == [0, 1] and all(n > 0 for n in local.values()), out
    assert _chief_accuracy(out) >= 0.90, out
