"""`tensorweave profile TRACE`: the ops that took the most time in a saved trace.

A trace is either a serialized `RunMetadata` (or bare `StepStats`) message, as a traced step
fills it (`open(path, "wb").write(run_metadata.SerializeToString())`), or the Chrome trace JSON
of `timeline.Timeline.generate_chrome_trace_format`.
"""

import json

from google.protobuf import message as _message
from tensorboard.compat.proto import config_pb2, step_stats_pb2

from tensorweave.tools.cost_model import CostModel

__all__ = ["format_top", "load_trace"]


def load_trace(path, by="name"):
    """A `CostModel` of the trace in the file at `path`; ValueError if it holds no trace."""
    with open(path, "rb") as f:
        data = f.read()
    if data.lstrip()[:1] in (b"{", b"["):
        return _from_chrome_trace(data, path, by)
    return CostModel(by).add(_step_stats(data, path))


def _step_stats(data, path):
    for message in (config_pb2.RunMetadata, step_stats_pb2.StepStats):
        try:
            parsed = message.FromString(data)
        except (_message.DecodeError, ValueError, RuntimeError):
            continue
        stats = parsed.step_stats if isinstance(parsed, config_pb2.RunMetadata) else parsed
        if stats.dev_stats:
            return stats
    raise ValueError(f"{path}: neither a RunMetadata or StepStats message with step stats nor a Chrome trace")


def _from_chrome_trace(data, path, by):
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    events = doc.get("traceEvents", []) if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise ValueError(f"{path}: no traceEvents list")
    lanes = {e.get("pid"): e.get("args", {}).get("name", "") for e in events
             if isinstance(e, dict) and e.get("ph") == "M" and e.get("name") == "process_name"}
    model = CostModel(by)
    for e in events:
        if not isinstance(e, dict) or e.get("ph") != "X":
            continue
        args = e.get("args") or {}
        op = args.get("name", e.get("name", "?")) if by == "name" else args.get("op", e.get("name", "?"))
        model.record(str(op), str(lanes.get(e.get("pid"), e.get("pid"))), float(e.get("dur", 0.0)),
                     int(args.get("output_bytes", 0)))
    if not model.costs():
        raise ValueError(f"{path}: the Chrome trace holds no complete (\"X\") events")
    model.steps = 1
    return model


def format_top(model, n=20):
    """A table of the `n` ops with the most total time in `model` (a `CostModel`)."""
    costs = model.costs()
    total = sum(c.total_us for c in costs) or 1.0
    top = model.top(n)
    what = "op type" if model.by == "type" else "op"
    steps = f"{model.steps} step{'s' if model.steps != 1 else ''}"
    lines = [f"top {len(top)} of {len(costs)} (op, device) entries by total time, {steps}, {total / 1000:.3f} ms in all",
             f"{'total ms':>10} {'share':>6} {'runs':>5} {'mean us':>10} {'out bytes':>10}  {what:<32} device"]
    for c in top:
        lines.append(f"{c.total_us / 1000:10.3f} {100 * c.total_us / total:5.1f}% {c.count:5d} {c.mean_us:10.1f} "
                     f"{int(c.mean_bytes):10d}  {c.op:<32} {c.device}")
    return "\n".join(lines)
