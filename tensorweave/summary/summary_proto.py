"""Serialized `Summary` protos built from NumPy values, as TF1's summary kernels do.

Each `*_summary_bytes` function is the body of one TF1 kernel (`ScalarSummary`,
`HistogramSummary`, `MergeSummary`, `ImageSummary`, `AudioSummaryV2`,
`TensorSummaryV2`): it takes the kernel's inputs as NumPy values and returns
the bytes the kernel's scalar string output holds. Where the kernel fails with
InvalidArgument these raise `ValueError` with TF's message; a wrong input dtype
(caught by TF when the op is built) raises `TypeError`.
"""

import logging
import re

import numpy as np
from google.protobuf import message
from tensorboard.compat.proto import summary_pb2, tensor_pb2, types_pb2

from tensorweave.summary.histogram_buckets import histogram_proto, real_array
from tensorweave.summary.png import encode_png
from tensorweave.summary.wav import encode_wav

_log = logging.getLogger(__name__)

_INVALID_TAG_CHARACTERS = re.compile(r"[^-/\w\.]")

# Default `bad_color` attr of TF's ImageSummary: opaque red.
_BAD_COLOR = (255, 0, 0, 255)

_DATA_TYPES = {
    np.dtype(np.float16): types_pb2.DT_HALF,
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.uint16): types_pb2.DT_UINT16,
    np.dtype(np.uint32): types_pb2.DT_UINT32,
    np.dtype(np.uint64): types_pb2.DT_UINT64,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
    np.dtype(np.complex64): types_pb2.DT_COMPLEX64,
    np.dtype(np.complex128): types_pb2.DT_COMPLEX128,
}


def clean_tag(name):
    """Replaces characters TF1 does not allow in summary names with `_`.

    As TF1's `summary_op_util.clean_tag`: anything other than letters, digits,
    `_`, `-`, `/` and `.` becomes `_`, and leading slashes are stripped.
    `None` passes through.
    """
    if name is None:
        return None
    cleaned = _INVALID_TAG_CHARACTERS.sub("_", name).lstrip("/")
    if cleaned != name:
        _log.info("Summary name %s is illegal; using %s instead.", name, cleaned)
    return cleaned


def _text(value):
    if isinstance(value, np.ndarray):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError("Summary tags are strings, got %r" % (value,))


def _shape_string(shape):
    return "[%s]" % ",".join(str(dim) for dim in shape)


def _scalar_tag(tag):
    tags = np.asarray(tag, dtype=object)
    if tags.size != 1 or tags.ndim > 1:
        raise ValueError("Tags must be a scalar, got shape %s" % _shape_string(tags.shape))
    return _text(tags.reshape(()).item())


def scalar_summary_bytes(tag, value):
    """`Summary` bytes with one `simple_value` (float32) per tag.

    As TF1's `ScalarSummary`: `tag` and `value` are scalars, or arrays of the
    same shape giving one summary value per element.
    """
    tags = np.asarray(tag, dtype=object)
    values = real_array(value, "Scalar summaries")
    if tags.shape != values.shape:
        single = " (tag '%s')" % _text(tags.ravel()[0]) if tags.size == 1 else ""
        raise ValueError("tags and values are not the same shape: %s != %s%s" % (
            _shape_string(tags.shape), _shape_string(values.shape), single))
    summary = summary_pb2.Summary()
    for one_tag, one_value in zip(tags.ravel(), values.ravel(), strict=True):
        summary.value.add(tag=_text(one_tag), simple_value=float(np.float32(one_value)))
    return summary.SerializeToString()


def histogram_summary_bytes(tag, values):
    """`Summary` bytes with one `HistogramProto` of `values` in TF's default buckets."""
    tag = _scalar_tag(tag)
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag).histo.CopyFrom(histogram_proto(values, tag=tag))
    return summary.SerializeToString()


def _serialized_inputs(inputs):
    for item in inputs:
        if isinstance(item, (bytes, bytearray)):
            yield bytes(item)
        elif isinstance(item, np.ndarray):
            for element in item.ravel():
                yield element
        elif isinstance(item, summary_pb2.Summary):
            yield item.SerializeToString()
        else:
            raise TypeError("merge_summary_bytes takes serialized Summary protos, got %r"
                            % type(item).__name__)


