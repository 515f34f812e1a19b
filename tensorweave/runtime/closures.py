"""Plan steps as closures over the slot list.

Each step reads its inputs from the slot list, calls the kernel, writes its outputs and clears
the slots that died. The closures are specialised by arity once, when the plan is compiled, so
the framework adds a fraction of a microsecond per op to the NumPy kernel itself.
"""

STEP_SLOT = 0     # holds the per-step context, for kernels that take it
DISCARD_SLOT = 1  # where ops without outputs "write" their None result


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


def compile_program(steps):
    """The closures that run `steps` (PlanSteps), one each, and a map back to each step's op."""
    closures = tuple(_closure(s.fn, s.ins, s.outs, s.frees) for s in steps)
    ops = {c: s.op for c, s in zip(closures, steps, strict=True)}
    return closures, ops
