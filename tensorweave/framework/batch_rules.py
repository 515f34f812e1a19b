"""Which ops compute each row of their output from the same row of their inputs.

The runtime uses this to evaluate a large feed in chunks of rows (a 10,000-image batch through
a convolutional network, say) so that no intermediate ever holds the whole batch. An op type
opts in by setting `OpDef.batch_rule` to one of the rules below: a function
`rule(op, batched) -> bool` saying whether `op` may run on a chunk of rows when `batched[i]`
tells which inputs are chunked along axis 0 (the others are used whole).
"""


def _broadcasts_safely(t, out_rank):
    """A whole (unchunked) input of a broadcasting op must not line up with the row axis."""
    rank = t.shape.ndims
    if rank is None or out_rank is None:
        return False
    return rank < out_rank or t.shape.as_list()[0] == 1


def elementwise(op, batched):
    """Element-wise with broadcasting: chunked inputs carry the rows, whole ones broadcast."""
    out_rank = op.outputs[0].shape.ndims
    for t, b in zip(op.inputs, batched, strict=True):
        if b:
            if t.shape.ndims != out_rank:
                return False
        elif not _broadcasts_safely(t, out_rank):
            return False
    return True


def rows_of_first_input(op, batched):
    """Row i of the output depends on row i of input 0 only; other inputs are used whole."""
    return bool(batched[0]) and not any(batched[1:])


def rows_of_all_inputs(op, batched):
    """Row i of the output depends on row i of every input (e.g. logits and labels)."""
    return all(batched)


def reduction_over_other_axes(op, batched):
    """A reduction whose constant axes leave axis 0 alone (and keep it first)."""
    if not rows_of_first_input(op, batched):
        return False
    axes_op = op.inputs[1].op
    if axes_op.type != "Const":
        return False
    rank = op.inputs[0].shape.ndims
    if rank is None:
        return False
    axes = [int(a) % rank for a in axes_op.get_attr("value").reshape(-1)]
    return 0 not in axes


def reshape_keeping_rows(op, batched):
    """Reshape to a constant shape whose first dimension is -1 and the rest fixed."""
    if not rows_of_first_input(op, batched):
        return False
    shape_op = op.inputs[1].op
    if shape_op.type != "Const":
        return False
    target = [int(d) for d in shape_op.get_attr("value").reshape(-1)]
    return bool(target) and target[0] == -1 and all(d >= 0 for d in target[1:]) \
        and op.inputs[0].shape.ndims is not None and op.inputs[0].shape[1:].is_fully_defined()


def matmul_rows(op, batched):
    """x @ W: rows of x (not transposed) against a whole W."""
    return rows_of_first_input(op, batched) and not op.get_attr("transpose_a")


def set_rule(rule, *op_defs):
    for op_def in op_defs:
        op_def.batch_rule = rule
