"""tf.train.Saver on safetensors files, the `checkpoint` state file, and meta graphs."""

import hashlib
import json
import logging
import os

import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy
from google.protobuf import text_format
from tensorboard.compat.proto import meta_graph_pb2, variable_pb2

import tensorweave as tf
from tensorweave.framework import errors, meta_graph
from tensorweave.train import checkpoint_state, saver as saver_lib

X_VALUE = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0], [2.0, 0.0, 1.0]], dtype=np.float32)
Y_VALUE = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)


class CountingSession:
    """Counts `run` calls of the session it wraps."""

    def __init__(self, sess):
        self.sess = sess
        self.calls = 0

    def run(self, *args, **kwargs):
        self.calls += 1
        return self.sess.run(*args, **kwargs)


def build_model():
    """A softmax regression with a gradient-descent train op and an int64 global step."""
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    y = tf.placeholder(tf.float32, [None, 2], name="y")
    w = tf.Variable(np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2), name="W")
    b = tf.Variable(np.zeros(2, np.float32), name="b")
    step = tf.Variable(np.int64(0), trainable=False, name="global_step")
    tf.add_to_collection(tf.GraphKeys.GLOBAL_STEP, step)
    probs = tf.nn.softmax(tf.matmul(x, w) + b, name="probs")
    diff = probs - y
    loss = tf.reduce_mean(tf.reduce_sum(diff * diff, axis=1), name="loss")
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss, global_step=step, name="train")
    tf.add_to_collection("train_op", train)
    tf.add_to_collection(tf.GraphKeys.LOSSES, loss)
    return dict(x=x, y=y, w=w, b=b, step=step, loss=loss, train=train)


def feed(graph):
    return {graph.get_tensor_by_name("x:0"): X_VALUE, graph.get_tensor_by_name("y:0"): Y_VALUE}


# -- save and restore ----------------------------------------------------------------------------

VALUES = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "f64": np.array([np.pi, -np.e]),
    "i32": np.array([[1, -2]], np.int32), "step": np.int64(2**40 + 3), "flag": np.array([True, False]),
    "half": np.array([0.1, 2.5], np.float16), "bf16": np.array([1.5, -3.25], ml_dtypes.bfloat16),
    "c128": np.array([1 + 2j, -0.5j]), "u8": np.array([0, 255], np.uint8), "scalar": np.float32(-0.0),
}


def test_save_restore_round_trip_every_dtype(tmp_path):
    with tf.Graph().as_default() as g:
        variables = {k: tf.Variable(v, name=k, trainable=False) for k, v in VALUES.items()}
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            counting = CountingSession(sess)
            prefix = saver.save(counting, str(tmp_path / "model"), global_step=variables["step"])
            assert counting.calls == 1  # every value (and the step) from one run
        assert prefix == str(tmp_path / f"model-{2**40 + 3}")
        with tf.Session(graph=g) as fresh:  # new variable storage: nothing initialized
            counting = CountingSession(fresh)
            saver.restore(counting, prefix)
            assert counting.calls == 1
            restored = fresh.run(variables)
    for key, value in VALUES.items():
        value = np.asarray(value)
        assert restored[key].dtype == value.dtype and restored[key].shape == value.shape, key
        assert restored[key].tobytes() == value.tobytes(), key


