"""A save interrupted anywhere leaves a checkpoint that restores exactly: in-process fault points
at every step of `Saver.save`'s write sequence, and real SIGKILLs of a process saving in a loop."""

import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import tensorweave as tf
from tensorweave.framework import graph_io
from tensorweave.train import saver as saver_lib

SIZE = 64

# The steps of a save to "m-3" that retires "m-1" (max_to_keep=2), in order.
SEQUENCE = [
    "tensors m-3.safetensors: temp written", "tensors m-3.safetensors: renamed",
    "meta m-3.meta: temp written", "meta m-3.meta: renamed",
    "state checkpoint: temp written", "state checkpoint: renamed",
    "delete m-1.safetensors", "delete m-1.meta",
]
NEW_IS_LATEST_FROM = SEQUENCE.index("state checkpoint: renamed")


class Crash(BaseException):
    """Raised by the patched fault point; a BaseException, as nothing should swallow a crash."""


class Model:
    """A variable set to `step` everywhere, saved with that global step."""

    def __init__(self):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.v = tf.Variable(np.zeros(SIZE, np.float32), name="v")
            self.step = tf.Variable(np.int64(0), trainable=False, name="global_step")
            self.value = tf.placeholder(tf.int64, [], name="value")
            self.set = tf.group(tf.assign(self.v, tf.fill([SIZE], tf.cast(self.value, tf.float32))),
                                tf.assign(self.step, self.value))
            self.init = tf.global_variables_initializer()
        self.sess = tf.Session(graph=self.graph)
        self.sess.run(self.init)

    def saver(self, **kwargs):
        with self.graph.as_default():
            return tf.train.Saver(**kwargs)

    def set_step(self, step):
        self.sess.run(self.set, {self.value: step})

    def restored_step(self, saver, prefix):
        """The step a fresh session restores from `prefix`, checked to be the same everywhere."""
        with tf.Session(graph=self.graph) as sess:
            saver.restore(sess, prefix)
            v, step = sess.run([self.v, self.step])
        assert v.tolist() == [float(step)] * SIZE, f"{prefix} is a torn mix: {v} at step {step}"
        return int(step)


def _crash_at(monkeypatch, target, seen=None):
    def fault_point(step):
        if seen is not None:
            seen.append(step)
        if step == target:
            raise Crash(step)
    monkeypatch.setattr(saver_lib, "fault_point", fault_point)


def _save_two(model, directory):
    saver = model.saver(max_to_keep=2)
    for step in (1, 2):
        model.set_step(step)
        saver.save(model.sess, str(directory / "m"), global_step=step)
    return saver


def test_the_save_sequence_has_the_documented_fault_points(tmp_path, monkeypatch):
    model = Model()
    saver = _save_two(model, tmp_path)
    seen = []
    _crash_at(monkeypatch, None, seen)
    model.set_step(3)
    saver.save(model.sess, str(tmp_path / "m"), global_step=3)
    assert seen == SEQUENCE


@pytest.mark.parametrize("crash_at", range(len(SEQUENCE)), ids=SEQUENCE)
def test_a_save_interrupted_at_any_step_leaves_a_checkpoint_that_restores_exactly(tmp_path, monkeypatch, crash_at):
    model = Model()
    saver = _save_two(model, tmp_path)
    _crash_at(monkeypatch, SEQUENCE[crash_at])
    model.set_step(3)
    with pytest.raises(Crash):
        saver.save(model.sess, str(tmp_path / "m"), global_step=3)
    monkeypatch.undo()

    latest = tf.train.latest_checkpoint(str(tmp_path))
    expected = 3 if crash_at >= NEW_IS_LATEST_FROM else 2
    assert latest == str(tmp_path / f"m-{expected}")
    assert model.restored_step(saver, latest) == expected
    state = tf.train.get_checkpoint_state(str(tmp_path))
    for prefix in state.all_model_checkpoint_paths:  # every listed checkpoint is whole
        model.restored_step(saver, prefix)
        assert os.path.isfile(prefix + ".meta")
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]

    # A restarted program adopts the listed checkpoints and goes on saving.
    restarted = model.saver(max_to_keep=2)
    restarted.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
    model.set_step(4)
    restarted.save(model.sess, str(tmp_path / "m"), global_step=4)
    assert model.restored_step(restarted, tf.train.latest_checkpoint(str(tmp_path))) == 4
    assert len(tf.train.get_checkpoint_state(str(tmp_path)).all_model_checkpoint_paths) == 2


def test_overwriting_one_prefix_interrupted_at_any_step_keeps_old_or_new_values(tmp_path, monkeypatch):
    model = Model()
    saver = model.saver()
    model.set_step(1)
    prefix = saver.save(model.sess, str(tmp_path / "m"))
    seen = []
    _crash_at(monkeypatch, None, seen)
    saver.save(model.sess, str(tmp_path / "m"))
    assert seen[0] == "tensors m.safetensors: temp written" and len(seen) == 6
    for i, step in enumerate(seen):
        before = model.restored_step(saver, prefix)
        _crash_at(monkeypatch, step)
        model.set_step(10 + i)
        with pytest.raises(Crash):
            saver.save(model.sess, str(tmp_path / "m"))
        assert tf.train.latest_checkpoint(str(tmp_path)) == prefix
        assert model.restored_step(saver, prefix) == (before if step == seen[0] else 10 + i)


