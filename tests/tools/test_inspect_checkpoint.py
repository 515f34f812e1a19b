"""`tensorweave checkpoint inspect`: variables, dtypes, shapes, global step; corruption exits 1."""

import json

import ml_dtypes
import numpy as np
import pytest

import tensorweave as tf
from tensorweave import cli


@pytest.fixture
def checkpoint_dir(tmp_path):
    with tf.Graph().as_default():
        tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="layer/W")
        tf.Variable(np.array([1.5, -3.25], ml_dtypes.bfloat16), name="b16")
        tf.Variable(np.array([3 + 4j]), name="c")
        tf.Variable(np.zeros((0, 4), np.int32), name="empty")
        step = tf.Variable(np.int64(0), trainable=False, name="global_step")
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            saver.save(sess, str(tmp_path / "model"), global_step=7)
            sess.run(tf.assign(step, 12))
            saver.save(sess, str(tmp_path / "model"), global_step=step)
    return tmp_path


def _inspect(capsys, *argv):
    status = cli.main(["checkpoint", "inspect", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_lists_variables_dtypes_shapes_and_global_step(checkpoint_dir, capsys):
    status, out, _ = _inspect(capsys, str(checkpoint_dir / "model-7"))
    assert status == 0
    lines = out.splitlines()
    assert lines[:3] == [f"checkpoint: {checkpoint_dir / 'model-7.safetensors'}", "global step: 7",
                         "variables: 5, checksums verified"]
    assert [line.split() for line in lines[3:]] == [
        ["b16", "bfloat16", "[2]"], ["c", "complex128", "[1]"], ["empty", "int32", "[0,", "4]"],
        ["global_step", "int64", "[]"], ["layer/W", "float32", "[2,", "3]"]]


def test_a_directory_means_its_latest_checkpoint_and_values_are_summarized(checkpoint_dir, capsys):
    status, out, _ = _inspect(capsys, str(checkpoint_dir), "--values")
    assert status == 0 and "global step: 12" in out and "model-12.safetensors" in out
    rows = {line.split()[0]: line for line in out.splitlines()[3:]}
    assert rows["layer/W"].endswith("min 0  max 5  mean 2.5")
    assert rows["b16"].endswith("min -3.25  max 1.5  mean -0.875")
    assert rows["c"].endswith("|x| min 5  max 5  mean 5")
    assert rows["empty"].endswith("empty")
    assert rows["global_step"].endswith("min 12  max 12  mean 12")


def test_corruption_exits_1_naming_the_file_and_tensor(checkpoint_dir, capsys):
    path = checkpoint_dir / "model-12.safetensors"
    data = bytearray(path.read_bytes())
    header_length = int.from_bytes(data[:8], "little")
    start, _ = json.loads(data[8:8 + header_length])["layer/W"]["data_offsets"]
    data[8 + header_length + start] ^= 0x40  # one of layer/W's bytes
    path.write_bytes(bytes(data))
    status, out, err = _inspect(capsys, str(checkpoint_dir))
    assert status == 1 and out == ""
    assert str(path) in err and "layer/W" in err and "SHA-256" in err


def test_a_missing_checkpoint_exits_1(tmp_path, capsys):
    status, _, err = _inspect(capsys, str(tmp_path))
    assert status == 1 and "Couldn't find" in err
    status, _, err = _inspect(capsys, str(tmp_path / "nope-3"))
    assert status == 1 and "nope-3.safetensors" in err
