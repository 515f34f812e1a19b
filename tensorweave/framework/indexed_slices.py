"""`IndexedSlices`: a sparse gradient (rows `indices` of a dense tensor), as gathers produce.

Converting one to a dense tensor is registered by `ops.gather_ops`, which has the ops for it."""

import collections


class IndexedSlices:
    """The rows `indices` of a tensor of shape `dense_shape`, with values `values`.

    Repeated indices add up when converted to a dense tensor.
    """

    def __init__(self, values, indices, dense_shape=None):
        self.values = values
        self.indices = indices
        self.dense_shape = dense_shape

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def name(self):
        return self.values.name

    @property
    def op(self):
        return self.values.op

    @property
    def graph(self):
        return self.values.graph

    @property
    def device(self):
        return self.values.device

    def __repr__(self):
        return f"IndexedSlices(indices={self.indices}, values={self.values}, dense_shape={self.dense_shape})"



class IndexedSlicesValue(collections.namedtuple("IndexedSlicesValue", ["values", "indices", "dense_shape"])):
    """What `Session.run` returns for an `IndexedSlices`: NumPy values, indices and dense shape."""
