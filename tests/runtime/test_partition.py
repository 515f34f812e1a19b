"""Partitioning a placed graph into per-device pieces joined by transfers (pure data, no ops created)."""

import pytest

import tensorweave as tf
from tensorweave.runtime.partition import Recv, Send, Transfer, partition_graph
from tensorweave.runtime.placement import place
from tensorweave.runtime.plan import prune

A = "/job:worker/replica:0/task:0/device:CPU:0"
B = "/job:worker/replica:0/task:1/device:CPU:0"
C = "/job:ps/replica:0/task:0/device:CPU:0"


def _partition(g, fetches, feeds=(), **kwargs):
    ops = prune(list(feeds), [f for f in fetches if isinstance(f, tf.Tensor)],
                [f for f in fetches if isinstance(f, tf.Operation)])
    placement = place(ops, [A, B, C], default_device=A)
    before = len(g.get_operations())
    parts = partition_graph(ops, placement, fetches=fetches, feeds=feeds, **kwargs)
    assert len(g.get_operations()) == before  # pure: no op was added
    return parts, placement


def _transfers(parts):
    return [s.transfer for p in parts.values() for s in p.sends]


def test_single_device_graph_is_one_partition_without_transfers():
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [3])
        y = tf.reduce_sum(x * 2.0)
        parts, _ = _partition(g, [y], [x])
    assert list(parts) == [A]
    part = parts[A]
    assert part.sends == () and part.recvs == ()
    assert part.feeds == (x,) and part.fetches == (y,)
    assert set(part.ops) == set(prune([x], [y], []))


def test_a_tensor_crosses_once_per_destination_however_many_consumers_read_it():
    with tf.Graph().as_default() as g:
        with tf.device("/job:worker/task:0"):
            x = tf.exp(tf.constant([1.0, 2.0]))
        with tf.device("/job:worker/task:1"):
            y, z, w = x * 2.0, x + 1.0, x * x
            total = y + z + w
        with tf.device("/job:ps"):
            other = x - 1.0
        parts, _ = _partition(g, [total, other])
    transfers = _transfers(parts)
    assert len(transfers) == 2
    assert sorted((t.tensor_name, t.dst_device) for t in transfers) == [(x.name, C), (x.name, B)]
    assert len({t.key_name for t in transfers}) == 2
    (send_b, send_c) = sorted(parts[A].sends, key=lambda s: s.transfer.dst_device != B)
    assert send_b.source is x and send_c.source is x
    assert send_b.transfer == Transfer(x.name, tf.float32, x.shape, A, B, send_b.transfer.key_name)
    (recv,) = parts[B].recvs
    assert recv.transfer == send_b.transfer
    assert recv.inputs == ((y.op, 0), (z.op, 0), (w.op, 0), (w.op, 1)) and recv.waiters == ()
    assert parts[B].sends == () and parts[C].sends == ()
    assert parts[B].fetches == (total,) and parts[C].fetches == (other,)


def test_two_partitions_exchange_tensors_in_both_directions():
    with tf.Graph().as_default() as g:
        with tf.device("/job:worker/task:0"):
            a = tf.constant(3.0) * 2.0
        with tf.device("/job:worker/task:1"):
            b = a + 1.0
        with tf.device("/job:worker/task:0"):
            c = b * a
        parts, placement = _partition(g, [c], step_tag="plan7")
    assert set(parts) == {A, B}
    assert [(s.transfer.tensor_name, s.transfer.dst_device) for s in parts[A].sends] == [(a.name, B)]
    assert [(s.transfer.tensor_name, s.transfer.dst_device) for s in parts[B].sends] == [(b.name, A)]
    assert [r.inputs for r in parts[B].recvs] == [((b.op, 0),)]
    assert [r.inputs for r in parts[A].recvs] == [((c.op, 0),)]
    assert all(t.key_name.startswith("plan7;") for t in _transfers(parts))
    assert parts[A].fetches == (c,) and parts[B].fetches == ()
    for device, part in parts.items():
        assert all(placement[op] == device for op in part.ops)


