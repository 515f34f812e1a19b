"""ClusterSpec (TF1 semantics), TF_CONFIG, cluster files, device names and free local ports."""

import json
import socket
import subprocess
import sys

import pytest
from tensorboard.compat.proto import cluster_pb2

import tensorweave as tf
from tensorweave.compat import v1
from tensorweave.distributed import (
    ClusterSpec,
    cluster_spec_from_tf_config,
    free_ports,
    load_cluster_file,
    local_cluster_spec,
    task_from_tf_config,
)

DENSE = {"worker": ["w0:2222", "w1:2222", "w2:2222"], "ps": ["ps0:2222", "ps1:2222"]}
SPARSE = {"worker": {1: "w1:2222", 3: "w3:2222"}, "ps": ["ps0:2222"]}


# -- ClusterSpec ----------------------------------------------------------------------------------

def test_tf_train_exports_cluster_spec():
    assert tf.train.ClusterSpec is ClusterSpec
    assert v1.train.ClusterSpec is ClusterSpec


def test_dense_cluster():
    cluster = ClusterSpec(DENSE)
    assert cluster.jobs == ["worker", "ps"]
    assert cluster.num_tasks("worker") == 3 and cluster.num_tasks("ps") == 2
    assert cluster.task_indices("worker") == [0, 1, 2]
    assert cluster.task_address("worker", 1) == "w1:2222"
    assert cluster.job_tasks("ps") == ["ps0:2222", "ps1:2222"]
    assert cluster.as_dict() == DENSE
    assert isinstance(cluster.as_dict()["worker"], list)


def test_sparse_cluster():
    cluster = ClusterSpec(SPARSE)
    assert cluster.num_tasks("worker") == 2
    assert cluster.task_indices("worker") == [1, 3]
    assert cluster.job_tasks("worker") == [None, "w1:2222", None, "w3:2222"]
    assert cluster.as_dict() == {"worker": {1: "w1:2222", 3: "w3:2222"}, "ps": ["ps0:2222"]}
    # Dense indices given as a dict come back as a list, as in TF.
    assert ClusterSpec({"w": {1: "b:2", 0: "a:1"}}).as_dict() == {"w": ["a:1", "b:2"]}
    # JSON object keys are strings.
    assert ClusterSpec({"w": {"2": "a:1"}}).task_indices("w") == [2]


def test_empty_job_and_empty_cluster():
    cluster = ClusterSpec({"ps": []})
    assert cluster and cluster.num_tasks("ps") == 0 and cluster.job_tasks("ps") == []
    assert cluster.as_dict() == {"ps": {}}  # as TF
    assert ClusterSpec(cluster.as_cluster_def()) == cluster
    assert not ClusterSpec({})


def test_missing_job_and_task_raise_value_error():
    cluster = ClusterSpec(SPARSE)
    for call in (cluster.num_tasks, cluster.task_indices, cluster.job_tasks):
        with pytest.raises(ValueError, match="No such job in cluster: 'chief'"):
            call("chief")
    with pytest.raises(ValueError, match="No task with index 2 in job 'worker'"):
        cluster.task_address("worker", 2)
    with pytest.raises(ValueError, match="No such job"):
        cluster.task_address("chief", 0)


def test_bad_input_types_raise_type_error():
    for bad in (None, ["w:1"], "worker:1"):
        with pytest.raises(TypeError, match="`cluster` must be a dictionary"):
            ClusterSpec(bad)
    with pytest.raises(TypeError, match="tasks for job 'worker' must be a list or a dictionary"):
        ClusterSpec({"worker": "w0:2222"})
    with pytest.raises(TypeError, match="Task address 42 .*job 'worker', task 0"):
        ClusterSpec({"worker": [42]})
    with pytest.raises(TypeError, match="Job name 3 must be"):
        ClusterSpec({3: ["w:1"]})
    with pytest.raises(TypeError, match="Task index 1.5 of job 'w'"):
        ClusterSpec({"w": {1.5: "a:1"}})


@pytest.mark.parametrize("address", ["w0", "w0:", ":2222", "w0:0", "w0:65536", "w0:port",
                                     "grpc://w0:2222", "::1:2222", "w 0:1"])
def test_bad_addresses_name_job_and_task(address):
    with pytest.raises(ValueError, match=r"job 'worker' task 1 is not 'host:port'"):
        ClusterSpec({"worker": ["ok:1", address]})


def test_good_addresses():
    ok = ["localhost:1", "10.0.0.1:65535", "[::1]:2222", "host-a.example.com:2222"]
    assert ClusterSpec({"w": ok}).job_tasks("w") == ok
    assert ClusterSpec({b"w": [b"a:1"]}).as_dict() == {"w": ["a:1"]}


