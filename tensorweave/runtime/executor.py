"""The executor: a small interpreter over a compiled `Plan`.

Each step of a plan is one closure (see `closures`); a run is a bare loop of calls in the
dataflow order fixed at compile time, so it does no scheduling work of its own. Plans with a
row-independent region may run it in chunks of rows (see `chunking`). Plans with asynchronous
kernels (receives) run on the ready-queue executor of `dataflow` instead.
"""

import threading

import numpy as np

from tensorweave.framework import errors
from tensorweave.runtime.chunking import rows_to_chunk, run_chunked
from tensorweave.runtime.closures import STEP_SLOT
from tensorweave.runtime.dataflow import run_dataflow
from tensorweave.runtime.threads import ReusableThreads


class StepContext:
    """What a step-aware kernel sees of the current run (its rendezvous carries sends/receives)."""

    __slots__ = ("step_id", "options", "stats", "rendezvous")

    def __init__(self, step_id, options=None, rendezvous=None, stats=None):
        self.step_id = step_id
        self.options = options
        self.stats = stats  # a StepStatsCollector when the step is traced
        self.rendezvous = rendezvous


def run_plan(plan, feed_values, step, timeout=None):
    """Runs `plan` with `feed_values` (one array per feed slot); returns the fetched values.

    `timeout` (seconds) bounds waits for asynchronous kernels (receives), if the plan has any.
    A step with a `StepStatsCollector` in `step.stats` runs the plan's instrumented variant.
    """
    if step.stats is not None:
        plan = plan.traced()
    vals = list(plan.initial)
    vals[STEP_SLOT] = step
    for slot, value in zip(plan.feed_slots, feed_values, strict=True):
        vals[slot] = value
    with np.errstate(all="ignore"):
        chunked = plan.chunked
        rows = chunked and rows_to_chunk(chunked, vals)
        if plan.dataflow is not None:
            run_dataflow(plan, vals, timeout)
        elif rows:
            run_chunked(chunked, vals, rows, run_closures)
        else:
            run_closures(*plan.program, vals)
    out = []
    for slot, deref in zip(plan.fetch_slots, plan.fetch_deref, strict=True):
        value = vals[slot]
        if deref:
            value = value.read()
        out.append(value)
    return out


def run_closures(closures, ops, vals):
    """Runs compiled steps in order; an error is re-raised naming the op that failed."""
    current = None
    try:
        for current in closures:
            current(vals)
    except errors.OpError as e:
        if e.op is None:
            raise type(e)(e.node_def, ops[current], e.message) from e
        raise
    except Exception as e:
        raise ops[current].error(errors.InvalidArgumentError, f"{type(e).__name__}: {e}") from e


_PARTITION_THREADS = ReusableThreads("tensorweave-partition")


def run_partitions(jobs, step, timeout=None):
    """Runs the partitions of one step at once, sharing `step`'s rendezvous; `jobs` is a list of
    (plan, feed values). Returns each plan's fetched values, in order.

    The first runs on the calling thread, each other on a thread of its own (reused across
    steps), never a bounded pool: a partition blocked on a receive must not keep another
    partition (maybe its sender) from starting. A failing partition aborts the rendezvous, so its peers fail instead of waiting;
    the first error is raised once all have finished.
    """
    results, failures = [None] * len(jobs), []

    def run(index):
        plan, feed_values = jobs[index]
        try:
            results[index] = run_plan(plan, feed_values, step, timeout=timeout)
        except BaseException as e:  # noqa: BLE001 - raised below, after the peers finished
            step.rendezvous.abort(e)
            failures.append(e)

    done = [threading.Event() for _ in range(1, len(jobs))]

    def run_and_signal(index):
        try:
            run(index)
        finally:
            done[index - 1].set()

    for i in range(1, len(jobs)):
        _PARTITION_THREADS.submit(run_and_signal, i)
    if jobs:
        run(0)
    for event in done:
        event.wait()
    if failures:
        raise failures[0]
    return results
