"""`tensorweave server` and `tensorweave launch` as a user runs them: in subprocesses, with every
child killed in `finally` and a timeout on every wait."""

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import free_ports
from tests.distributed.cluster_procs import make_test_cert

TIMEOUT_S = 60
TOKEN = "cli-test-secret"

# Writes its pid to PIDS_DIR/<job>-<task>, prints its task and arguments, then acts by BEHAVIOUR:
# {"worker:1": 3} exits 3 (once every other task has written its pid), "sleep" blocks forever.
TRAIN = textwrap.dedent("""
    import json, os, sys, time
    config = json.loads(os.environ["TF_CONFIG"])
    job, index = config["task"]["type"], config["task"]["index"]
    pids, behaviour = os.environ["PIDS_DIR"], json.loads(os.environ["BEHAVIOUR"])
    with open(os.path.join(pids, f"{job}-{index}.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(pids, f"{job}-{index}.tmp"), os.path.join(pids, f"{job}-{index}"))
    token = os.environ["TENSORWEAVE_CLUSTER_TOKEN"]
    print(f"task {job}:{index} cluster={sorted(config['cluster'])} token_chars={len(token)}")
    print("args " + " ".join(sys.argv[1:]))
    print(f"stderr of {job}:{index}", file=sys.stderr)
    action = behaviour.get(f"{job}:{index}", behaviour.get(job, 0))
    if action == "sleep":
        time.sleep(600)
    if action == "wait_for_others_then_fail":
        while len([n for n in os.listdir(pids) if not n.endswith(".tmp")]) < int(os.environ["NTASKS"]):
            time.sleep(0.05)
        sys.exit(3)
    if isinstance(action, (int, float)) and action > 0:
        time.sleep(action)
    print(f"{job}:{index} done")
""")


def _tensorweave():
    return [os.path.join(os.path.dirname(sys.executable), "tensorweave")]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an unreaped zombie is dead too
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line for line in f)
    except FileNotFoundError:
        return False


def _pids(pids_dir):
    return {name: int(open(pids_dir / name).read()) for name in os.listdir(pids_dir)
            if not name.endswith(".tmp")}


