"""The op registry: each op type is defined once, with its shape rule, NumPy kernel and gradient.

    MatMul = define_op("MatMul")

    @MatMul.shape_fn
    def _(op): return [(dtype, shape)]          # one (DType, TensorShape) per output

    @MatMul.kernel
    def _(op, device): return np.matmul         # a callable taking input arrays, built once per plan

    @MatMul.gradient
    def _(op, grad): return (grad_a, grad_b)    # one entry per input, None where there is none

An op that has no gradient says so with `define_op(..., differentiable=False)`; asking for a
gradient of an op that has neither raises `LookupError` naming the op type.
"""

import sys

from tensorweave.framework import errors

_REGISTRY = {}


class _AllInputs:
    """`ref_inputs=ALL_INPUTS`: every input is taken as a reference (ops with any number of them)."""

    def __contains__(self, index):
        return True


ALL_INPUTS = _AllInputs()


def _caller_site(depth=2):
    frame = sys._getframe(depth)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class OpDef:
    """What the runtime knows about one op type.

    stateful: the op reads or writes state or randomness; never folded, merged or deduplicated.
    ref_outputs: the op's outputs are variable references (dereferenced when a consumer runs).
    ref_inputs: input positions that take a reference itself (assignments), not its value.
    step_kernel: the kernel takes the per-step context as its first argument.
    async_kernel: the kernel is `fn(step, done, *inputs)` and calls `done(outputs, error)` once,
        possibly later and from another thread (a receive); it never blocks the executor.
    batch_rule: whether the op may run on chunks of rows (see `framework.batch_rules`).
    fresh_outputs: the kernel always returns new arrays, never views of its inputs.
    inplace_input / make_inplace_kernel: a kernel that may write its result into that input's
        array when the plan donates it (the array is fresh, has no views, and dies at this op).
    """

    def __init__(self, type_name, *, stateful=False, differentiable=True, ref_outputs=False,
                 ref_inputs=(), step_kernel=False, async_kernel=False, site=None):
        self.type = type_name
        self.stateful = stateful
        self.differentiable = differentiable
        self.ref_outputs = ref_outputs
        self.ref_inputs = ref_inputs if isinstance(ref_inputs, _AllInputs) else frozenset(ref_inputs)
        self.step_kernel = step_kernel or async_kernel
        self.async_kernel = async_kernel
        self.site = site
        self.infer = None
        self.make_kernel = None
        self.grad = None
        self.batch_rule = None
        self.fresh_outputs = False
        self.inplace_input = None
        self.make_inplace_kernel = None

    def shape_fn(self, fn):
        self.infer = fn
        return fn

    def kernel(self, fn):
        self.make_kernel = fn
        return fn

    def inplace(self, input_index):
        """Registers `factory(op, device) -> fn` whose fn may overwrite input `input_index`."""
        def register(factory):
            self.inplace_input = input_index
            self.make_inplace_kernel = factory
            return factory
        return register

    def gradient(self, fn):
        if not self.differentiable:
            raise ValueError(f"Op {self.type} is declared non-differentiable; it cannot have a gradient")
        self.grad = fn
        return fn

    def __repr__(self):
        return f"OpDef({self.type})"


def define_op(type_name, **kwargs):
    """Registers and returns a new `OpDef`; registering a type twice raises, naming both places."""
    site = _caller_site()
    if type_name in _REGISTRY:
        raise KeyError(f"Op type {type_name!r} registered twice: at {_REGISTRY[type_name].site} and {site}")
    op_def = OpDef(type_name, site=site, **kwargs)
    _REGISTRY[type_name] = op_def
    return op_def


def get_op_def(type_name):
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise LookupError(f"Op type {type_name!r} is not registered in TensorWeave") from None


def registered_ops():
    return dict(_REGISTRY)


def call_kernel(op, kernel, args):
    """`kernel(*args)` for `op`; an error that is not already an OpError becomes an
    InvalidArgumentError naming the op (and where it was created)."""
    try:
        return kernel(*args)
    except errors.OpError:
        raise
    except Exception as e:
        raise op.error(errors.InvalidArgumentError, str(e)) from e
