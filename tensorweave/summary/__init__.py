"""`tf.summary`: summary ops, event files and the Summary protos, resolved lazily (PEP 562)."""

from tensorweave.compat.namespace import module_getattr as _module_getattr

_OPS = "tensorweave.summary.summary_ops"
_PROTO = "tensorweave.summary.summary_proto"
_TABLE = {
    **{n: f"{_OPS}:{n}" for n in "scalar histogram merge merge_all image audio text tensor_summary".split()},
    **{n: f"{_PROTO}:{n}" for n in (
        "audio_summary_bytes clean_tag histogram_summary_bytes image_summary_bytes merge_summary_bytes "
        "scalar_summary_bytes summary_tensor_proto tensor_summary_bytes text_summary_bytes").split()},
    "FileWriter": "tensorweave.summary.writer:FileWriter",
    "FileWriterCache": "tensorweave.summary.writer:FileWriterCache",
    "summary_iterator": "tensorweave.summary.event_reader:summary_iterator",
    "DEFAULT_BUCKET_LIMITS": "tensorweave.summary.histogram_buckets:DEFAULT_BUCKET_LIMITS",
    "histogram_proto": "tensorweave.summary.histogram_buckets:histogram_proto",
    "encode_png": "tensorweave.summary.png:encode_png",
    "encode_wav": "tensorweave.summary.wav:encode_wav",
    "Summary": "tensorboard.compat.proto.summary_pb2:Summary",
    "SummaryDescription": "tensorboard.compat.proto.summary_pb2:SummaryDescription",
    "SummaryMetadata": "tensorboard.compat.proto.summary_pb2:SummaryMetadata",
    "Event": "tensorboard.compat.proto.event_pb2:Event",
    "SessionLog": "tensorboard.compat.proto.event_pb2:SessionLog",
    "TaggedRunMetadata": "tensorboard.compat.proto.event_pb2:TaggedRunMetadata",
}

__getattr__ = _module_getattr(_TABLE, __name__)


def __dir__():
    return sorted(_TABLE)
