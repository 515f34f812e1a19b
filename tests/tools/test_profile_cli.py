"""`tensorweave profile TRACE` lists the ops with the most time, from a saved RunMetadata or a
Chrome trace."""

import subprocess
import sys

import numpy as np
import pytest

import tensorweave as tf
from tensorweave import cli
from tensorweave.tools import timeline

FULL_TRACE = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)


@pytest.fixture(scope="module")
def run_metadata():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 256], name="x")
        w = tf.constant(np.ones((256, 256), np.float32))
        y = tf.reduce_sum(tf.tanh(tf.matmul(x, w, name="big_matmul"), name="squash"), name="total")
        with tf.Session() as sess:
            md = tf.RunMetadata()
            sess.run(y, {x: np.ones((128, 256), np.float32)}, options=FULL_TRACE, run_metadata=md)
    return md


def _rows(text):
    lines = text.strip().splitlines()
    assert lines[0].startswith("top ") and "total ms" in lines[1]
    return [line.split() for line in lines[2:]]


def test_profile_of_a_saved_run_metadata(tmp_path, run_metadata, capsys):
    path = tmp_path / "step.pb"
    path.write_bytes(run_metadata.SerializeToString())
    assert cli.main(["profile", str(path), "--top", "2"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert len(rows) == 2
    totals = [float(r[0]) for r in rows]
    assert totals == sorted(totals, reverse=True)
    names = {r[5] for r in rows}
    assert "big_matmul" in names  # 128x256x256 dominates this step
    assert cli.main(["profile", str(path), "--by", "type"]) == 0
    types = {r[5] for r in _rows(capsys.readouterr().out)}
    assert {"MatMul", "Tanh", "Sum"} <= types


def test_profile_of_a_chrome_trace(tmp_path, run_metadata, capsys):
    path = tmp_path / "timeline.json"
    path.write_text(timeline.Timeline(run_metadata.step_stats).generate_chrome_trace_format())
    assert cli.main(["profile", str(path), "--top", "10"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert {"big_matmul", "squash", "total"} <= {r[5] for r in rows}
    assert all(r[6] == "/job:localhost/replica:0/task:0/device:CPU:0" for r in rows)


def test_profile_refuses_what_is_not_a_trace(tmp_path, capsys):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00\x01 not a trace")
    assert cli.main(["profile", str(path)]) == 1
    assert "tensorweave profile: error:" in capsys.readouterr().err
    assert cli.main(["profile", str(tmp_path / "missing.pb")]) == 1
    assert cli.main(["profile", str(path), "--top", "0"]) == 2


def test_the_profile_command_runs_as_a_program(tmp_path, run_metadata):
    path = tmp_path / "step.pb"
    path.write_bytes(run_metadata.SerializeToString())
    out = subprocess.run([sys.executable, "-m", "tensorweave.cli", "profile", str(path), "--top", "1"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert len(_rows(out)) == 1
