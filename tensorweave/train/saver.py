"""`tf.train.Saver`: checkpoints of variables in safetensors files, with TF1's API.

A checkpoint `prefix` (e.g. `ckpt/model-100`) is the file `prefix.safetensors`, holding each
variable's value under its name (readable by any safetensors tool), and by default
`prefix.meta`, the MetaGraphDef. The safetensors metadata records the format version, the
global step, a SHA-256 per tensor and one over the header, so restore detects any flipped
byte, which safetensors alone would load. The directory's `checkpoint` file lists the recent
checkpoints (see `checkpoint_state`).

A save writes, in order, the tensors, the meta graph and the state file, each atomically (a
fsynced temp file renamed over the target), and only then deletes the checkpoints `max_to_keep`
retires. So a crash at any point leaves the state file naming a checkpoint whose files are whole:
the previous one, or the new one once its tensors and meta graph are in place. `fault_point` is
called between those steps so that tests can interrupt the sequence at each of them. A writer
killed mid-write leaves a temp file (named after its host and process); the next save in that
directory deletes it.

Save reads all variables in one `Session.run`. Restore feeds the values to one op: a
placeholder and an `Assign` per variable under `save/`, grouped as `save/restore_all`, built
when the Saver is created (as in TF, so a graph finalized later still restores).
"""

import hashlib
import json
import os
import re
import time

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy
from tensorboard.compat.proto import saver_pb2, types_pb2, variable_pb2

from tensorweave.framework import dtypes, errors, meta_graph
from tensorweave.framework.graph import GraphKeys, get_default_graph
from tensorweave.framework.graph_io import atomic_write, remove_stale_temp_files
from tensorweave.framework.tensor import Tensor
from tensorweave.ops import array_ops, constant_op, control_ops, state_ops
from tensorweave.ops.variables import Variable
from tensorweave.platform import tf_logging as logging
from tensorweave.train.checkpoint_state import (  # noqa: F401 - re-exported as tf.train.*
    CheckpointState, checkpoint_exists, checkpoint_path, generate_checkpoint_state_proto,
    get_checkpoint_mtimes, get_checkpoint_state, latest_checkpoint, meta_graph_filename,
    remove_checkpoint, update_checkpoint_state)

FORMAT = "tensorweave.checkpoint"
FORMAT_VERSION = "1"
_KEY_ATTR = "_checkpoint_key"  # on each restore placeholder: the name its value has in the file

# safetensors.numpy's table lacks BF16; complex128, which safetensors lacks, is stored as F64 pairs.
_STORED_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
                  "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U64": np.uint64,
                  "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_, "C64": np.complex64}


class CheckpointNotFoundError(errors.NotFoundError, ValueError):
    """No checkpoint at the given path (a ValueError too, as TF1's Saver.restore raised)."""


def fault_point(step):
    """A test hook, called at each step of `Saver.save`'s write sequence with the step's name
    (e.g. "tensors model-3.safetensors: temp written", "state checkpoint: renamed", "delete
    model-1.meta"). It does nothing; a test patches it to raise, which interrupts the save there
    as a crash would."""


def _steps(what):
    return lambda step: fault_point(f"{what}: {step}")


# -- the file format ---------------------------------------------------------------------------

def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).reshape(-1).view(np.uint8)).hexdigest()


def _header_digest(metadata, entries):
    """SHA-256 over the metadata (but this digest) and each tensor's stored dtype and shape."""
    canonical = json.dumps({"metadata": {k: v for k, v in metadata.items() if k != "header_sha256"},
                            "tensors": {k: [d, list(s)] for k, (d, s) in entries.items()}},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_checkpoint(path, tensors, global_step=None, on_step=None):
    """Writes {name: array} to the safetensors file `path`, with integrity metadata, atomically
    (`on_step`: see `graph_io.atomic_write`)."""
    stored, entries, digests, kinds = {}, {}, {}, {}
    for key, value in tensors.items():
        array = np.asarray(value)
        if not array.flags.c_contiguous:  # (np.ascontiguousarray would make a scalar 1-D)
            array = array.copy(order="C")
        dtype = dtypes.as_dtype(array.dtype)
        if dtype is dtypes.string:
            raise errors.UnimplementedError(None, None, f"Cannot checkpoint {key!r}: string variables are "
                                            "not supported by the safetensors format")
        if dtype is dtypes.complex128:
            array = array.view(np.float64).reshape(array.shape + (2,))
        stored[key] = array
        digests[key] = _digest(array)
        kinds[key] = dtype.name
        entries[key] = (safetensors_dtype(array.dtype), array.shape)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "global_step": "" if global_step is None else str(int(global_step)),
                "dtypes": json.dumps(kinds, sort_keys=True), "sha256": json.dumps(digests, sort_keys=True)}
    metadata["header_sha256"] = _header_digest(metadata, entries)
    atomic_write(path, safetensors.numpy.save(stored, metadata=metadata), on_step=on_step)


