"""The dataflow executor, for plans with asynchronous kernels (receives).

A ready queue fed by in-degree counts: a step runs once all its producers (and control inputs)
have run; an asynchronous step is started and the executor goes on with other ready steps until
its completion arrives. So a partition waiting for a tensor never stops the partition that
produces it, whatever order either was written in. Values die when their last reader has run.
Plans without asynchronous kernels use the faster fixed-order closures instead.
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
    ready = collections.deque(i for i, n in enumerate(pending) if n == 0)
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
                ready.append(j)

    done_steps = 0
    while done_steps < len(steps):
        if ready:
            i = ready.popleft()
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
