"""`tf.saved_model.simple_save` and `tf.saved_model.loader.load`: a round trip through the
directory layout (signature JSON, MetaGraphDef, safetensors variables)."""

import json
import os

import numpy as np
import pytest

import tensorweave as tf

FEED = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)


def _save(export_dir):
    """Saves a small trained model; returns the expected output for FEED."""
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        w = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, name="W")
        y = tf.nn.relu(tf.matmul(x, w), name="y")
        sess = tf.Session()
        sess.run(tf.global_variables_initializer())
        sess.run(tf.assign_add(w, tf.ones_like(w)))  # values other than the initial ones
        tf.saved_model.simple_save(sess, export_dir, inputs={"x": x}, outputs={"y": y})
        return sess.run(y, {x: FEED})


def test_round_trip_restores_values_and_signature(tmp_path):
    export_dir = str(tmp_path / "model")
    expected = _save(export_dir)
    assert sorted(os.listdir(export_dir)) == ["saved_model.json", "saved_model.meta", "variables"]
    assert os.listdir(os.path.join(export_dir, "variables")) == ["variables.safetensors"]
    with open(os.path.join(export_dir, "saved_model.json")) as f:
        info = json.load(f)
    assert info["signature_def"]["serving_default"]["inputs"]["x"] == {"name": "x:0", "dtype": "float32",
                                                                      "shape": [None, 4]}
    with tf.Graph().as_default():
        sess = tf.Session()
        meta = tf.saved_model.loader.load(sess, [tf.saved_model.tag_constants.SERVING], export_dir)
        sig = meta.signature_def[tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
        out = sess.run(sig.outputs["y"].name, {sig.inputs["x"].name: FEED})
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_load_under_an_import_scope_renames_the_signature(tmp_path):
    export_dir = str(tmp_path / "model")
    expected = _save(export_dir)
    with tf.Graph().as_default():
        tf.Variable(0.0, name="W")  # a variable of the same name already in the graph
        sess = tf.Session()
        meta = tf.saved_model.loader.load(sess, ["serve"], export_dir, import_scope="m")
        sig = meta.signature_def["serving_default"]
        assert sig.outputs["y"].name == "m/y:0"
        np.testing.assert_allclose(sess.run("m/y:0", {"m/x:0": FEED}), expected, rtol=1e-6)


def test_simple_save_refuses_a_non_empty_directory_and_load_checks_tags(tmp_path):
    export_dir = str(tmp_path / "model")
    _save(export_dir)
    with pytest.raises(AssertionError, match="isn't empty"):
        _save(export_dir)
    with tf.Graph().as_default(), pytest.raises(RuntimeError, match="train"):
        tf.saved_model.loader.load(tf.Session(), ["train"], export_dir)