def safetensors_dtype(np_dtype):
    for name, t in _STORED_DTYPES.items():
        if np.dtype(t) == np_dtype:
            return name
    raise TypeError(f"no safetensors dtype for {np_dtype}")


def read_checkpoint(prefix):
    """({name: array}, metadata) of checkpoint `prefix`, every byte verified.

    Raises NotFoundError if there is no such checkpoint and DataLossError if it is corrupted."""
    path = checkpoint_path(prefix)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        hint = " It is a TensorFlow checkpoint (.index/.data files); TensorWeave reads .safetensors " \
            "checkpoints." if os.path.exists(f"{prefix}.index") else ""
        raise CheckpointNotFoundError(None, None, f"Unsuccessful checkpoint read: no checkpoint file {path} "
                                      f"(for checkpoint prefix {prefix!r}).{hint}") from None
    except OSError as e:
        raise errors.UnknownError(None, None, f"Cannot read checkpoint {path}: {e}") from None

    def corrupt(message):
        return errors.DataLossError(None, None, f"Checkpoint {path} is corrupted: {message}")
    try:
        entries = {k: v for k, v in safetensors.deserialize(data)}
        header_length = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_length]).get("__metadata__") or {}
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type
        raise corrupt(f"not a readable safetensors file ({e})") from None
    if metadata.get("header_sha256") != _header_digest(
            metadata, {k: (v["dtype"], v["shape"]) for k, v in entries.items()}):
        raise corrupt("the header fails its SHA-256 check")
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise errors.UnimplementedError(None, None, f"Checkpoint {path} has format "
                                        f"{metadata.get('format')!r} version {metadata.get('format_version')!r}; "
                                        f"this TensorWeave reads {FORMAT!r} version {FORMAT_VERSION}")
    kinds, digests = json.loads(metadata["dtypes"]), json.loads(metadata["sha256"])
    if set(kinds) != set(entries) or set(digests) != set(entries):
        raise corrupt("the tensors do not match the header's list")
    tensors = {}
    for key, entry in entries.items():
        stored = np.frombuffer(entry["data"], dtype=_STORED_DTYPES[entry["dtype"]]).reshape(entry["shape"])
        if _digest(stored) != digests[key]:
            raise corrupt(f"tensor {key!r} fails its SHA-256 check")
        dtype = dtypes.as_dtype(kinds[key])
        if dtype is dtypes.complex128:
            stored = stored.view(np.complex128).reshape(stored.shape[:-1])
        tensors[key] = stored
    return tensors, metadata


class CheckpointReader:
    """What `tf.train.NewCheckpointReader(prefix)` returns: a checkpoint's tensors by name (the
    checkpoint is read and verified once, when the reader is made)."""

    def __init__(self, ckpt_dir_or_file):
        self._prefix = _resolve(ckpt_dir_or_file)
        self._tensors, _ = read_checkpoint(self._prefix)

    def has_tensor(self, name):
        return name in self._tensors

    def get_tensor(self, name):
        """The value stored under `name` (a fresh, writable array)."""
        if name not in self._tensors:
            raise errors.NotFoundError(None, None, f"Key {name} not found in checkpoint "
                                       f"{checkpoint_path(self._prefix)}")
        return np.array(self._tensors[name])

    def get_variable_to_shape_map(self):
        return {name: list(value.shape) for name, value in self._tensors.items()}

    def get_variable_to_dtype_map(self):
        return {name: dtypes.as_dtype(value.dtype) for name, value in self._tensors.items()}

    def debug_string(self):
        """One line per tensor, "name (DT_...) [dims]", as TF's reader prints them."""
        lines = [f"{name} ({types_pb2.DataType.Name(dtypes.as_dtype(value.dtype).as_datatype_enum)}) "
                 f"{list(value.shape)}"
                 for name, value in sorted(self._tensors.items())]
        return "".join(line + "\n" for line in lines).encode()


