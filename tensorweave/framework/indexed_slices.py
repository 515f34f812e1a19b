"""`IndexedSlices`: a sparse gradient (rows `indices` of a dense tensor), as gathers produce."""

from tensorweave.framework.op_builder import register_tensor_conversion_function


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


def _to_dense(slices, dtype, name):
    from tensorweave.ops import array_ops
    if slices.dense_shape is None:
        raise ValueError(f"Cannot convert IndexedSlices {slices.name} without dense_shape to a Tensor")
    return array_ops.unsorted_segment_sum(slices.values, slices.indices, slices.dense_shape[0]
                                          if not hasattr(slices.dense_shape, "op") else
                                          array_ops.gather(slices.dense_shape, 0))


register_tensor_conversion_function(IndexedSlices, _to_dense, priority=10)
