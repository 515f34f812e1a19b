"""Summary ops in a graph: values, tags under name scopes, merge_all, and TensorBoard reading them."""

import glob

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import summary_pb2

import tensorweave as tf


def _parse(serialized):
    summary = summary_pb2.Summary()
    summary.ParseFromString(serialized)
    return summary


def test_scalar_and_histogram_ops_serialize_summaries_tagged_by_scope():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None])
        with tf.name_scope("layer1"):
            s = tf.summary.scalar("avg", tf.reduce_mean(x))
            h = tf.summary.histogram("values", x)
        merged = tf.summary.merge_all()
        with tf.Session() as sess:
            out_s, out_m = sess.run([s, merged], {x: [1.0, 2.0, 3.0]})
    scalar = _parse(out_s)
    assert scalar.value[0].tag == "layer1/avg"
    assert scalar.value[0].simple_value == pytest.approx(2.0)
    merged_values = {v.tag: v for v in _parse(out_m).value}
    assert set(merged_values) == {"layer1/avg", "layer1/values"}
    assert merged_values["layer1/values"].histo.num == 3
    assert h.dtype == tf.string


def test_merge_all_is_none_without_summaries():
    with tf.Graph().as_default():
        assert tf.summary.merge_all() is None


def test_image_text_and_file_writer_reach_tensorboard(tmp_path):
    with tf.Graph().as_default() as g:
        img = tf.placeholder(tf.float32, [None, 4, 4, 1])
        tf.summary.image("input", img, max_outputs=2)
        tf.summary.text("note", tf.constant("hello"))
        tf.summary.scalar("loss", tf.constant(0.5))
        merged = tf.summary.merge_all()
        writer = tf.summary.FileWriter(str(tmp_path), g)
        with tf.Session() as sess:
            for step in range(3):
                writer.add_summary(sess.run(merged, {img: np.random.rand(3, 4, 4, 1)}), step)
        writer.close()
    files = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    assert files
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert [e.step for e in acc.Scalars("loss")] == [0, 1, 2]
    assert "input/image/0" in tags["images"] and "input/image/1" in tags["images"]
    assert tags["graph"]


def test_bad_summary_input_names_the_op():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None])
        h = tf.summary.histogram("h", x)
        with tf.Session() as sess:
            with pytest.raises(tf.errors.InvalidArgumentError, match="h"):
                sess.run(h, {x: [1.0, np.nan]})
