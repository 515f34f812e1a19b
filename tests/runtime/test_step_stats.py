"""Traced steps: RunOptions(trace_level=FULL_TRACE) fills RunMetadata.step_stats with every op the
step ran, and a run without tracing records nothing and builds no instrumented closures."""

import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.runtime import multi_device
from tensorweave.runtime.chunking import CHUNK_ROWS
from tensorweave.runtime.session import LOCAL_DEVICE
from tensorweave.runtime.step_stats import OPS_THREAD, RECV_THREAD, timeline_label

FULL_TRACE = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)


def _mlp():
    x = tf.placeholder(tf.float32, [None, 8], name="x")
    w = tf.Variable(np.full((8, 4), 0.5, np.float32), name="w")
    b = tf.Variable(np.zeros(4, np.float32), name="b")
    h = tf.nn.relu(tf.matmul(x, w) + b, name="h")
    loss = tf.reduce_mean(tf.square(h), name="loss")
    train = tf.train.GradientDescentOptimizer(0.01).minimize(loss)
    return x, loss, train


def _nodes(step_stats):
    return {n.node_name: (d.device, n) for d in step_stats.dev_stats for n in d.node_stats}


def _plans(sess):
    return list(sess._runtime._plans.values())


def test_a_traced_step_lists_every_op_it_ran_with_times_and_sizes():
    with tf.Graph().as_default():
        x, loss, train = _mlp()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            md = tf.RunMetadata()
            before = time.time_ns() // 1000
            sess.run([loss, train], {x: np.ones((5, 8), np.float32)}, options=FULL_TRACE, run_metadata=md)
            after = time.time_ns() // 1000
            (plan,) = [p for p in _plans(sess) if loss.op in p.ops]
    stats = md.step_stats
    assert [d.device for d in stats.dev_stats] == [LOCAL_DEVICE]
    nodes = _nodes(stats)
    executed = {s.op.name for s in plan.steps}
    assert set(nodes) == executed and len(stats.dev_stats[0].node_stats) == len(plan.steps)
    assert {"MatMul", "h", "loss", "w", "GradientDescent"} <= set(nodes)
    for _, n in nodes.values():
        assert before <= n.all_start_micros <= after
        assert n.all_start_micros + n.all_end_rel_micros <= after
        assert 0 == n.op_start_rel_micros <= n.op_end_rel_micros == n.all_end_rel_micros
        assert n.all_start_nanos // 1000 == n.all_start_micros and n.thread_id == OPS_THREAD
    _, matmul = nodes["MatMul"]
    assert matmul.timeline_label == "MatMul = MatMul(x, w/read)"
    (out,) = matmul.output
    desc = out.tensor_description
    assert desc.dtype == tf.float32.as_datatype_enum
    assert [d.size for d in desc.shape.dim] == [5, 4]
    assert desc.allocation_description.requested_bytes == 5 * 4 * 4
    starts = [n.all_start_nanos for n in stats.dev_stats[0].node_stats]
    assert starts == sorted(starts)
    assert dict(stats.dev_stats[0].thread_names) == {OPS_THREAD: "ops"}


def test_an_untraced_run_records_nothing_and_builds_no_instrumented_closures():
    with tf.Graph().as_default():
        x, loss, train = _mlp()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            md = tf.RunMetadata()
            feed = {x: np.ones((3, 8), np.float32)}
            sess.run([loss, train], feed, run_metadata=md)                       # no options
            sess.run([loss, train], feed, options=tf.RunOptions(), run_metadata=md)  # NO_TRACE
            sess.run([loss, train], feed, options=FULL_TRACE)                      # nothing to fill
            assert not md.HasField("step_stats")
            assert all(p._traced is None for p in _plans(sess))
            sess.run([loss, train], feed, options=FULL_TRACE, run_metadata=md)
            traced = [p for p in _plans(sess) if p._traced is not None]
            assert len(traced) == 1 and traced[0].traced() is traced[0]._traced  # kept, built once
            assert traced[0].program is not traced[0]._traced.program
            n = len(md.step_stats.dev_stats[0].node_stats)
            sess.run([loss, train], feed, run_metadata=md)
            assert len(md.step_stats.dev_stats[0].node_stats) == n  # untraced again: nothing added


def test_traced_and_untraced_runs_compute_the_same_values():
    with tf.Graph().as_default():
        x, loss, train = _mlp()
        feed = {x: np.arange(16, dtype=np.float32).reshape(2, 8)}
        losses = []
        for trace in (False, True):
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                for _ in range(3):
                    kwargs = {"options": FULL_TRACE, "run_metadata": tf.RunMetadata()} if trace else {}
                    losses.append(sess.run([loss, train], feed, **kwargs)[0])
    assert losses[:3] == losses[3:]


def test_a_chunked_step_records_the_chunked_region_once_per_chunk():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 6], name="x")
        w = tf.constant(np.ones((6, 3), np.float32))
        y = tf.reduce_sum(tf.nn.relu(tf.matmul(x, w, name="mm")), name="total")
        rows = 3 * CHUNK_ROWS
        with tf.Session() as sess:
            md = tf.RunMetadata()
            value = sess.run(y, {x: np.ones((rows, 6), np.float32)}, options=FULL_TRACE, run_metadata=md)
            assert _plans(sess)[0].chunked is not None
    assert value == pytest.approx(rows * 6 * 3)
    names = [n.node_name for n in md.step_stats.dev_stats[0].node_stats]
    assert names.count("mm") == 3 and names.count("total") == 1


def test_a_multi_device_step_records_each_device_and_its_sends_and_receives():
    a, b = "/job:localhost/replica:0/task:0/device:CPU:0", "/job:localhost/replica:0/task:0/device:CPU:1"
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [4], name="x")
        with tf.device(a):
            y = tf.multiply(x, 2.0, name="y")
        with tf.device(b):
            z = tf.reduce_sum(y, name="z")
        runtime = multi_device.MultiDeviceRuntime(g, [a, b], a, tf.ConfigProto())
        md = tf.RunMetadata()
        (value,) = runtime.run([x], [np.ones(4, np.float32)], [z], [], FULL_TRACE, md)
    assert value == 8.0
    by_device = {d.device: {n.node_name: n for n in d.node_stats} for d in md.step_stats.dev_stats}
    assert set(by_device) == {a, b}
    assert "y" in by_device[a] and "z" in by_device[b]
    (send,) = [n for n in by_device[a].values() if "= _Send(" in n.timeline_label]
    (recv,) = [n for n in by_device[b].values() if "= _Recv(" in n.timeline_label]
    assert send.timeline_label.endswith(f" @{b})") and recv.timeline_label.endswith(f" @{a})")
    assert recv.thread_id == RECV_THREAD
    assert recv.output[0].tensor_description.allocation_description.requested_bytes == 16
    # the value left the sender before the receive completed
    assert send.all_start_nanos <= recv.all_start_nanos + recv.all_end_rel_nanos


def test_timeline_labels_follow_tensorflow():
    with tf.Graph().as_default():
        a = tf.constant(1.0, name="a")
        b = tf.constant(2.0, name="b")
        pair = tf.split(tf.constant([1.0, 2.0]), 2, name="pair")
        with tf.control_dependencies([b.op]):
            c = tf.add(pair[1], a, name="c")
    assert timeline_label(c.op) == "c = Add(pair:1, a, ^b)"
