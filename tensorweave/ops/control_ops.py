"""Control ops: `no_op`, `group` and `tuple` (control flow proper will use functional If/While)."""

import builtins

from tensorweave.framework.graph import get_default_graph
from tensorweave.framework.op_builder import control_dependencies, graph_of, name_scope
from tensorweave.framework.op_def import define_op
from tensorweave.framework.operation import Operation
from tensorweave.framework.tensor import Tensor
from tensorweave.ops import array_ops

NoOp = define_op("NoOp", differentiable=False)


@NoOp.shape_fn
def _no_op_shape(op):
    return []


@NoOp.kernel
def _no_op_kernel(op, device):
    return lambda: None


def no_op(name=None):
    """`tf.no_op`: an op that does nothing (useful as a target with control inputs)."""
    graph = get_default_graph()
    return graph.create_op("NoOp", [], name=name or "NoOp")


def _as_ops(inputs):
    ops = []
    for x in inputs:
        if isinstance(x, (list, builtins.tuple)):
            ops.extend(_as_ops(x))
            continue
        if not isinstance(x, (Tensor, Operation)) and hasattr(x, "_as_graph_element"):
            x = x._as_graph_element()
        if isinstance(x, Tensor):
            x = x.op
        if not isinstance(x, Operation):
            raise TypeError(f"Expected an Operation or Tensor in group(), got {x!r}")
        ops.append(x)
    return ops


def group(*inputs, name=None):
    """`tf.group`: an op that runs all `inputs` (ops or tensors) and outputs nothing."""
    ops = _as_ops(inputs)
    graph = graph_of(ops)
    with graph.as_default(), name_scope(name, "group_deps", ops) as scope:
        with control_dependencies(ops):
            return no_op(name=scope)


def tuple(tensors, name=None, control_inputs=None):  # noqa: A001 - TF's public name
    """`tf.tuple`: the same tensors, each available only after all of them have been computed."""
    tensors = list(tensors)
    with name_scope(name, "tuple", [t for t in tensors if t is not None]):
        gate = group(*[t for t in tensors if t is not None], *(control_inputs or []))
        out = []
        for t in tensors:
            if t is None:
                out.append(None)
                continue
            with control_dependencies([gate]):
                out.append(array_ops.identity(t) if isinstance(t, Tensor) else group(t))
        return out
