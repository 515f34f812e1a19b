"""Compiling a (feeds, fetches, targets) signature into a plan the executor interprets.

Compilation prunes the graph to what the fetches and targets need (a fed tensor cuts the
dependency on its producer), folds constant subgraphs, instantiates each op's kernel once,
assigns every tensor a slot and orders the ops by dataflow (Kahn's algorithm over in-degree
counts). Each step of the plan knows which slots die after it, so values are freed as soon as
their last consumer ran. All of this happens once per signature; a run only interprets.
"""

import numpy as np

from tensorweave.framework import errors
from tensorweave.framework.op_def import call_kernel
from tensorweave.framework.toposort import CycleError, kahn_order
from tensorweave.runtime.chunking import chunked_schedule
from tensorweave.runtime.closures import DISCARD_SLOT, STEP_SLOT, compile_program
from tensorweave.runtime.dataflow import DataflowInfo
from tensorweave.runtime.step_stats import instrument_plan


class PlanStep:
    __slots__ = ("op", "fn", "ins", "outs", "frees")

    def __init__(self, op, fn, ins, outs, frees):
        self.op = op
        self.fn = fn
        self.ins = ins
        self.outs = outs
        self.frees = frees


class Plan:
    """A compiled signature: initial slot values (constants), feed/fetch slots and the steps."""

    def __init__(self, num_slots, initial, feed_slots, fetch_slots, fetch_deref, steps, ops, device_name=""):
        self.num_slots = num_slots
        self.initial = initial
        self.feed_slots = feed_slots
        self.fetch_slots = fetch_slots
        self.fetch_deref = fetch_deref
        self.steps = steps
        self.ops = ops
        self.program = compile_program(steps)
        self.device_name = device_name
        self.chunked = None
        self.dataflow = None
        self._traced = None

    def traced(self):
        """This plan with every step timed into the step's `StepStatsCollector` (`step_stats`),
        compiled on the first traced run and kept; untraced runs never build or use it."""
        traced = self._traced
        if traced is None:
            traced = self._traced = instrument_plan(self)
        return traced


def prune(feeds, fetches, targets):
    """The ops needed to compute `fetches` and run `targets` given `feeds`, in creation order."""
    fed = set(feeds)
    needed = {}
    stack = [t.op for t in fetches if t not in fed] + list(targets)
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        needed[op] = True
        for t in op.inputs:
            if t not in fed:
                stack.append(t.op)
        stack.extend(op.control_inputs)
    return sorted(needed, key=lambda op: op._id)


def topological_order(ops):
    """`ops` ordered so every op follows its data and control inputs (ties by creation order)."""
    try:
        return kahn_order(ops, lambda op: [t.op for t in op.inputs] + list(op.control_inputs),
                          key=lambda op: op._id)
    except CycleError as e:
        cyclic = sorted(op.name for op in e.unordered)[:5]
        raise errors.InvalidArgumentError(None, None, f"Graph has a cycle among ops {cyclic}") from None


def _deref_wrapper(fn, positions):
    if positions == (0,):
        return lambda ref, *rest: fn(ref.read(), *rest)
    if positions == (1,):
        return lambda a, ref, *rest: fn(a, ref.read(), *rest)

    def deref(*args):
        args = list(args)
        for p in positions:
            args[p] = args[p].read()
        return fn(*args)
    return deref


def _attr_key(value):
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes()) if value.size <= 64 else id(value)
    if isinstance(value, list):
        return tuple(_attr_key(v) for v in value)
    return value


def _cse_key(op, ins):
    """Two ops with equal keys compute the same values (both stateless)."""
    try:
        attrs = tuple(sorted((k, _attr_key(v)) for k, v in op._attrs.items() if k != "_class"))
        key = (op.type, tuple(ins), attrs, tuple(c._id for c in op.control_inputs))
        hash(key)
    except TypeError:  # an unhashable attr: never merge
        return None
    return key


def _deref_positions(op, fed):
    """Kernel argument positions of the inputs that are variable references to read when the op
    runs (not fed, not taken as refs). A step kernel's arguments start with the step, an
    asynchronous one's with the step and its `done` callback."""
    d = op.op_def
    offset = 2 if d.async_kernel else 1 if d.step_kernel else 0
    return tuple(offset + i for i, t in enumerate(op.inputs)
                 if t.op.op_def.ref_outputs and t not in fed and i not in d.ref_inputs)


def _foldable(op, fed_ops):
    d = op.op_def
    return not (d.stateful or d.ref_outputs or d.step_kernel or op in fed_ops)


