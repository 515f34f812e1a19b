"""Communication ops: `_Send` and `_Recv`, the two ends of an edge cut by partitioning.

The partitioner replaces each data edge between devices with a `_Send` on the producer's device
and a `_Recv` on the consumer's, both naming the same rendezvous key parts (TF's attrs). The
step's rendezvous (`StepContext.rendezvous`) carries the value: a send never blocks, and a
receive is asynchronous, so the executor keeps running other ready ops while it waits.
"""

from tensorweave.framework import dtypes
from tensorweave.framework.op_def import define_op
from tensorweave.framework.tensor_shape import TensorShape, unknown_shape

_KEY_ATTRS = ("tensor_name", "send_device", "send_device_incarnation", "recv_device")


def rendezvous_key(src_device, src_incarnation, dst_device, tensor_name, step_id):
    """The rendezvous key of one transfer in one step (TF's `src;incarnation;dst;tensor;step`)."""
    return f"{src_device};{int(src_incarnation):016x};{dst_device};{tensor_name};{int(step_id)}"


def _key_parts(op):
    return tuple(op.get_attr(a) for a in _KEY_ATTRS)


Send = define_op("_Send", stateful=True, differentiable=False, step_kernel=True)


@Send.shape_fn
def _send_shape(op):
    return []


@Send.kernel
def _send_kernel(op, device):
    name, src, incarnation, dst = _key_parts(op)

    def send(step, value):
        step.rendezvous.send(rendezvous_key(src, incarnation, dst, name, step.step_id), value)
    return send


Recv = define_op("_Recv", stateful=True, differentiable=False, async_kernel=True)


@Recv.shape_fn
def _recv_shape(op):
    shape = op.get_attr("_shape") if "_shape" in op.attrs else unknown_shape()
    return [(op.get_attr("tensor_type"), TensorShape(shape))]


@Recv.kernel
def _recv_kernel(op, device):
    name, src, incarnation, dst = _key_parts(op)

    def recv(step, done):
        step.rendezvous.recv_async(rendezvous_key(src, incarnation, dst, name, step.step_id), done)
    return recv


def send(tensor, tensor_name, send_device, recv_device, send_device_incarnation=0, name=None):
    """A `_Send` of `tensor` to `recv_device` under `tensor_name` (built by the partitioner)."""
    graph = tensor.graph
    return graph.create_op("_Send", [tensor], {
        "T": tensor.dtype, "tensor_name": tensor_name, "send_device": send_device,
        "send_device_incarnation": int(send_device_incarnation), "recv_device": recv_device,
        "client_terminated": False}, name=name or "_Send")


def recv(graph, dtype, shape, tensor_name, send_device, recv_device, send_device_incarnation=0, name=None):
    """A `_Recv` producing the tensor that `send_device` sends under `tensor_name`."""
    op = graph.create_op("_Recv", [], {
        "tensor_type": dtypes.as_dtype(dtype), "_shape": TensorShape(shape), "tensor_name": tensor_name,
        "send_device": send_device, "send_device_incarnation": int(send_device_incarnation),
        "recv_device": recv_device, "client_terminated": False}, name=name or "_Recv")
    return op.outputs[0]
