"""CostModel: op times and output sizes accumulated over traced steps, keyed by op and device."""

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.runtime.session import LOCAL_DEVICE
from tensorweave.tools.cost_model import CostModel

FULL_TRACE = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)


def _traced_steps(n):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 32], name="x")
        w = tf.constant(np.ones((32, 16), np.float32))
        y = tf.nn.relu(tf.matmul(x, w, name="mm"), name="act")
        out = []
        with tf.Session() as sess:
            for _ in range(n):
                md = tf.RunMetadata()
                sess.run(y, {x: np.ones((10, 32), np.float32)}, options=FULL_TRACE, run_metadata=md)
                out.append(md)
    return out


def test_costs_accumulate_over_steps_per_op_and_device():
    steps = _traced_steps(3)
    model = CostModel()
    for md in steps:
        model.add(md)  # a RunMetadata or its step_stats
    assert model.steps == 3
    assert model.count("mm") == 3 and model.count("mm", LOCAL_DEVICE) == 3 and model.count("mm", "/cpu:9") == 0
    measured = [n.all_end_rel_nanos / 1000.0 for md in steps for d in md.step_stats.dev_stats
                for n in d.node_stats if n.node_name == "mm"]
    assert model.op_time("mm") == pytest.approx(sum(measured) / 3)
    assert model.op_time("mm", LOCAL_DEVICE) == model.op_time("mm") > 0
    assert model.output_bytes("mm") == 10 * 16 * 4 and model.output_bytes("act", LOCAL_DEVICE) == 10 * 16 * 4
    top = model.top(1)
    assert len(top) == 1 and top[0].total_us == max(c.total_us for c in model.costs())
    with pytest.raises(KeyError, match="nothing"):
        model.op_time("nothing")


def test_costs_by_op_type_and_a_json_round_trip():
    model = CostModel(by="type")
    for md in _traced_steps(2):
        model.add(md.step_stats)
    assert model.count("MatMul") == 2 and model.count("Relu") == 2 and model.count("mm") == 0
    back = CostModel.from_json(model.to_json())
    assert back.by == "type" and back.steps == 2
    assert sorted((c.op, c.device, c.count, c.total_bytes) for c in back.costs()) == \
        sorted((c.op, c.device, c.count, c.total_bytes) for c in model.costs())
    assert back.op_time("MatMul") == pytest.approx(model.op_time("MatMul"))
    with pytest.raises(ValueError, match="CostModel"):
        CostModel.from_json('{"ops": 3}')
    with pytest.raises(ValueError):
        CostModel(by="colour")
