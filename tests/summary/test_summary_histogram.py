"""Histogram summaries against a literal transcription of TF's Histogram class."""

import bisect
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorboard.compat.proto import summary_pb2

from tensorweave.summary import DEFAULT_BUCKET_LIMITS, histogram_proto, histogram_summary_bytes

DBL_MAX = sys.float_info.max


def reference_histogram(values, preserve_zero_buckets=False):
    """TF's Histogram::Add and EncodeToProto, one value and one bucket at a time."""
    limits = list(DEFAULT_BUCKET_LIMITS)
    buckets = [0.0] * len(limits)
    low, high, num, total, squares = DBL_MAX, -DBL_MAX, 0, 0.0, 0.0
    for value in (float(v) for v in np.asarray(values).ravel()):
        # DBL_MAX itself would index past the end in TF (undefined); both keep
        # it in the last bucket.
        buckets[min(bisect.bisect_right(limits, value), len(limits) - 1)] += 1.0
        low, high = min(low, value), max(high, value)
        num += 1
        total += value
        squares += value * value
    out_limits, out_counts = [], []
    i = 0
    while i < len(buckets):
        end, count = limits[i], buckets[i]
        i += 1
        if not preserve_zero_buckets and count <= 0.0:
            while i < len(buckets) and buckets[i] <= 0.0:
                end, count = limits[i], buckets[i]
                i += 1
        out_limits.append(end)
        out_counts.append(count)
    return low, high, num, total, squares, out_limits, out_counts


def test_default_bucket_limits_follow_tf_rule():
    limits = DEFAULT_BUCKET_LIMITS
    assert len(limits) == 1551
    middle = len(limits) // 2
    assert limits[middle] == 0.0
    positive = limits[middle + 1:]
    assert positive[0] == 1e-12
    assert positive[-1] == DBL_MAX
    finite = positive[:-1]
    for smaller, larger in zip(finite[:-1], finite[1:], strict=True):
        assert larger == smaller * 1.1  # grown by repeated multiplication
    assert finite[-1] < 1e20 <= finite[-1] * 1.1
    np.testing.assert_array_equal(limits[:middle], -positive[::-1])
    assert np.all(np.diff(limits) > 0)
    assert not limits.flags.writeable


def test_summary_fields_and_counts():
    values = np.array([[0.5, -2.0, 3.0], [0.5, 1e-13, 7.25]], dtype=np.float32)
    summary = summary_pb2.Summary.FromString(histogram_summary_bytes("weights", values))
    (value,) = summary.value
    assert value.tag == "weights"
    histo = value.histo
    assert (histo.min, histo.max, histo.num) == (-2.0, 7.25, 6.0)
    assert histo.sum == pytest.approx(9.25 + 1e-13)
    assert histo.sum_squares == pytest.approx(0.25 * 2 + 4 + 9 + 7.25 ** 2)
    assert sum(histo.bucket) == 6
    # 0.5 twice lands in the bucket whose right edge is the first edge above it.
    limits = list(histo.bucket_limit)
    above_half = DEFAULT_BUCKET_LIMITS[np.searchsorted(DEFAULT_BUCKET_LIMITS, 0.5, "right")]
    assert histo.bucket[limits.index(above_half)] == 2


def test_values_on_edges_go_to_the_bucket_above():
    histo = histogram_proto([0.0, 1e-12, -1e-12])
    counts = dict(zip(histo.bucket_limit, histo.bucket, strict=True))
    assert counts[1e-12] == 1.0    # 0 is in [0, 1e-12)
    assert counts[1e-12 * 1.1] == 1.0   # 1e-12 is in [1e-12, 1.1e-12)
    assert counts[0.0] == 1.0      # -1e-12 is in [-1e-12, 0)


