"""TF1's histogram: default bucket boundaries and the `HistogramProto` encoding.

Mirrors `tensorflow/core/lib/histogram/histogram.cc` so that histograms written
by TensorWeave are the ones TF1 writes for the same values.
"""

import sys

import numpy as np
from tensorboard.compat.proto import summary_pb2

DBL_MAX = sys.float_info.max


def _default_bucket_limits():
    # Positive edges grow by 10% from 1e-12 up to (not past) 1e20, computed by
    # repeated multiplication exactly as TF does, so every edge is bit-identical.
    positive = []
    edge = 1.0e-12
    while edge < 1.0e20:
        positive.append(edge)
        edge *= 1.1
    positive.append(DBL_MAX)
    negative = [-edge for edge in reversed(positive)]
    limits = np.array(negative + [0.0] + positive, dtype=np.float64)
    limits.setflags(write=False)
    return limits


# Right-hand edges of the buckets; bucket i holds values in [limit[i-1], limit[i]).
DEFAULT_BUCKET_LIMITS = _default_bucket_limits()


def _check_finite(values, tag):
    finite = np.isfinite(values)
    if finite.all():
        return
    # TF reports the kind of the first non-finite value it meets.
    first = values[int(np.argmin(finite))]
    kind = "Nan" if np.isnan(first) else "Infinity"
    raise ValueError("%s in summary histogram for: %s" % (kind, tag))


def real_array(values, what):
    """`values` as a NumPy array of a real number type (TF's RealNumberTypes)."""
    array = np.asarray(values)
    if array.dtype.kind not in "fiu" and array.dtype.name != "bfloat16":
        raise TypeError("%s take real numbers, got dtype %s" % (what, array.dtype))
    return array


def histogram_proto(values, tag="", preserve_zero_buckets=False):
    """Returns the `HistogramProto` TF1's `HistogramSummary` kernel builds.

    Values are cast to float64 and counted into TF's default buckets. NaN or
    infinity raises `ValueError` ("Nan in summary histogram for: <tag>"), as the
    kernel's InvalidArgument does. With `preserve_zero_buckets=False` (what the
    kernel uses) each run of empty buckets is written as one empty bucket whose
    limit is the right edge of the run.
    """
    flat = real_array(values, "Histogram summaries").astype(np.float64).ravel()
    _check_finite(flat, tag)
    limits = DEFAULT_BUCKET_LIMITS
    # upper_bound: the first edge strictly greater than the value.
    index = np.searchsorted(limits, flat, side="right")
    # Only DBL_MAX itself lands past the last edge (undefined in TF); keep it in
    # the last bucket.
    np.minimum(index, len(limits) - 1, out=index)
    counts = np.bincount(index, minlength=len(limits)).astype(np.float64)

    proto = summary_pb2.HistogramProto()
    if flat.size:
        # TF keeps the first of equal extremes (it matters for -0.0 and 0.0);
        # argmin and argmax return the first occurrence.
        proto.min = float(flat[np.argmin(flat)])
        proto.max = float(flat[np.argmax(flat)])
        # TF accumulates in value order; cumsum adds sequentially (np.sum would
        # pair terms and differ in the last bits). TF starts from +0.0, so its
        # sum is never -0.0: adding 0.0 does that. Overflow gives inf, as in TF.
        with np.errstate(over="ignore", invalid="ignore"):
            proto.sum = float(np.cumsum(flat)[-1]) + 0.0
            proto.sum_squares = float(np.cumsum(flat * flat)[-1])
    else:
        proto.min = DBL_MAX
        proto.max = -DBL_MAX
        proto.sum = 0.0
        proto.sum_squares = 0.0
    proto.num = float(flat.size)

    if preserve_zero_buckets:
        keep = np.ones(len(limits), dtype=bool)
    else:
        # Keep every filled bucket, and the last bucket of each empty run.
        nonempty = counts > 0
        keep = nonempty | np.append(nonempty[1:], True)
    proto.bucket_limit.extend(limits[keep].tolist())
    proto.bucket.extend(counts[keep].tolist())
    return proto
