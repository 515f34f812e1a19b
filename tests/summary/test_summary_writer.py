"""FileWriter and FileWriterCache, read back with TensorBoard's own loaders."""

import glob
import os
import socket
import warnings

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import (
    config_pb2,
    event_pb2,
    graph_pb2,
    meta_graph_pb2,
    summary_pb2,
)

from tensorweave.summary import (
    FileWriter,
    FileWriterCache,
    histogram_summary_bytes,
    image_summary_bytes,
    scalar_summary_bytes,
    summary_iterator,
    text_summary_bytes,
)


def make_graph_def():
    graph_def = graph_pb2.GraphDef()
    graph_def.node.add(name="x", op="Placeholder")
    graph_def.node.add(name="y", op="Square", input=["x"])
    return graph_def


class FakeGraph:
    """Stands in for tw.Graph: anything with as_graph_def()."""

    def __init__(self):
        self.add_shapes = None

    def as_graph_def(self, from_version=None, add_shapes=False):
        self.add_shapes = add_shapes
        return make_graph_def()


def event_files(logdir):
    return sorted(glob.glob(os.path.join(str(logdir), "events.out.tfevents.*")))


def accumulate(logdir):
    accumulator = event_accumulator.EventAccumulator(
        str(logdir), size_guidance={event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return accumulator


def test_scalars_and_graph_read_by_tensorboard(tmp_path):
    graph = FakeGraph()
    with FileWriter(tmp_path / "run", graph) as writer:
        for step in range(5):
            writer.add_summary(scalar_summary_bytes("loss", 1.0 / (step + 1)), global_step=step)
    assert graph.add_shapes is True
    accumulator = accumulate(tmp_path / "run")
    assert [e.step for e in accumulator.Scalars("loss")] == list(range(5))
    assert [e.value for e in accumulator.Scalars("loss")] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert accumulator.Graph() == make_graph_def()
    assert accumulator.MetaGraph().graph_def == make_graph_def()


def test_event_file_name_and_header(tmp_path):
    writer = FileWriter(str(tmp_path), filename_suffix=".v1")
    writer.add_summary(scalar_summary_bytes("a", 1.0), np.int64(3))
    writer.close()
    (path,) = event_files(tmp_path)
    name = os.path.basename(path)
    assert name.startswith("events.out.tfevents.") and name.endswith(".v1")
    assert ".%s." % socket.gethostname() in name
    events = list(summary_iterator(path))
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 3 and events[1].wall_time > 1e9
    assert writer.get_logdir() == str(tmp_path)


def test_add_summary_accepts_proto_bytes_and_session_run_results(tmp_path):
    serialized = scalar_summary_bytes("v", 2.0)
    with FileWriter(tmp_path) as writer:
        writer.add_summary(serialized, 0)
        writer.add_summary(summary_pb2.Summary.FromString(serialized), 1)
        writer.add_summary(np.bytes_(serialized), 2)
        writer.add_summary(np.array(serialized, dtype=object), 3)
        with pytest.raises(TypeError):
            writer.add_summary("not bytes")
    assert [e.step for e in accumulate(tmp_path).Scalars("v")] == [0, 1, 2, 3]


def test_metadata_kept_only_on_first_value_of_a_tag(tmp_path):
    with FileWriter(tmp_path) as writer:
        writer.add_summary(text_summary_bytes("note", "first"), 1)
        writer.add_summary(text_summary_bytes("note", "second"), 2)
    (path,) = event_files(tmp_path)
    values = [e.summary.value[0] for e in summary_iterator(path) if e.HasField("summary")]
    assert [v.HasField("metadata") for v in values] == [True, False]
    tensors = accumulate(tmp_path).Tensors("note")
    assert [t.tensor_proto.string_val[0] for t in tensors] == [b"first", b"second"]


def test_histograms_and_images_read_by_tensorboard(tmp_path):
    values = np.random.default_rng(0).normal(size=500)
    images = np.random.default_rng(1).integers(0, 256, (2, 3, 5, 3), dtype=np.uint8)
    with FileWriter(tmp_path) as writer:
        writer.add_summary(histogram_summary_bytes("weights", values), 10)
        writer.add_summary(image_summary_bytes("input", images, max_outputs=2), 10)
    accumulator = accumulate(tmp_path)
    (histogram,) = accumulator.Histograms("weights")
    assert histogram.step == 10
    assert histogram.histogram_value.num == 500
    assert sum(histogram.histogram_value.bucket) == 500
    assert histogram.histogram_value.min == values.min()
    assert accumulator.CompressedHistograms("weights")  # TensorBoard can bin it
    (image,) = accumulator.Images("input/image/1")
    assert (image.width, image.height) == (5, 3)
    assert image.encoded_image_string.startswith(b"\x89PNG")


def test_run_metadata_session_log_and_events(tmp_path):
    run_metadata = config_pb2.RunMetadata()
    run_metadata.step_stats.dev_stats.add(device="/job:localhost/replica:0/task:0/device:CPU:0")
    with FileWriter(tmp_path) as writer:
        writer.add_run_metadata(run_metadata, "step_5", global_step=5)
        with pytest.raises(ValueError, match="already used"):
            writer.add_run_metadata(run_metadata, "step_5")
        writer.add_session_log(event_pb2.SessionLog(status=event_pb2.SessionLog.START), 0)
        writer.add_event(event_pb2.Event(step=42, wall_time=1.0, log_message=event_pb2.LogMessage(message="hi")))
        with pytest.raises(TypeError):
            writer.add_event(b"not an event")
    accumulator = accumulate(tmp_path)
    assert accumulator.RunMetadata("step_5") == run_metadata
    (path,) = event_files(tmp_path)
    events = list(summary_iterator(path))
    assert events[1].tagged_run_metadata.tag == "step_5" and events[1].step == 5
    assert events[2].session_log.status == event_pb2.SessionLog.START
    assert (events[3].step, events[3].wall_time, events[3].log_message.message) == (42, 1.0, "hi")


def test_add_graph_forms(tmp_path):
    with FileWriter(tmp_path) as writer:
        writer.add_graph(make_graph_def(), global_step=1)
        writer.add_graph(None, graph_def=make_graph_def())

        class NoShapes:
            def as_graph_def(self):
                return make_graph_def()

        writer.add_graph(NoShapes())
        with pytest.raises(ValueError, match="not both"):
            writer.add_graph(FakeGraph(), graph_def=make_graph_def())
        with pytest.raises(TypeError):
            writer.add_graph(object())
        with pytest.raises(TypeError):
            writer.add_meta_graph(make_graph_def())
        writer.add_meta_graph(meta_graph_pb2.MetaGraphDef(graph_def=make_graph_def()), 2)
    (path,) = event_files(tmp_path)
    events = list(summary_iterator(path))[1:]
    assert [e.WhichOneof("what") for e in events] == ["graph_def"] * 3 + ["meta_graph_def"]
    assert graph_pb2.GraphDef.FromString(events[0].graph_def) == make_graph_def()
    assert events[0].step == 1


def test_closed_writer_warns_and_reopen_starts_new_file(tmp_path):
    writer = FileWriter(tmp_path)
    writer.add_summary(scalar_summary_bytes("a", 1.0), 0)
    writer.close()
    writer.close()  # closing twice is harmless
    with pytest.warns(UserWarning, match="closed FileWriter"):
        writer.add_summary(scalar_summary_bytes("a", 2.0), 1)
    with pytest.warns(UserWarning):
        writer.flush()
    writer.reopen()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        writer.add_summary(scalar_summary_bytes("a", 3.0), 2)
        writer.flush()
    writer.close()
    assert len(event_files(tmp_path)) == 2
    # Sorted: TensorBoard orders files by name, and two files made in the same second compare by
    # the process-wide writer counter as text ("10" before "9").
    assert sorted((e.step, e.value) for e in accumulate(tmp_path).Scalars("a")) == [(0, 1.0), (2, 3.0)]


def test_flush_makes_events_visible_while_open(tmp_path):
    writer = FileWriter(tmp_path, flush_secs=1000)
    writer.add_summary(scalar_summary_bytes("a", 1.0), 0)
    writer.flush()
    assert len(accumulate(tmp_path).Scalars("a")) == 1
    writer.close()


def test_file_writer_cache_writes_the_default_graph():
    from tensorweave.framework.graph import get_default_graph
    from tensorweave.summary import writer

    assert writer._default_graph() is get_default_graph()


def test_file_writer_cache(tmp_path, monkeypatch):
    from tensorweave.summary import writer

    graph = FakeGraph()
    monkeypatch.setattr(writer, "_default_graph", lambda: graph)
    try:
        first = FileWriterCache.get(str(tmp_path / "a"))
        assert FileWriterCache.get(str(tmp_path / "a")) is first
        other = FileWriterCache.get(str(tmp_path / "b"))
        assert other is not first
        FileWriterCache.clear()
        assert FileWriterCache.get(str(tmp_path / "a")) is not first
        with pytest.warns(UserWarning):
            first.flush()  # clear() closed it
        assert graph.add_shapes is True
    finally:
        FileWriterCache.clear()


def test_every_kind_reaches_its_tensorboard_plugin(tmp_path):
    # TensorBoard's server reads through plugin_event_accumulator, which
    # migrates TF1 values to its plugins' tensors.
    from tensorboard.backend.event_processing import plugin_event_accumulator
    from tensorweave.summary import audio_summary_bytes, merge_summary_bytes

    merged = merge_summary_bytes([
        scalar_summary_bytes("loss", 0.5),
        histogram_summary_bytes("weights", np.arange(10.0)),
        image_summary_bytes("input", np.zeros((1, 2, 2, 3), np.uint8), max_outputs=1),
        audio_summary_bytes("sound", np.zeros((1, 8), np.float32), 8000, max_outputs=1),
        text_summary_bytes("note", "hello"),
    ])
    with FileWriter(tmp_path, FakeGraph()) as writer:
        writer.add_summary(merged, 7)
    accumulator = plugin_event_accumulator.EventAccumulator(str(tmp_path))
    accumulator.Reload()
    found = {plugin: sorted(accumulator.PluginTagToContent(plugin))
             for plugin in ("scalars", "histograms", "images", "audio", "text")}
    assert found == {"scalars": ["loss"], "histograms": ["weights"], "images": ["input/image"],
                     "audio": ["sound/audio"], "text": ["note"]}
    (loss,) = accumulator.Tensors("loss")
    assert (loss.step, float(loss.tensor_proto.float_val[0])) == (7, 0.5)
    assert accumulator.Graph() == make_graph_def()
