"""Step stats: what a traced step records of every op it ran, in TensorFlow's `StepStats` schema.

A step is traced when its `RunOptions.trace_level` asks for it and the caller passed a
`RunMetadata` to fill (`tracing_requested`). Only then does the executor run a plan's
instrumented variant (`instrument_plan`): the same steps, each wrapped to read the clock around
its kernel and to describe its outputs into the step's `StepStatsCollector`. The variant is
compiled on a plan's first traced run and kept beside the plain closures, so an untraced run
executes exactly what it did before tracing existed.

Times are wall-clock nanoseconds (`time.time_ns`), so stats from tasks on one machine line up in
one timeline. Each record goes to a thread row of its device: `OPS_THREAD` for kernels,
`RECV_THREAD` for receives (which wait while other ops run) and `TRANSFER_THREAD` for the wire
transfers the distributed runtime adds (`tensor_codec.transfer_step_stats`).
"""

import copy
import time

import numpy as np
from tensorboard.compat.proto import config_pb2, step_stats_pb2

from tensorweave.runtime.closures import STEP_SLOT, compile_program

OPS_THREAD = 0
RECV_THREAD = 1
TRANSFER_THREAD = 2
THREAD_NAMES = {OPS_THREAD: "ops", RECV_THREAD: "receives", TRANSFER_THREAD: "transfers"}
ALLOCATOR = "cpu"

_now = time.time_ns


def tracing_requested(options, run_metadata):
    """Whether a step should collect stats: a `RunMetadata` to fill and `options.trace_level`
    above NO_TRACE (TF collects step stats from SOFTWARE_TRACE up)."""
    return (run_metadata is not None and options is not None
            and options.trace_level != config_pb2.RunOptions.NO_TRACE)


def timeline_label(op):
    """TF's label of a traced op: "name = Type(inputs)"; a send or receive names the transfer's
    tensor and the peer device instead ("_send_0 = _Send(edge_x @/job:ps/.../CPU:0)")."""
    if op.type in ("_Send", "_Recv"):
        peer = op.get_attr("recv_device" if op.type == "_Send" else "send_device")
        return f"{op.name} = {op.type}({op.get_attr('tensor_name')} @{peer})"
    inputs = [t.op.name if t.value_index == 0 else t.name for t in op.inputs]  # as a NodeDef's inputs
    inputs += ["^" + c.name for c in op.control_inputs]
    return f"{op.name} = {op.type}({', '.join(inputs)})"


class _Node:
    """What a record needs of an op, worked out once when the plan is instrumented."""

    __slots__ = ("device", "dtypes", "label", "name", "template", "thread")

    def __init__(self, op, device):
        self.device = device
        self.name = op.name
        self.label = timeline_label(op)
        self.dtypes = tuple(t.dtype.base_dtype.as_datatype_enum for t in op.outputs)
        self.thread = RECV_THREAD if op.op_def.async_kernel else OPS_THREAD
        self.template = None  # (outputs, serialized NodeExecStats) of the last record, see `_template`


