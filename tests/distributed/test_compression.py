"""Transfer codecs for float tensors: error bounds, sizes, special values, untrusted payloads."""

import struct

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings

import tensorweave as tf
from tensorweave.distributed.compression import (
    ENCODINGS,
    check_encoding,
    decode,
    effective_encoding,
    encode,
    encoded_nbytes,
)

COMPRESSED = ("bfloat16_truncate", "bfloat16", "float16", "int8")
FACTORS = {"none": 1, "bfloat16_truncate": 2, "bfloat16": 2, "float16": 2, "int8": 4}


def round_trip(x, encoding):
    x = np.asarray(x)
    payload, meta = encode(x, encoding)
    assert isinstance(meta, dict) and all(type(v) in (int, float) for v in meta.values())
    return decode(bytes(payload), encoding, x.dtype, x.shape, meta), payload, meta


def rel_error(x, y):
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    return np.abs(x64 - y64) / np.abs(x64)


def bits(x):
    return np.asarray(x, np.float32).view(np.uint32)


@pytest.fixture
def normals():
    rng = np.random.default_rng(0)
    mant = rng.uniform(1.0, 2.0, 20000)
    exps = rng.integers(-120, 120, 20000)
    signs = rng.choice([-1.0, 1.0], 20000)
    return (signs * np.ldexp(mant, exps)).astype(np.float32)


def test_encoding_names():
    assert ENCODINGS == ("none", "bfloat16_truncate", "bfloat16", "float16", "int8")
    for name in ENCODINGS:
        assert check_encoding(name) == name
    for bad in ("bf16", "", None, "NONE"):
        with pytest.raises(ValueError, match="none, bfloat16_truncate, bfloat16, float16, int8"):
            check_encoding(bad)
    with pytest.raises(ValueError, match="bogus"):
        encode(np.ones(2, np.float32), "bogus")
    with pytest.raises(ValueError, match="bogus"):
        decode(b"", "bogus", np.float32, (0,), {})


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_byte_reduction_is_exact(encoding):
    x = np.random.default_rng(1).standard_normal((3, 5, 7)).astype(np.float32)
    _, payload, _ = round_trip(x, encoding)
    assert x.nbytes == FACTORS[encoding] * memoryview(payload).nbytes
    assert encoded_nbytes(x.nbytes, encoding) == memoryview(payload).nbytes
    assert encoded_nbytes(0, encoding) == 0


def test_encoded_nbytes_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 4"):
        encoded_nbytes(6, "int8")
    with pytest.raises(ValueError, match="multiple of 4"):
        encoded_nbytes(-4, "none")
    with pytest.raises(TypeError):
        encoded_nbytes(4.0, "none")
    with pytest.raises(ValueError, match="valid|expected one of"):
        encoded_nbytes(4, "fp8")


def test_none_is_bit_exact():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4e38, -1.5], np.float32)
    y, _, meta = round_trip(x, "none")
    assert meta == {}
    np.testing.assert_array_equal(bits(y), bits(x))


def test_bfloat16_truncate_keeps_high_bits(normals):
    y, _, _ = round_trip(normals, "bfloat16_truncate")
    np.testing.assert_array_equal(bits(y), bits(normals) & 0xFFFF0000)
    assert rel_error(normals, y).max() <= 2.0**-7
    assert np.all(np.abs(y) <= np.abs(normals))  # toward zero


def test_bfloat16_rounds_to_nearest_even(normals):
    y, _, _ = round_trip(normals, "bfloat16")
    np.testing.assert_array_equal(y, normals.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert rel_error(normals, y).max() <= 2.0**-8
    # Ties go to the even mantissa: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7.
    ties = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, -(1 + 2.0**-8)], np.float32)
    y, _, _ = round_trip(ties, "bfloat16")
    np.testing.assert_array_equal(y, np.array([1.0, 1 + 2.0**-6, -1.0], np.float32))


