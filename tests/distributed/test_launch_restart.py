"""`tensorweave launch --restart on-failure`: failed tasks come back with the same TF_CONFIG,
port and token, within a per-task budget. In subprocesses, every wait bounded, every child
killed in `finally`."""

import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

from tests.distributed.test_cli import _alive, _kill_all, _pids, _tensorweave

TIMEOUT_S = 60

# Writes its pid to PIDS_DIR/<job>-<task> and appends a line to RUNS_DIR/<job>-<task> per run,
# prints a digest of its TF_CONFIG and token, then acts by BEHAVIOUR for its task:
# "kill_self_once" dies by SIGKILL on its first run, "fail" exits 3, "sleep" blocks,
# "wait_for_ps_restart" exits 0 once the PS has run twice (4 after TIMEOUT_S).
TRAIN = textwrap.dedent("""
    import hashlib, json, os, signal, sys, time
    config = json.loads(os.environ["TF_CONFIG"])
    job, index = config["task"]["type"], config["task"]["index"]
    name = f"{job}-{index}"
    with open(os.path.join(os.environ["PIDS_DIR"], name + ".tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(os.environ["PIDS_DIR"], name + ".tmp"), os.path.join(os.environ["PIDS_DIR"], name))
    runs_file = os.path.join(os.environ["RUNS_DIR"], name)
    with open(runs_file, "a") as f:
        f.write("run\\n")
    runs = len(open(runs_file).read().splitlines())
    identity = os.environ["TF_CONFIG"] + os.environ["TENSORWEAVE_CLUSTER_TOKEN"] + " ".join(sys.argv[1:])
    print(f"run {runs} identity {hashlib.sha256(identity.encode()).hexdigest()[:16]}", flush=True)
    action = json.loads(os.environ["BEHAVIOUR"]).get(f"{job}:{index}", "done")
    if action == "kill_self_once" and runs == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "fail":
        sys.exit(3)
    if action == "sleep":
        time.sleep(600)
    if action == "wait_for_ps_restart":
        deadline = time.monotonic() + float(os.environ["TIMEOUT_S"])
        while not os.path.exists(os.path.join(os.environ["RUNS_DIR"], "ps-0")) or \\
                len(open(os.path.join(os.environ["RUNS_DIR"], "ps-0")).read().splitlines()) < 2:
            if time.monotonic() > deadline:
                sys.exit(4)
            time.sleep(0.05)
    print(f"{job}:{index} done", flush=True)
""")


