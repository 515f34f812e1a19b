"""Static broadcasting rules shared by shape functions and gradients."""

from tensorweave.framework.tensor_shape import TensorShape


def broadcast_static_shape(a, b):
    """NumPy broadcasting of two partial shapes; raises ValueError if they cannot broadcast."""
    if a.ndims is None or b.ndims is None:
        return TensorShape(None)
    da, db = a.as_list(), b.as_list()
    n = max(len(da), len(db))
    da = [1] * (n - len(da)) + da
    db = [1] * (n - len(db)) + db
    out = []
    for x, y in zip(da, db, strict=True):
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None or y is None:
            out.append(x if y is None else y)
        elif x == y:
            out.append(x)
        else:
            raise ValueError(f"Dimensions must be equal or 1 to broadcast, but are {x} and {y} "
                             f"for shapes {a} and {b}")
    return TensorShape(out)


def static_reduction_axes(grad_shape, target_shape):
    """Axes to sum a broadcast gradient over to recover `target_shape`, or None if unknown.

    Summing over an axis whose actual size is 1 is harmless, so a fully known target shape
    and a known gradient rank are enough even when the batch dimension is unknown.
    """
    if grad_shape.ndims is None or not target_shape.is_fully_defined():
        return None
    g, t = grad_shape.as_list(), target_shape.as_list()
    lead = len(g) - len(t)
    if lead < 0:
        return None
    axes = list(range(lead))
    for i, size in enumerate(t):
        if size == 1 and g[lead + i] != 1:
            axes.append(lead + i)
    return axes
