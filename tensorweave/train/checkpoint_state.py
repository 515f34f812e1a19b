"""The `checkpoint` state file: which checkpoints a directory holds, in TF's text format.

    model_checkpoint_path: "model.ckpt-200"
    all_model_checkpoint_paths: "model.ckpt-100"
    all_model_checkpoint_paths: "model.ckpt-200"

The message is TF's `CheckpointState` (tensorflow/python/training/checkpoint_state.proto),
which the tensorboard package does not ship; it is declared here, in a private descriptor
pool, field for field. Paths of checkpoints in the state file's own directory are written
relative to it, so a directory of checkpoints can be moved.
"""

import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from tensorweave.framework import graph_io
from tensorweave.platform import tf_logging as logging

CHECKPOINT_SUFFIX = ".safetensors"  # a checkpoint `prefix` is stored in `prefix.safetensors`
META_GRAPH_SUFFIX = "meta"


def _checkpoint_state_class():
    fields = descriptor_pb2.FieldDescriptorProto
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow/python/training/checkpoint_state.proto", package="tensorflow", syntax="proto3")
    message = file_proto.message_type.add(name="CheckpointState")
    for number, (name, kind, label) in enumerate((
            ("model_checkpoint_path", fields.TYPE_STRING, fields.LABEL_OPTIONAL),
            ("all_model_checkpoint_paths", fields.TYPE_STRING, fields.LABEL_REPEATED),
            ("all_model_checkpoint_timestamps", fields.TYPE_DOUBLE, fields.LABEL_REPEATED),
            ("last_preserved_timestamp", fields.TYPE_DOUBLE, fields.LABEL_OPTIONAL)), start=1):
        message.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.CheckpointState"))


CheckpointState = _checkpoint_state_class()


def _state_path(save_dir, latest_filename):
    return os.path.join(save_dir, latest_filename or "checkpoint")


def _relative_if_inside(path, save_dir):
    if os.path.isabs(path) and os.path.dirname(os.path.abspath(path)) == os.path.abspath(save_dir):
        return os.path.basename(path)
    if not os.path.isabs(path) and os.path.dirname(path) and \
            os.path.abspath(os.path.dirname(path)) == os.path.abspath(save_dir):
        return os.path.basename(path)
    return path


def generate_checkpoint_state_proto(save_dir, model_checkpoint_path, all_model_checkpoint_paths=None,
                                    all_model_checkpoint_timestamps=None, last_preserved_timestamp=None):
    """A `CheckpointState`; `model_checkpoint_path` is appended to the list if missing, and
    paths inside `save_dir` are made relative to it."""
    paths = list(all_model_checkpoint_paths or [])
    if not paths or paths[-1] != model_checkpoint_path:
        paths.append(model_checkpoint_path)
    timestamps = list(all_model_checkpoint_timestamps or [])
    if timestamps and len(timestamps) != len(paths):
        raise ValueError(f"Checkpoint timestamps ({len(timestamps)}) must match the checkpoint paths "
                         f"({len(paths)})")
    return CheckpointState(
        model_checkpoint_path=_relative_if_inside(model_checkpoint_path, save_dir),
        all_model_checkpoint_paths=[_relative_if_inside(p, save_dir) for p in paths],
        all_model_checkpoint_timestamps=timestamps,
        last_preserved_timestamp=last_preserved_timestamp or 0.0)


def update_checkpoint_state(save_dir, model_checkpoint_path, all_model_checkpoint_paths=None,
                            latest_filename=None, all_model_checkpoint_timestamps=None,
                            last_preserved_timestamp=None, *, on_step=None):
    """`tf.train.update_checkpoint_state`: rewrites `save_dir/checkpoint` (atomically; `on_step`:
    see `graph_io.atomic_write`)."""
    state = generate_checkpoint_state_proto(save_dir, model_checkpoint_path, all_model_checkpoint_paths,
                                            all_model_checkpoint_timestamps, last_preserved_timestamp)
    path = _state_path(save_dir, latest_filename)
    if os.path.abspath(path) == os.path.abspath(model_checkpoint_path):
        raise RuntimeError(f"Save path '{model_checkpoint_path}' conflicts with path used for checkpoint "
                           f"state. Please use a different save path.")
    graph_io.atomic_write(path, text_format.MessageToString(state).encode(), on_step=on_step)


def get_checkpoint_state(checkpoint_dir, latest_filename=None):
    """`tf.train.get_checkpoint_state`: the `CheckpointState` in `checkpoint_dir` (relative paths
    joined to it), or None if there is no readable state file."""
    path = _state_path(checkpoint_dir, latest_filename)
    try:
        with open(path, encoding="utf-8") as f:
            content = f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        logging.warning("%s: %s", type(e).__name__, e)
        logging.warning("%s: Checkpoint ignored", path)
        return None
    state = CheckpointState()
    try:
        text_format.Merge(content, state)
    except text_format.ParseError as e:
        logging.warning("%s: %s", type(e).__name__, e)
        logging.warning("%s: Checkpoint ignored", path)
        return None
    if not state.model_checkpoint_path:
        raise ValueError(f"Invalid checkpoint state loaded from {checkpoint_dir}")
    if not os.path.isabs(state.model_checkpoint_path):
        state.model_checkpoint_path = os.path.join(checkpoint_dir, state.model_checkpoint_path)
    for i, p in enumerate(state.all_model_checkpoint_paths):
        if not os.path.isabs(p):
            state.all_model_checkpoint_paths[i] = os.path.join(checkpoint_dir, p)
    return state


def checkpoint_path(prefix):
    """The file holding checkpoint `prefix` (a `.safetensors` path passes through)."""
    prefix = os.fspath(prefix)
    return prefix if prefix.endswith(CHECKPOINT_SUFFIX) else prefix + CHECKPOINT_SUFFIX


def meta_graph_filename(prefix, meta_graph_suffix=META_GRAPH_SUFFIX):
    prefix = os.fspath(prefix)
    if prefix.endswith(CHECKPOINT_SUFFIX):
        prefix = prefix[:-len(CHECKPOINT_SUFFIX)]
    return f"{prefix}.{meta_graph_suffix}"


def checkpoint_exists(checkpoint_prefix):
    """`tf.train.checkpoint_exists`: whether checkpoint `checkpoint_prefix` is on disk."""
    return os.path.isfile(checkpoint_path(checkpoint_prefix))


def latest_checkpoint(checkpoint_dir, latest_filename=None):
    """`tf.train.latest_checkpoint`: the prefix of the newest checkpoint in `checkpoint_dir`,
    or None."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state and state.model_checkpoint_path:
        if checkpoint_exists(state.model_checkpoint_path):
            return state.model_checkpoint_path
        logging.error("Couldn't match files for checkpoint %s", state.model_checkpoint_path)
    return None


def get_checkpoint_mtimes(checkpoint_prefixes):
    """The modification times of the checkpoints that exist among `checkpoint_prefixes`."""
    out = []
    for prefix in checkpoint_prefixes:
        try:
            out.append(os.path.getmtime(checkpoint_path(prefix)))
        except OSError:
            pass
    return out


def remove_checkpoint(checkpoint_prefix, meta_graph_suffix=META_GRAPH_SUFFIX, *, on_step=None):
    """Deletes the files of checkpoint `checkpoint_prefix` (tensors, then meta graph);
    `on_step(path)`, if given, is called before each deletion (a test hook)."""
    for path in (checkpoint_path(checkpoint_prefix), meta_graph_filename(checkpoint_prefix, meta_graph_suffix)):
        if on_step is not None:
            on_step(path)
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            logging.warning("Ignoring: failed to delete %s: %s", path, e)

