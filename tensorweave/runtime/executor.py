"""The executor: a small interpreter over a compiled `Plan`.

Each step of a plan becomes one closure that reads its inputs from the slot list, calls the
kernel, writes its outputs and clears the slots that died. The closures are specialised by arity
once, when the plan is compiled, so a run is a bare loop of calls: the framework adds a fraction
of a microsecond per op to the NumPy kernel itself. The order is the dataflow order fixed at
compile time, so a run does no scheduling work of its own.
"""

import numpy as np

from tensorweave.framework import errors
STEP_SLOT = 0     # holds the per-step context, for kernels that take it
DISCARD_SLOT = 1  # where ops without outputs "write" their None result


class StepContext:
    """What a step-aware kernel sees of the current run."""

    __slots__ = ("step_id", "options", "stats")

    def __init__(self, step_id, options=None):
        self.step_id = step_id
        self.options = options
        self.stats = None


def _closure(fn, ins, out, frees):
    """One plan step as a function of the slot list (common arities written out for speed)."""
    n = len(ins)
    if out.__class__ is int and not frees:
        if n == 0:
            def step(v):
                v[out] = fn()
        elif n == 1:
            (a,) = ins

            def step(v):
                v[out] = fn(v[a])
        elif n == 2:
            a, b = ins

            def step(v):
                v[out] = fn(v[a], v[b])
        else:
            def step(v):
                v[out] = fn(*[v[i] for i in ins])
        return step
    if out.__class__ is int:
        if n == 1 and len(frees) == 1:
            (a,), (f,) = ins, frees

            def step(v):
                v[out] = fn(v[a])
                v[f] = None
        elif n == 2 and len(frees) == 1:
            (a, b), (f,) = ins, frees

            def step(v):
                v[out] = fn(v[a], v[b])
                v[f] = None
        else:
            def step(v):
                v[out] = fn(*[v[i] for i in ins])
                for f in frees:
                    v[f] = None
        return step

    def step(v):
        result = fn(*[v[i] for i in ins])
        for o, r in zip(out, result, strict=True):
            v[o] = r
        for f in frees:
            v[f] = None
    return step


def compile_program(plan):
    """The closures that run `plan`, one per step, and a map back to each step's op."""
    closures = tuple(_closure(s.fn, s.ins, s.outs, s.frees) for s in plan.steps)
    ops = {c: s.op for c, s in zip(closures, plan.steps, strict=True)}
    return closures, ops


def run_plan(plan, feed_values, step):
    """Runs `plan` with `feed_values` (one array per feed slot); returns the fetched values."""
    vals = list(plan.initial)
    vals[STEP_SLOT] = step
    for slot, value in zip(plan.feed_slots, feed_values, strict=True):
        vals[slot] = value
    closures, ops = plan.program
    current = None
    with np.errstate(all="ignore"):
        try:
            for current in closures:
                current(vals)
        except errors.OpError as e:
            if e.op is None:
                raise type(e)(e.node_def, ops[current], e.message) from e
            raise
        except Exception as e:
            raise ops[current].error(errors.InvalidArgumentError, f"{type(e).__name__}: {e}") from e
    out = []
    for slot, deref in zip(plan.fetch_slots, plan.fetch_deref):
        value = vals[slot]
        if deref:
            value = value.read()
        out.append(value)
    return out
