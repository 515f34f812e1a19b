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
