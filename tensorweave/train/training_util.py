"""The global step: an int64 scalar variable named 'global_step' counting training steps."""

from tensorweave.framework import dtypes
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.framework.tensor import Tensor
from tensorweave.ops import init_ops, variable_scope, variables
from tensorweave.platform import tf_logging as logging


def global_step(sess, global_step_tensor):
    """`tf.train.global_step(sess, global_step_tensor)`: the current global step as an int."""
    return int(sess.run(global_step_tensor))


def get_global_step(graph=None):
    """`tf.train.get_global_step(graph=None)`: the global step variable (from the GLOBAL_STEP
    collection, else the tensor 'global_step:0'), or None if there is none."""
    graph = graph or get_default_graph()
    tensors = graph.get_collection(GraphKeys.GLOBAL_STEP)
    if len(tensors) == 1:
        step = tensors[0]
    elif not tensors:
        try:
            step = graph.get_tensor_by_name("global_step:0")
        except KeyError:
            return None
    else:
        logging.error("Multiple tensors in global_step collection.")
        return None
    assert_global_step(step)
    return step


def create_global_step(graph=None):
    """`tf.train.create_global_step(graph=None)`: creates the global step (int64 scalar, zero,
    not trainable, in GLOBAL_VARIABLES and GLOBAL_STEP); raises ValueError if one exists."""
    graph = graph or get_default_graph()
    if get_global_step(graph) is not None:
        raise ValueError('"global_step" already exists.')
    with graph.as_default(), graph.name_scope(None):
        return variable_scope.get_variable(
            GraphKeys.GLOBAL_STEP, shape=[], dtype=dtypes.int64, initializer=init_ops.zeros_initializer(),
            trainable=False, collections=[GraphKeys.GLOBAL_VARIABLES, GraphKeys.GLOBAL_STEP])


def get_or_create_global_step(graph=None):
    """`tf.train.get_or_create_global_step(graph=None)`: the global step, created if missing."""
    graph = graph or get_default_graph()
    step = get_global_step(graph)
    if step is None:
        step = create_global_step(graph)
    return step


def assert_global_step(global_step_tensor):
    """Raises TypeError unless `global_step_tensor` is an integer scalar Variable or Tensor."""
    if not isinstance(global_step_tensor, (variables.Variable, Tensor)):
        raise TypeError(f'Existing "global_step" must be a Variable or Tensor: {global_step_tensor}.')
    if not global_step_tensor.dtype.base_dtype.is_integer:
        raise TypeError(f'Existing "global_step" does not have integer type: {global_step_tensor.dtype!r}')
    shape = global_step_tensor.get_shape()
    if shape.ndims != 0 and shape.is_fully_defined():
        raise TypeError(f'Existing "global_step" is not scalar: {shape}')


__all__ = ["global_step", "get_global_step", "create_global_step", "get_or_create_global_step",
           "assert_global_step"]