def merge_summary_bytes(inputs):
    """Concatenates the values of serialized `Summary` protos, as TF1's `MergeSummary`.

    `inputs` is a list of serialized summaries (bytes, or NumPy string arrays
    of them as `Session.run` returns). A non-empty tag seen twice raises
    `ValueError("Duplicate tag <tag> found in summary inputs")`.
    """
    merged = summary_pb2.Summary()
    tags = set()
    for serialized in _serialized_inputs(inputs):
        summary = summary_pb2.Summary()
        try:
            summary.ParseFromString(serialized)
        except (message.DecodeError, TypeError):
            raise ValueError("Could not parse one of the summary inputs") from None
        for value in summary.value:
            # Tensor summaries may leave the tag empty; those never collide.
            if value.tag and value.tag in tags:
                raise ValueError("Duplicate tag %s found in summary inputs" % value.tag)
            tags.add(value.tag)
            merged.value.add().CopyFrom(value)
    return merged.SerializeToString()


def _float_image_to_uint8(image, bad_color):
    """TF's NormalizeFloatImage: scale one (h, w, depth) float image into uint8."""
    finite = np.isfinite(image).all(axis=-1)
    # TF takes min and max in float32 over pixels whose channels are all finite.
    good = image[finite].astype(np.float32)
    image_min = good.min() if good.size else np.float32(np.inf)
    image_max = good.max() if good.size else np.float32(-np.inf)
    zero_threshold = np.float32(1e-6)
    # Non-negative images are scaled so the maximum is 255; images with
    # negative values are scaled by their largest magnitude and centred on 128.
    if image_min < 0:
        max_val = max(abs(image_min), abs(image_max))
        scale = np.float32(0) if max_val < zero_threshold else np.float32(127) / max_val
        offset = 128
    else:
        scale = np.float32(0) if image_max < zero_threshold else np.float32(255) / image_max
        offset = 0
    kind = image.dtype.type
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = image * kind(scale) + kind(offset)
    # C++'s float-to-uint8 cast truncates toward zero.
    pixels = np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)
    pixels[~finite] = bad_color
    return pixels


def image_summary_bytes(tag, images, max_outputs=3, bad_color=_BAD_COLOR):
    """`Summary` bytes with up to `max_outputs` PNG images, as TF1's `ImageSummary`.

    `images` is NHWC with 1 (gray), 3 (RGB) or 4 (RGBA) channels. uint8 pixels
    are written as they are; float16/32/64 images are rescaled one by one as TF
    does (all non-negative: times 255/max; otherwise 127/max|x| plus 128), and
    pixels with a non-finite channel take `bad_color`. Tags are `tag/image`
    when `max_outputs == 1`, else `tag/image/0`, `tag/image/1`, ...
    """
    tag = _scalar_tag(tag)
    if max_outputs < 1:
        raise ValueError("max_outputs must be >= 1, got %d" % max_outputs)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] not in (1, 3, 4):
        raise ValueError("Tensor must be 4-D with last dim 1, 3, or 4, not %s"
                         % _shape_string(images.shape))
    batch, height, width, depth = images.shape
    if height * width == 0:
        raise ValueError("input tensor must have non-zero dims. Found: %s."
                         % _shape_string(images.shape))
    if images.dtype == np.uint8:
        to_uint8 = None
    elif images.dtype in (np.float16, np.float32, np.float64):
        bad_color = np.asarray(bad_color, dtype=np.uint8).ravel()
        if bad_color.size < depth:
            raise ValueError("expected depth <= bad_color.size, got depth = %d, "
                             "bad_color.size = %d" % (depth, bad_color.size))
        to_uint8 = _float_image_to_uint8
    else:
        raise TypeError("Image summaries take uint8, float16, float32 or float64 "
                        "images, got %s" % images.dtype)
    summary = summary_pb2.Summary()
    for i in range(min(max_outputs, batch)):
        # The tag depends on how many images were asked for, not how many exist.
        value = summary.value.add(
            tag="%s/image/%d" % (tag, i) if max_outputs > 1 else tag + "/image")
        pixels = images[i] if to_uint8 is None else to_uint8(images[i], bad_color[:depth])
        value.image.height = height
        value.image.width = width
        value.image.colorspace = depth
        value.image.encoded_image_string = encode_png(pixels)
    return summary.SerializeToString()


