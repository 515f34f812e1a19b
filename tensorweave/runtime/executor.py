"""The executor: a small interpreter over a compiled `Plan`.

Each step reads its inputs from slots, calls the kernel, writes its outputs and clears the
slots that died. The order is the dataflow order fixed when the plan was compiled, so a run
does no scheduling work of its own.
"""

import numpy as np

from tensorweave.framework import errors
from tensorweave.runtime.plan import STEP_SLOT


class StepContext:
    """What a step-aware kernel sees of the current run."""

    __slots__ = ("step_id", "options", "stats")

    def __init__(self, step_id, options=None):
        self.step_id = step_id
        self.options = options
        self.stats = None


def run_plan(plan, feed_values, step):
    """Runs `plan` with `feed_values` (one array per feed slot); returns the fetched values."""
    vals = list(plan.initial)
    vals[STEP_SLOT] = step
    for slot, value in zip(plan.feed_slots, feed_values, strict=True):
        vals[slot] = value
    program = plan.program
    index = 0
    with np.errstate(all="ignore"):
        try:
            for index, (fn, ins, out, frees) in enumerate(program):
                result = fn(*[vals[i] for i in ins])
                if out.__class__ is int:
                    vals[out] = result
                else:
                    for o, v in zip(out, result):
                        vals[o] = v
                for f in frees:
                    vals[f] = None
        except errors.OpError as e:
            if e.op is None:
                raise type(e)(e.node_def, plan.steps[index].op, e.message) from e
            raise
        except Exception as e:
            op = plan.steps[index].op
            raise op.error(errors.InvalidArgumentError, f"{type(e).__name__}: {e}") from e
    out = []
    for slot, deref in zip(plan.fetch_slots, plan.fetch_deref):
        value = vals[slot]
        if deref:
            value = value.read()
        out.append(value)
    return out
