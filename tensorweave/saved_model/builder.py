"""`tf.saved_model.simple_save`: a trained graph, its variables and its serving signature in one
directory (layout in `saved_model.layout`), ready for `tf.saved_model.loader.load`, for
`tensorweave.inference.load` and for `tensorweave export onnx --saved-model`."""

import json
import os

from tensorboard.compat.proto import meta_graph_pb2

from tensorweave.framework import meta_graph
from tensorweave.framework.graph import GraphKeys
from tensorweave.framework.graph_io import atomic_write
from tensorweave.framework.tensor import Tensor
from tensorweave.saved_model import layout
from tensorweave.train.saver import write_checkpoint


def _shape_json(shape):
    return None if shape.ndims is None else shape.as_list()


def _tensor_info(key, tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"Signature entry {key!r} must be a Tensor, got {type(tensor).__name__}")
    info = meta_graph_pb2.TensorInfo(name=tensor.name, dtype=tensor.dtype.as_datatype_enum)
    info.tensor_shape.CopyFrom(tensor.shape.as_proto())
    return info, {"name": tensor.name, "dtype": tensor.dtype.name, "shape": _shape_json(tensor.shape)}


def _signature(inputs, outputs):
    proto = meta_graph_pb2.SignatureDef(method_name=layout.PREDICT_METHOD_NAME)
    plain = {"method_name": layout.PREDICT_METHOD_NAME, "inputs": {}, "outputs": {}}
    for field, tensors in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(tensors, dict) or not tensors:
            raise ValueError(f"simple_save needs {field} as a non-empty dict {{name: tensor}}")
        for key, tensor in tensors.items():
            info, entry = _tensor_info(key, tensor)
            getattr(proto, field)[key].CopyFrom(info)
            plain[field][key] = entry
    return proto, plain


def simple_save(session, export_dir, inputs, outputs, legacy_init_op=None):
    """`tf.saved_model.simple_save`: writes `session`'s graph, the current values of its global
    variables and a "serving_default" signature (`inputs` and `outputs`: dicts {name: tensor})
    to the new directory `export_dir`, tagged "serve".

    Adds nothing to the graph, so a finalized graph can be saved."""
    export_dir = os.fspath(export_dir)
    if os.path.exists(export_dir) and (not os.path.isdir(export_dir) or os.listdir(export_dir)):
        raise AssertionError(f"Export directory already exists, and isn't empty. Please choose a different "
                             f"export directory, or delete all the contents of the specified directory: "
                             f"{export_dir}")
    graph = session.graph
    proto_signature, plain_signature = _signature(inputs, outputs)
    for tensor in list(inputs.values()) + list(outputs.values()):
        if tensor.graph is not graph:
            raise ValueError(f"Tensor {tensor.name} is not an element of the session's graph")
    variables = graph.get_collection(GraphKeys.GLOBAL_VARIABLES)
    refs = {v.op.name: v._ref() if hasattr(v, "_ref") else v for v in variables}
    values = session.run(refs) if refs else {}

    os.makedirs(os.path.join(export_dir, layout.VARIABLES_DIRECTORY), exist_ok=True)
    write_checkpoint(os.path.join(export_dir, layout.VARIABLES_PREFIX + ".safetensors"), values)
    meta = meta_graph.export_meta_graph(graph=graph)
    meta.meta_info_def.tags.append(layout.SERVING)
    meta.signature_def[layout.DEFAULT_SERVING_SIGNATURE_DEF_KEY].CopyFrom(proto_signature)
    meta_graph.write_meta_graph_file(meta, os.path.join(export_dir, layout.META_GRAPH_FILENAME))
    info = {"format": layout.FORMAT, "format_version": layout.FORMAT_VERSION, "tags": [layout.SERVING],
            "signature_def": {layout.DEFAULT_SERVING_SIGNATURE_DEF_KEY: plain_signature}}
    atomic_write(os.path.join(export_dir, layout.SIGNATURE_FILENAME),
                 json.dumps(info, indent=2, sort_keys=True).encode())
    return export_dir