def NewCheckpointReader(filepattern):  # noqa: N802 - TF's public name
    """`tf.train.NewCheckpointReader`: a `CheckpointReader` over checkpoint `filepattern` (a
    prefix, or a directory for its latest checkpoint)."""
    return CheckpointReader(filepattern)


def list_variables(ckpt_dir_or_file):
    """`tf.train.list_variables`: [(name, shape)] of a checkpoint (or a directory's latest)."""
    return sorted(CheckpointReader(ckpt_dir_or_file).get_variable_to_shape_map().items())


def load_variable(ckpt_dir_or_file, name):
    """`tf.train.load_variable`: the value of variable `name` in a checkpoint."""
    return CheckpointReader(ckpt_dir_or_file).get_tensor(name[:-2] if name.endswith(":0") else name)


def _resolve(ckpt_dir_or_file):
    if os.path.isdir(ckpt_dir_or_file):
        prefix = latest_checkpoint(ckpt_dir_or_file)
        if prefix is None:
            raise CheckpointNotFoundError(None, None, f"Couldn't find 'checkpoint' file or checkpoints in "
                                          f"given directory {ckpt_dir_or_file}")
        return prefix
    return ckpt_dir_or_file


# -- Saver ---------------------------------------------------------------------------------------

def _ref_of(v):
    if isinstance(v, Variable):
        return v._ref()
    if isinstance(v, Tensor) and v.op.op_def.ref_outputs:
        return v
    raise TypeError(f"Variable to save is not a Variable: {v!r}")


def _saveables(var_list, graph):
    """{checkpoint name: variable reference tensor} for `var_list` (None: all global variables)."""
    if var_list is None:
        var_list = graph.get_collection(GraphKeys.GLOBAL_VARIABLES) + \
            graph.get_collection(GraphKeys.SAVEABLE_OBJECTS)
    if isinstance(var_list, dict):
        return {str(k): _ref_of(v) for k, v in var_list.items()}
    out = {}
    for v in var_list:
        ref = _ref_of(v)
        name = ref.op.name
        if name in out and out[name] is not ref:
            raise ValueError(f"At least two variables have the same name: {name}")
        out[name] = ref
    return out


