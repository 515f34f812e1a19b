"""The dataflow executor, for plans with asynchronous kernels (receives).

A ready queue fed by in-degree counts: a step runs once all its producers (and control inputs)
have run; an asynchronous step is started and the executor goes on with other ready steps until
its completion arrives. So a partition waiting for a tensor never stops the partition that
produces it, whatever order either was written in. Values die when their last reader has run.
Plans without asynchronous kernels use the faster fixed-order closures instead.

Steps that lead to a `_Send` without waiting on any receive (a parameter server's variable reads
for its workers) go before the others: other tasks wait for those values, while the receives
this partition starts at the same time are for values that come later.
"""

import collections
import queue
import time

from tensorweave.framework import errors
from tensorweave.runtime.closures import STEP_SLOT


class DataflowInfo:
    """Per plan: initial in-degree of each step, successors, readers per slot, async flags."""

    def __init__(self, steps, keep, initial):
        self.steps = tuple(steps)
        producer = {}
        for index, s in enumerate(steps):
            for slot in (s.outs if isinstance(s.outs, tuple) else (s.outs,)):
                producer[slot] = index
        position = {s.op: index for index, s in enumerate(steps)}
        preds = []
        for s in steps:
            p = {producer[slot] for slot in s.ins if slot in producer}
            p |= {position[c] for c in s.op.control_inputs if c in position}
            preds.append(p)
        successors = [[] for _ in steps]
        for index, p in enumerate(preds):
            for q in p:
                successors[q].append(index)
        readers = collections.Counter(slot for s in steps for slot in s.ins if slot != STEP_SLOT)
        self.pending = tuple(len(p) for p in preds)
        self.successors = tuple(tuple(s) for s in successors)
        self.readers = {slot: n for slot, n in readers.items() if slot not in keep and slot not in initial}
        self.is_async = tuple(s.op.op_def.async_kernel for s in steps)
        self.urgent = _urgent(steps, preds, self.successors, self.is_async)


def _urgent(steps, preds, successors, is_async):
    """Per step: whether it feeds a `_Send` and waits on no asynchronous step (a receive). Steps
    come in an order where each follows its producers, as plans run them; the flags only order
    ready steps, so they never decide whether a step may run."""
    waits = [False] * len(steps)
    for i in range(len(steps)):
        waits[i] = is_async[i] or any(waits[p] for p in preds[i])
    feeds_send = [False] * len(steps)
    for i in reversed(range(len(steps))):
        feeds_send[i] = steps[i].op.type == "_Send" or any(feeds_send[j] for j in successors[i])
    return tuple(f and not w for f, w in zip(feeds_send, waits, strict=True))


def _store(vals, outs, result):
    if outs.__class__ is int:
        vals[outs] = result
    else:
        for slot, value in zip(outs, result, strict=True):
            vals[slot] = value


def _op_error(op, e):
    if isinstance(e, errors.OpError):
        return e if e.op is not None else type(e)(e.node_def, op, e.message)
    return op.error(errors.InvalidArgumentError, f"{type(e).__name__}: {e}")


def run_dataflow(plan, vals, timeout=None):
    """Runs `plan.steps` on the slot list `vals` in dataflow order; `timeout` in seconds bounds
    the wait for asynchronous completions (DeadlineExceededError), None waits for them."""
    info = plan.dataflow
    steps = info.steps
    pending = list(info.pending)
    readers = dict(info.readers)
    urgent = info.urgent
    first = collections.deque(i for i, n in enumerate(pending) if n == 0 and urgent[i])  # see module doc
    ready = collections.deque(i for i, n in enumerate(pending) if n == 0 and not urgent[i])
    completions = queue.SimpleQueue()
    outstanding = 0
    deadline = None if timeout is None else time.monotonic() + timeout

    def finished(i):
        for slot in steps[i].ins:
            left = readers.get(slot)
            if left is not None:
                readers[slot] = left - 1
                if left == 1:
                    vals[slot] = None
        for j in info.successors[i]:
            pending[j] -= 1
            if pending[j] == 0:
                (first if urgent[j] else ready).append(j)

    done_steps = 0
    while done_steps < len(steps):
        if first or ready:
            i = first.popleft() if first else ready.popleft()
            s = steps[i]
            if info.is_async[i]:
                outstanding += 1
                try:
                    s.fn(vals[STEP_SLOT], lambda value, error, i=i: completions.put((i, value, error)),
                         *[vals[slot] for slot in s.ins[1:]])
                except Exception as e:  # noqa: BLE001 - reported as the op's error
                    raise _op_error(s.op, e) from e
                continue
            try:
                result = s.fn(*[vals[slot] for slot in s.ins])
            except Exception as e:  # noqa: BLE001 - reported as the op's error
                raise _op_error(s.op, e) from e
            _store(vals, s.outs, result)
            finished(i)
            done_steps += 1
            continue
        if not outstanding:
            stuck = [steps[i].op.name for i, n in enumerate(pending) if n > 0][:5]
            raise errors.InternalError(None, None, f"Dataflow stalled with steps waiting: {stuck}")
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            i, value, error = completions.get(timeout=wait)
        except queue.Empty:
            raise errors.DeadlineExceededError(
                None, None, f"Timed out after {timeout} s waiting for a receive in this step") from None
        outstanding -= 1
        if error is not None:
            raise _op_error(steps[i].op, error)
        _store(vals, steps[i].outs, value)
        finished(i)
        done_steps += 1
