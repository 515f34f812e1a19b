"""Partitioning: splitting a placed graph into one piece per device, joined by Send/Recv pairs.

A pure function: it reads the graph and a placement and returns data; it creates no ops. A
builder (the master, per task) turns each `PartitionSpec` into a graph of its own:

  - every op in `spec.ops`, with its inputs and control inputs as in the original graph,
    except that
  - each `Recv` in `spec.recvs` becomes a Recv op whose output replaces input `position` of
    every `(op, position)` in `recv.inputs`, and that every op in `recv.waiters` takes as a
    control input (in place of its control input from the other device);
  - each `Send` in `spec.sends` becomes a Send op fed by `send.source` (a local tensor; for a
    control token, a local op after which a dummy scalar is sent);
  - `spec.feeds` are tensors the client supplies to this partition (cutting their producers),
    and `spec.fetches` the tensors returned to it and the target ops it runs here.

A tensor produced on device A and consumed on device B crosses once per step: ONE `Transfer`
per (tensor, destination device), however many ops on B read it. A control edge across
devices (B's op must run after A's op) becomes a `Transfer` of a control token (dtype None),
unless a data transfer from that op to B already exists: receiving any output of an op proves
it ran, so the waiting op waits on that Recv instead.
"""

from dataclasses import dataclass

from tensorweave.framework import errors
from tensorweave.framework.operation import Operation


@dataclass(frozen=True)
class Transfer:
    """One value crossing from `src_device` to `dst_device` each step.

    tensor_name: the original tensor's name ("op:0"), or "^op" for the control token of op.
    dtype, shape: the tensor's `DType` and static `TensorShape`; None for a control token.
    key_name: "[step_tag;]tensor_name;dst_device", unique among the transfers of one
        `partition_graph` result (one per tensor and destination). Both ends use it as the
        `tensor_name` of their `_Send`/`_Recv`; the step's rendezvous key adds the devices, the
        source incarnation and the step id.
    """

    tensor_name: str
    dtype: object
    shape: object
    src_device: str
    dst_device: str
    key_name: str

    @property
    def is_control(self):
        return self.dtype is None


@dataclass(frozen=True)
class Send:
    """A transfer leaving this partition. `source`: the local tensor sent, or for a control
    token the local op whose completion it announces."""

    transfer: Transfer
    source: object


@dataclass(frozen=True)
class Recv:
    """A transfer arriving in this partition.

    inputs: (local op, input position) pairs whose input is the received tensor.
    waiters: local ops that must not start before it arrives (they had a control input on the
        producing op); for a control token these are its only users.
    """

    transfer: Transfer
    inputs: tuple
    waiters: tuple


@dataclass(frozen=True)
class PartitionSpec:
    """What one device runs in a step: its ops (in the order given to `partition_graph`), the
    transfers it sends and receives, the fed tensors its ops read and the fetches it returns."""

    device: str
    ops: tuple
    sends: tuple
    recvs: tuple
    feeds: tuple
    fetches: tuple


def partition_graph(ops, placement, *, fetches, feeds, step_tag=""):
    """Splits `ops` by device; returns `{device: PartitionSpec}` for each device that runs an op.

    ops: the ops of one step (pruned: every input's producer and every control input is among
        them, unless the input is fed).
    placement: `{op: device name}` for each op, as returned by `placement.place`.
    fetches: the tensors to return and the target ops to run. A fetch belongs to the partition
        of the op producing it; a fetched tensor that is also fed belongs to no partition (the
        fed value is the answer, as in TF).
    feeds: the fed tensors. A fed tensor never crosses devices: every partition whose ops read
        it lists it in its `feeds`, and the client sends the value to each.
    step_tag: prefixed to every `key_name`, so that transfers of different graphs (or plans)
        sharing a rendezvous cannot collide.
    """
    ops = list(ops)
    fed = set(feeds)
    present = set(ops)
    for op in ops:
        if op not in placement:
            raise ValueError(f"Op {op.name!r} has no device in the placement")
    prefix = f"{step_tag};" if step_tag else ""

    local = {}
    for op in ops:
        local.setdefault(placement[op], []).append(op)
    recvs = {}  # (tensor or op, dst device) -> (transfer, source, inputs, waiters); insertion-ordered
    feeds_of = {device: [] for device in local}

    def transfer(source, dst):
        entry = recvs.get((source, dst))
        if entry is None:
            is_op = isinstance(source, Operation)
            src = placement[source if is_op else source.op]
            name = f"^{source.name}" if is_op else source.name
            t = Transfer(name, None if is_op else source.dtype, None if is_op else source.shape,
                         src, dst, f"{prefix}{name};{dst}")
            entry = recvs[(source, dst)] = (t, source, [], [])
        return entry

    for op in ops:
        dst = placement[op]
        for position, t in enumerate(op.inputs):
            if t in fed:
                if t not in feeds_of[dst]:
                    feeds_of[dst].append(t)
                continue
            _check_present(t.op, op, present)
            if placement[t.op] == dst:
                continue
            if position in op.op_def.ref_inputs and t.op.op_def.ref_outputs:
                raise op.error(errors.InvalidArgumentError,
                               f"{op.name} on {dst} takes variable {t.op.name} on {placement[t.op]} by "
                               "reference; a reference cannot cross devices (place them together)")
            transfer(t, dst)[2].append((op, position))
    for op in ops:
        dst = placement[op]
        for c in op.control_inputs:
            _check_present(c, op, present)
            if placement[c] == dst:
                continue
            carrier = next((recvs[(t, dst)] for t in c.outputs if (t, dst) in recvs), None)
            (carrier or transfer(c, dst))[3].append(op)

    sends = {device: [] for device in local}
    received = {device: [] for device in local}
    for (t, source, inputs, waiters) in recvs.values():
        sends[t.src_device].append(Send(t, source))
        received[t.dst_device].append(Recv(t, tuple(inputs), tuple(waiters)))

    fetches_of = {device: [] for device in local}
    for f in fetches:
        if f in fed:
            continue
        op = f if isinstance(f, Operation) else f.op
        if op not in present:
            raise ValueError(f"Fetch {f.name!r} is produced by an op outside the partitioned ops")
        fetches_of[placement[op]].append(f)

    return {device: PartitionSpec(device, tuple(local[device]), tuple(sends[device]),
                                  tuple(received[device]), tuple(feeds_of[device]), tuple(fetches_of[device]))
            for device in local}


def _check_present(producer, consumer, present):
    if producer not in present:
        raise ValueError(f"Op {consumer.name!r} depends on {producer.name!r}, which is not among the "
                         "partitioned ops (prune the graph first, or feed the tensor)")
