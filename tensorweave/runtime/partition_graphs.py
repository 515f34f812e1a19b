"""Turning `PartitionSpec`s into one GraphDef per device, joined by `_Send`/`_Recv` nodes.

The GraphDefs use TF's schema, so the same builder serves an in-process run and a master that
ships each partition to the task owning its device. Ops keep their names, so a fetch named in
the client's graph is found under the same name in its partition.
"""

import numpy as np
from tensorboard.compat.proto import graph_pb2

from tensorweave.framework import dtypes
from tensorweave.framework.attr_values import attr_value_of
from tensorweave.framework.graph_io import node_def_of
from tensorweave.framework.tensor_shape import TensorShape

CONTROL_TOKEN_DTYPE = dtypes.int32  # a control edge crosses as a scalar carrying no information


def partition_graph_defs(specs, incarnations=None):
    """`{device: GraphDef}` for `{device: PartitionSpec}`; `incarnations` maps a device to the
    incarnation number its sends carry (0 by default).

    Each fed tensor a partition reads becomes a placeholder `_feed_<i>` (i: its position in
    `spec.feeds`), so a partition never holds the producer of a fed value.
    """
    incarnations = incarnations or {}
    return {device: _graph_def(spec, incarnations.get(device, 0), incarnations) for device, spec in specs.items()}


def feed_name(index):
    """The tensor name under which a partition receives its `index`-th fed tensor."""
    return f"_feed_{index}:0"


def _set_attrs(node, attrs):
    for name, value in attrs.items():
        node.attr[name].CopyFrom(attr_value_of(value))


def _graph_def(spec, incarnation, incarnations):
    out = graph_pb2.GraphDef()
    replaced = {}        # (op, input position) -> name of the received tensor
    waits = {}           # op -> names of recv nodes it waits for
    for index, recv in enumerate(spec.recvs):
        t = recv.transfer
        name = f"_recv_{index}"
        node = out.node.add(name=name, op="_Recv", device=spec.device)
        _set_attrs(node, {
            "tensor_type": t.dtype if not t.is_control else CONTROL_TOKEN_DTYPE,
            "_shape": t.shape if not t.is_control else TensorShape([]),
            "tensor_name": t.key_name, "send_device": t.src_device,
            "send_device_incarnation": int(incarnations.get(t.src_device, 0)),
            "recv_device": t.dst_device, "client_terminated": False})
        for op, position in recv.inputs:
            replaced[(op, position)] = name
        for op in recv.waiters:
            waits.setdefault(op, []).append(name)
    fed = {}
    for index, t in enumerate(spec.feeds):
        node = out.node.add(name=f"_feed_{index}", op="Placeholder", device=spec.device)
        _set_attrs(node, {"dtype": t.dtype, "shape": t.shape})
        fed[t] = node.name
    local = set(spec.ops)
    for op in spec.ops:
        node = out.node.add()
        node.CopyFrom(node_def_of(op))
        # Placement is done: a colocation group may name an op this partition does not hold (a
        # fetched moving average without its variable), which the task's import would refuse.
        if "_class" in node.attr:
            del node.attr["_class"]
        del node.input[:]
        for position, t in enumerate(op.inputs):
            node.input.append(replaced.get((op, position)) or fed.get(t) or
                              (t.op.name if t.value_index == 0 else f"{t.op.name}:{t.value_index}"))
        node.input.extend(f"^{c.name}" for c in op.control_inputs if c in local)
        node.input.extend(f"^{name}" for name in waits.get(op, ()))
    for index, send in enumerate(spec.sends):
        t = send.transfer
        name = f"_send_{index}"
        if t.is_control:
            token = out.node.add(name=f"{name}/token", op="Const", device=spec.device)
            _set_attrs(token, {"dtype": CONTROL_TOKEN_DTYPE, "value": _zero()})
            token.input.append(f"^{send.source.name}")
            source, dtype = token.name, CONTROL_TOKEN_DTYPE
        else:
            source = send.source.op.name if send.source.value_index == 0 else send.source.name
            dtype = t.dtype
        node = out.node.add(name=name, op="_Send", device=spec.device)
        node.input.append(source)
        _set_attrs(node, {"T": dtype, "tensor_name": t.key_name, "send_device": t.src_device,
                          "send_device_incarnation": int(incarnation), "recv_device": t.dst_device,
                          "client_terminated": False})
    return out


def _zero():
    value = np.zeros((), dtype=np.int32)
    value.flags.writeable = False
    return value


def send_node_names(graph_def):
    """The names of the `_Send` nodes of a partition (targets of every step)."""
    return [n.name for n in graph_def.node if n.op == "_Send"]
