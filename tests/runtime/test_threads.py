"""ConfigProto.intra_op_parallelism_threads sizes the BLAS pool of the NumPy kernels."""

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