def _start(tmp_path, behaviour, launch_args):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    pids_dir, runs_dir = tmp_path / "pids", tmp_path / "runs"
    pids_dir.mkdir()
    runs_dir.mkdir()
    env = dict(os.environ, PIDS_DIR=str(pids_dir), RUNS_DIR=str(runs_dir), BEHAVIOUR=json.dumps(behaviour),
               TIMEOUT_S=str(TIMEOUT_S))
    process = subprocess.Popen([*_tensorweave(), "launch", *launch_args, str(script), "--task={task}"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, pids_dir, runs_dir


def _runs(runs_dir, name):
    path = runs_dir / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def _identities(out, task):
    return [line.split(" identity ")[1] for line in out.splitlines() if line.startswith(f"[{task}] run ")]


def _launch_to_end(tmp_path, behaviour, launch_args):
    """Runs a launch until it exits; returns (exit status, stdout, stderr, runs_dir, pids of tasks
    still alive then). Every task is killed before it returns."""
    process, pids_dir, runs_dir = _start(tmp_path, behaviour, launch_args)
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
        survivors = [pid for pid in _pids(pids_dir).values() if _alive(pid)]
    finally:
        _kill_all(process, pids_dir)
    return process.returncode, out, err, runs_dir, survivors


def test_a_task_killed_once_is_restarted_with_the_same_config_and_the_launch_succeeds(tmp_path):
    status, out, err, runs_dir, survivors = _launch_to_end(
        tmp_path, {"ps:0": "sleep", "worker:1": "kill_self_once"},
        ["--ps", "1", "--workers", "2", "--restart", "on-failure", "--max-restarts", "2"])
    assert status == 0, (out, err)
    assert "tensorweave launch: restarting worker:1 (exit 137), restart 1 of 2" in err.splitlines()
    assert err.count("restarting") == 1
    assert _runs(runs_dir, "worker-1") == 2 and _runs(runs_dir, "worker-0") == 1
    first, second = _identities(out, "worker:1")  # same TF_CONFIG (task, ports), token, arguments
    assert first == second
    assert "[worker:1] worker:1 done" in out.splitlines()
    assert survivors == []


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_a_task_that_always_fails_uses_up_its_restarts_and_fails_the_launch(tmp_path):
    status, out, err, runs_dir, survivors = _launch_to_end(
        tmp_path, {"ps:0": "sleep", "worker:0": "sleep", "worker:1": "fail"},
        ["--ps", "1", "--workers", "2", "--restart", "on-failure", "--max-restarts", "2"])
    assert status == 3, (out, err)
    lines = err.splitlines()
    assert "tensorweave launch: restarting worker:1 (exit 3), restart 1 of 2" in lines
    # Failing again at once, it waits before its next start.
    assert "tensorweave launch: restarting worker:1 (exit 3) in 1 s, restart 2 of 2" in lines
    assert "tensorweave launch: worker:1 exited with status 3 after 2 restarts" in lines
    assert _runs(runs_dir, "worker-1") == 3
    assert survivors == []


@pytest.mark.slow
def test_a_task_failing_again_and_again_at_once_backs_off_doubling(tmp_path):
    started = time.monotonic()
    status, out, err, runs_dir, _ = _launch_to_end(
        tmp_path, {"ps:0": "sleep", "worker:0": "fail"},
        ["--ps", "1", "--workers", "1", "--restart", "on-failure", "--max-restarts", "3"])
    assert status == 3, (out, err)
    restarts = [line for line in err.splitlines() if "restarting worker:0" in line]
    assert restarts == ["tensorweave launch: restarting worker:0 (exit 3), restart 1 of 3",
                        "tensorweave launch: restarting worker:0 (exit 3) in 1 s, restart 2 of 3",
                        "tensorweave launch: restarting worker:0 (exit 3) in 2 s, restart 3 of 3"]
    assert _runs(runs_dir, "worker-0") == 4
    assert time.monotonic() - started >= 3.0


def test_without_restart_a_failure_ends_the_launch_at_once(tmp_path):
    status, out, err, runs_dir, _ = _launch_to_end(tmp_path, {"ps:0": "sleep", "worker:0": "fail"},
                                                   ["--ps", "1", "--workers", "1"])
    assert status == 3, (out, err)
    assert "restarting" not in err and "tensorweave launch: worker:0 exited with status 3" in err.splitlines()
    assert _runs(runs_dir, "worker-0") == 1


def test_a_ps_killed_by_sigkill_is_restarted(tmp_path):
    process, pids_dir, runs_dir = _start(tmp_path, {"ps:0": "sleep", "worker:0": "wait_for_ps_restart"},
                                         ["--ps", "1", "--workers", "1", "--restart", "on-failure",
                                          "--max-restarts", "1"])
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while "ps-0" not in _pids(pids_dir):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate(timeout=TIMEOUT_S)
            time.sleep(0.05)
        first_pid = _pids(pids_dir)["ps-0"]
        os.kill(first_pid, signal.SIGKILL)
        out, err = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, (out, err)
        assert "tensorweave launch: restarting ps:0 (exit 137), restart 1 of 1" in err.splitlines()
        assert _runs(runs_dir, "ps-0") == 2
        first, second = _identities(out, "ps:0")
        assert first == second
        assert "[worker:0] worker:0 done" in out.splitlines()
        assert _pids(pids_dir)["ps-0"] != first_pid and not _alive(_pids(pids_dir)["ps-0"])
    finally:
        _kill_all(process, pids_dir)


def test_max_restarts_needs_restart_on_failure(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    result = subprocess.run([*_tensorweave(), "launch", "--max-restarts", "2", str(script)],
                            check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 2 and "--max-restarts needs --restart on-failure" in result.stderr
    result = subprocess.run([*_tensorweave(), "launch", "--restart", "on-failure", "--max-restarts", "-1",
                             str(script)], check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 2 and "must not be negative" in result.stderr


def test_ctrl_c_stops_every_task_for_good_in_supervise_mode(tmp_path):
    process, pids_dir, runs_dir = _start(tmp_path, {"ps:0": "sleep", "worker:0": "sleep", "worker:1": "sleep"},
                                         ["--ps", "1", "--workers", "2", "--restart", "on-failure"])
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(_pids(pids_dir)) < 3:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate(timeout=TIMEOUT_S)
            time.sleep(0.05)
        pids = _pids(pids_dir)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 128 + signal.SIGINT, (out, err)
        assert "restarting" not in err
        assert not any(_alive(pid) for pid in pids.values()), pids
        assert [_runs(runs_dir, name) for name in ("ps-0", "worker-0", "worker-1")] == [1, 1, 1]
    finally:
        _kill_all(process, pids_dir)


# A real cluster: the PS serves until killed; the worker, once the PS has run twice, uses a
# variable on it, so the restarted PS serves on the same port with the same token.
SERVER_TRAIN = textwrap.dedent("""
    import json, os, time
    import tensorweave as tf
    from tensorweave.distributed.cluster import cluster_spec_from_tf_config
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    runs_file = os.path.join(os.environ["RUNS_DIR"], task["type"])
    with open(runs_file, "a") as f:
        f.write(f"{os.getpid()}\\n")
    if task["type"] == "ps":
        server = tf.train.Server(cluster_spec_from_tf_config(), "ps", 0)
        with open(os.path.join(os.environ["RUNS_DIR"], "ps-serving"), "a") as f:
            f.write(f"{os.getpid()}\\n")
        server.join()
    deadline = time.monotonic() + float(os.environ["TIMEOUT_S"])
    serving = os.path.join(os.environ["RUNS_DIR"], "ps-serving")
    while not os.path.exists(serving) or len(open(serving).read().split()) < 2:
        assert time.monotonic() < deadline, "the PS was not restarted"
        time.sleep(0.05)
    server = tf.train.Server(cluster_spec_from_tf_config(), "worker", 0)
    with tf.device("/job:ps/task:0"):
        v = tf.Variable([1.0, 2.0, 3.0])
    with tf.Session(server.target, config=tf.ConfigProto(operation_timeout_in_ms=30000)) as sess:
        sess.run(v.initializer)
        print(f"sum={sess.run(tf.reduce_sum(v))}")
""")


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_a_restarted_ps_serves_again_on_its_port(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SERVER_TRAIN)
    env = dict(os.environ, RUNS_DIR=str(tmp_path), TIMEOUT_S=str(TIMEOUT_S))
    process = subprocess.Popen([*_tensorweave(), "launch", "--ps", "1", "--workers", "1", "--restart",
                                "on-failure", "--max-restarts", "1", str(script)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    serving = tmp_path / "ps-serving"
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not serving.exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate(timeout=TIMEOUT_S)
            time.sleep(0.05)
        os.kill(int(serving.read_text().split()[0]), signal.SIGKILL)
        out, err = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, (out, err)
        assert "tensorweave launch: restarting ps:0 (exit 137), restart 1 of 1" in err.splitlines()
        assert "[worker:0] sum=6.0" in out.splitlines(), (out, err)
        assert not any(_alive(pid) for pid in _task_pids(tmp_path))
    finally:
        _kill_all(process)
        for pid in _task_pids(tmp_path):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _task_pids(runs_dir):
    return [int(pid) for name in ("ps", "worker") if (runs_dir / name).exists()
            for pid in (runs_dir / name).read_text().split()]
