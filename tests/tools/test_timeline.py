"""Chrome traces of traced steps: one lane per device of each task, one event per op, and a flow
arrow per tensor sent between tasks (checked on a two-task step over real servers)."""

import json

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed import grpc_services, tensor_codec
from tensorweave.distributed.cluster import ClusterSpec, free_ports
from tensorweave.runtime.session import LOCAL_DEVICE
from tensorweave.tools import timeline

TOKEN = "timeline-test-secret"
PS = "/job:ps/replica:0/task:0/device:CPU:0"
WORKER = "/job:worker/replica:0/task:0/device:CPU:0"
FULL_TRACE = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)


def _events(step_stats, **kwargs):
    doc = json.loads(timeline.Timeline(step_stats).generate_chrome_trace_format(**kwargs))
    return doc["traceEvents"]


def _lanes(events):
    return {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}


@pytest.fixture(scope="module")
def cluster():
    """A PS and a worker server in this process: (config, worker server)."""
    ps_port, worker_port = free_ports(2)
    spec = ClusterSpec({"ps": [f"127.0.0.1:{ps_port}"], "worker": [f"127.0.0.1:{worker_port}"]})
    config = tf.ConfigProto(cluster_token=TOKEN, operation_timeout_in_ms=20_000)
    ps = tf.train.Server(spec, "ps", 0, config=config)
    worker = tf.train.Server(spec, "worker", 0, config=config)
    try:
        yield config, worker
    finally:
        worker.stop()
        ps.stop()


@pytest.fixture(scope="module")
def two_task_step(cluster):
    """The RunMetadata of one traced training step: weights on the PS, the model on the worker."""
    config, worker = cluster
    with tf.Graph().as_default():
        with tf.device("/job:ps/task:0"):
            w = tf.Variable(np.full((6, 3), 0.1, np.float32), name="w")
        with tf.device("/job:worker/task:0"):
            x = tf.placeholder(tf.float32, [None, 6], name="x")
            loss = tf.reduce_mean(tf.square(tf.matmul(x, w, name="mm")), name="loss")
            train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        with tf.Session(worker.target, config=config) as sess:
            sess.run(w.initializer)
            feed = {x: np.ones((4, 6), np.float32)}
            sess.run(train, feed)
            md = tf.RunMetadata()
            sess.run([loss, train], feed, options=FULL_TRACE, run_metadata=md)
    return md


def test_a_two_task_step_has_the_ops_of_both_tasks_and_the_transfers(two_task_step):
    stats = two_task_step.step_stats
    nodes = {d.device: {n.node_name for n in d.node_stats} for d in stats.dev_stats}
    assert set(nodes) == {PS, WORKER}
    assert {"w", "w/read"} <= nodes[PS] and {"mm", "loss"} <= nodes[WORKER]
    assert any(n.startswith("GradientDescent") for n in nodes[PS])        # the update runs where w lives
    assert any(n.startswith("_recv/") for n in nodes[WORKER])              # w came over the wire
    assert any(n.startswith("_recv/") for n in nodes[PS])                  # and its gradient went back
    recv, sent = tensor_codec.transfer_bytes(stats, "_recv"), tensor_codec.transfer_bytes(stats, "_send")
    assert recv[WORKER] >= 6 * 3 * 4 and sum(recv.values()) == sum(sent.values())
    for d in stats.dev_stats:
        for n in d.node_stats:
            assert n.all_start_micros > 0 and n.all_end_rel_micros >= 0, n.node_name


