"""The transport-neutral worker service: partitions registered with two workers, run as one step
on a shared rendezvous, give the single-process results; the tensor codec round-trips and
rejects corrupted messages."""

import itertools
import threading

import ml_dtypes
import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed import compression
from tensorweave.distributed.tensor_codec import from_named_tensor, to_named_tensor
from tensorweave.distributed.worker import Worker
from tensorweave.framework import errors
from tensorweave.framework.operation import Operation
from tensorweave.runtime.partition import partition_graph
from tensorweave.runtime.partition_graphs import feed_name, partition_graph_defs
from tensorweave.runtime.placement import place
from tensorweave.runtime.plan import prune
from tensorweave.runtime.rendezvous import LocalRendezvous

TASK0, TASK1 = "/job:worker/replica:0/task:0", "/job:worker/replica:0/task:1"
T0, T1 = TASK0 + "/device:CPU:0", TASK1 + "/device:CPU:0"
_step_ids = itertools.count(100)


def _model(place_on_tasks):
    rng = np.random.default_rng(0)
    w1v, w2v = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    with tf.device("/job:worker/task:0" if place_on_tasks else None):
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        w1 = tf.Variable(w1v, name="w1")
        h = tf.nn.relu(tf.matmul(x, w1))
    with tf.device("/job:worker/task:1" if place_on_tasks else None):
        w2 = tf.Variable(w2v, name="w2")
        y = tf.matmul(h, w2)
    with tf.device("/job:worker/task:0" if place_on_tasks else None):
        loss = tf.reduce_mean(tf.square(y)) + 0.01 * tf.reduce_sum(h)  # back from task 1 to task 0
        train = tf.train.GradientDescentOptimizer(0.05).minimize(loss)
    return x, w1, w2, y, loss, train


