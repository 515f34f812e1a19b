"""The dataflow executor and the rendezvous: receives never block the partition that waits, so
partitions exchanging tensors in both directions within one step finish, in any order."""

import threading

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.ops import comm_ops
from tensorweave.runtime.device import Device
from tensorweave.runtime.executor import StepContext, run_plan
from tensorweave.runtime.plan import compile_plan
from tensorweave.runtime.rendezvous import LocalRendezvous

A = "/job:worker/replica:0/task:0/device:CPU:0"
B = "/job:worker/replica:0/task:1/device:CPU:0"


def _partition_a():
    """A: x -> send x*2 to B; receive y from B; out = y + x."""
    g = tf.Graph()
    with g.as_default():
        y = comm_ops.recv(g, tf.float32, [3], "y", B, A)   # created first: waits for B
        x = tf.placeholder(tf.float32, [3], name="x")
        sent = comm_ops.send(x * 2.0, "x2", A, B)
        out = y + x
    return g, x, out, sent


def _partition_b():
    """B: receive x2 from A; send y = x2 * 10 back."""
    g = tf.Graph()
    with g.as_default():
        x2 = comm_ops.recv(g, tf.float32, [3], "x2", A, B)
        sent = comm_ops.send(x2 * 10.0, "y", B, A)
    return g, sent


def _run_two_partitions(step_id, timeout=10, rendezvous=None):
    ga, x, out, sent_a = _partition_a()
    gb, sent_b = _partition_b()
    plan_a = compile_plan([x], [out], [sent_a], Device(A))
    plan_b = compile_plan([], [], [sent_b], Device(B))
    rendezvous = rendezvous or LocalRendezvous()
    results, failures = {}, []

    def run_b():
        try:
            run_plan(plan_b, [], StepContext(step_id, rendezvous=rendezvous), timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported to the test
            failures.append(e)
            rendezvous.abort(e)

    thread = threading.Thread(target=run_b)
    thread.start()
    try:
        results["a"] = run_plan(plan_a, [np.array([1.0, 2.0, 3.0], np.float32)],
                                StepContext(step_id, rendezvous=rendezvous), timeout=timeout)
    finally:
        thread.join(timeout)
    assert not thread.is_alive()
    assert not failures, failures
    return results["a"][0]


def test_partitions_exchanging_in_both_directions_do_not_deadlock():
    np.testing.assert_allclose(_run_two_partitions(step_id=7), [21.0, 42.0, 63.0])


class _Recording(LocalRendezvous):
    """A rendezvous that records the order of sends and receives started on it."""

    def __init__(self):
        super().__init__()
        self.events = []

    def send(self, key, value):
        self.events.append(("send", key.split(";")[3]))
        super().send(key, value)

    def recv_async(self, key, callback):
        self.events.append(("recv", key.split(";")[3]))
        super().recv_async(key, callback)


def test_values_other_tasks_wait_for_are_sent_before_receives_start():
    # A's receive of y is ready first (made first, no inputs), but x * 2 -> send needs no receive:
    # B waits for it, so it goes first, and A's receive starts after.
    ga, x, out, sent_a = _partition_a()
    plan = compile_plan([x], [out], [sent_a], Device(A))
    assert sum(plan.dataflow.urgent) == 2  # x * 2 and its send (x is fed); not the receive or y + x
    rendezvous = _Recording()
    np.testing.assert_allclose(_run_two_partitions(step_id=4, rendezvous=rendezvous), [21.0, 42.0, 63.0])
    a_events = [e for e in rendezvous.events if e in (("send", "x2"), ("recv", "y"))]
    assert a_events == [("send", "x2"), ("recv", "y")]


def test_a_receive_that_never_arrives_meets_its_deadline():
    ga, x, out, sent = _partition_a()
    plan = compile_plan([x], [out], [sent], Device(A))
    with pytest.raises(tf.errors.DeadlineExceededError):
        run_plan(plan, [np.zeros(3, np.float32)], StepContext(1, rendezvous=LocalRendezvous()), timeout=0.2)


def test_an_aborted_rendezvous_fails_the_waiting_receive_naming_it():
    ga, x, out, sent = _partition_a()
    plan = compile_plan([x], [out], [sent], Device(A))
    rendezvous = LocalRendezvous()
    timer = threading.Timer(0.1, rendezvous.abort, [tf.errors.UnavailableError(None, None, "peer task 1 died")])
    timer.start()
    try:
        with pytest.raises(tf.errors.UnavailableError, match=r"(?s)peer task 1 died.*_Recv"):
            run_plan(plan, [np.zeros(3, np.float32)], StepContext(1, rendezvous=rendezvous), timeout=10)
    finally:
        timer.cancel()


def test_rendezvous_keys_are_used_once():
    r = LocalRendezvous()
    key = comm_ops.rendezvous_key(A, 1, B, "t:0", 5)
    r.send(key, 1)
    with pytest.raises(tf.errors.InternalError, match="sent twice"):
        r.send(key, 2)
    assert r.recv(key, timeout=1) == 1
    other = comm_ops.rendezvous_key(A, 1, B, "t:0", 6)  # the next step is another key
    r.send(other, 3)
    assert r.recv(other, timeout=1) == 3


def test_a_graph_sending_to_itself_runs_in_a_local_session():
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [2])
        sent = comm_ops.send(x + 1.0, "t", A, A)
        received = comm_ops.recv(g, tf.float32, [2], "t", A, A)
        with tf.control_dependencies([sent]):
            out = received * 3.0
        with tf.Session() as sess:
            for _ in range(3):  # a new step id, hence new keys, every run
                np.testing.assert_allclose(sess.run(out, {x: [1.0, 2.0]}), [6.0, 9.0])