class Saver:
    """`tf.train.Saver(var_list=None, max_to_keep=5, ...)`: saves and restores variables.

    `var_list` is a list of variables (saved under their op names) or a dict {name: variable};
    the default is every global variable (optimizer slots and the global step included).
    """

    def __init__(self, var_list=None, reshape=False, sharded=False, max_to_keep=5,
                 keep_checkpoint_every_n_hours=10000.0, name=None, restore_sequentially=False,
                 saver_def=None, builder=None, defer_build=False, allow_empty=False,
                 write_version=saver_pb2.SaverDef.V2, pad_step_number=False, save_relative_paths=False,
                 filename=None):
        self._reshape = reshape
        self._name = name
        self._allow_empty = allow_empty
        self._pad_step_number = pad_step_number
        self._filename = filename
        self._last_checkpoints = []       # [(prefix, time saved)], oldest first
        self._to_delete = []
        self._restore_op = None
        self._placeholders = {}           # checkpoint name -> restore placeholder
        self.saver_def = None
        if saver_def is not None:
            self._init_from_saver_def(saver_def)
        else:
            refs = list(var_list.values()) if isinstance(var_list, dict) else list(var_list or [])
            self._graph = refs[0].graph if refs else get_default_graph()
            self._vars = _saveables(var_list, self._graph)
            self._settings = saver_pb2.SaverDef(
                max_to_keep=max_to_keep or 0, sharded=sharded,
                keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours, version=write_version)
            if not self._vars and not allow_empty:
                raise ValueError("No variables to save")
            if not defer_build and not self._graph.finalized:
                self.build()
        hours = self._settings.keep_checkpoint_every_n_hours
        self._keep_interval = hours * 3600 if hours > 0 else float("inf")
        self._next_keep_time = time.time() + self._keep_interval

    # -- building ----------------------------------------------------------------------------

    def build(self):
        """Adds the restore ops (`save/restore_all`) to the graph, if not done yet."""
        if self._restore_op is not None or not self._vars:
            return
        graph = self._graph
        if graph.finalized:
            raise RuntimeError("The Saver's ops cannot be added: the graph is finalized. Create the "
                               "tf.train.Saver before finalizing the graph (e.g. before MonitoredSession).")
        with graph.as_default(), graph.control_dependencies(None), graph.colocate_with(None), \
                array_ops.name_scope(self._name, "save"):
            filename = constant_op.constant(self._filename or "model", dtype=dtypes.string, name="Const")
            save_tensor = array_ops.identity(filename, name="control_dependency")
            assigns = []
            for key, ref in self._vars.items():
                with graph.colocate_with(ref.op):
                    placeholder = graph.create_op(
                        "Placeholder", [], {"dtype": ref.dtype, "shape": ref.shape, _KEY_ATTR: key},
                        name="restore").outputs[0]
                assigns.append(state_ops.assign(ref, placeholder, validate_shape=ref.shape.is_fully_defined(),
                                                name="Assign").op)
                self._placeholders[key] = placeholder
            self._restore_op = control_ops.group(*assigns, name="restore_all")
        self.saver_def = saver_pb2.SaverDef(filename_tensor_name=filename.name,
                                            save_tensor_name=save_tensor.name,
                                            restore_op_name=self._restore_op.name)
        self.saver_def.MergeFrom(self._settings)

    def _init_from_saver_def(self, saver_def):
        saver_def = saver_pb2.SaverDef.FromString(saver_def.SerializeToString())
        if self._name:  # as in TF, `name` is then the import scope of the saver's ops
            for field in ("filename_tensor_name", "save_tensor_name", "restore_op_name"):
                setattr(saver_def, field, meta_graph.prepend_name_scope(getattr(saver_def, field), self._name))
        self._graph = get_default_graph()
        try:
            self._restore_op = self._graph.get_operation_by_name(saver_def.restore_op_name)
        except KeyError:
            raise ValueError(f"The saver_def's restore op {saver_def.restore_op_name!r} is not in the "
                             "graph") from None
        self._vars = {}
        for assign in self._restore_op.control_inputs:
            placeholder = assign.inputs[1] if assign.type == "Assign" and len(assign.inputs) == 2 else None
            if placeholder is None or _KEY_ATTR not in placeholder.op.attrs:
                raise ValueError(f"The saver_def's restore op {self._restore_op.name!r} was not built by a "
                                 "TensorWeave Saver; create a new tf.train.Saver()")
            key = placeholder.op.get_attr(_KEY_ATTR)
            self._vars[key] = assign.inputs[0]
            self._placeholders[key] = placeholder
        self.saver_def = saver_def
        self._settings = saver_def

    def as_saver_def(self):
        """The `SaverDef` naming this saver's ops (building them if needed)."""
        if self.saver_def is None:
            self.build()
        return self.saver_def

    def to_proto(self, export_scope=None):
        """The `SaverDef`, with `export_scope/` stripped from its names (None if outside it)."""
        saver_def = saver_pb2.SaverDef()
        saver_def.CopyFrom(self.as_saver_def())
        if export_scope:
            for field in ("filename_tensor_name", "save_tensor_name", "restore_op_name"):
                name = getattr(saver_def, field)
                if not name.startswith(export_scope.rstrip("/") + "/"):
                    return None
                setattr(saver_def, field, meta_graph.strip_name_scope(name, export_scope))
        return saver_def

    @staticmethod
    def from_proto(saver_def, import_scope=None):
        return Saver(saver_def=saver_def, name=import_scope)

    # -- saving ------------------------------------------------------------------------------

    def save(self, sess, save_path, global_step=None, latest_filename=None, meta_graph_suffix="meta",
             write_meta_graph=True, write_state=True, strip_default_attrs=False, save_debug_info=False):
        """Saves the variables to `save_path[-global_step].safetensors`; returns that prefix.

        Also writes the meta graph (`<prefix>.meta`) and updates the directory's `checkpoint`
        file; with `max_to_keep`, deletes the oldest checkpoints."""
        if latest_filename and os.path.split(latest_filename)[0]:
            raise ValueError("'latest_filename' must not contain path components")
        if not self._vars:
            logging.info("Skipping save: there are no variables to save.")
            return None
        save_path = os.fspath(save_path)
        keys = list(self._vars)
        fetches = [self._vars[k] for k in keys]
        step_is_tensor = global_step is not None and not isinstance(global_step, (int, np.integer))
        if step_is_tensor:
            fetches.append(global_step)
        values = sess.run(fetches)  # every value from one step
        step = None if global_step is None else int(values.pop() if step_is_tensor else global_step)
        if step is not None:
            prefix = f"{save_path}-{step:08d}" if self._pad_step_number else f"{save_path}-{step}"
        else:
            prefix = save_path
        save_dir = os.path.dirname(prefix)
        if save_dir and not os.path.isdir(save_dir):
            raise ValueError(f"Parent directory of {save_path} doesn't exist, can't save.")
        removed = remove_stale_temp_files(save_dir or ".")
        if removed:
            logging.info("Removed %d temp file(s) left by an interrupted save in %s: %s", len(removed),
                         save_dir or ".", ", ".join(sorted(removed)))
        # The order makes a crash anywhere harmless (see the module's docstring).
        tensors_file = checkpoint_path(prefix)
        write_checkpoint(tensors_file, dict(zip(keys, values, strict=True)), step,
                         on_step=_steps(f"tensors {os.path.basename(tensors_file)}"))
        if write_meta_graph:
            meta_file = meta_graph_filename(prefix, meta_graph_suffix)
            meta = self.export_meta_graph(strip_default_attrs=strip_default_attrs)
            meta_graph.write_meta_graph_file(meta, meta_file, on_step=_steps(f"meta {os.path.basename(meta_file)}"))
        if write_state:
            self._record(prefix)
            update_checkpoint_state(save_dir, prefix, self.last_checkpoints, latest_filename,
                                    [t for _, t in self._last_checkpoints] or None,
                                    on_step=_steps(f"state {latest_filename or 'checkpoint'}"))
            self._delete_old(meta_graph_suffix)
        return prefix

    def _record(self, prefix):
        if not self._settings.max_to_keep:
            return
        self._last_checkpoints = [(p, t) for p, t in self._last_checkpoints if p != prefix]
        self._last_checkpoints.append((prefix, time.time()))
        while len(self._last_checkpoints) > self._settings.max_to_keep:
            self._to_delete.append(self._last_checkpoints.pop(0))

    def _delete_old(self, meta_graph_suffix):
        while self._to_delete:
            prefix, saved_at = self._to_delete[0]
            if saved_at > self._next_keep_time:  # keep one every `keep_checkpoint_every_n_hours`
                self._next_keep_time += self._keep_interval
            else:  # popped only once deleted, so an interrupted deletion is retried by the next save
                remove_checkpoint(prefix, meta_graph_suffix,
                                  on_step=lambda path: fault_point(f"delete {os.path.basename(path)}"))
            self._to_delete.pop(0)

    @property
    def last_checkpoints(self):
        """The prefixes of the checkpoints this saver keeps, oldest first."""
        return [p for p, _ in self._last_checkpoints]

    def set_last_checkpoints(self, last_checkpoints):
        self._last_checkpoints = [(p, float("inf")) for p in last_checkpoints]

    def set_last_checkpoints_with_time(self, last_checkpoints_with_time):
        """Sets the kept checkpoints from [(prefix, timestamp)], oldest first."""
        self._last_checkpoints = [(p, t) for p, t in last_checkpoints_with_time]

    def recover_last_checkpoints(self, checkpoint_paths):
        """Adopts those of `checkpoint_paths` that still exist (after a restart) as kept ones."""
        kept = [(p, os.path.getmtime(checkpoint_path(p))) for p in checkpoint_paths if checkpoint_exists(p)]
        self.set_last_checkpoints_with_time(kept)

    def export_meta_graph(self, filename=None, collection_list=None, as_text=False, export_scope=None,
                          clear_devices=False, clear_extraneous_savers=False, strip_default_attrs=False,
                          save_debug_info=False):
        """The graph, its collections and this saver's `SaverDef` as a `MetaGraphDef`."""
        saver_def = self.saver_def
        if saver_def is None and self._vars and not self._graph.finalized:
            saver_def = self.as_saver_def()
        return meta_graph.export_meta_graph(
            filename=filename, saver_def=saver_def, collection_list=collection_list, as_text=as_text,
            graph=self._graph, export_scope=export_scope, clear_devices=clear_devices,
            strip_default_attrs=strip_default_attrs)

    # -- restoring ---------------------------------------------------------------------------

    def restore(self, sess, save_path):
        """Restores every variable of this saver from checkpoint `save_path` (a prefix).

        Raises NotFoundError for a missing checkpoint or variable, DataLossError for a corrupted
        file and InvalidArgumentError for a variable whose dtype or shape differs."""
        if not self._vars:
            return
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        path = checkpoint_path(save_path)
        tensors, _ = read_checkpoint(save_path)
        values = {}
        for key, ref in self._vars.items():
            value = tensors.get(key)
            if value is None:
                raise errors.NotFoundError(None, None, f"Key {key} not found in checkpoint {path} (for "
                                           f"variable {ref.op.name})")
            if dtypes.as_dtype(value.dtype) is not ref.dtype:
                raise errors.InvalidArgumentError(
                    None, None, f"Checkpoint {path} holds {key} as {dtypes.as_dtype(value.dtype).name}, but "
                    f"variable {ref.op.name} is {ref.dtype.name}")
            if not ref.shape.is_compatible_with(value.shape):
                if self._reshape and ref.shape.is_fully_defined() and \
                        ref.shape.num_elements() == value.size:
                    value = value.reshape(ref.shape.as_list())
                else:
                    raise errors.InvalidArgumentError(
                        None, None, f"Checkpoint {path} holds {key} with shape {list(value.shape)}, but "
                        f"variable {ref.op.name} has shape {ref.shape}")
            values[key] = value
        self.build()
        sess.run(self._restore_op, {self._placeholders[k]: v for k, v in values.items()})


