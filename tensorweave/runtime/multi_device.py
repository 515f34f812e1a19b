"""Running one graph across several devices of this process (model parallelism in-process).

A step is: prune to the fetches, place every op (`placement.place`), split the graph by device
(`partition.partition_graph`), build one graph per device joined by `_Send`/`_Recv`
(`partition_graphs`), and compile a plan for each. All of that happens once per signature.
Each run then starts every partition at once (`executor.run_partitions`), sharing one rendezvous; the
receives are asynchronous, so partitions exchanging tensors both ways cannot deadlock. A
failing partition aborts the rendezvous, so its peers fail instead of waiting.
"""

import itertools
import threading

from tensorweave.framework import errors
from tensorweave.framework.graph import Graph
from tensorweave.framework.graph_io import import_graph_def
from tensorweave.framework.operation import Operation
from tensorweave.runtime.device import Device
from tensorweave.runtime.executor import StepContext, run_partitions
from tensorweave.runtime.partition import partition_graph
from tensorweave.runtime.partition_graphs import feed_name, partition_graph_defs, send_node_names
from tensorweave.runtime.placement import place
from tensorweave.runtime.plan import compile_plan, prune
from tensorweave.runtime.rendezvous import LocalRendezvous
from tensorweave.runtime.session import step_timeout
from tensorweave.runtime.step_stats import StepStatsCollector, tracing_requested

_step_ids = itertools.count(1)


class _Partition:
    """One device's share of a signature: its plan, which feeds it takes, which fetches it gives."""

    def __init__(self, device, plan, feed_indices, fetch_indices):
        self.device = device
        self.plan = plan
        self.feed_indices = feed_indices
        self.fetch_indices = fetch_indices


class MultiDeviceRuntime:
    """Runs steps of `graph` on the named devices, placing unplaced ops on `default_device`."""

    def __init__(self, graph, devices, default_device, config):
        self.graph = graph
        self.config = config
        self.devices = {name: Device(name) for name in devices}
        self.default_device = default_device
        self._signatures = {}
        self._lock = threading.Lock()
        self._running = set()  # rendezvous of steps in flight, aborted by close()

    def _prepare(self, feeds, fetches, targets):
        ops = prune(feeds, fetches, targets)
        placement = place(ops, list(self.devices), default_device=self.default_device,
                          allow_soft_placement=self.config.allow_soft_placement,
                          device_filters=list(self.config.device_filters) or None)
        specs = partition_graph(ops, placement, fetches=list(fetches) + list(targets), feeds=feeds)
        graph_defs = partition_graph_defs(specs)
        fetch_position = {f: i for i, f in enumerate(fetches)}
        partitions = []
        for device, spec in specs.items():
            g = Graph()
            with g.as_default():
                import_graph_def(graph_defs[device], name="")
            part_feeds = [g.get_tensor_by_name(feed_name(i)) for i in range(len(spec.feeds))]
            part_fetches, fetch_indices, part_targets = [], [], []
            for f in spec.fetches:
                if isinstance(f, Operation):
                    part_targets.append(g.get_operation_by_name(f.name))
                else:
                    part_fetches.append(g.get_tensor_by_name(f.name))
                    fetch_indices.append(fetch_position[f])
            part_targets += [g.get_operation_by_name(n) for n in send_node_names(graph_defs[device])]
            plan = compile_plan(part_feeds, part_fetches, part_targets, self.devices[device])
            partitions.append(_Partition(device, plan, [feeds.index(t) for t in spec.feeds], fetch_indices))
        return partitions

    def run(self, feeds, feed_values, fetches, targets, options, run_metadata):
        key = (tuple(feeds), tuple(fetches), tuple(targets))
        partitions = self._signatures.get(key)
        if partitions is None:
            with self._lock:
                partitions = self._signatures.get(key) or self._prepare(list(feeds), list(fetches), list(targets))
                self._signatures[key] = partitions
        stats = StepStatsCollector() if tracing_requested(options, run_metadata) else None
        step = StepContext(next(_step_ids), options, LocalRendezvous(), stats)
        timeout = step_timeout(options, self.config)

        with self._lock:
            self._running.add(step.rendezvous)
        try:
            results = run_partitions([(p.plan, [feed_values[i] for i in p.feed_indices]) for p in partitions],
                                     step, timeout)
        finally:
            with self._lock:
                self._running.discard(step.rendezvous)
        if stats is not None:
            stats.fill(run_metadata.step_stats)
        values = [None] * len(fetches)
        for index, p in enumerate(partitions):
            for position, value in zip(p.fetch_indices, results[index], strict=True):
                values[position] = value
        fed = dict(zip(feeds, feed_values, strict=True))
        for position, f in enumerate(fetches):
            if f in fed:  # a fetched feed is answered with the fed value, as in TF
                values[position] = fed[f]
        return values

    def close(self):
        with self._lock:
            running, self._running = list(self._running), set()
        for rendezvous in running:  # a step waiting (on a queue) fails instead of hanging
            rendezvous.abort(errors.CancelledError(None, None, "Session has been closed."))
        self._signatures.clear()
        for device in self.devices.values():
            device.resources.clear()

