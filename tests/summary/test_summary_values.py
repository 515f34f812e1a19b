"""Scalar, merge, tensor, text and audio summaries, parsed back with summary_pb2."""

import io
import wave

import ml_dtypes
import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2, types_pb2
from tensorboard.util import tensor_util

from tensorweave.summary import (
    audio_summary_bytes,
    clean_tag,
    histogram_summary_bytes,
    merge_summary_bytes,
    scalar_summary_bytes,
    tensor_summary_bytes,
    text_summary_bytes,
)


def parse(serialized):
    return summary_pb2.Summary.FromString(serialized)


@pytest.mark.parametrize("name, cleaned", [
    ("loss", "loss"),
    ("ok/name-1.2_x", "ok/name-1.2_x"),
    ("a b:c(d)", "a_b_c_d_"),
    ("//lead/ing", "lead/ing"),
    (None, None),
])
def test_clean_tag(name, cleaned):
    assert clean_tag(name) == cleaned


def test_scalar_is_float32_simple_value():
    (value,) = parse(scalar_summary_bytes("loss", np.float64(0.1))).value
    assert value.tag == "loss"
    assert value.simple_value == float(np.float32(0.1))
    (value,) = parse(scalar_summary_bytes(b"steps", np.int64(7))).value
    assert (value.tag, value.simple_value) == ("steps", 7.0)


def test_scalar_with_tag_vector():
    summary = parse(scalar_summary_bytes(np.array([b"a", b"b"], dtype=object), [1.5, 2.5]))
    assert [(v.tag, v.simple_value) for v in summary.value] == [("a", 1.5), ("b", 2.5)]


def test_scalar_shape_mismatch_names_shapes_and_tag():
    with pytest.raises(ValueError, match=r"not the same shape: \[\] != \[2\] \(tag 'x'\)"):
        scalar_summary_bytes("x", [1.0, 2.0])
    with pytest.raises(TypeError):
        scalar_summary_bytes("x", "1.0")


def test_merge_concatenates_values_in_order():
    a = scalar_summary_bytes("a", 1.0)
    b = histogram_summary_bytes("b", [1.0, 2.0])
    c = scalar_summary_bytes(np.array(["c", "d"]), [3.0, 4.0])
    merged = parse(merge_summary_bytes([a, np.array([b, c], dtype=object)]))
    assert [v.tag for v in merged.value] == ["a", "b", "c", "d"]
    assert merged.value[1].histo.num == 2


def test_merge_rejects_duplicate_tags_naming_them():
    with pytest.raises(ValueError, match="^Duplicate tag loss found in summary inputs$"):
        merge_summary_bytes([scalar_summary_bytes("loss", 1.0), scalar_summary_bytes("loss", 2.0)])


def test_merge_allows_repeated_empty_tags():
    untagged = tensor_summary_bytes("", np.float32(1.0))
    assert len(parse(merge_summary_bytes([untagged, untagged])).value) == 2


def test_merge_rejects_garbage():
    with pytest.raises(ValueError, match="Could not parse"):
        merge_summary_bytes([b"\xff\xff\xff"])


def test_text_summary_has_text_plugin_metadata():
    (value,) = parse(text_summary_bytes("notes", "héllo **world**")).value
    assert value.tag == "notes"
    assert value.metadata.plugin_data.plugin_name == "text"
    assert value.tensor.dtype == types_pb2.DT_STRING
    assert list(value.tensor.string_val) == ["héllo **world**".encode()]
    assert len(value.tensor.tensor_shape.dim) == 0


def test_text_summary_of_string_table():
    table = np.array([["a", "b"], ["c", "d"]])
    (value,) = parse(text_summary_bytes("table", table)).value
    np.testing.assert_array_equal(tensor_util.make_ndarray(value.tensor).astype(str), table)
    with pytest.raises(ValueError, match="dtype string"):
        text_summary_bytes("bad", np.arange(3))


@pytest.mark.parametrize("array", [
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.array([-1, 2 ** 40], dtype=np.int64),
    np.array([True, False]),
    np.float64(2.5),
    np.array([1 + 2j], dtype=np.complex64),
    np.arange(4, dtype=np.float16).astype(">f2"),
])
def test_tensor_summary_round_trips(array):
    (value,) = parse(tensor_summary_bytes("t", array)).value
    np.testing.assert_array_equal(tensor_util.make_ndarray(value.tensor), array)
    assert value.tensor.tensor_content  # TensorSummaryV2 packs non-strings


def test_tensor_summary_bfloat16_and_metadata():
    array = np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16)
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="custom", content=b"\x01"))
    serialized = tensor_summary_bytes("t", array, metadata.SerializeToString(),
                                      summary_description="desc", display_name="shown")
    (value,) = parse(serialized).value
    assert value.tensor.dtype == types_pb2.DT_BFLOAT16
    assert np.frombuffer(value.tensor.tensor_content, ml_dtypes.bfloat16).tolist() == [1.5, -2.0]
    assert value.metadata.plugin_data.plugin_name == "custom"
    assert value.metadata.plugin_data.content == b"\x01"
    assert (value.metadata.summary_description, value.metadata.display_name) == ("desc", "shown")


def _wav(encoded):
    with wave.open(io.BytesIO(encoded)) as reader:
        frames = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
        return reader.getframerate(), reader.getnchannels(), frames.reshape(-1, reader.getnchannels())


def test_audio_summary_wav_samples():
    half = 0.5 / 32768
    clips = np.array([[[0.0, 1.0], [-1.0, 2.0], [half, -half], [0.25, -0.25]]], dtype=np.float32)
    (value,) = parse(audio_summary_bytes("speech", clips, sample_rate=16000.4, max_outputs=1)).value
    assert value.tag == "speech/audio"
    audio = value.audio
    assert (audio.num_channels, audio.length_frames, audio.content_type) == (2, 4, "audio/wav")
    assert audio.sample_rate == pytest.approx(16000.4)
    rate, channels, frames = _wav(audio.encoded_audio_string)
    assert (rate, channels) == (16000, 2)
    # x * 32768, rounded half away from zero, clipped to int16.
    np.testing.assert_array_equal(frames, [[0, 32767], [-32768, 32767], [1, -1], [8192, -8192]])


def test_audio_summary_mono_batch_tags():
    clips = np.zeros((4, 10), dtype=np.float32)
    summary = parse(audio_summary_bytes("a", clips, 8000))
    assert [v.tag for v in summary.value] == ["a/audio/0", "a/audio/1", "a/audio/2"]
    assert _wav(summary.value[0].audio.encoded_audio_string)[2].shape == (10, 1)
    with pytest.raises(ValueError, match="sample_rate must be > 0"):
        audio_summary_bytes("a", clips, 0.0)
    with pytest.raises(ValueError, match="3-D or 2-D"):
        audio_summary_bytes("a", np.zeros(3, np.float32), 8000)