# -- meta graphs -----------------------------------------------------------------------------------

def export_meta_graph(filename=None, meta_info_def=None, graph_def=None, saver_def=None,
                      collection_list=None, as_text=False, graph=None, export_scope=None,
                      clear_devices=False, clear_extraneous_savers=False, strip_default_attrs=False,
                      save_debug_info=False, **kwargs):
    """`tf.train.export_meta_graph`: see `meta_graph.export_meta_graph`."""
    return meta_graph.export_meta_graph(
        filename=filename, meta_info_def=meta_info_def, graph_def=graph_def, saver_def=saver_def,
        collection_list=collection_list, as_text=as_text, graph=graph, export_scope=export_scope,
        clear_devices=clear_devices, strip_default_attrs=strip_default_attrs)


def import_meta_graph(meta_graph_or_file, clear_devices=False, import_scope=None, **kwargs):
    """`tf.train.import_meta_graph`: imports a meta graph (a MetaGraphDef or a `.meta` file) into
    the default graph, with its collections, and returns a Saver for its variables (None if it
    has none). Restore with `saver.restore(sess, prefix)`."""
    meta, prefix, _ = meta_graph.import_scoped_meta_graph(
        meta_graph_or_file, clear_devices=clear_devices, import_scope=import_scope,
        input_map=kwargs.get("input_map"))
    if meta.HasField("saver_def"):
        try:
            return Saver(saver_def=meta.saver_def, name=prefix or None)
        except ValueError as e:
            logging.warning("Ignoring the meta graph's saver_def (%s); saving all its variables instead.", e)
    graph = get_default_graph()
    scope = re.escape(f"{prefix}/") if prefix else None
    if graph.get_collection(GraphKeys.GLOBAL_VARIABLES, scope):
        return Saver(graph.get_collection(GraphKeys.GLOBAL_VARIABLES, scope))
    logging.info("Saver not created because there are no variables in the graph to restore")
    return None


# Variables and savers travel in meta graphs as their protos, as in TF.

def _variable_to_proto(var, export_scope=None):
    if not isinstance(var, Variable):
        raise TypeError(f"{var!r} is not a tf.Variable")
    proto = var.to_proto()
    if export_scope:
        for field in ("variable_name", "initializer_name", "snapshot_name", "initial_value_name"):
            name = getattr(proto, field)
            if name and not meta_graph._in_scope(name, export_scope):
                return None
            setattr(proto, field, meta_graph.strip_name_scope(name, export_scope))
    return proto


def _variable_from_proto(proto, import_scope=None):
    return Variable.from_proto(proto, import_scope=import_scope)


for _key in (GraphKeys.GLOBAL_VARIABLES, GraphKeys.TRAINABLE_VARIABLES, GraphKeys.LOCAL_VARIABLES,
             GraphKeys.MODEL_VARIABLES, GraphKeys.MOVING_AVERAGE_VARIABLES):
    meta_graph.register_proto_function(_key, variable_pb2.VariableDef, _variable_to_proto, _variable_from_proto)
meta_graph.register_proto_function(GraphKeys.SAVERS, saver_pb2.SaverDef, Saver.to_proto, Saver.from_proto)
