"""`tf.graph_util`: GraphDef transforms for inference — pruning to what some outputs need, and
freezing (variables become constants holding their current values).

Every function here takes a `GraphDef` and returns a new one; none touches the input. Only
`convert_variables_to_constants` runs anything, and only to read the variables' values from the
session it is given.
"""

from tensorboard.compat.proto import graph_pb2, node_def_pb2

from tensorweave.framework import dtypes
from tensorweave.framework.attr_values import attr_value_of
from tensorweave.framework.tensor_protos import make_tensor_proto

# Op types holding a variable's value; freezing turns each into a Const.
VARIABLE_OP_TYPES = frozenset(("VariableV2", "Variable"))
# Op types that write the variable they take as input 0; they cannot survive freezing.
_ASSIGN_PREFIXES = ("Assign", "ScatterAdd", "ScatterSub", "ScatterUpdate", "Apply", "ResourceApply")


def _node_name(spec):
    """The node an input string ("x", "x:1", "^x") or tensor name ("x:0") names."""
    spec = spec.removeprefix("^")
    name, sep, index = spec.rpartition(":")
    return name if sep and index.isdigit() else spec


def _check_graph_def(graph_def):
    if not isinstance(graph_def, graph_pb2.GraphDef):
        raise TypeError(f"graph_def must be a GraphDef proto, got {type(graph_def).__name__}")


def extract_sub_graph(graph_def, dest_nodes):
    """`tf.graph_util.extract_sub_graph`: the nodes `dest_nodes` (names or "name:0") depend on,
    through data and control inputs, in their original order.

    Unlike TF, colocation entries (`_class: loc:@x`) naming a node that was cut away are dropped,
    since the importer refuses a colocation with a node that does not exist."""
    _check_graph_def(graph_def)
    if isinstance(dest_nodes, str):
        raise TypeError("dest_nodes must be a list of node names, not a string")
    by_name = {node.name: node for node in graph_def.node}
    wanted = [_node_name(n) for n in dest_nodes]
    for name in wanted:
        if name not in by_name:
            raise AssertionError(f"{name} is not in graph")
    keep, stack = set(), list(wanted)
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        stack.extend(_node_name(spec) for spec in by_name[name].input)
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.name in keep:
            _drop_dangling_colocation(out.node.add(), node, keep)
    return out


def _drop_dangling_colocation(dest, node, names):
    dest.CopyFrom(node)
    if "_class" not in node.attr:
        return
    groups = [g for g in node.attr["_class"].list.s
              if not g.startswith(b"loc:@") or g[5:].decode("utf-8", "replace") in names]
    if groups:
        dest.attr["_class"].CopyFrom(attr_value_of(groups))
    else:
        del dest.attr["_class"]


def remove_training_nodes(input_graph, protected_nodes=None):
    """`tf.graph_util.remove_training_nodes`: drops `CheckNumerics` nodes and splices out
    `Identity` nodes (their consumers read the Identity's input), except nodes named in
    `protected_nodes` and nodes that carry or receive control edges."""
    _check_graph_def(input_graph)
    protected = {_node_name(n) for n in protected_nodes or ()}
    control_targets = {_node_name(spec) for node in input_graph.node for spec in node.input if spec.startswith("^")}
    splice = {}
    for node in input_graph.node:
        if (node.op in ("Identity", "CheckNumerics") and node.name not in protected
                and node.name not in control_targets and len(node.input) == 1
                and not node.input[0].startswith("^")):
            splice[node.name] = node.input[0]

    def resolve(spec):
        while not spec.startswith("^") and _node_name(spec) in splice:  # an Identity has one output
            spec = splice[_node_name(spec)]
        return spec

    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(input_graph.versions)
    out.library.CopyFrom(input_graph.library)
    for node in input_graph.node:
        if node.name in splice:
            continue
        new = out.node.add()
        new.CopyFrom(node)
        del new.input[:]
        new.input.extend(resolve(spec) for spec in node.input)
    return out


def variables_to_constants(graph_def, values):
    """The GraphDef with each variable node named in `values` ({node name: array}) replaced by a
    `Const` of that value (same name and device). Raises ValueError if an op that writes a
    variable (an `Assign`, an optimizer's `Apply*`) consumes a frozen one."""
    _check_graph_def(graph_def)
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.op in VARIABLE_OP_TYPES and node.name in values:
            value = values[node.name]
            const = node_def_pb2.NodeDef(name=node.name, op="Const", device=node.device)
            const.attr["dtype"].CopyFrom(attr_value_of(dtypes.as_dtype(value.dtype)))
            const.attr["value"].tensor.CopyFrom(make_tensor_proto(value))
            out.node.add().CopyFrom(const)
            continue
        if node.op.startswith(_ASSIGN_PREFIXES) and node.input and _node_name(node.input[0]) in values:
            raise ValueError(f"Cannot freeze variable {_node_name(node.input[0])!r}: node {node.name!r} "
                             f"({node.op}) writes it and is needed by the outputs")
        out.node.add().CopyFrom(node)
    return out


def convert_variables_to_constants(sess, input_graph_def, output_node_names, variable_names_whitelist=None,
                                   variable_names_blacklist=None):
    """`tf.graph_util.convert_variables_to_constants`: freezes a graph for inference.

    Keeps only the nodes `output_node_names` need, and turns every variable among them (those
    in `variable_names_whitelist` if given, none in `variable_names_blacklist`) into a `Const`
    holding its current value in `sess`. Returns the new GraphDef."""
    sub = extract_sub_graph(input_graph_def, output_node_names)
    names = [node.name for node in sub.node if node.op in VARIABLE_OP_TYPES
             and (variable_names_whitelist is None or node.name in variable_names_whitelist)
             and (variable_names_blacklist is None or node.name not in variable_names_blacklist)]
    found = sess.run([f"{name}:0" for name in names]) if names else []
    return variables_to_constants(sub, dict(zip(names, found, strict=True)))


def checkpoint_keys(graph_def):
    """{variable node name: its key in a checkpoint}, from the restore ops a `tf.train.Saver`
    adds (`save/restore` placeholders feeding `Assign`s); a variable without one is saved under
    its own name."""
    by_name = {node.name: node for node in graph_def.node}
    keys = {}
    for node in graph_def.node:
        if node.op != "Assign" or len(node.input) < 2:
            continue
        source = by_name.get(_node_name(node.input[1]))
        if source is not None and source.op == "Placeholder" and "_checkpoint_key" in source.attr:
            keys[_node_name(node.input[0])] = source.attr["_checkpoint_key"].s.decode()
    for node in graph_def.node:
        if node.op in VARIABLE_OP_TYPES:
            keys.setdefault(node.name, node.name)
    return keys


def freeze_with_checkpoint_values(graph_def, output_node_names, tensors):
    """Prunes `graph_def` to `output_node_names` and freezes its variables with the values in
    `tensors` ({checkpoint key: array}, as a Saver wrote them). Raises ValueError naming a
    variable the outputs need that `tensors` lacks."""
    sub = extract_sub_graph(graph_def, output_node_names)
    keys = checkpoint_keys(graph_def)
    values = {}
    for node in sub.node:
        if node.op in VARIABLE_OP_TYPES:
            key = keys[node.name]
            if key not in tensors:
                raise ValueError(f"Variable {node.name!r} is needed by the outputs but the checkpoint has no "
                                 f"tensor {key!r}")
            values[node.name] = tensors[key]
    return variables_to_constants(sub, values)