def test_bad_job_names_and_indices():
    for name in ("", "my-job", "0ps", "a/b"):
        with pytest.raises(ValueError, match="Job name .* is not valid"):
            ClusterSpec({name: ["a:1"]})
    with pytest.raises(ValueError, match="Task index -1 of job 'w' is negative"):
        ClusterSpec({"w": {-1: "a:1"}})
    with pytest.raises(ValueError, match="Task index 'x' of job 'w'"):
        ClusterSpec({"w": {"x": "a:1"}})
    with pytest.raises(ValueError, match="Task 1 of job 'w' is given twice"):
        ClusterSpec({"w": {1: "a:1", "1": "b:2"}})


def test_equality_copy_and_str():
    a, b = ClusterSpec(DENSE), ClusterSpec(dict(reversed(DENSE.items())))
    assert a == b
    assert (a != b) is False
    assert a == ClusterSpec(a) and ClusterSpec(a) is not a
    assert a == DENSE and a != SPARSE and a != ClusterSpec(SPARSE)
    assert a != {"worker": 3} and a != "nope"
    assert str(a) == repr(a) == ("ClusterSpec({'ps': ['ps0:2222', 'ps1:2222'], "
                                 "'worker': ['w0:2222', 'w1:2222', 'w2:2222']})")
    assert str(ClusterSpec(SPARSE)) == \
        "ClusterSpec({'ps': ['ps0:2222'], 'worker': {1: 'w1:2222', 3: 'w3:2222'}})"
    with pytest.raises(TypeError):
        hash(a)


@pytest.mark.parametrize("spec", [DENSE, SPARSE, {}], ids=["dense", "sparse", "empty"])
def test_cluster_def_round_trip(spec):
    cluster_def = ClusterSpec(spec).as_cluster_def()
    assert isinstance(cluster_def, cluster_pb2.ClusterDef)
    assert ClusterSpec(cluster_def) == ClusterSpec(spec)
    parsed = cluster_pb2.ClusterDef.FromString(cluster_def.SerializeToString())
    assert ClusterSpec(parsed).as_dict() == ClusterSpec(spec).as_dict()


def test_cluster_def_is_sorted_and_fresh():
    cluster = ClusterSpec(SPARSE)
    cluster_def = cluster.as_cluster_def()
    assert [job.name for job in cluster_def.job] == ["ps", "worker"]
    assert dict(cluster_def.job[1].tasks) == {1: "w1:2222", 3: "w3:2222"}
    cluster_def.job[0].tasks[5] = "x:1"
    assert cluster.num_tasks("ps") == 1


def test_cluster_def_is_validated():
    cluster_def = cluster_pb2.ClusterDef()
    job = cluster_def.job.add()
    job.name = "worker"
    job.tasks[0] = "nonsense"
    with pytest.raises(ValueError, match="job 'worker' task 0"):
        ClusterSpec(cluster_def)


# -- device names ---------------------------------------------------------------------------------

def test_device_names():
    cluster = ClusterSpec(SPARSE)
    assert cluster.device_name("worker", 1) == "/job:worker/replica:0/task:1/device:CPU:0"
    assert cluster.device_name("ps", 0, "gpu", 1) == "/job:ps/replica:0/task:0/device:GPU:1"
    assert cluster.task_devices() == ["/job:worker/replica:0/task:1",
                                      "/job:worker/replica:0/task:3", "/job:ps/replica:0/task:0"]
    with pytest.raises(ValueError, match="No task with index 0 in job 'worker'"):
        cluster.device_name("worker", 0)
    with pytest.raises(ValueError, match="non-negative"):
        cluster.device_name("ps", 0, "CPU", -1)


# -- TF_CONFIG ------------------------------------------------------------------------------------

def _env(config):
    return {"TF_CONFIG": config if isinstance(config, str) else json.dumps(config)}


def test_tf_config():
    env = _env({"cluster": {"worker": ["w0:1", "w1:2"], "ps": ["p:3"]},
                "task": {"type": "worker", "index": 1}, "environment": "cloud"})
    assert cluster_spec_from_tf_config(env) == {"worker": ["w0:1", "w1:2"], "ps": ["p:3"]}
    assert task_from_tf_config(env) == ("worker", 1)
    sparse = _env({"cluster": {"worker": {"1": "w1:2"}}, "task": {"type": "worker", "index": "1"}})
    assert task_from_tf_config(sparse) == ("worker", 1)


def test_tf_config_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:1"]},
                                                "task": {"type": "chief", "index": 0}}))
    assert cluster_spec_from_tf_config().jobs == ["chief"]
    assert task_from_tf_config() == ("chief", 0)
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(ValueError, match="TF_CONFIG is not set"):
        cluster_spec_from_tf_config()


