"""Every registered op type is complete: a shape rule, a kernel, and a gradient or a declaration
that it has none; registering a type twice fails naming both places."""

import pytest

import tensorweave.ops  # noqa: F401 - registers every op family
import tensorweave.summary.summary_ops  # noqa: F401
from tensorweave.framework.op_def import define_op, registered_ops


def test_every_op_has_shape_rule_kernel_and_gradient_or_declaration():
    incomplete = []
    for name, op_def in sorted(registered_ops().items()):
        if op_def.infer is None:
            incomplete.append(f"{name}: no shape function")
        if op_def.make_kernel is None:
            incomplete.append(f"{name}: no kernel")
        if op_def.differentiable and op_def.grad is None:
            incomplete.append(f"{name}: differentiable but no gradient (declare differentiable=False)")
    assert not incomplete, "\n".join(incomplete)


def test_registering_a_type_twice_names_both_sites():
    with pytest.raises(KeyError, match=r"MatMul.*registered twice.*math_ops.py.*test_op_registry.py"):
        define_op("MatMul")
