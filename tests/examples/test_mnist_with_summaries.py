"""TF1's `mnist_with_summaries.py` on real MNIST, its event files read back by TensorBoard itself."""

import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing import event_accumulator as ea

from tensorweave.examples.tutorials.mnist import input_data, mnist_with_summaries
from tensorweave.summary.writer import use_tensorboard_file_layer

pytestmark = pytest.mark.slow

STEPS = 101  # step 99 is traced (FULL_TRACE) and its run metadata written as "step099"


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("mnist"))
    input_data.read_data_sets(data_dir)  # extracts once; the program reads the IDX cache
    log_dir = tmp_path_factory.mktemp("logs") / "mnist_with_summaries"
    env = dict(os.environ, TENSORWEAVE_OFFLINE="1", PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, mnist_with_summaries.__file__, "--data_dir", data_dir,
                           "--log_dir", str(log_dir), "--max_steps", str(STEPS)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Adding run metadata for 99" in proc.stdout
    assert float(proc.stdout.split("Accuracy at step 100: ")[1].split()[0]) > 0.85
    return log_dir


def _accumulator(path):
    use_tensorboard_file_layer()  # reading needs no TensorFlow either
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.IMAGES: 0})
    return acc.Reload()


# TF1 tags a summary with its name scope, and makes op names unique ignoring case: `scalar("mean")`
# beside the op "Mean" becomes "mean_1". These are the tags TF1's own run of this program shows.
SCALARS = {"accuracy_1", "cross_entropy_1", "dropout/dropout_keep_probability"} | {
    f"{layer}/{var}/summaries/{stat}_1" for layer in ("layer1", "layer2") for var in ("weights", "biases")
    for stat in ("mean", "stddev", "max", "min")}
HISTOGRAMS = {f"{layer}/{name}" for layer in ("layer1", "layer2") for name in (
    "weights/summaries/histogram", "biases/summaries/histogram", "Wx_plus_b/pre_activations", "activations")}


def test_train_run_has_scalars_histograms_images_at_every_training_step(log_dir):
    acc = _accumulator(log_dir / "train")
    tags = acc.Tags()
    assert set(tags[ea.SCALARS]) == SCALARS
    assert set(tags[ea.HISTOGRAMS]) == HISTOGRAMS
    train_steps = [i for i in range(STEPS) if i % 10 != 0]
    assert [e.step for e in acc.Scalars("cross_entropy_1")] == train_steps
    assert all(e.value == pytest.approx(0.9) for e in acc.Scalars("dropout/dropout_keep_probability"))
    histogram = acc.Histograms("layer1/weights/summaries/histogram")[-1].histogram_value
    assert histogram.num == 784 * 500 and sum(histogram.bucket) == histogram.num
    assert -0.3 < histogram.min < histogram.max < 0.3  # truncated normal, stddev 0.1, after training
    # tf.summary.image("input", ..., 10): ten images of 28 x 28 per step
    assert sorted(tags[ea.IMAGES]) == sorted(f"input_reshape/input/image/{i}" for i in range(10))
    image = acc.Images("input_reshape/input/image/0")[-1]
    assert (image.width, image.height) == (28, 28) and image.encoded_image_string.startswith(b"\x89PNG")


def test_test_run_records_accuracy_every_tenth_step(log_dir):
    acc = _accumulator(log_dir / "test")
    accuracy = acc.Scalars("accuracy_1")
    assert [e.step for e in accuracy] == list(range(0, STEPS, 10))
    assert accuracy[-1].value > 0.85
    assert not acc.Tags()["graph"]  # the test writer was given no graph


def test_graph_holds_the_name_scopes_and_the_traced_step(log_dir):
    acc = _accumulator(log_dir / "train")
    names = {node.name for node in acc.Graph().node}
    for name in ("input/x-input", "input/y-input", "input_reshape/Reshape", "layer1/weights/Variable",
                 "layer1/Wx_plus_b/MatMul", "layer1/activation", "dropout/Placeholder",
                 "layer2/Wx_plus_b/add", "cross_entropy/total/sparse_softmax_cross_entropy_loss/value",
                 "train/Adam", "accuracy/accuracy/Mean"):
        assert name in names, name
    # TensorBoard collapses a name scope into one group: every op sits below a scope of the model.
    scopes = {name.split("/")[0] for name in names}
    assert {"input", "input_reshape", "layer1", "dropout", "layer2", "cross_entropy", "train",
            "accuracy"} <= scopes
    assert acc.Tags()[ea.RUN_METADATA] == ["step099"]
    metadata = acc.RunMetadata("step099")  # full or sparse step stats, both are valid
    for dev in metadata.step_stats.dev_stats:
        assert dev.device