def test_checkpoint_is_a_plain_safetensors_file(tmp_path):
    with tf.Graph().as_default():
        tf.Variable(np.arange(4, dtype=np.float32), name="layer/W")
        tf.Variable(np.int64(7), name="global_step")
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            prefix = saver.save(sess, str(tmp_path / "ckpt"), global_step=7)
    path = prefix + ".safetensors"
    tensors = safetensors.numpy.load_file(path)  # any safetensors tool reads it
    assert sorted(tensors) == ["global_step", "layer/W"]
    assert tensors["layer/W"].tolist() == [0, 1, 2, 3] and tensors["global_step"] == 7
    with safetensors.safe_open(path, framework="numpy") as f:
        metadata = f.metadata()
    assert metadata["global_step"] == "7" and metadata["format_version"] == saver_lib.FORMAT_VERSION
    digests = json.loads(metadata["sha256"])
    assert digests["layer/W"] == hashlib.sha256(np.arange(4, dtype=np.float32).tobytes()).hexdigest()
    assert tf.train.list_variables(str(tmp_path)) == [("global_step", []), ("layer/W", [4])]
    assert tf.train.load_variable(str(tmp_path), "layer/W:0").tolist() == [0, 1, 2, 3]

    reader = tf.train.NewCheckpointReader(prefix)  # as TF1 programs inspect checkpoints
    assert reader.get_variable_to_shape_map() == {"global_step": [], "layer/W": [4]}
    assert reader.get_variable_to_dtype_map() == {"global_step": tf.int64, "layer/W": tf.float32}
    assert reader.has_tensor("layer/W") and not reader.has_tensor("layer/b")
    w = reader.get_tensor("layer/W")
    w[0] = 9.0  # a fresh array: the reader's copy stays as read
    assert reader.get_tensor("layer/W").tolist() == [0, 1, 2, 3]
    assert reader.debug_string() == b"global_step (DT_INT64) []\nlayer/W (DT_FLOAT) [4]\n"
    with pytest.raises(tf.errors.NotFoundError, match="Key layer/b not found in checkpoint .*ckpt-7"):
        reader.get_tensor("layer/b")
    with pytest.raises(tf.errors.NotFoundError, match="no checkpoint file"):
        tf.train.NewCheckpointReader(str(tmp_path / "missing"))


def test_var_list_as_dict_renames_and_reshape(tmp_path):
    with tf.Graph().as_default():
        w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="W")
        saver = tf.train.Saver({"weights": w})
        with tf.Session() as sess:
            sess.run(w.initializer)
            prefix = saver.save(sess, str(tmp_path / "m"), write_meta_graph=False)
    assert list(safetensors.numpy.load_file(prefix + ".safetensors")) == ["weights"]
    with tf.Graph().as_default():
        flat = tf.Variable(np.zeros(6, np.float32), name="flat")
        with tf.Session() as sess:
            with pytest.raises(errors.InvalidArgumentError, match="shape"):
                tf.train.Saver({"weights": flat}).restore(sess, prefix)
            tf.train.Saver({"weights": flat}, reshape=True).restore(sess, prefix)
            assert sess.run(flat).tolist() == [0, 1, 2, 3, 4, 5]


def test_max_to_keep_state_file_and_latest_checkpoint(tmp_path):
    with tf.Graph().as_default():
        model = build_model()
        saver = tf.train.Saver(max_to_keep=2)
        base = str(tmp_path / "model")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(4):
                sess.run(model["train"], feed(sess.graph))
                saver.save(sess, base, global_step=model["step"])
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model-3.meta", "model-3.safetensors",
                                            "model-4.meta", "model-4.safetensors"]
    assert saver.last_checkpoints == [base + "-3", base + "-4"]
    text = (tmp_path / "checkpoint").read_text()
    assert text.startswith('model_checkpoint_path: "model-4"\nall_model_checkpoint_paths: "model-3"\n'
                           'all_model_checkpoint_paths: "model-4"\n')  # relative: the dir can move
    state = text_format.Parse(text, checkpoint_state.CheckpointState())
    assert len(state.all_model_checkpoint_timestamps) == 2
    assert tf.train.latest_checkpoint(str(tmp_path)) == base + "-4"
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == base + "-4"
    assert list(state.all_model_checkpoint_paths) == [base + "-3", base + "-4"]
    assert tf.train.checkpoint_exists(base + "-3") and not tf.train.checkpoint_exists(base + "-2")


def test_state_file_edge_cases(tmp_path):
    assert tf.train.latest_checkpoint(str(tmp_path)) is None
    assert tf.train.get_checkpoint_state(str(tmp_path)) is None
    tf.train.update_checkpoint_state(str(tmp_path), str(tmp_path / "gone-1"))
    assert tf.train.latest_checkpoint(str(tmp_path)) is None  # listed, but no files
    elsewhere = str(tmp_path / "other" / "model-9")
    tf.train.update_checkpoint_state(str(tmp_path), elsewhere, [elsewhere])
    assert f'model_checkpoint_path: "{elsewhere}"' in (tmp_path / "checkpoint").read_text()
    (tmp_path / "checkpoint").write_text("this is { not a proto")
    assert tf.train.get_checkpoint_state(str(tmp_path)) is None
    assert [p for p in os.listdir(tmp_path) if "tmp" in p] == []


