"""Queues and conditional accumulators: FIFO order, waiting without blocking the executor, close
semantics, aborted steps releasing their waiters, exact gradient aggregation with stale
gradients dropped, and state shared by `shared_name` between the graphs of two clients."""

import threading

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.distributed.cluster import ClusterSpec
from tensorweave.distributed.master import Master, MasterRuntime
from tensorweave.distributed.worker import Worker
from tensorweave.runtime import session as session_lib

WAIT = 10.0  # seconds: a bound on every wait, far above what a pass takes


class _Run(threading.Thread):
    """`sess.run(fetches)` on another thread; `.result()` is its value or raises its error."""

    def __init__(self, sess, fetches, **kwargs):
        super().__init__(daemon=True)
        self._call = lambda: sess.run(fetches, **kwargs)
        self._box = []
        self.start()

    def run(self):
        try:
            self._box.append((self._call(), None))
        except BaseException as e:  # noqa: BLE001 - re-raised in result()
            self._box.append((None, e))

    def result(self):
        self.join(WAIT)
        assert not self.is_alive(), "the run did not finish"
        value, error = self._box[0]
        if error is not None:
            raise error
        return value


def _still_waiting(run):
    run.join(0.2)
    return run.is_alive()


def test_fifo_order_components_names_and_shapes():
    with tf.Graph().as_default():
        q = tf.FIFOQueue(10, [tf.float32, tf.int32], shapes=[[2], []])
        many = q.enqueue_many(([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [1, 2, 3]))
        one = q.enqueue(([7.0, 8.0], 4))
        x, i = q.dequeue()
        xs, is_ = q.dequeue_many(2)
        assert x.shape.as_list() == [2] and i.shape.as_list() == []
        assert xs.shape.as_list() == [2, 2] and is_.shape.as_list() == [2]
        named = tf.FIFOQueue(3, [tf.float32, tf.int64], shapes=[[], []], names=["a", "b"])
        put = named.enqueue({"a": 1.5, "b": 7})
        got = named.dequeue()
        with tf.Session() as sess:
            sess.run(many)
            sess.run(one)
            assert sess.run(q.size()) == 4
            first = sess.run([x, i])
            np.testing.assert_array_equal(first[0], [1.0, 2.0])
            assert first[1] == 1 and first[1].dtype == np.int32
            batch = sess.run([xs, is_])
            np.testing.assert_array_equal(batch[0], [[3.0, 4.0], [5.0, 6.0]])
            np.testing.assert_array_equal(batch[1], [2, 3])
            last = sess.run([x, i])
            np.testing.assert_array_equal(last[0], [7.0, 8.0])
            assert last[1] == 4
            sess.run(put)
            assert sess.run(got) == {"a": np.float32(1.5), "b": 7}
        with pytest.raises(ValueError):
            q.enqueue(([1.0, 2.0, 3.0], 1))  # wrong static shape


def test_a_queue_without_shapes_takes_elements_of_any_shape():
    with tf.Graph().as_default():
        q = tf.FIFOQueue(5, tf.int32)  # the common TF1 form: no shapes
        scalar, vector = q.enqueue(3), q.enqueue([[1, 2, 3]])  # a list holds the components, as in TF
        out = q.dequeue()
        assert out.shape.ndims is None
        pairs = tf.FIFOQueue(5, [tf.float32, tf.string])
        put = pairs.enqueue((np.ones((2, 2), np.float32), "done"))
        got = pairs.dequeue()
        with tf.Session() as sess:
            sess.run([scalar])
            sess.run(vector)
            assert sess.run(out) == 3
            np.testing.assert_array_equal(sess.run(out), [1, 2, 3])
            sess.run(put)
            value, tag = sess.run(got)
            assert value.shape == (2, 2) and tag == b"done"


def test_a_dequeue_waits_for_an_enqueue_from_another_run():
    with tf.Graph().as_default():
        q = tf.FIFOQueue(2, tf.float32, shapes=[[]])
        value = tf.placeholder(tf.float32, [])
        put = q.enqueue(value)
        got = q.dequeue()
        with tf.Session() as sess:
            waiting = _Run(sess, got)
            assert _still_waiting(waiting)
            sess.run(put, {value: 3.0})
            assert waiting.result() == 3.0
            # A full queue: the enqueue waits for a dequeue.
            sess.run(put, {value: 1.0})
            sess.run(put, {value: 2.0})
            blocked = _Run(sess, put, feed_dict={value: 4.0})
            assert _still_waiting(blocked)
            assert sess.run(got) == 1.0
            blocked.result()
            assert [sess.run(got) for _ in range(2)] == [2.0, 4.0]


def test_close_wakes_dequeuers_with_out_of_range_and_refuses_enqueues():
    with tf.Graph().as_default():
        q = tf.FIFOQueue(5, tf.int32, shapes=[[]])
        put = q.enqueue_many([[1, 2, 3]])
        got, two = q.dequeue(), q.dequeue_many(2)
        with tf.Session() as sess:
            waiting = _Run(sess, got)
            assert _still_waiting(waiting)
            sess.run(q.close())
            with pytest.raises(tf.errors.OutOfRangeError):
                waiting.result()
            with pytest.raises(tf.errors.CancelledError):
                sess.run(put)
        q2 = tf.FIFOQueue(5, tf.int32, shapes=[[]])
        put2, got2, many2 = q2.enqueue_many([[1, 2, 3]]), q2.dequeue(), q2.dequeue_many(2)
        with tf.Session() as sess:
            sess.run(put2)
            sess.run(q2.close())
            assert sess.run(got2) == 1  # what is left is still dequeued
            np.testing.assert_array_equal(sess.run(many2), [2, 3])
            with pytest.raises(tf.errors.OutOfRangeError):
                sess.run(got2)
        del got, two


def test_close_with_cancel_pending_enqueues_fails_a_waiting_enqueue():
    with tf.Graph().as_default():
        q = tf.FIFOQueue(1, tf.float32, shapes=[[]])
        put, got = q.enqueue(1.0), q.dequeue()
        with tf.Session() as sess:
            sess.run(put)
            kept = _Run(sess, put)
            assert _still_waiting(kept)
            sess.run(q.close())  # without cancelling: the waiting enqueue stays and completes
            assert sess.run(got) == 1.0
            kept.result()
            assert sess.run(got) == 1.0
        q2 = tf.FIFOQueue(1, tf.float32, shapes=[[]])
        put2 = q2.enqueue(1.0)
        with tf.Session() as sess:
            sess.run(put2)
            cancelled = _Run(sess, put2)
            assert _still_waiting(cancelled)
            sess.run(q2.close(cancel_pending_enqueues=True))
            with pytest.raises(tf.errors.CancelledError):
                cancelled.result()
            assert sess.run(q2.size()) == 1


def test_a_step_past_its_deadline_withdraws_its_dequeue():
    with tf.Graph().as_default():
        q = tf.FIFOQueue(3, tf.float32, shapes=[[]])
        put, got = q.enqueue(5.0), q.dequeue()
        with tf.Session() as sess:
            with pytest.raises(tf.errors.DeadlineExceededError):
                sess.run(got, options=tf.RunOptions(timeout_in_ms=100))
            sess.run(put)
            assert sess.run(q.size()) == 1  # the element did not go to the step that gave up
            assert sess.run(got) == 5.0
            sess.run(put)
            sess.run(q.enqueue(6.0))
            with pytest.raises(tf.errors.DeadlineExceededError):
                sess.run(q.dequeue_many(3), options=tf.RunOptions(timeout_in_ms=100))
            np.testing.assert_array_equal(sess.run(q.dequeue_many(2)), [5.0, 6.0])  # put back, in order


def test_dequeue_many_may_ask_for_more_than_the_capacity():
    with tf.Graph().as_default():
        q = tf.FIFOQueue(2, tf.int32, shapes=[[]])
        put = q.enqueue_many([[1, 2, 3, 4, 5]])
        with tf.Session() as sess:
            filling = _Run(sess, put)
            np.testing.assert_array_equal(sess.run(q.dequeue_many(5)), [1, 2, 3, 4, 5])
            filling.result()


def test_closing_the_session_cancels_a_waiting_dequeue():
    with tf.Graph().as_default():
        q = tf.FIFOQueue(3, tf.float32, shapes=[[]])
        got = q.dequeue()
        sess = tf.Session()
        waiting = _Run(sess, got)
        assert _still_waiting(waiting)
        sess.close()
        with pytest.raises(tf.errors.CancelledError):
            waiting.result()


def test_accumulator_takes_the_mean_of_the_first_n_fresh_gradients():
    with tf.Graph().as_default():
        acc = tf.ConditionalAccumulator(tf.float32, shape=[2])
        grad = tf.placeholder(tf.float32, [2])
        step = tf.placeholder(tf.int64, [])
        apply = acc.apply_grad(grad, local_step=step)
        take = acc.take_grad(2)
        count = acc.num_accumulated()
        summed = tf.ConditionalAccumulator(tf.float32, shape=[2], reduction_type="SUM")
        with tf.Session() as sess:
            waiting = _Run(sess, take)
            sess.run(apply, {grad: [1.0, 2.0], step: 0})
            assert _still_waiting(waiting)
            sess.run(apply, {grad: [3.0, 6.0], step: 0})
            np.testing.assert_array_equal(waiting.result(), [2.0, 4.0])
            assert sess.run(count) == 0
            # The global step is now 1: a gradient from step 0 is dropped, and so is a third
            # gradient beyond the two a take needs.
            sess.run(apply, {grad: [100.0, 100.0], step: 0})
            assert sess.run(count) == 0
            for g in ([1.0, 1.0], [3.0, 5.0], [50.0, 50.0]):
                sess.run(apply, {grad: g, step: 1})
            assert sess.run(count) == 3
            np.testing.assert_array_equal(sess.run(take), [2.0, 3.0])
            state = sess._runtime.device.resources.lookup("", acc.accumulator_ref.op.name)
            assert state.dropped == 2 and state.global_step == 2
            sess.run(acc.set_global_step(10))
            sess.run(apply, {grad: [1.0, 1.0], step: 9})
            assert sess.run(count) == 0
            sess.run([summed.apply_grad([1.0, 2.0]), summed.apply_grad([3.0, 4.0])])
            np.testing.assert_array_equal(sess.run(summed.take_grad(2)), [4.0, 6.0])
            with pytest.raises(tf.errors.InvalidArgumentError):
                sess.run(acc.take_grad(0))


def test_sparse_accumulator_averages_each_row_over_the_times_it_arrived():
    with tf.Graph().as_default():
        acc = tf.SparseConditionalAccumulator(tf.float32, shape=[6, 2])
        indices = tf.placeholder(tf.int64, [None])
        values = tf.placeholder(tf.float32, [None, 2])
        step = tf.placeholder(tf.int64, [])
        apply = acc.apply_grad(indices, values, [6, 2], local_step=step)
        taken = acc.take_indexed_slices_grad(2)
        count = acc.num_accumulated()
        summed = tf.SparseConditionalAccumulator(tf.float32, shape=[6, 2], reduction_type="SUM")
        dense = tf.ConditionalAccumulator(tf.float32, shape=[2], shared_name="mixed")
        with tf.Session() as sess:
            waiting = _Run(sess, [taken.indices, taken.values, taken.dense_shape])
            sess.run(apply, {indices: [4, 1], values: [[1, 1], [2, 2]], step: 0})
            assert _still_waiting(waiting)
            sess.run(apply, {indices: [1, 5, 1], values: [[4, 4], [5, 5], [6, 6]], step: 0})
            rows, vals, shape = waiting.result()
            assert rows.tolist() == [1, 4, 5] and shape.tolist() == [6, 2]
            np.testing.assert_array_equal(vals, [[4, 4], [1, 1], [5, 5]])  # row 1: (2 + 4 + 6) / 3
            # Stale gradients are dropped, as by the dense accumulator.
            sess.run(apply, {indices: [0], values: [[9, 9]], step: 0})
            assert sess.run(count) == 0
            sess.run([summed.apply_grad([2], [[1.0, 2.0]]), summed.apply_grad([2, 3], [[3.0, 4.0], [1.0, 1.0]])])
            rows, vals, _ = sess.run(summed.take_grad(2))
            assert rows.tolist() == [2, 3] and vals.tolist() == [[4.0, 6.0], [1.0, 1.0]]
            with pytest.raises(tf.errors.InvalidArgumentError, match="gradient index 6 is outside \\[0, 6\\)"):
                sess.run(apply, {indices: [6], values: [[1, 1]], step: 1})
            with pytest.raises(tf.errors.InvalidArgumentError, match="2 indices for values of shape \\[1, 2\\]"):
                sess.run(apply, {indices: [0, 1], values: [[1, 1]], step: 1})
            with pytest.raises(tf.errors.InvalidArgumentError, match="expects rows of shape \\(2,\\), got \\[3\\]"):
                sess.run(acc.apply_grad([0], np.ones((1, 3), np.float32), local_step=1))
            # One shared name, two kinds: each op says which accumulator it needs.
            sparse_twin = tf.SparseConditionalAccumulator(tf.float32, shape=[6, 2], shared_name="mixed")
            sess.run(dense.apply_grad([1.0, 1.0]))
            with pytest.raises(tf.errors.InvalidArgumentError, match="mixed is not a SparseConditionalAccumulator"):
                sess.run(sparse_twin.apply_grad([0], [[1.0, 1.0]]))


# -- shared by two clients' graphs on one parameter server ---------------------------------------

CLUSTER = ClusterSpec({"ps": ["ps0.invalid:1"], "worker": ["w0.invalid:1", "w1.invalid:1"]})
PS, W0, W1 = "/job:ps/replica:0/task:0", "/job:worker/replica:0/task:0", "/job:worker/replica:0/task:1"


@pytest.fixture
def in_process_cluster(monkeypatch):
    master = Master(CLUSTER, {PS: Worker(PS), W0: Worker(W0), W1: Worker(W1)})

    def factory(target, graph, config):
        return MasterRuntime(master, master.create_session(graph.as_graph_def().SerializeToString(), config), graph)
    monkeypatch.setitem(session_lib._FACTORIES, "data-flow-test://", factory)
    return "data-flow-test://"


def _worker_graph(task):
    """A worker's graph: an accumulator and a queue on the PS, a gradient computed on the worker."""
    graph = tf.Graph()
    with graph.as_default():
        with tf.device("/job:ps/task:0"):
            acc = tf.ConditionalAccumulator(tf.float32, [2], shared_name="grads", name=f"acc_{task}")
            q = tf.FIFOQueue(-1, tf.int64, shapes=[[]], shared_name="tokens", name=f"tokens_{task}")
        with tf.device(f"/job:worker/task:{task}"):
            x = tf.placeholder(tf.float32, [2], name="x")
            grad = x * 2.0
        apply = acc.apply_grad(grad, local_step=0)
        token = q.dequeue()
    return graph, {"apply": apply, "take": acc.take_grad(2), "put": q.enqueue_many([[7, 8]]), "token": token,
                   "x": x, "acc": acc}


def test_an_accumulator_and_queue_on_the_ps_are_shared_by_shared_name(in_process_cluster):
    g0, m0 = _worker_graph(0)
    g1, m1 = _worker_graph(1)
    assert m0["apply"].device.startswith("/job:ps") and m0["take"].device.startswith("/job:ps")
    with tf.Session(in_process_cluster, graph=g0) as s0, tf.Session(in_process_cluster, graph=g1) as s1:
        token = _Run(s1, m1["token"])
        assert _still_waiting(token)
        s0.run(m0["put"])
        assert token.result() == 7
        waiting = _Run(s0, m0["take"])
        s0.run(m0["apply"], {m0["x"]: np.array([1.0, 2.0], np.float32)})
        assert _still_waiting(waiting)
        s1.run(m1["apply"], {m1["x"]: np.array([3.0, 4.0], np.float32)})
        np.testing.assert_array_equal(waiting.result(), [4.0, 6.0])
        # Both graphs now see global step 1: a gradient from step 0 is dropped.
        s1.run(m1["apply"], {m1["x"]: np.array([3.0, 4.0], np.float32)})
        assert s0.run(m0["acc"].num_accumulated()) == 0
        assert s0.run(m0["token"]) == 8