def test_float16_in_range(normals):
    rng = np.random.default_rng(2)
    x = (rng.choice([-1.0, 1.0], 20000) * np.ldexp(rng.uniform(1, 2, 20000), rng.integers(-14, 15, 20000)))
    x = x.astype(np.float32)
    y, _, _ = round_trip(x, "float16")
    assert rel_error(x, y).max() <= 2.0**-11
    np.testing.assert_array_equal(y, x.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("tiny_share", [0.001, 0.5])
def test_float16_encodes_a_few_or_many_tiny_values_as_numpy_casts(tiny_share):
    # Values below half's normal range take one path when few (weights) and another when many
    # (gradients); `test_float16_is_bit_for_bit_numpys_cast` covers every other kind of value.
    rng = np.random.default_rng(8)
    x = rng.standard_normal(50_000).astype(np.float32)
    tiny = rng.random(x.size) < tiny_share
    x[tiny] = (rng.standard_normal(np.count_nonzero(tiny)) * 2.0**-17).astype(np.float32)
    x[:4] = [2.0**-25, -3 * 2.0**-25, 2.0**-14 - 2.0**-25, 1e-45]  # ties to even, the top, a denormal
    payload, _ = encode(x, "float16")
    np.testing.assert_array_equal(np.frombuffer(payload, np.uint16), x.astype(np.float16).view(np.uint16))


@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e30, 1e-37, 1.1754944e-38, 1e-40])
def test_int8_absolute_error(scale):
    x = (np.random.default_rng(3).standard_normal(10000) * scale).astype(np.float32)
    x[0] = 0.0
    y, _, meta = round_trip(x, "int8")
    assert meta["scale"] == pytest.approx(float(np.abs(x).max()) / 127)
    tol = meta["scale"] / 2 * (1 + 2.0**-10) + float(np.abs(x).max()) * 2.0**-23  # float32 rounding
    assert np.abs(x.astype(np.float64) - y).max() <= tol
    assert y[0] == 0.0


def test_int8_extremes_and_zero():
    x = np.array([-3.0, 0.0, 3.0, 1.5], np.float32)
    payload, meta = encode(x, "int8")
    np.testing.assert_array_equal(np.frombuffer(payload, np.int8), [-127, 0, 127, 64])  # 63.5 -> 64 (even)
    for zeros in (np.zeros((4, 3), np.float32), -np.zeros(5, np.float32), np.zeros(0, np.float32)):
        y, payload, meta = round_trip(zeros, "int8")
        assert meta == {"scale": 0.0}
        np.testing.assert_array_equal(y, 0.0)
        assert y.shape == zeros.shape and y.dtype == np.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_int8_rejects_non_finite(bad):
    x = np.array([1.0, bad, 2.0], np.float32)
    with pytest.raises(ValueError, match="'int8'.*NaN or infinity"):
        encode(x, "int8")


def test_special_values():
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan], np.float32)
    for encoding in ("bfloat16_truncate", "bfloat16", "float16"):
        with np.errstate(all="raise"):  # documented behaviour, not a warning
            y, _, _ = round_trip(specials, encoding)
        np.testing.assert_array_equal(bits(y[:4]), bits(specials[:4]), err_msg=encoding)  # signed zeros, infs
        assert np.isnan(y[4:]).all(), encoding
        assert np.signbit(y[4:]).tolist() == [False, True], encoding


def test_truncate_keeps_nans_with_low_payload():
    # 0x7F800001 is a NaN whose mantissa lives only in the low 16 bits: plain truncation gives inf.
    x = np.array([0x7F800001, 0xFF800001, 0x7FC00000], np.uint32).view(np.float32)
    y, _, _ = round_trip(x, "bfloat16_truncate")
    assert np.isnan(y).all()
    assert np.signbit(y).tolist() == [False, True, False]


def test_denormals():
    d = np.array([1e-45, -1e-40, 1.1754942e-38, 5e-42], np.float32)
    assert (np.abs(d) < np.finfo(np.float32).tiny).all()
    y, _, _ = round_trip(d, "bfloat16_truncate")
    np.testing.assert_array_equal(bits(y), bits(d) & 0xFFFF0000)
    y, _, _ = round_trip(d, "bfloat16")
    np.testing.assert_array_equal(y, d.astype(ml_dtypes.bfloat16).astype(np.float32))
    y, _, _ = round_trip(d, "float16")  # below half's smallest denormal: signed zeros
    np.testing.assert_array_equal(bits(y), bits(np.copysign(np.zeros(4, np.float32), d)))
    y, _, meta = round_trip(d, "int8")
    assert 0 < meta["scale"] < 1e-40
    assert np.abs(y - d).max() <= meta["scale"] / 2 * 1.01


