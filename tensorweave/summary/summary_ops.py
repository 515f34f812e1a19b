"""Summary ops (`tf.summary.scalar`, `histogram`, `image`, `text`, `merge`, `merge_all`, ...).

Each op outputs a serialized `Summary` protocol buffer as a string scalar, built by the same
functions as `summary_proto` (TF1's kernels, byte for byte); `FileWriter.add_summary` takes it.
"""

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.framework.op_builder import apply_op, convert_to_tensor, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor_shape import TensorShape
from tensorweave.ops import constant_op
from tensorweave.summary import summary_proto


def _string_scalar(op):
    return [(dtypes.string, TensorShape([]))]


def define_summary(type_name, build):
    """Defines a summary op whose kernel returns `build(op, *inputs)` as a string scalar."""
    op_def = define_op(type_name, differentiable=False)
    op_def.shape_fn(_string_scalar)

    @op_def.kernel
    def _kernel(op, device):
        def summarize(*inputs):
            try:
                return np.array(build(op, *inputs), dtype=object)
            except (ValueError, TypeError) as e:
                raise op.error(errors.InvalidArgumentError, str(e)) from None
        return summarize
    return op_def


define_summary("ScalarSummary", lambda op, tags, values: summary_proto.scalar_summary_bytes(tags, values))
define_summary("HistogramSummary", lambda op, tag, values: summary_proto.histogram_summary_bytes(tag, values))
define_summary("ImageSummary", lambda op, tag, images: summary_proto.image_summary_bytes(
    tag, images, max_outputs=op.get_attr("max_images")))
define_summary("AudioSummaryV2", lambda op, tag, audio, rate: summary_proto.audio_summary_bytes(
    tag, audio, float(rate), max_outputs=op.get_attr("max_outputs")))
define_summary("TensorSummaryV2", lambda op, tag, tensor, metadata: summary_proto.tensor_summary_bytes(
    tag, tensor, summary_metadata=metadata))
define_summary("MergeSummary", lambda op, *inputs: summary_proto.merge_summary_bytes(inputs))


def _summary_scope(name, family, values):
    """(tag, scope): TF1 tags a summary with its full name scope, optionally under `family`."""
    name = summary_proto.clean_tag(name)
    if family:
        name = f"{summary_proto.clean_tag(family)}/{name}"
    return name_scope(name, values=values)


def _collect(op_output, collections):
    graph = op_output.graph
    for key in (collections if collections is not None else [GraphKeys.SUMMARIES]):
        graph.add_to_collection(key, op_output)
    return op_output


def _tag_const(scope):
    return constant_op.constant(scope.rstrip("/"), dtype=dtypes.string, name="tag")


def scalar(name, tensor, collections=None, family=None):
    """`tf.summary.scalar`: a summary of one real number, tagged with the op's name scope."""
    tensor = convert_to_tensor(tensor)
    with _summary_scope(name, family, [tensor]) as scope:
        out = apply_op("ScalarSummary", [_tag_const(scope), tensor], name=scope)
    return _collect(out, collections)


def histogram(name, values, collections=None, family=None):
    """`tf.summary.histogram`: a histogram of `values` in TF's default buckets."""
    values = convert_to_tensor(values)
    with _summary_scope(name, family, [values]) as scope:
        out = apply_op("HistogramSummary", [_tag_const(scope), values], name=scope)
    return _collect(out, collections)


def image(name, tensor, max_outputs=3, collections=None, family=None):
    """`tf.summary.image`: up to `max_outputs` images from a [batch, height, width, channels] tensor."""
    tensor = convert_to_tensor(tensor)
    with _summary_scope(name, family, [tensor]) as scope:
        out = apply_op("ImageSummary", [_tag_const(scope), tensor], {"max_images": int(max_outputs)},
                       name=scope)
    return _collect(out, collections)


def audio(name, tensor, sample_rate, max_outputs=3, collections=None, family=None):
    """`tf.summary.audio`: up to `max_outputs` clips from a [batch, frames(, channels)] tensor."""
    tensor = convert_to_tensor(tensor)
    rate = convert_to_tensor(sample_rate, dtype=dtypes.float32)
    with _summary_scope(name, family, [tensor]) as scope:
        out = apply_op("AudioSummaryV2", [_tag_const(scope), tensor, rate], {"max_outputs": int(max_outputs)},
                       name=scope)
    return _collect(out, collections)


def tensor_summary(name, tensor, summary_description=None, collections=None, summary_metadata=None,
                   family=None, display_name=None):
    """`tf.summary.tensor_summary`: the whole tensor, for plugins that read tensors."""
    from tensorboard.compat.proto import summary_pb2
    tensor = convert_to_tensor(tensor)
    metadata = summary_metadata or summary_pb2.SummaryMetadata()
    if summary_description is not None:
        metadata.summary_description = summary_description
    if display_name is not None:
        metadata.display_name = display_name
    with _summary_scope(name, family, [tensor]) as scope:
        meta = constant_op.constant(metadata.SerializeToString(), dtype=dtypes.string, name="metadata")
        out = apply_op("TensorSummaryV2", [_tag_const(scope), tensor, meta], name=scope)
    return _collect(out, collections)


def text(name, tensor, collections=None):
    """`tf.summary.text`: string tensors shown on TensorBoard's Text dashboard."""
    from tensorboard.compat.proto import summary_pb2
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
    tensor = convert_to_tensor(tensor)
    if tensor.dtype is not dtypes.string:
        raise ValueError(f"Expected tensor {tensor.name} to have dtype string, got {tensor.dtype.name}")
    return tensor_summary(name, tensor, collections=collections, summary_metadata=metadata)


def merge(inputs, collections=None, name=None):
    """`tf.summary.merge`: one summary holding the values of all `inputs`."""
    inputs = [convert_to_tensor(t) for t in inputs]
    out = apply_op("MergeSummary", inputs, name=name or "Merge/MergeSummary")
    if collections:
        _collect(out, collections)
    return out


def merge_all(key=GraphKeys.SUMMARIES, scope=None, name=None):
    """`tf.summary.merge_all`: merges every summary in collection `key`; None if there is none."""
    summaries = get_default_graph().get_collection(key, scope=scope)
    if not summaries:
        return None
    return merge(summaries, name=name)