class _Master:
    """What the master does for one signature: prune, place, partition, register per task."""

    def __init__(self, workers, feeds, fetches, session="s1"):
        self.workers = workers  # {device: Worker}
        tensors = [f for f in fetches if not isinstance(f, Operation)]
        targets = [f for f in fetches if isinstance(f, Operation)]
        ops = prune(feeds, tensors, targets)
        placement = place(ops, list(workers), default_device=T0)
        specs = partition_graph(ops, placement, fetches=list(fetches), feeds=feeds)
        defs = partition_graph_defs(specs, {d: w.incarnation for d, w in workers.items()})
        self.parts = []
        for device, spec in specs.items():
            handle = workers[device].register_graph(session, defs[device].SerializeToString())
            self.parts.append((workers[device], handle, spec))
        self.tensors = tensors

    def run(self, feed):
        step_id, rendezvous = next(_step_ids), LocalRendezvous()
        results, failures = {}, []

        def run_part(worker, handle, spec):
            sends = {feed_name(i): feed[t] for i, t in enumerate(spec.feeds)}
            keys = [f.name for f in spec.fetches if not isinstance(f, Operation)]
            try:
                results.update(worker.run_graph(handle, step_id, sends, keys, rendezvous, timeout=10))
            except Exception as e:  # noqa: BLE001
                failures.append(e)

        threads = [threading.Thread(target=run_part, args=p) for p in self.parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for worker, _, _ in self.parts:
            worker.cleanup_graph(step_id)
        if failures:
            raise failures[0]
        return [results[t.name] for t in self.tensors]


@pytest.fixture
def workers():
    return {T0: Worker(TASK0), T1: Worker(TASK1)}


def test_two_workers_train_as_one_session(workers):
    xv = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    with tf.Graph().as_default():
        x, w1, w2, y, loss, train = _model(place_on_tasks=False)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            single = [sess.run([loss, y, train], {x: xv})[:2] for _ in range(3)]
            single_w = sess.run([w1, w2])
    with tf.Graph().as_default():
        x, w1, w2, y, loss, train = _model(place_on_tasks=True)
        _Master(workers, [], [tf.global_variables_initializer()]).run({})
        step = _Master(workers, [x], [loss, y, train])
        multi = [step.run({x: xv}) for _ in range(3)]  # variables persist across steps
        multi_w = _Master(workers, [], [w1.value(), w2.value()], session="s2").run({})  # and sessions
    for (a_loss, a_y), (b_loss, b_y) in zip(single, multi, strict=True):
        np.testing.assert_array_equal(a_loss, b_loss)
        np.testing.assert_array_equal(a_y, b_y)
    for a, b in zip(single_w, multi_w, strict=True):
        np.testing.assert_array_equal(a, b)
    assert single[0][0] != single[2][0]  # training moved the weights


def _simple_graph_def(device=T0):
    with tf.Graph().as_default() as g, tf.device(device):
        a = tf.placeholder(tf.float32, [2], name="a")
        tf.multiply(a, 3.0, name="b")
    return g.as_graph_def().SerializeToString()


def _run_simple(worker, handle, value=(1.0, 2.0), step_id=1):
    out = worker.run_graph(handle, step_id, {"a:0": np.array(value, np.float32)}, ["b:0"], LocalRendezvous())
    return out["b:0"]


def test_single_worker_feeds_fetches_and_status():
    w = Worker(TASK0, incarnation=7)
    status = w.get_status()
    assert status.task_name == TASK0 and status.device_names == (T0,) and status.incarnation == 7
    assert Worker(TASK1).incarnation != Worker(TASK1).incarnation
    h = w.register_graph("s", _simple_graph_def())
    np.testing.assert_array_equal(_run_simple(w, h), [3.0, 6.0])
    out = w.run_graph(h, 2, {"a:0": np.ones(2, np.float32)}, ["a:0", "b:0"], LocalRendezvous())
    np.testing.assert_array_equal(out["a:0"], [1, 1])
    np.testing.assert_array_equal(out["b:0"], [3, 3])


def test_errors_are_clear_and_the_worker_keeps_working():
    w = Worker(TASK0)
    with pytest.raises(errors.NotFoundError, match="nope"):
        w.run_graph("nope", 1, {}, [], LocalRendezvous())
    with pytest.raises(errors.NotFoundError, match="nope"):
        w.deregister_graph("nope")
    with pytest.raises(errors.InvalidArgumentError, match="Cannot parse GraphDef"):
        w.register_graph("s", b"\xff\xff\xff garbage")
    with pytest.raises(errors.InvalidArgumentError, match=r"'a'.*task:1.*not on a device of task"):
        w.register_graph("s", _simple_graph_def(T1))
    with pytest.raises(errors.InvalidArgumentError, match="exceeds the limit"):
        Worker(TASK0, max_graph_def_bytes=10).register_graph("s", _simple_graph_def())
    h = w.register_graph("s", _simple_graph_def())
    with pytest.raises(errors.InvalidArgumentError, match="nothere:0"):
        w.run_graph(h, 3, {"nothere:0": np.ones(2, np.float32)}, ["b:0"], LocalRendezvous())
    with pytest.raises(errors.InvalidArgumentError):
        w.run_graph(h, 4, {}, ["b:0"], LocalRendezvous())  # the placeholder is not fed
    np.testing.assert_array_equal(_run_simple(w, h), [3.0, 6.0])
    assert w.graph_handles() == [h]


def test_unregistered_op_type_names_the_node():
    from tensorboard.compat.proto import graph_pb2
    gd = graph_pb2.GraphDef()
    gd.node.add(name="weird", op="NoSuchOp", device=T0)
    with pytest.raises(errors.InvalidArgumentError, match="weird"):
        Worker(TASK0).register_graph("s", gd.SerializeToString())


def test_stale_incarnation_is_rejected(workers):
    with tf.Graph().as_default():
        with tf.device("/job:worker/task:0"):
            a = tf.constant([1.0, 2.0])
        with tf.device("/job:worker/task:1"):
            b = a * 2.0
        ops = prune([], [b], [])
        specs = partition_graph(ops, place(ops, [T0, T1], default_device=T0), fetches=[b], feeds=[])
        defs = partition_graph_defs(specs, {T0: workers[T0].incarnation ^ 1})
    with pytest.raises(errors.AbortedError, match="restarted"):
        workers[T0].register_graph("s", defs[T0].SerializeToString())


def test_failing_partition_aborts_its_peer(workers):
    with tf.Graph().as_default():
        with tf.device("/job:worker/task:0"):
            a = tf.placeholder(tf.float32, [None], name="a")
            bad = tf.reshape(a, [2], name="boom")
        with tf.device("/job:worker/task:1"):
            b = bad * 2.0
        master = _Master(workers, [a], [b])
        np.testing.assert_array_equal(master.run({a: np.ones(2, np.float32)})[0], [2, 2])
        with pytest.raises(errors.InvalidArgumentError, match="boom"):
            master.run({a: np.ones(3, np.float32)})
        np.testing.assert_array_equal(master.run({a: np.ones(2, np.float32)})[0], [2, 2])


def test_cleanup_cancels_a_waiting_step():
    with tf.Graph().as_default():
        with tf.device("/job:worker/task:0"):
            a = tf.constant([1.0])
        with tf.device("/job:worker/task:1"):
            b = a + 1.0
        ops = prune([], [b], [])
        specs = partition_graph(ops, place(ops, [T0, T1], default_device=T0), fetches=[b], feeds=[])
        defs = partition_graph_defs(specs)
    w1 = Worker(TASK1)
    h = w1.register_graph("s", defs[T1].SerializeToString())
    box = []
    t = threading.Thread(target=lambda: box.append(_capture(lambda: w1.run_graph(h, 9, {}, [b.name], LocalRendezvous()))))
    t.start()
    while not w1._steps:  # the step is waiting for task 0's tensor, which never comes
        t.join(0.01)
    w1.cleanup_graph(9)
    t.join(10)
    assert isinstance(box[0], errors.CancelledError)


def _capture(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return e


def test_deregister_close_session_and_idle_collection():
    now = [0.0]
    w = Worker(TASK0, clock=lambda: now[0])
    h1 = w.register_graph("s1", _simple_graph_def())
    h2 = w.register_graph("s1", _simple_graph_def())
    h3 = w.register_graph("s2", _simple_graph_def())
    w.deregister_graph(h1)
    with pytest.raises(errors.NotFoundError):
        _run_simple(w, h1)
    assert w.close_session("s1") == 1 and w.graph_handles() == [h3]
    with pytest.raises(errors.NotFoundError):
        _run_simple(w, h2)
    h4 = w.register_graph("s3", _simple_graph_def())
    now[0] = 50.0
    _run_simple(w, h4)
    now[0] = 100.0
    assert w.collect_idle(60) == [h3]
    assert w.graph_handles() == [h4]
    np.testing.assert_array_equal(_run_simple(w, h4), [3.0, 6.0])


def test_bad_worker_arguments():
    with pytest.raises(ValueError, match="name a task"):
        Worker("/job:worker")
    with pytest.raises(ValueError, match="not a full device name"):
        Worker(TASK0, devices=[T1])
    with pytest.raises(ValueError, match="incarnation"):
        Worker(TASK0, incarnation=0)


# -- tensor codec ---------------------------------------------------------------------------------

@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.float32).reshape(3, 4), np.float64(2.5), np.array([True, False]),
    np.arange(6, dtype=np.int64).reshape(2, 1, 3), np.zeros((0, 5), np.int32), np.array([1 + 2j], np.complex128),
    np.arange(4).astype(ml_dtypes.bfloat16), np.arange(6, dtype=np.float32).reshape(2, 3).T,  # non-contiguous
    np.array([1, 2], dtype=">i4"),  # big-endian input still travels little-endian
])
def test_codec_round_trip(array):
    msg = to_named_tensor("t:0", array)
    name, out = from_named_tensor(type(msg).FromString(msg.SerializeToString()))
    assert name == "t:0" and out.shape == np.shape(array) and out.flags.writeable
    assert out.dtype == np.asarray(array).dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("encoding", compression.ENCODINGS)
