"""Op families. Importing this package registers every op type (a GraphDef can then name any)."""

from tensorweave.ops import array_ops, control_ops, math_ops, nn_ops, state_ops, training_ops  # noqa: F401
