"""Summaries and event files: `tf.summary` without the graph ops."""

from tensorboard.compat.proto.event_pb2 import Event, SessionLog, TaggedRunMetadata
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryDescription

from tensorweave.summary.histogram import DEFAULT_BUCKET_LIMITS, histogram_proto
from tensorweave.summary.png import encode_png
from tensorweave.summary.summary_iterator import summary_iterator
from tensorweave.summary.summary_proto import (
    audio_summary_bytes,
    clean_tag,
    histogram_summary_bytes,
    image_summary_bytes,
    merge_summary_bytes,
    scalar_summary_bytes,
    summary_tensor_proto,
    tensor_summary_bytes,
    text_summary_bytes,
)
from tensorweave.summary.wav import encode_wav
from tensorweave.summary.writer import FileWriter, FileWriterCache
