"""Op families. Importing this package registers every op type (a GraphDef can then name any)."""

from tensorweave.ops import array_ops, control_ops, math_ops, nn_ops, state_ops, training_ops  # noqa: F401
from tensorweave.ops import comm_ops, init_ops, random_ops, variable_scope  # noqa: F401
from tensorweave.ops import classification_ops, clip_ops, conv_ops, pooling_ops, reduction_ops  # noqa: F401
from tensorweave.ops import concat_ops, constant_op, gather_ops, padding_ops, slicing_ops  # noqa: F401
