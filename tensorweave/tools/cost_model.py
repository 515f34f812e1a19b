"""Measured op costs: times and output sizes accumulated over traced steps.

A `CostModel` is fed the `StepStats` of traced steps (`RunOptions(trace_level=FULL_TRACE)`) and
keeps, per (op, device), how often the op ran, its total and mean time, and the mean bytes of its
outputs; wire transfers ("_recv/<tensor>", "_send/<tensor>") count the bytes moved. Ops are keyed
by node name, or by op type with `CostModel(by="type")`.

It is the measurement a later automatic placer needs (DESIGN.md §3, model parallelism: the TF
whitepaper's greedy simulation estimates each op's time on each device and each edge's
transfer size from earlier steps). Nothing in the runtime reads it yet; `tensorweave profile`
and the tests do.
"""

import dataclasses
import json

from tensorboard.compat.proto import config_pb2

from tensorweave.tools.timeline import parse_timeline_label

__all__ = ["CostModel", "OpCost"]


@dataclasses.dataclass
class OpCost:
    """What was measured of one op on one device: runs, total µs and total output bytes."""

    op: str
    device: str
    count: int = 0
    total_us: float = 0.0
    total_bytes: int = 0

    @property
    def mean_us(self):
        return self.total_us / self.count if self.count else 0.0

    @property
    def mean_bytes(self):
        return self.total_bytes / self.count if self.count else 0.0


class CostModel:
    """Op times and output sizes measured over steps, keyed by (op name or type, device)."""

    def __init__(self, by="name"):
        if by not in ("name", "type"):
            raise ValueError(f"CostModel keys ops by 'name' or 'type', not {by!r}")
        self.by = by
        self.steps = 0
        self._costs = {}

    def _key(self, node):
        if self.by == "name":
            return node.node_name
        op, _ = parse_timeline_label(node.timeline_label)
        return op or node.node_name

    def add(self, step_stats):
        """Adds one traced step (a TF `StepStats`, or a `RunMetadata` holding one)."""
        if isinstance(step_stats, config_pb2.RunMetadata):
            step_stats = step_stats.step_stats
        for dev in step_stats.dev_stats:
            for node in dev.node_stats:
                nanos = node.all_end_rel_nanos or (node.all_end_rel_micros * 1000)
                self.record(self._key(node), dev.device, nanos / 1000.0,
                            sum(o.tensor_description.allocation_description.requested_bytes for o in node.output))
        self.steps += 1
        return self

    def record(self, op, device, micros, nbytes=0):
        """Adds one measured run of `op` on `device`: `micros` long, `nbytes` of outputs."""
        cost = self._costs.get((op, device))
        if cost is None:
            cost = self._costs[op, device] = OpCost(op, device)
        cost.count += 1
        cost.total_us += micros
        cost.total_bytes += nbytes

    def _matching(self, op, device):
        costs = [c for (o, d), c in self._costs.items() if o == op and device in (None, d)]
        if not costs:
            where = f" on {device}" if device is not None else ""
            raise KeyError(f"No measurement of {op!r}{where} (keyed by {self.by})")
        return costs

    def op_time(self, op, device=None):
        """Mean time in µs of one run of `op` (a node name, or a type under by="type") on
        `device` (None: over every device it ran on). KeyError if never measured."""
        costs = self._matching(op, device)
        return sum(c.total_us for c in costs) / sum(c.count for c in costs)

    def output_bytes(self, op, device=None):
        """Mean bytes of `op`'s outputs per run (for a transfer: bytes on the wire)."""
        costs = self._matching(op, device)
        return sum(c.total_bytes for c in costs) / sum(c.count for c in costs)

    def count(self, op, device=None):
        """How many runs of `op` were measured (0 if none)."""
        return sum(c.count for (o, d), c in self._costs.items() if o == op and device in (None, d))

    def costs(self):
        """Every `OpCost`, in no particular order."""
        return list(self._costs.values())

    def top(self, n=10):
        """The `n` costliest (op, device) entries by total time, as `OpCost`s."""
        return sorted(self._costs.values(), key=lambda c: (-c.total_us, c.op, c.device))[:n]

    def to_json(self):
        """The model as a JSON string (what `from_json` reads)."""
        return json.dumps({"by": self.by, "steps": self.steps,
                           "ops": [dataclasses.asdict(c) for c in sorted(self._costs.values(),
                                                                         key=lambda c: (c.op, c.device))]})

    @classmethod
    def from_json(cls, text):
        """A model from `to_json`'s output; ValueError if it is not one."""
        try:
            data = json.loads(text)
            model = cls(by=data["by"])
            model.steps = int(data["steps"])
            for entry in data["ops"]:
                cost = OpCost(str(entry["op"]), str(entry["device"]), int(entry["count"]),
                              float(entry["total_us"]), int(entry["total_bytes"]))
                model._costs[cost.op, cost.device] = cost
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"Not a CostModel JSON document: {e}") from None
        return model