def test_overflow_to_inf():
    x = np.array([65504.0, 65520.0, -1e6, 3.4028235e38], np.float32)
    with np.errstate(all="raise"):  # documented behaviour, not a warning
        y, _, _ = round_trip(x, "float16")
    np.testing.assert_array_equal(y, [65504.0, np.inf, -np.inf, np.inf])
    y, _, _ = round_trip(x[3:], "bfloat16")  # rounds up past bfloat16's largest finite value
    assert y[0] == np.inf
    y, _, _ = round_trip(x[3:], "bfloat16_truncate")
    assert np.isfinite(y[0])


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_wrong_payload_length_is_rejected(encoding):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    payload, meta = encode(x, encoding)
    data = bytes(payload)
    for bad in (data[:-1], data[: len(data) // 2], data + b"\0", data + data, b""):
        with pytest.raises(ValueError, match=f"'{encoding}'.*does not match shape"):
            decode(bad, encoding, np.float32, (3, 4), meta)
    with pytest.raises(ValueError, match=f"'{encoding}'"):
        decode(data, encoding, np.float32, (3, 5), meta)


def test_untrusted_shape_and_meta_are_rejected():
    payload, meta = encode(np.ones(4, np.float32), "int8")
    for shape in ((-4,), (2.0, 2), "ab", (True, 4), None):
        with pytest.raises(ValueError, match="'int8'"):
            decode(payload, "int8", np.float32, shape, meta)
    for bad_meta in ({}, {"scale": "1"}, {"scale": float("nan")}, {"scale": -1.0}, {"scale": 1e300},
                     {"scale": 1.0, "extra": 2}, [("scale", 1.0)], {"scale": True}):
        with pytest.raises(ValueError, match="'int8'"):
            decode(payload, "int8", np.float32, (4,), bad_meta)
    with pytest.raises(ValueError, match="'bfloat16'"):
        decode(b"\0" * 8, "bfloat16", np.float32, (4,), {"scale": 1.0})
    with pytest.raises(ValueError, match="bytes-like"):
        decode("abcd", "none", np.float32, (1,), {})
    with pytest.raises(ValueError, match="contiguous"):
        decode(np.zeros((4, 4), np.uint8)[:, ::2], "none", np.uint8, (8,), {})
    with pytest.raises(ValueError, match="add up"):
        decode(b"\1" + b"\0" * 7, "none", object, (1,), {})


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_,
                                   np.complex64, ml_dtypes.bfloat16])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_other_dtypes_pass_through(dtype, encoding):
    x = (np.arange(-6, 6).reshape(3, 4) * 1.25).astype(dtype)
    assert effective_encoding(x.dtype, encoding) == "none"
    payload, meta = encode(x, encoding)
    assert meta == {} and memoryview(payload).nbytes == x.nbytes
    y = decode(bytes(payload), encoding, x.dtype, x.shape, meta)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


def test_effective_encoding_accepts_tf_dtypes():
    assert effective_encoding(tf.float32, "int8") == "int8"
    assert effective_encoding(np.float32, "bfloat16") == "bfloat16"
    assert effective_encoding(np.dtype(">f4"), "float16") == "float16"
    assert effective_encoding(tf.float64, "int8") == "none"
    assert effective_encoding("int32", "float16") == "none"
    with pytest.raises(ValueError, match="expected one of"):
        effective_encoding(np.float32, "half")


def test_bool_payload_is_normalized():
    y = decode(b"\x00\x01\x07\xff", "none", np.bool_, (4,), {})
    assert y.view(np.uint8).tolist() == [0, 1, 1, 1]


def test_object_arrays_of_anything_but_strings_are_refused():
    with pytest.raises(ValueError, match="only bytes or str"):
        encode(np.array([1, "a"], dtype=object), "none")


