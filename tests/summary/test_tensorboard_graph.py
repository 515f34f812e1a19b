"""The graph as TensorBoard reads it: scoped names it collapses into groups, devices it colours by,
and shapes it labels edges with; run metadata under its tag."""

from tensorboard.backend.event_processing import event_accumulator as ea

import tensorweave as tf
from tensorweave.summary.writer import use_tensorboard_file_layer


def _accumulator(path):
    use_tensorboard_file_layer()
    return ea.EventAccumulator(str(path)).Reload()


def test_graph_keeps_scopes_devices_and_shapes(tmp_path):
    with tf.Graph().as_default() as graph:
        with tf.device("/job:ps/task:0"), tf.name_scope("model"):
            w = tf.Variable(tf.zeros([3, 2]), name="w")
        with tf.device("/job:worker/task:1"), tf.name_scope("layer"):
            x = tf.placeholder(tf.float32, [None, 3], name="x")
            y = tf.matmul(x, w, name="y")
        with tf.summary.FileWriter(str(tmp_path), graph) as writer:
            writer.add_run_metadata(tf.RunMetadata(), "step000", global_step=0)
    nodes = {node.name: node for node in _accumulator(tmp_path).Graph().node}
    assert nodes["model/w"].device == "/job:ps/task:0"
    assert nodes["layer/y"].device == "/job:worker/task:1"
    assert nodes["layer/y"].input == ["layer/x", "model/w/read"]
    shape = nodes["layer/y"].attr["_output_shapes"].list.shape[0]
    assert [d.size for d in shape.dim] == [-1, 2]
    assert y.name == "layer/y:0"


def test_run_metadata_is_read_back_under_its_tag(tmp_path):
    metadata = tf.RunMetadata()
    dev = metadata.step_stats.dev_stats.add(device="/job:localhost/replica:0/task:0/device:CPU:0")
    dev.node_stats.add(node_name="MatMul", all_start_micros=5, all_end_rel_micros=7)
    with tf.summary.FileWriter(str(tmp_path)) as writer:
        writer.add_run_metadata(metadata, "step001", global_step=1)
    acc = _accumulator(tmp_path)
    assert acc.Tags()[ea.RUN_METADATA] == ["step001"]
    assert acc.RunMetadata("step001") == metadata
