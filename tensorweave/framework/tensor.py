"""`Tensor`: a symbolic handle to one output of an `Operation`.

Tensors hash by identity and `==` is identity, as in TF1 (feed dicts and sets rely on it);
the other operators (`+`, `<`, `@`, ...) are installed by `tensorweave.ops.math_ops`.
"""

from tensorweave.framework import tensor_shape


class Tensor:
    """The `value_index`-th output of `op`, with a dtype and a static (possibly partial) shape."""

    __slots__ = ("_op", "_value_index", "_dtype", "_shape", "_consumers", "__weakref__")
    __array_priority__ = 100  # NumPy arrays defer to our operators: `np_array + tensor` builds an op

    def __init__(self, op, value_index, dtype, shape):
        self._op = op
        self._value_index = value_index
        self._dtype = dtype
        self._shape = shape
        self._consumers = []

    @property
    def op(self):
        return self._op

    @property
    def value_index(self):
        return self._value_index

    @property
    def dtype(self):
        return self._dtype

    @property
    def graph(self):
        return self._op.graph

    @property
    def name(self):
        return f"{self._op.name}:{self._value_index}"

    @property
    def device(self):
        return self._op.device

    @property
    def shape(self):
        return self._shape

    def get_shape(self):
        return self._shape

    def set_shape(self, shape):
        """Narrows the static shape; raises ValueError if `shape` is incompatible."""
        try:
            self._shape = self._shape.merge_with(tensor_shape.as_shape(shape))
        except ValueError:
            raise ValueError(f"Tensor {self.name} has shape {self._shape}, "
                             f"which is incompatible with {tensor_shape.as_shape(shape)}") from None

    def consumers(self):
        return list(self._consumers)

    def eval(self, feed_dict=None, session=None):
        """Runs the graph up to this tensor in `session` (default: the default session)."""
        from tensorweave.framework.graph import run_in_session
        return run_in_session(self, feed_dict, session)

    def __repr__(self):
        return f"<tw.Tensor '{self.name}' shape={self._shape} dtype={self._dtype.name}>"

    def __str__(self):
        return f'Tensor("{self.name}", shape={self._shape}, dtype={self._dtype.name})'

    def __bool__(self):
        raise TypeError("Using a tf.Tensor as a Python `bool` is not allowed. Use `if t is not None:` "
                        "to test whether it is defined, or build the condition into the graph.")

    def __iter__(self):
        if self._shape.ndims is None or self._shape[0].value is None:
            raise TypeError(f"Cannot iterate over tensor {self.name} whose first dimension is unknown.")
        return iter(self[i] for i in range(self._shape[0].value))

    def __array__(self, dtype=None, copy=None):
        raise NotImplementedError(f"Cannot convert a symbolic tf.Tensor ({self.name}) to a NumPy array; "
                                  "run it in a Session to get its value.")

    __hash__ = object.__hash__