def test_string_tensors_travel_as_lengths_then_bytes():
    array = np.array([[b"ab", "\u00e9"], [b"", b"\x00"]], dtype=object)
    for encoding in ENCODINGS:  # strings are never compressed
        payload, meta = encode(array, encoding)
        assert bytes(payload) == struct.pack("<4Q", 2, 2, 0, 1) + b"ab" + "\u00e9".encode() + b"\x00"
        out = decode(payload, "none", object, (2, 2), meta)
        assert out.tolist() == [[b"ab", "\u00e9".encode()], [b"", b"\x00"]]
    with pytest.raises(ValueError, match="too short"):
        decode(b"\0" * 8, "none", object, (2, 2), {})
    with pytest.raises(ValueError, match="String tensors travel under 'none'"):
        decode(b"", "int8", object, (0,), {"scale": 1.0})


def test_big_endian_and_non_contiguous_inputs():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    for view in (x.astype(">f4"), x[:, ::2], x.T):
        for encoding in ENCODINGS:
            y, _, _ = round_trip(view, encoding)
            np.testing.assert_allclose(y, view, rtol=2.0**-7, atol=24 / 127)
            assert y.dtype == (view.dtype if encoding == "none" else np.float32) and y.shape == view.shape


def test_memoryview_payload_and_decode_into_writable_buffer():
    x = np.linspace(-1, 1, 10, dtype=np.float32)
    for encoding in ENCODINGS:
        payload, meta = encode(x, encoding)
        buf = bytearray(payload)  # as if received into a preallocated buffer
        y = decode(memoryview(buf), encoding, np.float32, (2, 5), meta)
        assert y.shape == (2, 5)
    buf = bytearray(x.tobytes())
    y = decode(buf, "none", np.float32, (10,), {})
    y[0] = 5.0  # zero-copy over a writable buffer
    assert buf[:4] == np.float32(5.0).tobytes()


@settings(max_examples=30, deadline=None)
@given(
    x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
                 elements=st.floats(-1e4, 1e4, width=32)),
    encoding=st.sampled_from(ENCODINGS),
)
def test_random_shapes_round_trip(x, encoding):
    y, payload, meta = round_trip(x, encoding)
    assert y.shape == x.shape and y.dtype == np.float32
    assert memoryview(payload).nbytes == encoded_nbytes(x.nbytes, encoding)
    peak = float(np.abs(x).max()) if x.size else 0.0
    err = np.abs(x.astype(np.float64) - y)
    if encoding == "none":
        np.testing.assert_array_equal(y, x)
    elif encoding == "int8":
        assert err.max(initial=0.0) <= peak / 254 * (1 + 2.0**-10) + peak * 2.0**-23
    else:
        rel = {"bfloat16_truncate": 2.0**-7, "bfloat16": 2.0**-8, "float16": 2.0**-11}[encoding]
        # Below the target's normal range the error is bounded by its smallest denormal step instead.
        floor = 2.0**-25 if encoding == "float16" else 2.0**-133
        assert (err <= np.abs(x) * rel + floor).all()


def test_float16_is_bit_for_bit_numpys_cast():
    # Every half decodes exactly; random float32 bit patterns (NaNs, infinities, subnormals and
    # all) and values dense around the rounding and overflow boundaries encode as NumPy casts them.
    halves = np.arange(1 << 16, dtype=np.uint16).view("<f2")
    expected = halves.astype(np.float32)
    got = decode(halves.view(np.uint8), "float16", np.float32, halves.shape, {})
    assert ((got.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(got) & np.isnan(expected))).all()
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.integers(0, 1 << 32, size=1 << 20, dtype=np.uint64).astype(np.uint32).view(np.float32),
        np.linspace(-70000, 70000, 200_001, dtype=np.float32),
        (np.arange(1 << 18, dtype=np.uint32) * 257 + 0x33000000).view(np.float32),  # around 2**-25
        np.array([65504, 65519.996, 65520, 6.1035156e-05, 6.097555e-05, 2.9802322e-08, 2.9802326e-08,
                  0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan], np.float32),
    ])
    payload, _ = encode(x, "float16")
    with np.errstate(all="ignore"):
        reference = x.astype(np.float16)
    wire = np.frombuffer(payload, "<f2")
    same = wire.view(np.uint16) == reference.view(np.uint16)
    assert (same | (np.isnan(wire) & np.isnan(reference))).all()