def test_max_to_keep_none_keeps_every_file_and_pad_step_number(tmp_path):
    with tf.Graph().as_default():
        v = tf.Variable(1.0, name="v")
        saver = tf.train.Saver(max_to_keep=None, pad_step_number=True)
        with tf.Session() as sess:
            sess.run(v.initializer)
            for step in range(3):
                saver.save(sess, str(tmp_path / "m"), global_step=step, write_meta_graph=False)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m-00000000.safetensors", "m-00000001.safetensors",
                                            "m-00000002.safetensors"]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert list(state.all_model_checkpoint_paths) == [str(tmp_path / "m-00000002")]


def test_keep_checkpoint_every_n_hours(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(saver_lib.time, "time", lambda: clock[0])
    with tf.Graph().as_default():
        v = tf.Variable(1.0, name="v")
        saver = tf.train.Saver(max_to_keep=1, keep_checkpoint_every_n_hours=1.0)
        with tf.Session() as sess:
            sess.run(v.initializer)
            for step in range(6):
                clock[0] += 1800.0  # half an hour per checkpoint
                saver.save(sess, str(tmp_path / "m"), global_step=step, write_meta_graph=False)
    kept = sorted(p for p in os.listdir(tmp_path) if p.endswith(".safetensors"))
    # Saved at 0.5 h, 1 h, ... after the Saver's birth: one per hour past the first hour survives.
    assert kept == ["m-2.safetensors", "m-4.safetensors", "m-5.safetensors"]


def test_recover_and_set_last_checkpoints(tmp_path):
    with tf.Graph().as_default():
        v = tf.Variable(1.0, name="v")
        saver = tf.train.Saver(max_to_keep=2)
        with tf.Session() as sess:
            sess.run(v.initializer)
            paths = [saver.save(sess, str(tmp_path / "m"), global_step=i) for i in range(2)]
        restarted = tf.train.Saver(max_to_keep=2)
        restarted.recover_last_checkpoints(paths + [str(tmp_path / "m-99")])
        assert restarted.last_checkpoints == paths
        restarted.set_last_checkpoints_with_time([(paths[1], 5.0)])
        assert restarted.last_checkpoints == [paths[1]]


# -- meta graphs ---------------------------------------------------------------------------------

def test_meta_graph_import_restores_and_training_continues_identically(tmp_path):
    with tf.Graph().as_default() as g1:
        model = build_model()
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(model["train"], feed(g1))
            prefix = saver.save(sess, str(tmp_path / "model"), global_step=model["step"])
            expected = [sess.run([model["loss"], model["train"]], feed(g1))[0] for _ in range(2)]
            expected_w = sess.run(model["w"])
    assert os.path.exists(prefix + ".meta")

    with tf.Graph().as_default() as g2:
        restored_saver = tf.train.import_meta_graph(prefix + ".meta")
        assert [v.name for v in tf.global_variables()] == ["W:0", "b:0", "global_step:0"]
        assert [v.name for v in tf.trainable_variables()] == ["W:0", "b:0"]
        assert tf.global_variables()[0] is tf.trainable_variables()[0]
        train = tf.get_collection("train_op")[0]
        loss = tf.get_collection(tf.GraphKeys.LOSSES)[0]
        assert train.name == model["train"].name and loss.name == "loss:0"
        with tf.Session() as sess:
            restored_saver.restore(sess, tf.train.latest_checkpoint(str(tmp_path)))
            assert sess.run("global_step:0") == 3
            got = [sess.run([loss, train], feed(g2))[0] for _ in range(2)]
            assert sess.run("global_step:0") == 5
            got_w = sess.run("W:0")
    assert [a.tobytes() for a in got] == [a.tobytes() for a in expected]
    assert got_w.tobytes() == expected_w.tobytes()


def test_import_meta_graph_under_a_scope_and_without_saver_def(tmp_path):
    with tf.Graph().as_default():
        model = build_model()
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            prefix = saver.save(sess, str(tmp_path / "model"))
            w_value = sess.run(model["w"])
        meta = saver.export_meta_graph()
    with tf.Graph().as_default():
        scoped = tf.train.import_meta_graph(meta, import_scope="copy")
        assert [v.name for v in tf.global_variables()] == ["copy/W:0", "copy/b:0", "copy/global_step:0"]
        with tf.Session() as sess:
            scoped.restore(sess, prefix)
            assert sess.run("copy/W:0").tobytes() == w_value.tobytes()
    meta.ClearField("saver_def")
    with tf.Graph().as_default():
        fresh = tf.train.import_meta_graph(meta, clear_devices=True)
        assert fresh is not None
        with tf.Session() as sess:
            fresh.restore(sess, prefix)
            assert sess.run("W:0").tobytes() == w_value.tobytes()
    with tf.Graph().as_default():
        tf.placeholder(tf.float32, name="p")
        assert tf.train.import_meta_graph(tf.train.export_meta_graph()) is None  # no variables


def test_export_meta_graph_collections(tmp_path, caplog):
    with tf.Graph().as_default() as g:
        model = build_model()
        saver = tf.train.Saver()
        tf.add_to_collection(tf.GraphKeys.SUMMARIES, model["loss"])
        tf.add_to_collection(tf.GraphKeys.SAVERS, saver)
        tf.add_to_collection("ints", 3)
        tf.add_to_collection("ints", True)
        tf.add_to_collection("floats", 0.5)
        tf.add_to_collection("strings", "hello")
        tf.add_to_collection("strings", b"\xff")
        tf.add_to_collection("custom_vars", model["w"])
        tf.add_to_collection("junk", object())
        tf.add_to_collection("mixed", 1)
        tf.add_to_collection("mixed", "a")
        path = str(tmp_path / "graph.meta")
        with caplog.at_level(logging.WARNING):
            meta = tf.train.export_meta_graph(path, saver_def=saver.as_saver_def())
        assert "junk" in caplog.text and "mixed" in caplog.text
    assert "junk" not in meta.collection_def and "mixed" not in meta.collection_def
    cd = meta.collection_def
    assert list(cd["train_op"].node_list.value) == [model["train"].name]
    assert list(cd[tf.GraphKeys.LOSSES].node_list.value) == ["loss:0"]
    assert list(cd[tf.GraphKeys.SUMMARIES].node_list.value) == ["loss:0"]
    assert list(cd["ints"].int64_list.value) == [3, 1]
    assert list(cd["floats"].float_list.value) == [0.5]
    assert list(cd["strings"].bytes_list.value) == [b"hello", b"\xff"]
    assert list(cd["custom_vars"].node_list.value) == ["W:0"]
    var_defs = [variable_pb2.VariableDef.FromString(b) for b in cd[tf.GraphKeys.GLOBAL_VARIABLES].bytes_list.value]
    assert [(d.variable_name, d.initializer_name, d.snapshot_name) for d in var_defs][0] == \
        ("W:0", "W/Assign", "W/read:0")
    assert len(cd[tf.GraphKeys.TRAINABLE_VARIABLES].bytes_list.value) == 2
    assert meta.saver_def.restore_op_name == "save/restore_all" and meta.saver_def.version == 2
    assert meta.meta_info_def.tensorflow_version.startswith("tensorweave")
    assert meta_graph_pb2.MetaGraphDef.FromString(open(path, "rb").read()) == meta
    assert meta.graph_def.node[0].attr["_output_shapes"].list.shape  # as TF exports

    text_path = str(tmp_path / "graph.meta.txt")
    tf.train.export_meta_graph(text_path, as_text=True, graph=g)
    with tf.Graph().as_default():
        tf.train.import_meta_graph(text_path)
        assert tf.get_collection("ints") == [3, 1] and tf.get_collection("strings") == [b"hello", b"\xff"]
        assert tf.get_collection("custom_vars")[0].name == "W:0"
        savers = tf.get_collection(tf.GraphKeys.SAVERS)
        assert len(savers) == 1 and savers[0].as_saver_def().restore_op_name == "save/restore_all"


def test_export_meta_graph_with_export_scope():
    with tf.Graph().as_default():
        with tf.name_scope("tower"):
            w = tf.Variable([1.0, 2.0], name="W")
            tf.identity(w.value() * 2.0, name="out")
        tf.Variable(0.0, name="outside")
        meta = tf.train.export_meta_graph(export_scope="tower", clear_devices=True)
    names = [n.name for n in meta.graph_def.node]
    assert "W" in names and "out" in names and not any(n.startswith("outside") for n in names)
    with tf.Graph().as_default():
        tf.train.import_meta_graph(meta, import_scope="tower2")
        assert [v.name for v in tf.global_variables()] == ["tower2/W:0"]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert sess.run("tower2/out:0").tolist() == [2.0, 4.0]


def test_read_meta_graph_file_errors(tmp_path):
    with pytest.raises(errors.NotFoundError, match="missing.meta"):
        meta_graph.read_meta_graph_file(str(tmp_path / "missing.meta"))
    bad = tmp_path / "bad.meta"
    bad.write_bytes(b"\xff\xfe\x00 definitely { not")
    with pytest.raises(errors.DataLossError, match="bad.meta"):
        tf.train.import_meta_graph(str(bad))


# -- graphs finalized before the first restore ------------------------------------------------------

def test_finalized_graph_still_saves_and_restores(tmp_path):
    with tf.Graph().as_default() as g:
        model = build_model()
        saver = tf.train.Saver()
        deferred = tf.train.Saver(defer_build=True)
        init = tf.global_variables_initializer()
        g.finalize()
        with tf.Session() as sess:
            sess.run(init)
            sess.run(model["train"], feed(g))
            prefix = saver.save(sess, str(tmp_path / "m"))
            other = deferred.save(sess, str(tmp_path / "d"))  # saving needs no new ops
            w_value = sess.run(model["w"])
        with tf.Session() as sess:
            saver.restore(sess, prefix)
            assert sess.run(model["w"]).tobytes() == w_value.tobytes()
            with pytest.raises(RuntimeError, match="finalized"):
                deferred.restore(sess, other)


def test_empty_var_list():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="No variables to save"):
            tf.train.Saver()
        empty = tf.train.Saver(allow_empty=True)
        with tf.Session() as sess:
            assert empty.save(sess, "/nonexistent/x") is None
            empty.restore(sess, "/nonexistent/x")