def test_empty_runs_collapse_to_one_bucket():
    histo = histogram_proto([1.0])
    one = np.searchsorted(DEFAULT_BUCKET_LIMITS, 1.0, "right")
    assert list(histo.bucket_limit) == [
        DEFAULT_BUCKET_LIMITS[one - 1], DEFAULT_BUCKET_LIMITS[one], DBL_MAX]
    assert list(histo.bucket) == [0.0, 1.0, 0.0]


def test_empty_input_matches_tf():
    histo = histogram_proto(np.zeros((0, 3)))
    assert (histo.min, histo.max, histo.num, histo.sum) == (DBL_MAX, -DBL_MAX, 0.0, 0.0)
    assert list(histo.bucket_limit) == [DBL_MAX]
    assert list(histo.bucket) == [0.0]


def test_preserve_zero_buckets_keeps_every_bucket():
    histo = histogram_proto([3.0], preserve_zero_buckets=True)
    assert list(histo.bucket_limit) == list(DEFAULT_BUCKET_LIMITS)
    assert sum(histo.bucket) == 1


def test_sum_is_accumulated_in_order_as_tf():
    values = np.array([1e16, 1.0, -1e16, 1.0] * 50 + [0.1] * 1000)
    _, _, _, total, squares, _, _ = reference_histogram(values)
    histo = histogram_proto(values)
    assert histo.sum == total
    assert histo.sum_squares == squares


@pytest.mark.parametrize("bad, kind", [
    ([1.0, np.nan, np.inf], "Nan"),
    ([1.0, -np.inf, np.nan], "Infinity"),
])
def test_non_finite_values_raise_naming_tag(bad, kind):
    with pytest.raises(ValueError, match="^%s in summary histogram for: act$" % kind):
        histogram_summary_bytes("act", np.array(bad, dtype=np.float32))


def test_rejects_non_real_dtypes():
    with pytest.raises(TypeError):
        histogram_proto(np.array([1 + 2j]))
    with pytest.raises(TypeError):
        histogram_proto(np.array([True]))


def test_integer_and_half_inputs():
    ints = histogram_proto(np.arange(-5, 6, dtype=np.int64))
    assert (ints.min, ints.max, ints.num, ints.sum) == (-5.0, 5.0, 11.0, 0.0)
    halves = histogram_proto(np.array([0.5, 1.5], dtype=np.float16))
    assert (halves.min, halves.max, halves.sum) == (0.5, 1.5, 2.0)


finite_doubles = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.one_of(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=8), elements=finite_doubles),
    hnp.arrays(np.float32, st.integers(0, 40), elements=st.floats(-10, 10, width=32)),
    hnp.arrays(np.int32, st.integers(0, 40)),
))
def test_matches_reference_histogram(values):
    low, high, num, total, squares, limits, counts = reference_histogram(values)
    histo = histogram_proto(values)
    # repr tells -0.0 from 0.0 and compares nan/inf sums too.
    assert repr((histo.min, histo.max, histo.num)) == repr((low, high, float(num)))
    assert repr((histo.sum, histo.sum_squares)) == repr((total, squares))
    assert list(histo.bucket_limit) == limits
    assert list(histo.bucket) == counts
    assert sum(histo.bucket) == values.size


def test_signed_zero_extremes_keep_the_first_seen():
    histo = histogram_proto([-0.0, 0.0])
    assert np.signbit(histo.min) and np.signbit(histo.max)
    histo = histogram_proto([0.0, -0.0])
    assert not np.signbit(histo.min) and not np.signbit(histo.max)


def test_dbl_max_is_counted_in_the_last_bucket():
    histo = histogram_proto([DBL_MAX, -DBL_MAX])
    assert list(histo.bucket_limit)[-1] == DBL_MAX and histo.bucket[-1] == 1.0
    # -DBL_MAX is in [-DBL_MAX, next edge); the first bucket (below it) stays empty.
    assert histo.bucket_limit[:2] == [-DBL_MAX, DEFAULT_BUCKET_LIMITS[1]]
    assert histo.bucket[:2] == [0.0, 1.0]
