"""`tf.train.QueueRunner`: threads fill a queue until it is closed; the last one closes it, and a
coordinator's stop cancels an enqueue waiting on a full queue."""

import numpy as np

import tensorweave as tf


def test_queue_runner_threads_fill_the_queue_and_stop_with_the_coordinator():
    with tf.Graph().as_default():
        counter = tf.Variable(0, name="counter")
        q = tf.FIFOQueue(4, tf.int32, shapes=[[]])
        qr = tf.train.QueueRunner(q, [q.enqueue(tf.assign_add(counter, 1))] * 2)
        tf.train.add_queue_runner(qr)
        got = q.dequeue_many(6)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            coord = tf.train.Coordinator()
            threads = tf.train.start_queue_runners(sess, coord)
            assert len(threads) == 3  # two enqueue threads and one that cancels on stop
            assert sorted(sess.run(got)) == list(range(1, 7))
            coord.request_stop()  # threads waiting on the full queue are cancelled
            coord.join(threads, stop_grace_period_secs=10)
            assert qr.exceptions_raised == []
            np.testing.assert_array_equal(sess.run(q.size()) <= 4, True)


def test_a_failed_enqueue_op_is_reported_to_the_coordinator_then_to_the_runner():
    failures = []

    class _Runner(tf.train.QueueRunner):
        def _on_failure(self, sess, error):
            failures.append((coord.should_stop(), type(error)))

    with tf.Graph().as_default():
        q = tf.FIFOQueue(4, tf.float32, shapes=[[]])
        bad = q.enqueue(tf.debugging.check_numerics(tf.constant(np.nan), "boom"))
        qr = _Runner(q, [bad])
        with tf.Session() as sess:
            coord = tf.train.Coordinator()
            threads = qr.create_threads(sess, coord=coord, start=True)
            for t in threads:
                t.join(10)
            assert not any(t.is_alive() for t in threads)
            assert failures == [(True, tf.errors.InvalidArgumentError)]
