"""Data sets for TF1 programs: `tw.datasets.mnist.read_data_sets`."""

from tensorweave.datasets import mnist
from tensorweave.datasets.mnist import DataSet, Datasets, read_data_sets

__all__ = ["mnist", "DataSet", "Datasets", "read_data_sets"]