def test_the_chrome_trace_has_a_lane_per_device_of_each_task(two_task_step):
    events = _events(two_task_step.step_stats)
    lanes = _lanes(events)
    assert sorted(lanes.values()) == [PS, WORKER]
    ops = [e for e in events if e["ph"] == "X"]
    by_lane = {}
    for e in ops:
        assert e["dur"] >= 0 and e["ts"] > 0 and e["cat"] == "Op"
        assert set(e["args"]) >= {"name", "op", "inputs"}
        by_lane.setdefault(lanes[e["pid"]], {})[e["args"]["name"]] = e
    mm = by_lane[WORKER]["mm"]
    assert mm["name"] == "MatMul" and mm["args"]["op"] == "MatMul"
    assert [i.split("_")[1] for i in mm["args"]["inputs"]] == ["feed", "recv"]  # x is fed, w received
    assert mm["args"]["output_bytes"] == 4 * 3 * 4
    assert "w" in by_lane[PS] and by_lane[PS]["w"]["name"] == "VariableV2"
    threads = {(e["pid"], e["args"]["name"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    worker_pid = next(pid for pid, name in lanes.items() if name == WORKER)
    assert {(worker_pid, "ops"), (worker_pid, "receives"), (worker_pid, "transfers")} <= threads


def test_the_chrome_trace_draws_an_arrow_from_each_send_to_its_receive(two_task_step):
    events = _events(two_task_step.step_stats)
    lanes = _lanes(events)
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts and starts.keys() == ends.keys()
    sends = [e for e in events if e["ph"] == "X" and e["name"] == "_Send"]
    recvs = [e for e in events if e["ph"] == "X" and e["name"] == "_Recv"]
    assert len(starts) == len(sends) == len(recvs) >= 2
    directions = set()
    for flow_id, s in starts.items():
        f = ends[flow_id]
        assert s["cat"] == f["cat"] == "DataFlow" and s["name"] == f["name"] and f["bp"] == "e"
        assert lanes[s["pid"]] != lanes[f["pid"]]
        directions.add((lanes[s["pid"]], lanes[f["pid"]]))
        # each end sits on an op event of its lane: the _Send at its start, the _Recv at its end
        assert any(e["pid"] == s["pid"] and e["tid"] == s["tid"] and e["ts"] == s["ts"] for e in sends)
        assert any(e["pid"] == f["pid"] and e["tid"] == f["tid"] and e["ts"] + e["dur"] == pytest.approx(f["ts"])
                   for e in recvs)
        assert s["ts"] <= f["ts"] + 1  # the tensor was sent before it was received (µs clock)
    assert directions == {(PS, WORKER), (WORKER, PS)}
    assert not [e for e in _events(two_task_step.step_stats, show_dataflow=False) if e["ph"] in "sf"]


def test_a_client_over_grpc_gets_the_stats_of_both_tasks(cluster):
    config, worker = cluster
    with tf.Graph().as_default() as g:
        with tf.device("/job:ps/task:0"):
            v = tf.Variable(np.ones((3, 2), np.float32), name="v")
        with tf.device("/job:worker/task:0"):
            y = tf.reduce_sum(v * 2.0, name="y")
        runtime = grpc_services.GrpcSessionRuntime(worker.target, g, config)  # RunStep, not in-process
        try:
            runtime.run([], [], [], [v.initializer], None, None)
            md = tf.RunMetadata()
            software = tf.RunOptions(trace_level=tf.RunOptions.SOFTWARE_TRACE)
            (value,) = runtime.run([], [], [y], [], software, md)
            untraced = tf.RunMetadata()
            runtime.run([], [], [y], [], None, untraced)
        finally:
            runtime.close()
    assert value == 12.0 and not untraced.HasField("step_stats")
    nodes = {(d.device, n.node_name) for d in md.step_stats.dev_stats for n in d.node_stats}
    assert {(PS, "v"), (PS, "v/read"), (WORKER, "y"), (WORKER, "_recv/v/read:0"), (PS, "_send/v/read:0")} <= nodes
    flows = [e for e in _events(md.step_stats) if e["ph"] == "s"]
    assert len(flows) == 1 and _lanes(_events(md.step_stats))[flows[0]["pid"]] == PS


def test_a_local_trace_opens_as_json_with_one_lane(tmp_path):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3], name="x")
        y = tf.reduce_sum(tf.exp(x, name="e"), name="y")
        with tf.Session() as sess:
            md = tf.RunMetadata()
            sess.run(y, {x: [0.0, 1.0, 2.0]}, options=FULL_TRACE, run_metadata=md)
    text = timeline.Timeline(md.step_stats).generate_chrome_trace_format(show_memory=True)
    path = tmp_path / "timeline.json"
    path.write_text(text)
    events = json.loads(path.read_text())["traceEvents"]
    assert list(_lanes(events).values()) == [LOCAL_DEVICE]
    assert sorted(e["args"]["name"] for e in events if e["ph"] == "X") == ["e", "y"]
    counters = [e for e in events if e["ph"] == "C"]
    assert counters[-1]["args"]["bytes"] == 3 * 4 + 4


def test_the_tf1_import_path_is_the_same_module():
    from tensorweave.python.client import timeline as tf1_timeline
    assert tf1_timeline.Timeline is timeline.Timeline


def test_labels_parse_into_op_and_inputs():
    assert timeline.parse_timeline_label("a/b = MatMul(x, w/read, ^c)") == ("MatMul", ["x", "w/read", "^c"])
    assert timeline.parse_timeline_label("c = Const()") == ("Const", [])
    assert timeline.parse_timeline_label("_recv w:0 int8 24 bytes") == ("_recv", ["w:0"])
    assert timeline.parse_timeline_label("odd") == (None, [])
