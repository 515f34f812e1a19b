"""`tf.saved_model.loader.load`: a directory written by `simple_save` back into a session."""

import os

from tensorweave.framework import meta_graph
from tensorweave.saved_model import layout
from tensorweave.train.saver import Saver, read_checkpoint


def maybe_saved_model_directory(export_dir):
    """`tf.saved_model.maybe_saved_model_directory`: whether `export_dir` holds a saved model."""
    return layout.is_saved_model_dir(export_dir)


def load(sess, tags, export_dir, import_scope=None, **saver_kwargs):
    """`tf.saved_model.loader.load`: imports the saved graph into `sess.graph` (its ops under
    `import_scope/` if given), restores the saved variable values into `sess`, and returns the
    `MetaGraphDef`, whose `signature_def` names the input and output tensors.

    Raises RuntimeError if the saved model carries none of `tags`' set."""
    export_dir = os.fspath(export_dir)
    info = layout.read_signature_file(export_dir)
    if set(tags or ()) - set(info.get("tags", ())):
        raise RuntimeError(f"MetaGraphDef associated with tags {sorted(tags)} could not be found in SavedModel "
                           f"{export_dir} (it is tagged {info.get('tags')})")
    meta, prefix, _ = meta_graph.import_scoped_meta_graph(
        os.path.join(export_dir, layout.META_GRAPH_FILENAME), graph=sess.graph, import_scope=import_scope)
    checkpoint = os.path.join(export_dir, layout.VARIABLES_PREFIX)
    tensors, _ = read_checkpoint(checkpoint)
    if tensors:
        scoped = (lambda name: f"{prefix}/{name}") if prefix else (lambda name: name)
        with sess.graph.as_default():
            saver = Saver({key: sess.graph.get_tensor_by_name(f"{scoped(key)}:0") for key in tensors},
                          **saver_kwargs)
        saver.restore(sess, checkpoint)
    if prefix:  # signature names as they are in the session's graph
        for signature in meta.signature_def.values():
            for info in list(signature.inputs.values()) + list(signature.outputs.values()):
                info.name = f"{prefix}/{info.name}"
    return meta
