"""The BLAS pool that ConfigProto.intra_op_parallelism_threads sizes, and reusable step threads."""

import threading
import time

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import tensorweave as tf
from tensorweave.runtime import threads


def _blas_threads():
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


@pytest.fixture(autouse=True)
def restore_pool():
    with threadpool_limits(limits=None):  # put the pool back as it was after the test
        saved = threads._applied
        yield
        threads._applied = saved


def test_a_session_config_sets_the_blas_pool():
    if not _blas_threads():
        pytest.skip("NumPy reports no BLAS library")
    with tf.Session(config=tf.ConfigProto(intra_op_parallelism_threads=1)) as sess:
        assert _blas_threads() == {1}
        assert sess.run(tf.matmul(tf.ones([4, 4]), tf.ones([4, 4])))[0, 0] == 4.0


def test_zero_keeps_the_default_and_negative_is_refused():
    before = _blas_threads()
    assert threads.apply_intra_op_threads(tf.ConfigProto(intra_op_parallelism_threads=0)) == threads._applied
    assert _blas_threads() == before
    with pytest.raises(ValueError, match="intra_op_parallelism_threads"):
        threads.apply_intra_op_threads(tf.ConfigProto(intra_op_parallelism_threads=-2))


def test_reusable_threads_run_every_call_at_once_and_reuse_idle_threads():
    pool = threads.ReusableThreads("test-reusable")
    release, started = threading.Event(), []
    names = set()

    def blocked(i):
        started.append(i)
        names.add(threading.get_ident())
        assert release.wait(10)

    for i in range(3):  # unbounded: three calls that block together all start
        pool.submit(blocked, i)
    deadline = time.monotonic() + 10
    while len(started) < 3:
        assert time.monotonic() < deadline, "a blocked call kept another from starting"
        time.sleep(0.01)
    release.set()
    deadline = time.monotonic() + 10
    while pool._idle < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    ran = []
    done = threading.Event()
    pool.submit(lambda: (ran.append(threading.get_ident()), done.set()))
    assert done.wait(10)
    assert ran[0] in names  # an idle thread took it: no new thread


def test_reusable_threads_retire_after_idling_and_survive_a_raising_call():
    pool = threads.ReusableThreads("test-retire", idle_seconds=0.05)
    done = threading.Event()
    pool.submit(lambda: 1 / 0)
    pool.submit(done.set)
    assert done.wait(10)
    deadline = time.monotonic() + 10
    while pool._idle or any(t.name == "test-retire" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "idle threads never exited"
        time.sleep(0.02)
    again = threading.Event()
    pool.submit(again.set)  # a fresh thread serves after all retired
    assert again.wait(10)