def _kill_all(process, pids_dir=None):
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(TIMEOUT_S)
    for pid in (_pids(pids_dir).values() if pids_dir is not None and pids_dir.exists() else ()):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _start_launch(tmp_path, behaviour, launch_args, train_args=()):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    env = dict(os.environ, PIDS_DIR=str(pids_dir), BEHAVIOUR=json.dumps(behaviour), NTASKS="3")
    process = subprocess.Popen([*_tensorweave(), "launch", *launch_args, str(script), *train_args],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, pids_dir


def _wait_for_pids(pids_dir, n, process):
    deadline = time.monotonic() + TIMEOUT_S
    while len(_pids(pids_dir)) < n:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "tasks did not start"
        time.sleep(0.05)
    return _pids(pids_dir)


def test_launch_runs_every_task_templates_args_prefixes_output_and_stops_the_ps(tmp_path):
    process, pids_dir = _start_launch(
        tmp_path, {"ps": "sleep"}, ["--ps", "1", "--workers", "2"],
        ["--job_name={job}", "--task_index={task}", "--ps_hosts={ps_hosts}",
         "--worker_hosts={worker_hosts}", '{"json": 1}'])
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, (out, err)
        lines = out.splitlines()
        config_lines = [line for line in lines if " task " in line]
        assert len(config_lines) == 3, out
        for job, index in (("ps", 0), ("worker", 0), ("worker", 1)):
            prefix = f"[{job}:{index}] "
            assert f"{prefix}task {job}:{index} cluster=['ps', 'worker'] token_chars=64" in lines
            args_line = next(line for line in lines if line.startswith(prefix + "args "))
            assert f"--job_name={job} --task_index={index} --ps_hosts=127.0.0.1:" in args_line
            worker_hosts = args_line.split("--worker_hosts=")[1].split()[0].split(",")
            assert len(worker_hosts) == 2 and all(h.startswith("127.0.0.1:") for h in worker_hosts)
            assert args_line.endswith(' {"json": 1}')
            assert f"{prefix}stderr of {job}:{index}" in err.splitlines()
        assert "[worker:0] worker:0 done" in lines and "[worker:1] worker:1 done" in lines
        assert "[ps:0] ps:0 done" not in lines  # the PS was terminated, not finished
        assert not any(_alive(pid) for pid in _pids(pids_dir).values())
    finally:
        _kill_all(process, pids_dir)


def test_a_failing_worker_ends_the_launch_with_its_status_and_no_child_survives(tmp_path):
    process, pids_dir = _start_launch(
        tmp_path, {"ps": "sleep", "worker:0": "sleep", "worker:1": "wait_for_others_then_fail"},
        ["--ps", "1", "--workers", "2"])
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 3, (out, err)
        assert "worker:1 exited with status 3" in err
        pids = _pids(pids_dir)
        assert sorted(pids) == ["ps-0", "worker-0", "worker-1"]
        assert not any(_alive(pid) for pid in pids.values()), pids
    finally:
        _kill_all(process, pids_dir)


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_keep_going_lets_the_other_workers_finish_then_fails(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("x" * 10 + "\n")
    process, pids_dir = _start_launch(
        tmp_path, {"ps": "sleep", "worker:0": 1.0, "worker:1": "wait_for_others_then_fail"},
        ["--ps", "1", "--workers", "2", "--keep-going", "--token-file", str(token_file)])
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 3, (out, err)
        assert "[worker:0] worker:0 done" in out.splitlines()
        assert "token_chars=10" in out
        assert not any(_alive(pid) for pid in _pids(pids_dir).values())
    finally:
        _kill_all(process, pids_dir)


def test_sigterm_to_the_launch_terminates_every_child(tmp_path):
    process, pids_dir = _start_launch(tmp_path, {"ps": "sleep", "worker": "sleep"},
                                      ["--ps", "1", "--workers", "2"])
    try:
        pids = _wait_for_pids(pids_dir, 3, process)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 128 + signal.SIGTERM
        assert not any(_alive(pid) for pid in pids.values()), pids
    finally:
        _kill_all(process, pids_dir)


def _read_lines(stream, lines):
    for line in iter(stream.readline, ""):
        lines.put(line)


@pytest.mark.parametrize("tf_config_shape", [False, True])
def test_server_serves_a_session_and_exits_cleanly_on_sigterm(tmp_path, tf_config_shape):
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    cluster = {"ps": [address]}  # the master reaches every task at CreateSession
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(json.dumps({"cluster": cluster, "task": {"type": "ps", "index": 0}}
                                       if tf_config_shape else cluster))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    task_args = [] if tf_config_shape else ["--job", "ps", "--task", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENSORWEAVE_CLUSTER_TOKEN")}
    server = subprocess.Popen([*_tensorweave(), "server", "--cluster", str(cluster_file), *task_args,
                               "--token-file", str(token_file)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=_read_lines, args=(server.stdout, lines), daemon=True).start()
    try:
        first = lines.get(timeout=TIMEOUT_S)
        assert f"/job:ps/replica:0/task:0 serving at grpc://{address}" in first, first
        with tf.Graph().as_default():
            with tf.device("/job:ps/task:0"):
                total = tf.constant(1.0) + 1.0
            config = tf.ConfigProto(cluster_token=TOKEN, operation_timeout_in_ms=30_000)
            with tf.Session(f"grpc://{address}", config=config) as sess:
                assert sess.run(total) == 2.0
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    finally:
        _kill_all(server)


def test_server_without_a_token_names_the_loopback_address_it_serves_not_the_clusters_host(tmp_path):
    (port,) = free_ports(1)
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(json.dumps({"ps": [f"node-a.invalid:{port}"]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENSORWEAVE_CLUSTER_TOKEN")}
    server = subprocess.Popen([*_tensorweave(), "server", "--cluster", str(cluster_file)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=_read_lines, args=(server.stdout, lines), daemon=True).start()
    try:
        seen = []
        while not any("serving at" in line for line in seen):
            seen.append(lines.get(timeout=TIMEOUT_S))
        banner = seen[-1]
        assert f"/job:ps/replica:0/task:0 serving at grpc://127.0.0.1:{port}\n" in banner, seen
        assert any("127.0.0.1" in line and "node-a.invalid" in line for line in seen[:-1]), seen  # the warning
        with tf.Graph().as_default():
            total = tf.constant(1.0) + 1.0
            with tf.Session(f"grpc://127.0.0.1:{port}",
                            config=tf.ConfigProto(operation_timeout_in_ms=30_000)) as sess:
                assert sess.run(total) == 2.0
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    finally:
        _kill_all(server)


@pytest.mark.parametrize("contents, message", [
    ("{not json", "not valid JSON"),
    ('{"ps": ["127.0.0.1:nope"]}', "is not 'host:port'"),
    ('{"ps": ["127.0.0.1:2222"]}', "No such job in cluster: 'chief'"),
    (None, "No such file"),
])
def test_server_with_a_bad_cluster_file_exits_2_naming_the_problem(tmp_path, contents, message):
    cluster_file = tmp_path / "cluster.json"
    if contents is not None:
        cluster_file.write_text(contents)
    result = subprocess.run([*_tensorweave(), "server", "--cluster", str(cluster_file), "--job", "chief"],
                            check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 2, result
    assert message in result.stderr and result.stderr.startswith("tensorweave server: error:")
    assert result.stdout == ""


def test_launch_of_a_missing_script_exits_2_before_starting_any_task(tmp_path):
    missing = tmp_path / "no_such_train.py"
    result = subprocess.run([*_tensorweave(), "launch", "--ps", "1", "--workers", "2", str(missing)],
                            check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 2, result
    assert result.stderr.startswith("tensorweave launch: error: No script to launch at")
    assert str(missing) in result.stderr and "[ps:0]" not in result.stderr + result.stdout


TLS_TRAIN = textwrap.dedent("""
    import json, os
    import tensorweave as tf
    from tensorweave.distributed.cluster import cluster_spec_from_tf_config
    from tensorweave.distributed.transport import tls
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    files = tls.tls_files(tf.ConfigProto())
    print(f"tls serves={files.serves_tls} mutual={bool(files.ca)}")
    server = tf.train.Server(cluster_spec_from_tf_config(), task["type"], task["index"])
    if task["type"] == "ps":
        server.join()
    with tf.device("/job:ps/task:0"):
        v = tf.Variable([1.0, 2.0, 3.0])
    with tf.device("/job:worker/task:0"):
        total = tf.reduce_sum(v * 2.0)
    with tf.Session(server.target, config=tf.ConfigProto(operation_timeout_in_ms=30000)) as sess:
        sess.run(v.initializer)
        print(f"total={sess.run(total)} channels={len(server.transport.channels())}")
""")


@pytest.mark.slow
def test_launch_with_tls_files_runs_the_cluster_under_mutual_tls(tmp_path):
    cert, key = make_test_cert(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(TLS_TRAIN)
    process = subprocess.Popen([*_tensorweave(), "launch", "--ps", "1", "--workers", "1", "--tls-cert", str(cert),
                                "--tls-key", str(key), "--tls-ca", str(cert), str(script)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
    finally:
        _kill_all(process)
    assert process.returncode == 0, out + err
    assert "[worker:0] tls serves=True mutual=True" in out
    assert "[worker:0] total=12.0 channels=1" in out, out + err


def test_the_launcher_splits_the_cores_among_workers_unless_told():
    from tensorweave.distributed.launcher import THREAD_ENV, thread_env
    quiet = {"OPENBLAS_THREAD_TIMEOUT": "4"}
    assert thread_env("worker", 2, environ={}, cores=8) == {**dict.fromkeys(THREAD_ENV, "4"), **quiet}
    assert thread_env("worker", 3, environ={}, cores=2) == {**dict.fromkeys(THREAD_ENV, "1"), **quiet}
    assert thread_env("ps", 2, environ={}, cores=8) == {**dict.fromkeys(THREAD_ENV, "1"), **quiet}
    assert thread_env("worker", 2, environ={"OMP_NUM_THREADS": "6"}, cores=8) == quiet
    assert thread_env("worker", 2, environ={"OMP_NUM_THREADS": "6", "OPENBLAS_THREAD_TIMEOUT": "8"}) == {}
