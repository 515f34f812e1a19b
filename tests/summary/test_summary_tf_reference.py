"""Byte-for-byte comparison with TensorFlow's own summary kernels.

tf_reference/tf_summary_reference.npz was recorded by
tf_reference/make_tf_reference.py with TensorFlow 2.21 (whose kernels are TF1's).
"""

import json
import os
import struct
import zlib

import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2

from tensorweave.summary import (
    audio_summary_bytes,
    histogram_summary_bytes,
    image_summary_bytes,
    merge_summary_bytes,
    scalar_summary_bytes,
    tensor_summary_bytes,
    text_summary_bytes,
)

_REFERENCE = np.load(os.path.join(os.path.dirname(__file__), "tf_reference",
                                  "tf_summary_reference.npz"))
_MANIFEST = json.loads(_REFERENCE["manifest"].tobytes())
# PNG bytes depend on the deflate implementation; the reference used zlib 1.2.13.
_SAME_ZLIB = zlib.ZLIB_RUNTIME_VERSION == "1.2.13"


def build(kind, name, attrs):
    if kind == "merge":
        return merge_summary_bytes([build_case(other) for other in attrs["inputs"]])
    value = _REFERENCE[name + ".input"]
    if kind == "histogram":
        return histogram_summary_bytes(name, value)
    if kind == "scalar":
        return scalar_summary_bytes(name, value)
    if kind == "image":
        return image_summary_bytes(name, value, max_outputs=attrs["max_outputs"])
    if kind == "audio":
        return audio_summary_bytes(name, value, attrs["sample_rate"], attrs["max_outputs"])
    if kind == "tensor":
        return tensor_summary_bytes(name, value)
    if kind == "text":
        return text_summary_bytes(name, value.item())
    raise ValueError(kind)


def build_case(name):
    (case,) = [c for c in _MANIFEST if c["name"] == name]
    return build(case["kind"], name, case["attrs"])


def inflated_images(serialized):
    """The Summary with each PNG replaced by its inflated IDAT data (filtered rows)."""
    summary = summary_pb2.Summary.FromString(serialized)
    for value in summary.value:
        png, idat, pos = value.image.encoded_image_string, [], 8
        while pos < len(png):
            (length,) = struct.unpack(">I", png[pos:pos + 4])
            if png[pos + 4:pos + 8] == b"IDAT":
                idat.append(png[pos + 8:pos + 8 + length])
            pos += 12 + length
        value.image.encoded_image_string = zlib.decompress(b"".join(idat))
    return summary


@pytest.mark.parametrize("case", _MANIFEST, ids=[c["name"] for c in _MANIFEST])
def test_matches_tensorflow_bytes(case):
    expected = _REFERENCE[case["name"] + ".output"].tobytes()
    actual = build(case["kind"], case["name"], case["attrs"])
    if case["kind"] == "image":
        # Same pixels and same per-row filters whatever zlib is installed.
        assert inflated_images(actual) == inflated_images(expected)
        if not _SAME_ZLIB:
            pytest.skip("zlib %s differs from the reference's: PNG bytes not compared"
                        % zlib.ZLIB_RUNTIME_VERSION)
    assert actual == expected