def audio_summary_bytes(tag, audio, sample_rate, max_outputs=3):
    """`Summary` bytes with up to `max_outputs` WAV clips, as TF1's `AudioSummaryV2`.

    `audio` is float `[batch, frames]` or `[batch, frames, channels]` in
    [-1, 1]; tags are `tag/audio` when `max_outputs == 1`, else `tag/audio/<i>`.
    """
    tag = _scalar_tag(tag)
    if max_outputs < 1:
        raise ValueError("max_outputs must be >= 1, got %d" % max_outputs)
    audio = np.asarray(real_array(audio, "Audio summaries"), dtype=np.float32)
    if audio.ndim not in (2, 3):
        raise ValueError("Tensor must be 3-D or 2-D, got: %s" % _shape_string(audio.shape))
    sample_rate = float(np.float32(sample_rate))
    if not sample_rate > 0:
        raise ValueError("sample_rate must be > 0")
    batch, frames = audio.shape[:2]
    channels = 1 if audio.ndim == 2 else audio.shape[2]
    # lrintf rounds to nearest even; TF never writes a rate of 0.
    wav_rate = max(int(np.rint(sample_rate)), 1)
    summary = summary_pb2.Summary()
    for i in range(min(max_outputs, batch)):
        value = summary.value.add(
            tag="%s/audio/%d" % (tag, i) if max_outputs > 1 else tag + "/audio")
        value.audio.sample_rate = sample_rate
        value.audio.num_channels = channels
        value.audio.length_frames = frames
        value.audio.content_type = "audio/wav"
        value.audio.encoded_audio_string = encode_wav(
            audio[i].reshape(frames, channels), wav_rate)
    return summary.SerializeToString()


def _string_bytes(element):
    if isinstance(element, bytes):
        return element
    if isinstance(element, str):
        return element.encode("utf-8")
    raise TypeError("Expected a string tensor, found element %r" % (element,))


def summary_tensor_proto(array):
    """The `TensorProto` TF's `TensorSummaryV2` stores for `array`.

    Strings go in `string_val` (TensorBoard cannot read them from
    `tensor_content`); every other dtype goes in little-endian `tensor_content`.
    """
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto()
    proto.tensor_shape.SetInParent()  # TF writes the shape even for scalars
    for dim in array.shape:
        proto.tensor_shape.dim.add(size=dim)
    if array.dtype.kind in "SUO":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(_string_bytes(element) for element in array.ravel())
        return proto
    if array.dtype.name == "bfloat16":
        proto.dtype = types_pb2.DT_BFLOAT16
    elif array.dtype.newbyteorder("=") in _DATA_TYPES:
        proto.dtype = _DATA_TYPES[array.dtype.newbyteorder("=")]
    else:
        raise TypeError("No TensorFlow dtype for NumPy dtype %s" % array.dtype)
    proto.tensor_content = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return proto


def _summary_metadata(summary_metadata):
    if summary_metadata is None:
        return summary_pb2.SummaryMetadata()
    if isinstance(summary_metadata, summary_pb2.SummaryMetadata):
        return summary_metadata
    parsed = summary_pb2.SummaryMetadata()
    parsed.ParseFromString(_string_bytes(np.asarray(summary_metadata, dtype=object).item()))
    return parsed


def tensor_summary_bytes(tag, tensor, summary_metadata=None,
                         summary_description=None, display_name=None):
    """`Summary` bytes holding `tensor` whole, as TF1's `tf.summary.tensor_summary`.

    `summary_metadata` is a `SummaryMetadata` proto or its serialized bytes
    (what `TensorSummaryV2` takes); `summary_description` and `display_name`
    are set on it when given.
    """
    tag = _scalar_tag(tag)
    metadata = summary_pb2.SummaryMetadata()
    metadata.CopyFrom(_summary_metadata(summary_metadata))
    if summary_description is not None:
        metadata.summary_description = summary_description
    if display_name is not None:
        metadata.display_name = display_name
    summary = summary_pb2.Summary()
    value = summary.value.add(tag=tag)
    value.tensor.CopyFrom(summary_tensor_proto(tensor))
    value.metadata.CopyFrom(metadata)
    return summary.SerializeToString()


def text_summary_bytes(tag, text):
    """`Summary` bytes for TensorBoard's Text dashboard, as TF1's `tf.summary.text`.

    `text` is a string or an array of strings (any shape); it is stored as a
    DT_STRING tensor with plugin metadata naming the `text` plugin.
    """
    array = np.asarray(text, dtype=object if isinstance(text, (bytes, str)) else None)
    is_string = array.dtype.kind in "SU" or array.dtype.kind == "O" and all(
        isinstance(element, (bytes, str)) for element in array.ravel())
    if not is_string:
        raise ValueError("Expected tensor %s to have dtype string, got %s" % (tag, array.dtype))
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
    return tensor_summary_bytes(tag, array, summary_metadata=metadata)
