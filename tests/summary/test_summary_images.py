"""PNG encoder and image summaries, decoded again with zlib alone (and Pillow when present)."""

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorboard.compat.proto import summary_pb2

from tensorweave.summary import encode_png, image_summary_bytes

_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}


def _unfilter(kind, line, previous, bpp):
    out = np.zeros_like(line)
    for i in range(len(line)):
        left = int(out[i - bpp]) if i >= bpp else 0
        up = int(previous[i])
        upleft = int(previous[i - bpp]) if i >= bpp else 0
        if kind == 0:
            predicted = 0
        elif kind == 1:
            predicted = left
        elif kind == 2:
            predicted = up
        elif kind == 3:
            predicted = (left + up) // 2
        else:
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            predicted = left if pa <= pb and pa <= pc else up if pb <= pc else upleft
        out[i] = (int(line[i]) + predicted) & 0xFF
    return out


def decode_png(data):
    """Decodes an 8-bit non-interlaced PNG; returns (pixels, filter types used)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and interlace == 0
    channels = _CHANNELS[color]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    previous = np.zeros(stride, dtype=np.uint8)
    pixels = []
    for row in rows:
        previous = _unfilter(int(row[0]), row[1:], previous, channels)
        pixels.append(previous)
    return np.array(pixels).reshape(height, width, channels), set(rows[:, 0].tolist())


def test_png_round_trip_and_all_filters_used():
    y, x = np.mgrid[0:24, 0:20]
    image = np.stack([(x * 11) % 256, (y * 7 + x) % 256, (x * y) % 256], axis=-1).astype(np.uint8)
    image[5:9] = np.random.default_rng(0).integers(0, 256, (4, 20, 3))
    pixels, filters = decode_png(encode_png(image))
    np.testing.assert_array_equal(pixels, image)
    assert len(filters) >= 3


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 2, 3, 4]))))
def test_png_round_trip_random(image):
    pixels, _ = decode_png(encode_png(image))
    np.testing.assert_array_equal(pixels, image)


def test_png_readable_by_pillow():
    image_module = pytest.importorskip("PIL.Image")
    image = np.random.default_rng(1).integers(0, 256, (7, 5, 4), dtype=np.uint8)
    decoded = np.asarray(image_module.open(io.BytesIO(encode_png(image))))
    np.testing.assert_array_equal(decoded, image)


def test_png_rejects_bad_input():
    with pytest.raises(TypeError):
        encode_png(np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2, 5), dtype=np.uint8))


def _images(serialized):
    return [(v.tag, v.image) for v in summary_pb2.Summary.FromString(serialized).value]


def test_uint8_images_written_as_they_are():
    batch = np.random.default_rng(2).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    written = _images(image_summary_bytes("input", batch))
    assert [tag for tag, _ in written] == ["input/image/0", "input/image/1"]
    for (_, image), expected in zip(written, batch, strict=True):
        assert (image.height, image.width, image.colorspace) == (4, 6, 3)
        np.testing.assert_array_equal(decode_png(image.encoded_image_string)[0], expected)


def test_max_outputs_limits_count_and_names_tags():
    batch = np.zeros((5, 2, 2, 1), dtype=np.uint8)
    assert [t for t, _ in _images(image_summary_bytes("x", batch, max_outputs=1))] == ["x/image"]
    assert len(_images(image_summary_bytes("x", batch))) == 3
    # The tag form follows max_outputs, not how many images exist.
    assert [t for t, _ in _images(image_summary_bytes("x", batch[:1], max_outputs=2))] == ["x/image/0"]


def test_float_images_in_unit_range_scale_by_255_over_max():
    image = np.random.default_rng(3).random((1, 3, 4, 1)).astype(np.float32)
    image[0, 0, 0, 0] = 1.0
    (_, written), = _images(image_summary_bytes("f", image))
    expected = (image[0] * np.float32(255.0)).astype(np.uint8)
    np.testing.assert_array_equal(decode_png(written.encoded_image_string)[0], expected)


def test_float_images_normalised_per_image_as_tf():
    dim = np.array([[[[0.0], [0.25]], [[0.5], [0.125]]]], dtype=np.float64)
    (_, written), = _images(image_summary_bytes("dim", dim, max_outputs=1))
    np.testing.assert_array_equal(decode_png(written.encoded_image_string)[0][..., 0],
                                  [[0, 127], [255, 63]])
    signed = np.array([[[[-2.0], [1.0]], [[2.0], [0.0]]]], dtype=np.float32)
    (_, written), = _images(image_summary_bytes("signed", signed, max_outputs=1))
    np.testing.assert_array_equal(decode_png(written.encoded_image_string)[0][..., 0],
                                  [[1, 191], [255, 128]])


def test_non_finite_pixels_take_bad_color():
    image = np.full((1, 1, 2, 3), 0.5, dtype=np.float16)
    image[0, 0, 1, 2] = np.nan
    (_, written), = _images(image_summary_bytes("bad", image))
    pixels = decode_png(written.encoded_image_string)[0]
    np.testing.assert_array_equal(pixels[0], [[255, 255, 255], [255, 0, 0]])
    (_, written), = _images(image_summary_bytes("bad", image, bad_color=[0, 0, 255, 255]))
    np.testing.assert_array_equal(decode_png(written.encoded_image_string)[0][0, 1], [0, 0, 255])


def test_rgba_and_gray_colorspaces():
    for depth in (1, 4):
        batch = np.random.default_rng(depth).integers(0, 256, (1, 3, 3, depth), dtype=np.uint8)
        (_, written), = _images(image_summary_bytes("c", batch))
        assert written.colorspace == depth
        np.testing.assert_array_equal(decode_png(written.encoded_image_string)[0], batch[0])


@pytest.mark.parametrize("images, error", [
    (np.zeros((1, 2, 2), np.uint8), ValueError),
    (np.zeros((1, 2, 2, 2), np.uint8), ValueError),
    (np.zeros((1, 0, 2, 3), np.uint8), ValueError),
    (np.zeros((1, 2, 2, 3), np.int32), TypeError),
])
def test_image_errors(images, error):
    with pytest.raises(error):
        image_summary_bytes("e", images)