def test_keep_checkpoint_every_n_hours_keeps_files_beyond_max_to_keep_off_the_state_list(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(saver_lib.time, "time", lambda: clock[0])
    model = Model()
    saver = model.saver(max_to_keep=2, keep_checkpoint_every_n_hours=1.0)
    for step in range(1, 7):
        clock[0] += 1800.0  # half an hour per checkpoint
        model.set_step(step)
        saver.save(model.sess, str(tmp_path / "m"), global_step=step, write_meta_graph=False)
    kept = sorted(p for p in os.listdir(tmp_path) if p.endswith(".safetensors"))
    # Saved 0.5, 1, 1.5, ... hours after the Saver's birth: the first past each hour is kept.
    assert kept == ["m-3.safetensors", "m-5.safetensors", "m-6.safetensors"]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert list(state.all_model_checkpoint_paths) == [str(tmp_path / "m-5"), str(tmp_path / "m-6")]
    assert model.restored_step(saver, str(tmp_path / "m-3")) == 3


# -- real SIGKILLs ------------------------------------------------------------------------------------

# Restores the directory's latest checkpoint (if any), then saves ever larger steps of an 8 MB
# variable set to the step everywhere, printing each saved step.
SAVING_LOOP = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorweave as tf
    directory = sys.argv[1]
    big = tf.Variable(np.zeros(2 * 1024 * 1024, np.float32), name="big")
    step = tf.Variable(np.int64(0), trainable=False, name="global_step")
    advance = tf.group(tf.assign(big, big + 1.0), tf.assign_add(step, 1))
    saver = tf.train.Saver(max_to_keep=2)
    with tf.Session() as sess:
        latest = tf.train.latest_checkpoint(directory)
        if latest:
            saver.restore(sess, latest)
            saver.recover_last_checkpoints(tf.train.get_checkpoint_state(directory).all_model_checkpoint_paths)
        else:
            sess.run(tf.global_variables_initializer())
        while True:
            sess.run(advance)
            saver.save(sess, directory + "/m", global_step=step)
            print("saved", sess.run(step), flush=True)
""")
KILLS = 4
SEED = 5
TIMEOUT_S = 60


def _check_latest(directory):
    """The step of the directory's latest checkpoint, after checking it and every listed one."""
    latest = tf.train.latest_checkpoint(str(directory))
    assert latest is not None
    for prefix in tf.train.get_checkpoint_state(str(directory)).all_model_checkpoint_paths:
        tensors, metadata = saver_lib.read_checkpoint(prefix)  # every checksum verified
        step = int(metadata["global_step"])
        assert int(tensors["global_step"]) == step
        big = tensors["big"]
        assert big.min() == big.max() == step, f"{prefix} is a torn mix"
    return int(saver_lib.read_checkpoint(latest)[1]["global_step"])


def _copy_lines(stream, lines):
    for line in stream:
        lines.put(line)


@pytest.mark.slow  # over 1.4 s: keeps the everyday loop short
def test_sigkill_during_repeated_saves_always_leaves_a_loadable_latest_checkpoint(tmp_path):
    script = tmp_path / "saving_loop.py"
    script.write_text(SAVING_LOOP)
    directory = tmp_path / "ckpt"
    directory.mkdir()
    rng = random.Random(SEED)
    last = 0
    for kill in range(KILLS):
        delay = rng.uniform(0.0, 0.4)
        process = subprocess.Popen([sys.executable, str(script), str(directory)], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        lines = queue.Queue()
        threading.Thread(target=_copy_lines, args=(process.stdout, lines), daemon=True).start()
        try:
            first = lines.get(timeout=TIMEOUT_S)  # a save completed: the kill lands among later ones
            assert first.startswith("saved"), first
            threading.Event().wait(delay)
            process.send_signal(signal.SIGKILL)
            process.wait(TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(TIMEOUT_S)
        step = _check_latest(directory)
        assert step > last, f"kill {kill} (seed {SEED}, delay {delay:.3f} s): no progress past step {last}"
        last = step
        # A kill that landed mid-write left at most one temp file per file being written; the
        # next run's first save removes it.
        assert len([n for n in os.listdir(directory) if n.endswith(".tmp")]) <= 2
    subprocess.run([sys.executable, "-c", "import tensorweave as tf\n"
                    "v = tf.Variable(1.0)\n"
                    "with tf.Session() as s:\n"
                    "    s.run(tf.global_variables_initializer())\n"
                    f"    tf.train.Saver().save(s, {str(directory / 'other')!r})\n"],
                   check=True, timeout=TIMEOUT_S, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert not [n for n in os.listdir(directory) if n.endswith(".tmp")]


def test_a_save_removes_temp_files_of_dead_writers_and_keeps_live_ones(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(TIMEOUT_S)
    tag = graph_io._host_tag()
    names = {"dead": f".m-1.safetensors.tw-{tag}-{dead.pid}.abc123.tmp",
             "live": f".m-1.safetensors.tw-{tag}-{os.getppid()}.abc123.tmp",
             "mine": f".checkpoint.tw-{tag}-{os.getpid()}.abc123.tmp",
             "other host, recent": ".m-1.meta.tw-elsewhere-1.abc123.tmp",
             "other host, old": ".m-2.meta.tw-elsewhere-1.xyz789.tmp",
             "not ours": "notes.tmp"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    day_ago = time.time() - graph_io.STALE_TEMP_SECONDS - 60
    os.utime(tmp_path / names["other host, old"], (day_ago, day_ago))
    _save_two(Model(), tmp_path)
    left = set(os.listdir(tmp_path))
    for what in ("live", "mine", "other host, recent", "not ours"):
        assert names[what] in left, what
    for what in ("dead", "other host, old"):
        assert names[what] not in left, what
