"""Frozen graphs as the inference path and the exporters see them: a `GraphDef` file (binary or
text), or a `simple_save` directory frozen on load, imported into a private `Graph` and pruned to
the ops some outputs need.

The graph is imported with the op registry (`tensorweave.ops`), so its ops carry the dtypes and
static shapes the runtime infers and the very kernels the runtime runs. Nothing here imports the
training, autodiff or distributed code.
"""

import hashlib
import json
import os

import numpy as np

from tensorweave.framework import errors
from tensorweave.framework.graph import Graph
from tensorweave.framework.graph_io import import_graph_def
from tensorweave.framework.graph_util import (
    VARIABLE_OP_TYPES,
    freeze_with_checkpoint_values,
)
from tensorweave.saved_model import layout


def read_graph_def(path):
    """The `GraphDef` in file `path`, binary (`.pb`) or text (`.pbtxt`) format."""
    from google.protobuf import message, text_format
    from tensorboard.compat.proto import graph_pb2

    with open(os.fspath(path), "rb") as f:
        data = f.read()
    graph_def = graph_pb2.GraphDef()
    try:
        graph_def.ParseFromString(data)
        if graph_def.node or not data:
            return graph_def
    except (message.DecodeError, RuntimeError, ValueError):
        pass
    try:
        return text_format.Parse(data.decode("utf-8"), graph_pb2.GraphDef())
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is neither a binary nor a text GraphDef: {e}") from None


def read_weights(path):
    """{name: array} of a safetensors file written by `tf.train.Saver` (or `simple_save`), each
    tensor checked against the SHA-256 its metadata records."""
    from safetensors import safe_open

    tensors, digests = {}, None
    with safe_open(os.fspath(path), framework="numpy") as f:
        metadata = f.metadata() or {}
        if "sha256" in metadata:
            digests = json.loads(metadata["sha256"])
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    for key, array in tensors.items():
        if digests is not None and hashlib.sha256(np.ascontiguousarray(array).reshape(-1).view(np.uint8)) \
                .hexdigest() != digests.get(key):
            raise errors.DataLossError(None, None, f"Weights file {path} is corrupted: tensor {key!r} fails its "
                                       "SHA-256 check")
    return tensors


def load_saved_model(export_dir, signature_def_key=layout.DEFAULT_SERVING_SIGNATURE_DEF_KEY, outputs=None):
    """(frozen GraphDef, signature) of a `simple_save` directory: the graph pruned to `outputs`
    (node or tensor names; default: the signature's outputs), its variables turned into
    constants of the saved values."""
    from tensorweave.framework.meta_graph import read_meta_graph_file

    info = layout.read_signature_file(export_dir)
    signature = layout.signature(info, signature_def_key)
    meta = read_meta_graph_file(os.path.join(export_dir, layout.META_GRAPH_FILENAME))
    weights = read_weights(os.path.join(export_dir, layout.VARIABLES_PREFIX + ".safetensors"))
    outputs = outputs or [entry["name"] for entry in signature["outputs"].values()]
    return freeze_with_checkpoint_values(meta.graph_def, outputs, weights), signature


def import_frozen(graph_def):
    """A new `Graph` holding `graph_def`'s ops under their own names, devices cleared."""
    from tensorboard.compat.proto import graph_pb2

    cleared = graph_pb2.GraphDef()
    cleared.CopyFrom(graph_def)
    for node in cleared.node:
        node.device = ""
        if node.op in VARIABLE_OP_TYPES:
            raise errors.InvalidArgumentError(
                None, None, f"Node {node.name!r} is a variable ({node.op}): freeze the graph first "
                "(tf.graph_util.convert_variables_to_constants, or export from a checkpoint)")
    graph = Graph()
    with graph.as_default():
        import_graph_def(cleared, name="")
    return graph


def tensor_of(graph, name):
    """The tensor `name` ("x" means "x:0") of `graph`; KeyError naming it if there is none."""
    name = name if ":" in name else f"{name}:0"
    try:
        return graph.get_tensor_by_name(name)
    except (KeyError, ValueError):
        raise KeyError(f"The graph has no tensor {name!r}") from None


def needed_ops(inputs, outputs):
    """The ops computing `outputs` from `inputs` (tensors), data and control inputs followed, in
    an order where each op follows its inputs."""
    fed = set(inputs)
    needed, stack = set(), [t.op for t in outputs if t not in fed]
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        needed.add(op)
        stack.extend(t.op for t in op.inputs if t not in fed)
        stack.extend(op.control_inputs)
    # import_graph_def adds ops in dependency order, so creation order is a topological order.
    return [op for op in outputs[0].graph.get_operations() if op in needed] if outputs else []
