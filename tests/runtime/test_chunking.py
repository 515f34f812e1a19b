"""Row-independent regions of a plan run in chunks of rows: same values, bounded intermediates."""

import numpy as np

import tensorweave as tf
from tensorweave.runtime import chunking


def _net():
    x = tf.placeholder(tf.float32, [None, 8])
    labels = tf.placeholder(tf.int64, [None])
    w1 = tf.constant(np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32))
    w2 = tf.constant(np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32))
    hidden = tf.tanh(tf.matmul(x, w1) + 0.5)
    logits = tf.matmul(hidden, w2)
    correct = tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32)
    return x, labels, hidden, logits, tf.reduce_mean(correct), tf.reduce_sum(logits, axis=1)


def _reference(xv, lv):
    w1 = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    w2 = np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32)
    logits = np.tanh(xv @ w1 + 0.5) @ w2
    return logits, np.mean(logits.argmax(1) == lv), logits.sum(1)


def test_large_feeds_run_in_chunks_with_the_same_results(monkeypatch):
    rows = 5 * chunking.CHUNK_ROWS + 3
    xv = np.random.default_rng(2).standard_normal((rows, 8)).astype(np.float32)
    lv = np.random.default_rng(3).integers(0, 4, rows)
    calls = []
    real = chunking.run_chunked
    monkeypatch.setattr("tensorweave.runtime.executor.run_chunked",
                        lambda *a: (calls.append(a[2]), real(*a)))
    with tf.Graph().as_default():
        x, labels, hidden, logits, accuracy, sums = _net()
        with tf.Session() as sess:
            got_logits, got_acc, got_sums = sess.run([logits, accuracy, sums], {x: xv, labels: lv})
    assert calls == [rows]
    want_logits, want_acc, want_sums = _reference(xv, lv)
    np.testing.assert_allclose(got_logits, want_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_sums, want_sums, rtol=1e-5, atol=1e-4)
    assert got_acc == np.float32(want_acc)


def test_small_feeds_and_mismatched_row_counts_run_whole(monkeypatch):
    calls = []
    monkeypatch.setattr("tensorweave.runtime.executor.run_chunked", lambda *a: calls.append(a))
    with tf.Graph().as_default():
        x, labels, _, logits, accuracy, _ = _net()
        with tf.Session() as sess:
            sess.run(logits, {x: np.zeros((10, 8))})
            plan = sess._runtime.plan([x, labels], [accuracy], [])
    assert calls == []
    n = 3 * chunking.CHUNK_ROWS
    vals = list(plan.initial)
    vals[plan.feed_slots[0]], vals[plan.feed_slots[1]] = np.zeros((n, 8)), np.zeros(n - 1)
    assert chunking.rows_to_chunk(plan.chunked, vals) == 0
    vals[plan.feed_slots[1]] = np.zeros(n)
    assert chunking.rows_to_chunk(plan.chunked, vals) == n


def test_reductions_over_rows_end_the_region():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 3])
        centered = x - tf.reduce_mean(x, axis=0)  # needs every row first
        doubled = centered * 2.0
        rows = 4 * chunking.CHUNK_ROWS
        xv = np.random.default_rng(0).standard_normal((rows, 3)).astype(np.float32)
        with tf.Session() as sess:
            got = sess.run(doubled, {x: xv})
    np.testing.assert_allclose(got, (xv - xv.mean(0)) * 2.0, rtol=1e-5, atol=1e-5)
