"""A traced step as a Chrome trace, the format chrome://tracing and Perfetto (ui.perfetto.dev) open.

    run_metadata = tf.RunMetadata()
    sess.run(train_op, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
             run_metadata=run_metadata)
    trace = timeline.Timeline(run_metadata.step_stats).generate_chrome_trace_format()
    with open("timeline.json", "w") as f:
        f.write(trace)

As TF1's `tensorflow.python.client.timeline` (also importable as
`tensorweave.python.client.timeline`). Each device of each task is one process lane; its thread
rows are those the step stats name (ops, receives, wire transfers). Each op is a complete ("X")
event whose args name the node, its op type and its inputs; each tensor sent from one device to
another is a flow arrow from the producer's `_Send` to the consumer's `_Recv`.
"""

import json
import re

from tensorweave.runtime.step_stats import THREAD_NAMES

__all__ = ["Timeline", "parse_timeline_label"]

# "name = Op(inputs)", the label the executor gives each op (TF's format).
_LABEL = re.compile(r"^(?P<name>.*?) = (?P<op>[^(]*)\((?P<inputs>.*)\)$")
# "_recv <tensor> <encoding> <n> bytes", the label of a wire transfer (`tensor_codec`).
_TRANSFER = re.compile(r"^(?P<kind>_send|_recv) (?P<tensor>\S+) (?P<encoding>\S+) (?P<bytes>\d+) bytes$")


def parse_timeline_label(label):
    """(op type, [inputs]) from a TF timeline label "name = Op(a, b)"; a wire transfer's label
    gives ("_send"/"_recv", [tensor]); anything else (None, [])."""
    m = _LABEL.match(label)
    if m:
        inputs = m["inputs"].strip()
        return m["op"], [i.strip() for i in inputs.split(", ")] if inputs else []
    m = _TRANSFER.match(label)
    if m:
        return m["kind"], [m["tensor"]]
    return None, []


def _start_us(node):
    return node.all_start_nanos / 1000.0 if node.all_start_nanos else float(node.all_start_micros)


def _duration_us(node):
    if node.all_end_rel_nanos or node.all_start_nanos:
        return node.all_end_rel_nanos / 1000.0
    return float(node.all_end_rel_micros)


def _output_bytes(node):
    return sum(o.tensor_description.allocation_description.requested_bytes for o in node.output)


class Timeline:
    """The Chrome trace of one step's `StepStats` (TF's `timeline.Timeline`). `graph` is
    accepted for TF compatibility; the step stats alone name every op and its inputs."""

    def __init__(self, step_stats, graph=None):
        self._step_stats = step_stats
        self._graph = graph

    def generate_chrome_trace_format(self, show_dataflow=True, show_memory=False):
        """The trace as a JSON string ({"traceEvents": [...]}). `show_dataflow` adds the flow
        arrows of tensors sent between devices; `show_memory` adds, per device, a counter of the
        bytes its ops' outputs took (cumulative over the step: the stats do not say when a
        value was freed)."""
        return json.dumps(self.chrome_trace(show_dataflow, show_memory), separators=(",", ":"))

    def chrome_trace(self, show_dataflow=True, show_memory=False):
        """The trace as a dict (what `generate_chrome_trace_format` serializes)."""
        events = []
        devices = sorted({d.device for d in self._step_stats.dev_stats})
        pids = {device: pid for pid, device in enumerate(devices)}
        for device, pid in pids.items():
            events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": device}})
            events.append({"name": "process_sort_index", "ph": "M", "pid": pid, "args": {"sort_index": pid}})
        threads = {}
        sends, recvs = {}, {}
        allocated = {}
        for dev in self._step_stats.dev_stats:
            pid = pids[dev.device]
            for node in sorted(dev.node_stats, key=_start_us):
                if not node.all_start_micros and not node.all_start_nanos:
                    continue  # bytes only, no times (a transfer recorded by an older task)
                op, inputs = parse_timeline_label(node.timeline_label)
                op = op or node.node_name
                tid = node.thread_id
                if (pid, tid) not in threads:
                    threads[pid, tid] = dev.thread_names.get(tid) or THREAD_NAMES.get(tid, f"thread {tid}")
                start, duration = _start_us(node), _duration_us(node)
                nbytes = _output_bytes(node)
                args = {"name": node.node_name, "op": op, "inputs": inputs}
                if nbytes:
                    args["output_bytes"] = nbytes
                events.append({"name": op, "cat": "Op", "ph": "X", "pid": pid, "tid": tid,
                                "ts": start, "dur": duration, "args": args})
                if op in ("_Send", "_Recv") and inputs:
                    tensor, _, peer = inputs[0].rpartition(" @")
                    if op == "_Send":
                        sends[tensor, dev.device, peer] = (pid, tid, start)
                    else:
                        recvs[tensor, peer, dev.device] = (pid, tid, start + duration)
                if show_memory and nbytes:
                    allocated[pid] = allocated.get(pid, 0) + nbytes
                    events.append({"name": "Output bytes", "ph": "C", "pid": pid, "ts": start + duration,
                                   "args": {"bytes": allocated[pid]}})
        for (pid, tid), name in sorted(threads.items()):
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
        if show_dataflow:
            events.extend(_flows(sends, recvs))
        return {"traceEvents": events, "displayTimeUnit": "ns"}


def _flows(sends, recvs):
    """Flow start/end pairs, one per tensor both sent and received in the step."""
    out = []
    for flow_id, key in enumerate(sorted(k for k in sends if k in recvs)):
        tensor = key[0].split(";", 1)[0]
        (spid, stid, sts), (rpid, rtid, rts) = sends[key], recvs[key]
        out.append({"name": tensor, "cat": "DataFlow", "ph": "s", "id": flow_id, "pid": spid, "tid": stid,
                    "ts": sts})
        out.append({"name": tensor, "cat": "DataFlow", "ph": "f", "bp": "e", "id": flow_id, "pid": rpid,
                    "tid": rtid, "ts": rts})
    return out