def _describe(value):
    """(shape, bytes) of one output value; None for what is not an array (a variable reference)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.shape, value.nbytes
    return None


class StepStatsCollector:
    """The records of one traced step, from every partition (thread) that runs in it."""

    def __init__(self):
        self._records = []  # (node, start ns, end ns, output descriptions); list.append is atomic

    def record(self, node, start, end, result):
        """Records one op run: `result` is what its kernel returned (one value, a tuple or None)."""
        n = len(node.dtypes)
        if n == 1:
            outputs = (_describe(result),)
        elif n:
            outputs = tuple(_describe(v) for v in result)
        else:
            outputs = ()
        self._records.append((node, start, end, outputs))

    def __len__(self):
        return len(self._records)

    def fill(self, step_stats):
        """Adds the records to a TF `StepStats` message, one `dev_stats` per device (existing
        ones are extended), in the order the ops started; returns the message."""
        devices = {d.device: d for d in step_stats.dev_stats}
        rows = {}
        for node, start, end, outputs in sorted(self._records, key=lambda r: r[1]):
            dev = rows.get((node.device, node.thread))
            if dev is None:
                dev = devices.get(node.device)
                if dev is None:
                    dev = devices[node.device] = step_stats.dev_stats.add(device=node.device)
                dev.thread_names[node.thread] = THREAD_NAMES[node.thread]
                rows[node.device, node.thread] = dev
            ns = dev.node_stats.add()
            ns.MergeFromString(_template(node, outputs))
            set_times(ns, start, end)
        return step_stats


def _template(node, outputs):
    """The serialized NodeExecStats of `node` without times. Building messages field by field
    costs several µs per op in Python, so the last one of each node is kept and merged again
    while its outputs keep their shapes (a training loop's usual case)."""
    last = node.template
    if last is not None and last[0] == outputs:
        return last[1]
    ns = step_stats_pb2.NodeExecStats(node_name=node.name, timeline_label=node.label, thread_id=node.thread)
    for slot, (dtype, desc) in enumerate(zip(node.dtypes, outputs, strict=True)):
        out = ns.output.add(slot=slot)
        out.tensor_description.dtype = dtype
        if desc is None:
            continue
        shape, nbytes = desc
        for size in shape:
            out.tensor_description.shape.dim.add(size=size)
        alloc = out.tensor_description.allocation_description
        alloc.requested_bytes = nbytes
        alloc.allocated_bytes = nbytes
        alloc.allocator_name = ALLOCATOR
    data = ns.SerializeToString()
    node.template = (outputs, data)
    return data


def set_times(node_stats, start_ns, end_ns):
    """Sets a NodeExecStats' start (wall clock) and its relative end times, in µs and in ns."""
    duration = max(0, end_ns - start_ns)
    node_stats.all_start_micros = start_ns // 1000
    node_stats.all_start_nanos = start_ns
    node_stats.op_end_rel_micros = node_stats.all_end_rel_micros = duration // 1000
    node_stats.op_end_rel_nanos = node_stats.all_end_rel_nanos = duration


# --- instrumented plans ---------------------------------------------------------------------------

def _timed(fn, node):
    def traced(step, *args):
        start = _now()
        result = fn(*args)
        step.stats.record(node, start, _now(), result)
        return result
    return traced


def _timed_async(fn, node):
    def traced(step, done, *args):
        stats, start = step.stats, _now()

        def timed_done(value, error):
            if error is None:
                stats.record(node, start, _now(), value)
            done(value, error)
        return fn(step, timed_done, *args)
    return traced


def _instrument_steps(steps, device):
    """The steps with kernels that record into `vals[STEP_SLOT].stats` (the step's collector):
    a synchronous kernel gets the step context as an extra first input; an asynchronous one
    already takes it, and records when its completion arrives."""
    out = []
    for s in steps:
        node = _Node(s.op, device)
        step = copy.copy(s)
        if s.op.op_def.async_kernel:
            step.fn = _timed_async(s.fn, node)
        else:
            step.fn = _timed(s.fn, node)
            step.ins = (STEP_SLOT, *s.ins)
        out.append(step)
    return out


def instrument_plan(plan):
    """A copy of `plan` whose steps record into the step's `StepStatsCollector`, for every way
    the executor may run it (fixed order, chunked, dataflow)."""
    traced = copy.copy(plan)
    device = plan.device_name
    traced.steps = _instrument_steps(plan.steps, device)
    traced.program = compile_program(traced.steps)
    if plan.chunked is not None:
        chunked = traced.chunked = copy.copy(plan.chunked)
        chunked.pre = _instrument_steps(plan.chunked.pre, device)
        chunked.region = _instrument_steps(plan.chunked.region, device)
        chunked.post = _instrument_steps(plan.chunked.post, device)
        chunked.program = compile_program(chunked.pre + chunked.region + chunked.post)
    if plan.dataflow is not None:
        dataflow = traced.dataflow = copy.copy(plan.dataflow)
        dataflow.steps = tuple(_instrument_steps(plan.dataflow.steps, device))
    return traced