def test_control_edges_across_devices_become_control_tokens_or_ride_on_a_data_transfer():
    with tf.Graph().as_default() as g:
        with tf.device("/job:worker/task:0"):
            first = tf.no_op(name="first")
            x = tf.constant(1.0) + 1.0
        with tf.device("/job:worker/task:1"):
            with tf.control_dependencies([first]):
                after_first = tf.constant(2.0) * 3.0
            uses_x = x * 2.0
            with tf.control_dependencies([x.op]):
                after_x = tf.constant(4.0) * 5.0
        parts, _ = _partition(g, [after_first, uses_x, after_x])
    sends = parts[A].sends
    assert [s.transfer.tensor_name for s in sends] == [x.name, "^first"]
    control = sends[1]
    assert control.transfer.is_control and control.transfer.dtype is None and control.transfer.shape is None
    assert control.source is first
    recvs = {r.transfer.tensor_name: r for r in parts[B].recvs}
    waiting = tuple(op for op in parts[B].ops if first in op.control_inputs)
    assert after_first.op in waiting  # with the constants created in the same block, as in TF
    assert recvs["^first"] == Recv(control.transfer, (), waiting)
    # Receiving x proves x's op ran, so the control edge on it waits on that Recv, not a new token.
    assert recvs[x.name].inputs == ((uses_x.op, 0),)
    assert recvs[x.name].waiters == tuple(op for op in parts[B].ops if x.op in op.control_inputs)
    assert after_x.op in recvs[x.name].waiters


def test_feeds_and_fetches_belong_to_their_partitions():
    with tf.Graph().as_default() as g:
        with tf.device("/job:worker/task:0"):
            x = tf.placeholder(tf.float32, [], name="x")
            on_a = x + 1.0
            target = tf.no_op(name="target")
        with tf.device("/job:worker/task:1"):
            on_b = x * 2.0
            hidden = tf.exp(on_a)
            fed_mid = hidden - 1.0
        parts, _ = _partition(g, [on_a, on_b, fed_mid, target, hidden], feeds=[x, hidden])
    assert parts[A].feeds == (x,) and parts[B].feeds == (x, hidden)
    assert parts[A].fetches == (on_a, target) and parts[B].fetches == (on_b, fed_mid)
    # Fed tensors never cross devices; the fetched-and-fed `hidden` is answered from the feeds.
    assert _transfers(parts) == []
    assert hidden.op not in parts[B].ops


def test_placed_variable_read_on_a_worker_and_updated_on_the_ps():
    with tf.Graph().as_default() as g:
        with tf.device("/job:ps"):
            v = tf.Variable([1.0, 2.0], name="v")
        with tf.device("/job:worker/task:0"):
            x = tf.placeholder(tf.float32, [2])
            loss = tf.reduce_sum(v * x)
            train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        parts, placement = _partition(g, [loss, train], feeds=[x])
    (apply_op,) = [op for op in parts[C].ops if op.type == "ApplyGradientDescent"]
    assert set(parts) == {A, C}
    assert placement[v.op] == C and parts[C].fetches == () and parts[A].fetches == (loss, train)
    # The variable's value (its colocated read) goes to the worker; the apply op's gradient and
    # learning rate go to the PS; the train op (a NoOp on the worker) waits for the apply op.
    to_worker = {s.transfer.tensor_name: s for s in parts[C].sends}
    assert set(to_worker) == {v.value().name, f"^{apply_op.name}"}
    assert to_worker[f"^{apply_op.name}"].source is apply_op
    assert [r.waiters for r in parts[A].recvs if r.transfer.is_control] == [(train,)]
    to_ps = [s.transfer for s in parts[A].sends]
    assert {t.dst_device for t in to_ps} == {C} and not any(t.is_control for t in to_ps)
    assert {(op, i) for r in parts[C].recvs for op, i in r.inputs} == {(apply_op, 1), (apply_op, 2)}
    assert all(isinstance(s, Send) for s in parts[A].sends)


def test_a_reference_input_cannot_cross_devices_and_ops_must_be_placed():
    with tf.Graph().as_default():
        with tf.device("/job:ps"):
            v = tf.Variable(1.0, name="v")
        assign = v.initializer
        ops = prune([], [], [assign])
        bad = {op: C for op in ops}
        bad[assign] = A
        with pytest.raises(tf.errors.InvalidArgumentError, match="reference"):
            partition_graph(ops, bad, fetches=[assign], feeds=[])
        with pytest.raises(ValueError, match="no device"):
            partition_graph(ops, {assign: C}, fetches=[assign], feeds=[])
        with pytest.raises(ValueError, match="not among the partitioned ops"):
            partition_graph([assign], {assign: C}, fetches=[assign], feeds=[])
