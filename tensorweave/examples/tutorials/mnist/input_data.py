"""TF1's `input_data` module: `input_data.read_data_sets("MNIST_data/", one_hot=True)`."""

from tensorweave.datasets.mnist import (  # noqa: F401
    DEFAULT_SOURCE_URL,
    DataSet,
    Datasets,
    dense_to_one_hot,
    extract_images,
    extract_labels,
    load_mnist,
    read_data_sets,
)
