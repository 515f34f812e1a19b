"""Running the row-independent part of a plan in chunks of rows.

Evaluating a convolutional network on 10,000 images in one feed would hold every activation
for the whole batch (the first layer's output alone is a gigabyte). When the ops between the
feeds and some tensor only ever combine row i of their inputs into row i of their outputs
(`OpDef.batch_rule`), the executor runs that region on a few hundred rows at a time and keeps
only the region's outputs. The schedule is: the steps the region does not depend on, the
region once per chunk, then the rest on the concatenated results.
"""

import numpy as np

from tensorweave.runtime.closures import compile_program

CHUNK_ROWS = 256  # rows per chunk: large enough for BLAS, small enough that chunk intermediates stay small


class ChunkedSchedule:
    """Steps before, inside and after the chunked region, and the slots that cross it."""

    def __init__(self, source_slots, pre, region, post, gather_slots):
        self.source_slots = source_slots
        self.pre = pre
        self.region = region
        self.post = post
        self.gather_slots = gather_slots
        self.program = None


def _region(compiled, sources):
    """(region ops, batched tensors, ops downstream of the region) for the given row sources."""
    batched = set(sources)
    region, downstream = set(), set()
    for op, _, _, _ in compiled:
        flags = [t in batched for t in op.inputs]
        touches = any(t.op in region or t.op in downstream for t in op.inputs) or \
            any(c in region or c in downstream for c in op.control_inputs)
        d = op.op_def
        rule = d.batch_rule
        whole_inputs_ready = not any(t.op in downstream for t, b in zip(op.inputs, flags, strict=True) if not b)
        if (any(flags) and rule is not None and not d.stateful and not d.step_kernel and not d.ref_outputs
                and whole_inputs_ready and not op.control_inputs and rule(op, flags)):
            region.add(op)
            batched.update(op.outputs)
        elif any(flags) or touches:
            downstream.add(op)
    return region, batched, downstream


def chunked_schedule(compiled, feeds, slots, keep, initial, schedule):
    """A `ChunkedSchedule` for the plan's steps, or None when no op can run on chunks.

    Row sources are the fed tensors whose first static dimension is unknown (a batch).
    `schedule(steps, keep, initial, may_free)` computes the steps' slot lifetimes.
    """
    sources = [t for t in feeds if t.shape.ndims and t.shape[0].value is None]
    if not sources:
        return None
    region, batched, downstream = _region(compiled, sources)
    if not any(op.op_def.batch_rule is not None and op.type not in ("Identity", "Reshape", "Cast")
               for op in region):
        return None  # nothing heavy to chunk
    pre = [c for c in compiled if c[0] not in region and c[0] not in downstream]
    inside = [c for c in compiled if c[0] in region]
    post = [c for c in compiled if c[0] in downstream]
    used_inside = {t for op in region for t in op.inputs}
    source_slots = tuple(slots[t] for t in sources if t in used_inside)
    crossing = {t for c in post for t in c[0].inputs if t in batched and t not in sources}
    gather = {slots[t] for t in crossing} | {s for t, s in slots.items() if t in batched and s in keep
                                             and t not in sources}
    region_slots = {slots[t] for op in region for t in op.outputs}
    keep_all = set(keep) | gather | set(source_slots)
    read_later = {s for c in inside + post for s in c[2]}
    steps = (schedule(pre, keep_all | read_later, initial, lambda s: s not in source_slots)
             + schedule(inside, keep_all, initial, lambda s: s in region_slots)
             + schedule(post, set(keep), initial, None))
    n_pre, n_in = len(pre), len(inside)
    out = ChunkedSchedule(source_slots, steps[:n_pre], steps[n_pre:n_pre + n_in], steps[n_pre + n_in:],
                          tuple(sorted(gather)))
    out.program = compile_program(steps)
    return out


def rows_to_chunk(schedule, vals):
    """The common row count of the sources if the region should run in chunks, else 0."""
    rows = {len(vals[s]) for s in schedule.source_slots if hasattr(vals[s], "__len__")}
    if len(rows) != 1 or len(schedule.source_slots) == 0:
        return 0
    (n,) = rows
    return n if n >= 2 * CHUNK_ROWS else 0


def run_chunked(schedule, vals, rows, run):
    """Runs `schedule` on the slot list `vals`; `run(closures, ops, vals)` executes closures."""
    closures, ops = schedule.program
    n_pre, n_in = len(schedule.pre), len(schedule.region)
    pre, region, post = closures[:n_pre], closures[n_pre:n_pre + n_in], closures[n_pre + n_in:]
    run(pre, ops, vals)
    full = {s: vals[s] for s in schedule.source_slots}
    parts = {s: [] for s in schedule.gather_slots}
    for start in range(0, rows, CHUNK_ROWS):
        for s, value in full.items():
            vals[s] = value[start:start + CHUNK_ROWS]
        run(region, ops, vals)
        for s, chunks in parts.items():
            chunks.append(vals[s])
    for s, value in full.items():
        vals[s] = value
    for s, chunks in parts.items():
        vals[s] = np.concatenate(chunks)
    run(post, ops, vals)