def test_codec_compression(encoding):
    x = np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32)
    msg = to_named_tensor("g", x, encoding)
    assert msg.encoding == ("" if encoding == "none" else encoding)
    assert msg.HasField("scale") == (encoding == "int8")
    assert len(msg.content) == compression.encoded_nbytes(x.nbytes, encoding)
    _, out = from_named_tensor(msg)
    payload, meta = compression.encode(x, encoding)
    np.testing.assert_array_equal(out, compression.decode(payload, encoding, np.float32, x.shape, meta))
    # other dtypes ignore the encoding
    assert to_named_tensor("i", np.arange(3), encoding).encoding == ""


def _corrupt(**changes):
    msg = to_named_tensor("w:0", np.arange(6, dtype=np.float32).reshape(2, 3))
    for field, value in changes.items():
        if field == "dims":
            del msg.dims[:]
            msg.dims.extend(value)
        else:
            setattr(msg, field, value)
    return msg


@pytest.mark.parametrize("msg, match", [
    (_corrupt(dtype=7), "too short"),                       # DT_STRING: 6 lengths need 48 bytes
    (_corrupt(dtype=20), "not a fixed-size numeric"),       # DT_RESOURCE
    (_corrupt(dtype=999), "not a fixed-size numeric"),
    (_corrupt(dims=[2, 4]), "does not match"),
    (_corrupt(dims=[-1, 6]), "negative"),
    (_corrupt(dims=[1 << 40, 1 << 20]), "exceed the limit"),
    (_corrupt(content=b"\0" * 23), "does not match"),
    (_corrupt(encoding="zip"), "unknown encoding"),
    (_corrupt(encoding="int8"), "needs a scale"),
    (_corrupt(scale=1.0), "carries no scale"),
    (_corrupt(dtype=3, encoding="float16"), "float32 only"),  # int32 under a float codec
])
def test_codec_rejects_corrupted_messages(msg, match):
    with pytest.raises(ValueError, match=match) as info:
        from_named_tensor(msg)
    assert "w:0" in str(info.value)