def compile_plan(feeds, fetches, targets, device, fold_constants=True):
    """Builds the `Plan` for `fetches` (tensors) and `targets` (ops) given `feeds` (tensors)."""
    fed = set(feeds)
    fed_ops = {t.op for t in feeds}
    ops = topological_order(prune(feeds, fetches, targets))

    slots = {}
    num_slots = [2]  # the step context and the discard slot

    def new_slot():
        num_slots[0] += 1
        return num_slots[0] - 1

    feed_slots = tuple(slots.setdefault(t, new_slot()) for t in feeds)
    initial = {}
    folded = set()
    compiled = []  # (op, fn, input slots, output slots)
    seen = {}      # common subexpressions: (type, input slots, attrs, control inputs) -> output slots
    for op in ops:
        ins = []
        for t in op.inputs:
            if t not in slots:
                raise errors.InternalError(None, op, f"input {t.name} has no slot")
            ins.append(slots[t])
        cse_key = _cse_key(op, ins) if _foldable(op, fed_ops) and op.outputs and \
            not any(t in fed for t in op.outputs) else None
        if cse_key is not None and cse_key in seen:
            for t, slot in zip(op.outputs, seen[cse_key], strict=True):
                slots[t] = slot
            if all(s in initial for s in seen[cse_key]):  # merged into a constant: a constant too
                folded.add(op)
            continue
        outs = tuple(new_slot() if t in fed else slots.setdefault(t, new_slot()) for t in op.outputs)
        if cse_key is not None:
            seen[cse_key] = outs
        try:
            fn = op.op_def.make_kernel(op, device)
        except errors.OpError:
            raise
        except Exception as e:  # a kernel that cannot be built for these attrs is the op's error
            raise op.error(errors.InvalidArgumentError, f"cannot build kernel: {e}") from e
        deref = _deref_positions(op, fed)
        if deref:
            fn = _deref_wrapper(fn, deref)
        if op.op_def.step_kernel:
            ins.insert(0, STEP_SLOT)
        if (fold_constants and outs and _foldable(op, fed_ops)
                and all(t.op in folded and t not in fed for t in op.inputs)
                and all(c in folded for c in op.control_inputs)):
            value = _run_kernel(op, fn, [initial[i] for i in ins])
            for slot, v in zip(outs, value if len(outs) != 1 else (value,), strict=True):
                initial[slot] = v
            folded.add(op)
            continue
        compiled.append((op, fn, tuple(ins), outs))

    fetch_slots = []
    for t in fetches:
        if t not in slots:
            raise errors.InternalError(None, t.op, f"fetch {t.name} has no slot")
        fetch_slots.append(slots[t])
    fetch_deref = tuple(t.op.op_def.ref_outputs and t not in fed for t in fetches)

    keep = set(fetch_slots)
    steps = schedule_steps(donate_buffers(compiled, keep, initial, fed, set(feed_slots), device), keep, initial)
    init_list = [None] * num_slots[0]
    for s, v in initial.items():
        init_list[s] = v
    plan = Plan(num_slots[0], init_list, feed_slots, tuple(fetch_slots), fetch_deref, steps, ops,
                getattr(device, "name", ""))
    if any(op.op_def.async_kernel for op in ops):
        # Steps without the fixed-order frees: the ready queue frees by counting readers.
        plan.dataflow = DataflowInfo(schedule_steps(compiled, keep, initial, lambda slot: False), keep, initial)
    else:
        plan.chunked = chunked_schedule(compiled, feeds, slots, keep, initial, schedule_steps)
    return plan


DONATION_MIN_ELEMENTS = 4096  # below this an allocation costs less than the checks of an in-place kernel


def donate_buffers(compiled, keep, initial, fed, fed_slots, device):
    """`compiled` with in-place kernels where an input's array can be reused for the output.

    An input is donated to the op that reads it last when its array is fresh (made by a kernel
    that never returns views), no op in the plan can hold a view of it, it is neither fed,
    fetched nor a constant, and it is large enough to matter. The chunked schedule keeps the
    ordinary kernels, since it runs steps in another order.
    """
    last_use, producer = {}, {}
    for index, (op, _, ins, outs) in enumerate(compiled):
        for s in ins:
            last_use[s] = index
        for s in outs:
            producer[s] = op
    in_plan = {c[0] for c in compiled}
    out = list(compiled)
    for index, (op, _, ins, outs) in enumerate(compiled):
        d = op.op_def
        if d.make_inplace_kernel is None:
            continue
        position = d.inplace_input + (1 if d.step_kernel else 0)
        slot, t = ins[position], op.inputs[d.inplace_input]
        source = producer.get(slot)
        size = t.shape.num_elements()
        if (source is None or not source.op_def.fresh_outputs or last_use[slot] != index
                or ins.count(slot) != 1 or slot in keep or slot in initial or slot in fed_slots
                or (size is not None and size < DONATION_MIN_ELEMENTS)
                or not all(c is op or c.op_def.fresh_outputs for c in t._consumers if c in in_plan)):
            continue
        inplace = d.make_inplace_kernel(op, device)
        deref = _deref_positions(op, fed)
        out[index] = (op, _deref_wrapper(inplace, deref) if deref else inplace, ins, outs)
    return out


def schedule_steps(compiled, keep, initial, may_free=None):
    """PlanSteps for `compiled` (op, fn, ins, outs) in this order, each knowing which slots die
    after it: a slot dies after the last step that reads it, unless it is kept (fetched) or a
    constant. `may_free(slot)` can restrict which slots these steps may free at all."""
    last_use = {}
    for index, (_, _, ins, _) in enumerate(compiled):
        for s in ins:
            last_use[s] = index
    frees = [[] for _ in compiled]
    for s, index in last_use.items():
        if s not in keep and s != STEP_SLOT and s not in initial and (may_free is None or may_free(s)):
            frees[index].append(s)
    for index, (_, _, _, outs) in enumerate(compiled):  # outputs nobody reads die at once
        for s in outs:
            if s not in last_use and s not in keep and (may_free is None or may_free(s)):
                frees[index].append(s)
    steps = []
    for (op, fn, ins, outs), dead in zip(compiled, frees, strict=True):
        out = outs[0] if len(outs) == 1 else (outs or DISCARD_SLOT)
        steps.append(PlanStep(op, fn, ins, out, tuple(dead)))
    return steps


def _run_kernel(op, fn, args):
    with np.errstate(all="ignore"):
        return call_kernel(op, fn, args)