@pytest.mark.parametrize("config, message", [
    ("", "TF_CONFIG is not set"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ("[1, 2]", "TF_CONFIG must hold a JSON object"),
    ({"task": {"type": "worker", "index": 0}}, "TF_CONFIG has no 'cluster'"),
    ({"cluster": ["w:1"]}, "TF_CONFIG has a bad 'cluster'"),
    ({"cluster": {"worker": ["w0"]}}, r"TF_CONFIG has a bad 'cluster'.*job 'worker' task 0"),
    ({"cluster": {"worker": ["w:1"]}, "task": "worker"}, "'task' must be an object"),
    ({"cluster": {"worker": ["w:1"]}, "task": {"type": "worker"}}, "with 'type' and 'index'"),
    ({"cluster": {"worker": ["w:1"]}, "task": {"type": "worker", "index": "a"}}, "integer 'index'"),
    ({"cluster": {"worker": ["w:1"]}, "task": {"type": "ps", "index": 0}},
     "task type 'ps' is not a job in the cluster"),
    ({"cluster": {"worker": ["w:1"]}, "task": {"type": "worker", "index": 1}},
     r"task worker:1 is not in the cluster \(job 'worker' has tasks \[0\]\)"),
])
def test_malformed_tf_config(config, message):
    env = _env(config)
    with pytest.raises(ValueError, match=message):
        task_from_tf_config(env)
    with pytest.raises(ValueError, match=message):
        cluster_spec_from_tf_config(env)


def test_tf_config_without_task():
    env = _env({"cluster": {"worker": ["w:1"]}})
    assert cluster_spec_from_tf_config(env).num_tasks("worker") == 1
    with pytest.raises(ValueError, match="TF_CONFIG has no 'task'"):
        task_from_tf_config(env)


# -- cluster files --------------------------------------------------------------------------------

def test_cluster_file_of_cluster_spec_shape(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"worker": {"1": "w1:2222"}, "ps": ["p:1"]}))
    cluster, task = load_cluster_file(path)
    assert cluster == ClusterSpec({"worker": {1: "w1:2222"}, "ps": ["p:1"]}) and task is None
    # A job that happens to be named "cluster" is still a job.
    path.write_text(json.dumps({"cluster": {"0": "c:1"}}))
    assert load_cluster_file(str(path)) == (ClusterSpec({"cluster": ["c:1"]}), None)


def test_cluster_file_of_tf_config_shape(tmp_path):
    path = tmp_path / "tf_config.json"
    path.write_text(json.dumps({"cluster": {"worker": ["w0:1", "w1:2"]},
                                "task": {"type": "worker", "index": 1}}))
    assert load_cluster_file(path) == (ClusterSpec({"worker": ["w0:1", "w1:2"]}), ("worker", 1))
    path.write_text(json.dumps({"cluster": {"worker": ["w0:1"]}}))
    assert load_cluster_file(path) == (ClusterSpec({"worker": ["w0:1"]}), None)


def test_bad_cluster_files_name_the_file(tmp_path):
    path = tmp_path / "bad.json"
    cases = [("{", ValueError, "is not valid JSON"),
             ("3", ValueError, "must hold a JSON object"),
             (json.dumps({"worker": ["w0"]}), ValueError, "job 'worker' task 0"),
             (json.dumps({"worker": 7}), TypeError, "tasks for job 'worker'"),
             (json.dumps({"cluster": {"w": ["a:1"]}, "task": {"type": "w", "index": 4}}),
              ValueError, "task w:4 is not in the cluster")]
    for text, error, message in cases:
        path.write_text(text)
        with pytest.raises(error, match=f"cluster file '{path}'.*{message}"):
            load_cluster_file(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_cluster_file(tmp_path / "missing.json")


# -- free ports -----------------------------------------------------------------------------------

def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(8)
    assert len(set(ports)) == 8 and all(1 <= p <= 65535 for p in ports)
    sockets = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", port))
            sock.listen()
    finally:
        for sock in sockets:
            sock.close()
    assert free_ports(0) == []
    with pytest.raises(ValueError, match="non-negative"):
        free_ports(-1)


def test_local_cluster_spec():
    cluster = local_cluster_spec(ps=2, workers=3)
    assert cluster.jobs == ["ps", "worker"]
    assert cluster.num_tasks("ps") == 2 and cluster.num_tasks("worker") == 3
    addresses = cluster.job_tasks("ps") + cluster.job_tasks("worker")
    assert all(a.startswith("127.0.0.1:") for a in addresses) and len(set(addresses)) == 5
    assert local_cluster_spec(ps=0, workers=1).jobs == ["worker"]
    with pytest.raises(ValueError, match="at least one task"):
        local_cluster_spec(ps=0, workers=0)
    with pytest.raises(ValueError, match="workers must be a non-negative integer"):
        local_cluster_spec(workers=-1)


def test_package_imports_without_grpc():
    code = ("import sys\n"
            "sys.modules['grpc'] = None\n"
            "import tensorweave.distributed as d\n"
            "assert d.ClusterSpec({'w': ['a:1']}).num_tasks('w') == 1\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