# -- corruption and mismatches ----------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    """(graph, saver, prefix, file path, W's value) of a trained model's checkpoint."""
    g = tf.Graph()
    with g.as_default():
        model = build_model()
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(model["train"], feed(g))
            prefix = saver.save(sess, str(tmp_path / "model"), global_step=1)
            w_value = sess.run(model["w"])
    return g, saver, prefix, prefix + ".safetensors", w_value


def _restore_error(saved):
    g, saver, prefix, path, _ = saved
    with tf.Session(graph=g) as sess:
        with pytest.raises(errors.OpError) as info:
            saver.restore(sess, prefix)
    assert path in str(info.value)
    return info.value


def test_truncated_file_is_data_loss(saved):
    path = saved[3]
    data = open(path, "rb").read()
    for keep in (0, 7, 50, len(data) // 2, len(data) - 1):
        with open(path, "wb") as f:
            f.write(data[:keep])
        assert isinstance(_restore_error(saved), errors.DataLossError)


def test_flipped_byte_in_tensor_data_is_data_loss(saved):
    path = saved[3]
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x01  # the last tensor's bytes: safetensors alone would load this
    open(path, "wb").write(bytes(data))
    safetensors.numpy.load_file(path)
    error = _restore_error(saved)
    assert isinstance(error, errors.DataLossError) and "SHA-256" in str(error)


def test_every_single_bit_flip_is_data_loss(saved):
    """Header (length, JSON, metadata, padding) or tensor bytes: any flipped bit is caught."""
    path = saved[3]
    data = open(path, "rb").read()
    for position in range(len(data)):
        corrupted = bytearray(data)
        corrupted[position] ^= 1 << (position % 8)
        open(path, "wb").write(bytes(corrupted))
        with pytest.raises(errors.DataLossError, match="corrupted"):
            saver_lib.read_checkpoint(saved[2])
    open(path, "wb").write(data)
    saver_lib.read_checkpoint(saved[2])


def test_flipped_byte_in_header_is_data_loss(saved):
    path = saved[3]
    data = bytearray(open(path, "rb").read())
    header_end = 8 + int.from_bytes(data[:8], "little")
    position = data.index(b'"global_step"', 8, header_end) + 3
    data[position] ^= 0x02
    open(path, "wb").write(bytes(data))
    assert isinstance(_restore_error(saved), errors.DataLossError)


def test_missing_file_is_not_found(saved):
    os.remove(saved[3])
    error = _restore_error(saved)
    assert isinstance(error, errors.NotFoundError) and isinstance(error, ValueError)


def test_shape_and_dtype_mismatch_are_invalid_argument(saved, tmp_path):
    prefix = saved[2]
    with tf.Graph().as_default():
        tf.Variable(np.zeros((3, 3), np.float32), name="W")
        saver = tf.train.Saver()
        with tf.Session() as sess:
            with pytest.raises(errors.InvalidArgumentError) as info:
                saver.restore(sess, prefix)
    assert "W" in str(info.value) and prefix + ".safetensors" in str(info.value) and "[3, 2]" in str(info.value)
    with tf.Graph().as_default():
        tf.Variable(np.zeros((3, 2), np.float64), name="W")
        with tf.Session() as sess, pytest.raises(errors.InvalidArgumentError, match="float64"):
            tf.train.Saver().restore(sess, prefix)


def test_missing_variable_is_not_found(saved):
    prefix = saved[2]
    with tf.Graph().as_default():
        tf.Variable(np.zeros((3, 2), np.float32), name="W")
        tf.Variable(np.zeros(4, np.float32), name="extra")
        with tf.Session() as sess:
            with pytest.raises(errors.NotFoundError) as info:
                tf.train.Saver().restore(sess, prefix)
    assert "extra" in str(info.value) and prefix + ".safetensors" in str(info.value)


def test_restore_none_and_unsaveable_var_list(saved):
    g, saver = saved[0], saved[1]
    with tf.Session(graph=g) as sess, pytest.raises(ValueError, match="None"):
        saver.restore(sess, None)
    with tf.Graph().as_default(), pytest.raises(TypeError, match="not a Variable"):
        tf.train.Saver([tf.constant(1.0)])


# -- atomic writes -----------------------------------------------------------------------------------

def test_saves_are_atomic(saved, monkeypatch):
    g, saver, prefix, path, w_value = saved
    directory = os.path.dirname(path)
    before = sorted(os.listdir(directory))
    assert not [p for p in before if p.startswith(".")]  # no temp files left by earlier saves

    def broken_replace(src, dst):
        raise OSError("disk full")
    from tensorweave.framework import graph_io
    monkeypatch.setattr(graph_io.os, "replace", broken_replace)
    with tf.Session(graph=g) as sess:
        sess.run(g.get_operation_by_name("init"))
        with pytest.raises(OSError, match="disk full"):
            saver.save(sess, prefix[:-2], global_step=1)
    monkeypatch.undo()
    assert sorted(os.listdir(directory)) == before
    with tf.Session(graph=g) as sess:
        saver.restore(sess, prefix)  # the earlier checkpoint is intact
        assert sess.run("W:0").tobytes() == w_value.tobytes()


def test_save_needs_an_existing_directory(tmp_path):
    with tf.Graph().as_default():
        v = tf.Variable(1.0, name="v")
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(v.initializer)
            with pytest.raises(ValueError, match="Parent directory"):
                saver.save(sess, str(tmp_path / "nope" / "m"))
            with pytest.raises(ValueError, match="path components"):
                saver.save(sess, str(tmp_path / "m"), latest_filename="a/b")