def test_codec_rejects_what_cannot_travel_and_respects_max_bytes():
    assert from_named_tensor(to_named_tensor("s", np.array(["text", "\u00e9"])))[1].tolist() == [b"text", b"\xc3\xa9"]
    with pytest.raises(ValueError, match="'o'"):
        to_named_tensor("o", np.array([object()]))
    with pytest.raises(ValueError, match="'n'.*finite"):
        to_named_tensor("n", np.array([np.nan], np.float32), "int8")
    msg = to_named_tensor("int8", np.ones(100, np.float32), "int8")
    msg.scale = float("nan")
    with pytest.raises(ValueError, match="scale"):
        from_named_tensor(msg)
    with pytest.raises(ValueError, match="exceed the limit"):
        from_named_tensor(to_named_tensor("big", np.ones(100, np.float32)), max_bytes=399)
    assert from_named_tensor(to_named_tensor("big", np.ones(100, np.float32)), max_bytes=400)[1].size == 100


def test_a_handle_of_an_earlier_incarnation_is_aborted_naming_the_restart():
    before = Worker(TASK0, incarnation=0x1234)
    handle = before.register_graph("s", _simple_graph_def())
    after = Worker(TASK0, incarnation=0x5678)  # the task restarted: same name, new incarnation
    with pytest.raises(errors.AbortedError, match=r"(?s)incarnation 0x1234.*restarted.*0x5678") as info:
        _run_simple(after, handle)
    assert handle in info.value.message
    # An unknown handle of the current incarnation, or one not made by a worker, is just unknown.
    with pytest.raises(errors.NotFoundError):
        _run_simple(after, f"{after.incarnation:016x}-99")
    with pytest.raises(errors.NotFoundError):
        _run_simple(after, "zzzzzzzzzzzzzzzz-1")
    with pytest.raises(errors.NotFoundError):  # releasing is idempotent: nothing of it is here
        after.deregister_graph(handle)


def test_idle_collection_releases_whole_sessions_and_spares_a_live_sessions_rare_graph():
    now = [0.0]
    w = Worker(TASK0, clock=lambda: now[0])
    rare, busy = w.register_graph("live", _simple_graph_def()), w.register_graph("live", _simple_graph_def())
    gone = w.register_graph("gone", _simple_graph_def())
    for t in (30.0, 60.0, 90.0):
        now[0] = t
        _run_simple(w, busy)
    assert w.collect_idle(60) == [gone]  # `rare` is 90 s idle, but its session ran 0 s ago
    np.testing.assert_array_equal(_run_simple(w, rare), [3.0, 6.0])
    now[0] = 200.0
    assert w.collect_idle(60) == sorted([rare, busy])
    assert w.graph_handles() == []


_EXPANSION_SCRIPT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))  # a regression fails here
from tensorweave.distributed.worker import Worker
out = {}
for case, graph_def in json.loads(sys.stdin.read()).items():
    try:
        Worker("/job:worker/replica:0/task:0").register_graph("s", bytes.fromhex(graph_def))
        out[case] = ["ok", ""]
    except Exception as e:
        out[case] = [type(e).__name__, getattr(e, "message", str(e))]
print(json.dumps(out))
"""


def _const_node(graph_def, name, dtype, dims, **values):
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2
    node = graph_def.node.add(name=name, op="Const", device=T0)
    node.attr["dtype"].type = dtype.as_datatype_enum
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    node.attr["value"].tensor.CopyFrom(tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=shape,
                                                              **values))


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_a_tiny_graph_def_cannot_make_the_worker_expand_a_const_without_bound():
    import json
    import subprocess
    import sys

    from tensorboard.compat.proto import graph_pb2
    cases = {}
    huge = graph_pb2.GraphDef()  # 16 GiB of one repeated int64, under the old element limit
    _const_node(huge, "huge", tf.int64, [1 << 31], int64_val=[7])
    zeros = graph_pb2.GraphDef()  # 2 GiB of complex zeros: no value at all
    _const_node(zeros, "zeros", tf.complex128, [1 << 27])
    several = graph_pb2.GraphDef()  # each at the limit, together over it
    for i in range(3):
        _const_node(several, f"c{i}", tf.float32, [1 << 28], float_val=[1.0])
    fine = graph_pb2.GraphDef()
    _const_node(fine, "fine", tf.float32, [1000, 1000], float_val=[0.5])
    for case, graph_def in (("huge", huge), ("zeros", zeros), ("several", several), ("fine", fine)):
        cases[case] = graph_def.SerializeToString().hex()
    assert len(bytes.fromhex(cases["huge"])) < 100
    proc = subprocess.run([sys.executable, "-c", _EXPANSION_SCRIPT, str(3 << 30)], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["fine"] == ["ok", ""]
    for case, node in (("huge", "huge"), ("zeros", "zeros"), ("several", "c1")):
        kind, message = got[case]
        assert kind == "InvalidArgumentError", (case, got[case])
        # Refused from the declared shape, naming the node, before anything was allocated.
        assert f"node {node!r}" in message and "expand" in message and "MemoryError" not in message, (case, message)
