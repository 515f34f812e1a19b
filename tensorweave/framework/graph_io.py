"""Graphs as TensorFlow's own `GraphDef` protobufs: export, import and writing to disk.

Export turns each op into a `NodeDef` whose attrs carry the type attrs TensorFlow's op of the
same name declares ("T", "Tidx", ...), so TensorBoard and TF read our graphs. Import is TF1's
`tf.import_graph_def`: it checks the whole GraphDef first (parse, registered op types, attrs,
inputs, cycles) and only then adds ops, in dependency order, under an `import/` name scope.
Nothing read from a GraphDef is ever evaluated: tensors are dtype + shape + bytes.

Attr values convert in `attr_values` and `tensor_protos`; what TF's op schemas say about each
op type's attrs (type attrs, defaults, kinds) is in `tf_op_schemas`.
"""

import contextlib
import contextvars
import functools
import importlib
import os
import pkgutil
import re
import socket
import tempfile
import time

from google.protobuf import message as _message
from google.protobuf import text_format
from tensorboard.compat.proto import graph_pb2, node_def_pb2

from tensorweave.framework import device_spec, dtypes, errors, op_def as op_def_lib, tf_op_schemas
from tensorweave.framework.attr_values import attr_value_of, has_kind, kind_of, python_attr_value
from tensorweave.framework.graph import Graph, get_default_graph
from tensorweave.framework.operation import Operation, user_call_site
from tensorweave.framework.tensor import Tensor
from tensorweave.framework.tensor_protos import MAX_EXPANDED_BYTES, MalformedProto, expanded_nbytes
from tensorweave.framework.toposort import CycleError, kahn_order

GRAPH_DEF_VERSION = 27  # the `versions.producer` we write

_for_peers = contextvars.ContextVar("tensorweave_imports_for_peers", default=False)


@contextlib.contextmanager
def imports_for_peers():
    """Within this block, ops imported from a GraphDef record the node they came from as their
    definition site, not the import's call site: a server imports graphs that other processes
    sent, and no file:line of its own says where their ops were defined."""
    token = _for_peers.set(True)
    try:
        yield
    finally:
        _for_peers.reset(token)


# -- export ------------------------------------------------------------------------------------

def node_def_of(op):
    """The `NodeDef` of `op`: name, type, inputs ("x", "x:1", "^ctrl"), device and attrs, with
    the type attrs and defaults TF's op of this type declares."""
    node = node_def_pb2.NodeDef(name=op.name, op=op.type, device=op.device)
    node.input.extend(_input_name(t) for t in op.inputs)
    node.input.extend(f"^{c.name}" for c in op.control_inputs)
    attrs = dict(op._attrs)
    for name, value in tf_op_schemas.tf_type_attrs(op, attrs).items():
        attrs.setdefault(name, value)
    for name, value in tf_op_schemas.attr_defaults(op.type).items():  # as TF's NodeDefs hold them
        attrs.setdefault(name, value)
    for name, value in tf_op_schemas.attrs_not_in_tf(op.type).items():
        if name in attrs and attrs[name] == value:
            del attrs[name]
    for name in sorted(attrs):
        try:
            node.attr[name].CopyFrom(attr_value_of(attrs[name]))
        except (TypeError, ValueError, OverflowError) as e:
            raise TypeError(f"Cannot export attr {name!r} of op {op.name!r} ({op.type}): {e}") from None
    return node


def _input_name(t):
    return t.op.name if t.value_index == 0 else f"{t.op.name}:{t.value_index}"


def graph_to_graph_def(graph, add_shapes=False):
    """`graph` as a `GraphDef` (nodes in creation order); `add_shapes` adds `_output_shapes`."""
    graph_def = graph_pb2.GraphDef()
    graph_def.versions.producer = GRAPH_DEF_VERSION
    for op in graph.get_operations():
        node = graph_def.node.add()
        node.CopyFrom(node_def_of(op))
        if add_shapes and op.outputs:
            node.attr["_output_shapes"].CopyFrom(attr_value_of([t.shape for t in op.outputs]))
    return graph_def


# -- import: attrs ---------------------------------------------------------------------------

def _node_attrs(node, op_type):
    """The Python attrs of `node`, TF's defaults filled in; raises `MalformedProto`."""
    attrs = {}
    for name, av in node.attr.items():
        if name == "_output_shapes":  # derived data; our shape rules recompute it
            continue
        kind = tf_op_schemas.attr_kind(op_type, name)
        if kind is not None and not has_kind(av, kind):
            raise MalformedProto(f"attr {name!r} must be a {kind}, got {kind_of(av)}")
        try:
            attrs[name] = python_attr_value(name, av)
        except MalformedProto as e:
            raise MalformedProto(f"attr {name!r}: {e}") from None
    for name, value in tf_op_schemas.attr_defaults(op_type).items():
        attrs.setdefault(name, value)
    if op_type == "Const":
        if "value" not in attrs or "dtype" not in attrs:
            raise MalformedProto("a Const needs attrs 'value' and 'dtype'")
        if dtypes.as_dtype(attrs["value"].dtype) is not attrs["dtype"]:
            raise MalformedProto(f"Const value has dtype {dtypes.as_dtype(attrs['value'].dtype).name} but "
                                 f"attr dtype is {attrs['dtype'].name}")
    return attrs


def _expanded_bytes(node):
    """The bytes the node's tensor attrs take once expanded beyond what the NodeDef holds, from
    their declared shapes, before anything is allocated; raises `MalformedProto`."""
    total = 0
    for name, av in node.attr.items():
        kind = av.WhichOneof("value")
        tensors = [av.tensor] if kind == "tensor" else av.list.tensor if kind == "list" else ()
        try:
            total += sum(expanded_nbytes(t) for t in tensors)
        except MalformedProto as e:
            raise MalformedProto(f"attr {name!r}: {e}") from None
    return total


def strip_default_attrs(graph_def):
    """Removes attrs equal to TF's schema defaults (TF's `strip_default_attrs`), in place."""
    for node in graph_def.node:
        for name, value in tf_op_schemas.attr_defaults(node.op).items():
            if name in node.attr and node.attr[name] == attr_value_of(value):
                del node.attr[name]
    return graph_def


# -- import: the graph -------------------------------------------------------------------------

def _parse_input(spec):
    """("node", output index, is_control) for a NodeDef input string."""
    if spec.startswith("^"):
        return spec[1:], None, True
    name, sep, index = spec.rpartition(":")
    if sep and index.isdigit():
        return name, int(index), False
    return spec, 0, False


def _tensor_key(name):
    name, index, control = _parse_input(name)
    return f"^{name}" if control else f"{name}:{index}"


def _error(node_name, op_type, message):
    where = f"node {node_name!r}" + (f" (op type {op_type})" if op_type else "")
    return errors.GraphConstructionError(None, None, f"import_graph_def: {where}: {message}")


class _Plan:
    """A checked GraphDef: nodes by name, their attrs, inputs and a dependency order."""

    def __init__(self, graph_def, input_map):
        self.nodes = {}
        self.attrs = {}
        self.inputs = {}
        for node in graph_def.node:
            if not node.name:
                raise _error("", node.op, "a node has an empty name")
            if node.name in self.nodes:
                raise _error(node.name, node.op, "the GraphDef has two nodes of this name")
            self.nodes[node.name] = node
        expanded = 0  # bytes of tensor attrs beyond what the GraphDef holds (repeated last values)
        for node in graph_def.node:
            try:
                op_def_lib.get_op_def(node.op)
            except LookupError:
                raise _error(node.name, node.op, f"op type {node.op!r} is not registered in TensorWeave "
                             "(import the module defining it first, or the op is not supported)") from None
            try:
                node_bytes = _expanded_bytes(node)
                expanded += node_bytes
                if expanded > MAX_EXPANDED_BYTES:
                    raise MalformedProto(
                        f"its tensor values would expand to {node_bytes} bytes ({expanded} with the nodes before "
                        f"it), over the limit of {MAX_EXPANDED_BYTES} (a TensorProto may hold fewer values than "
                        "its shape, the last one repeating, but not without bound)")
                self.attrs[node.name] = _node_attrs(node, node.op)
            except Exception as e:  # noqa: BLE001 - any bad attr is this node's error
                raise _error(node.name, node.op, str(e)) from None
            if node.device:
                try:
                    device_spec.DeviceSpec.from_string(node.device)
                except ValueError as e:
                    raise _error(node.name, node.op, f"bad device: {e}") from None
            parsed = [_parse_input(spec) for spec in node.input]
            seen_control = False
            for (src, index, control), spec in zip(parsed, node.input, strict=True):
                if control:
                    seen_control = True
                elif seen_control:
                    raise _error(node.name, node.op, f"data input {spec!r} follows a control input")
                key = f"^{src}" if control else f"{src}:{index}"
                if src not in self.nodes and key not in input_map:
                    raise _error(node.name, node.op, f"input {spec!r} names node {src!r}, which is not in "
                                 "the GraphDef")
            self.inputs[node.name] = parsed
        for key in input_map:
            src = key[1:] if key.startswith("^") else key.rpartition(":")[0]
            if src not in self.nodes:
                raise errors.GraphConstructionError(
                    None, None, f"Attempted to map inputs that were not found in graph_def: [{key}]")
        self.order = self._topological_order(graph_def)

    def _topological_order(self, graph_def):
        position = {node.name: i for i, node in enumerate(graph_def.node)}
        try:
            return kahn_order(self.nodes, lambda name: [src for src, _, _ in self.inputs[name]],
                              key=position.__getitem__)
        except CycleError as e:
            stuck = sorted(e.unordered)
            raise _error(stuck[0], self.nodes[stuck[0]].op,
                         f"the GraphDef has a cycle through nodes {stuck[:5]}") from None


@functools.cache
def _register_every_op_type():
    """Imports every module that defines op types (all of `tensorweave.ops`, and the summary
    ops), so a GraphDef may name any of them whatever the program imported so far."""
    import tensorweave.ops
    modules = [m.name for m in pkgutil.walk_packages(tensorweave.ops.__path__, "tensorweave.ops.")]
    for name in modules + ["tensorweave.summary.summary_ops"]:
        importlib.import_module(name)


def _as_graph_def(graph_def):
    if isinstance(graph_def, graph_pb2.GraphDef):
        return graph_def
    if isinstance(graph_def, (bytes, bytearray, memoryview)):
        parsed = graph_pb2.GraphDef()
        try:
            parsed.ParseFromString(bytes(graph_def))
        except (_message.DecodeError, ValueError, RuntimeError) as e:
            raise errors.GraphConstructionError(None, None,
                                                f"import_graph_def: cannot parse GraphDef bytes: {e}") from None
        return parsed
    raise TypeError(f"graph_def must be a GraphDef proto, got {type(graph_def).__name__}")


def _mapped_value(key, value, graph):
    if key.startswith("^"):
        op = value.op if isinstance(value, Tensor) else value
        if not isinstance(op, Operation) or op.graph is not graph:
            raise TypeError(f"input_map[{key!r}] must be an Operation of the default graph")
        return op
    if not isinstance(value, Tensor):
        from tensorweave.framework.op_builder import convert_to_tensor
        value = convert_to_tensor(value)
    if value.graph is not graph:
        raise ValueError(f"input_map[{key!r}] is a tensor of another graph: {value.name}")
    return value


def import_graph_def(graph_def, input_map=None, return_elements=None, name=None, op_dict=None,
                     producer_op_list=None):
    """`tf.import_graph_def`: adds the ops of `graph_def` to the default graph.

    Ops are named `<name>/<node name>` (`name` defaults to "import"; "" adds no prefix).
    `input_map` maps tensor names of `graph_def` ("x:0" or "x"; "^x" for control inputs) to
    tensors of the default graph that replace them. Returns the ops and tensors named in
    `return_elements` ("op" or "op:0", names as in `graph_def`), or None.
    Raises ValueError naming the node for malformed GraphDefs and unregistered op types.
    """
    _register_every_op_type()
    graph_def = _as_graph_def(graph_def)
    graph = get_default_graph()
    input_map = {_tensor_key(k): _mapped_value(_tensor_key(k), v, graph) for k, v in (input_map or {}).items()}
    plan = _Plan(graph_def, input_map)
    wanted = []
    for element in return_elements or ():
        src, _, control = _parse_input(element)
        if control or src not in plan.nodes:
            raise ValueError(f"Requested return_element {element!r} not found in graph_def.")
        wanted.append(element)

    created = {}
    site = None if _for_peers.get() else user_call_site()
    with graph.as_default(), graph.name_scope("import" if name is None else name):
        for node_name in plan.order:
            node = plan.nodes[node_name]
            inputs, controls = [], []
            for src, index, control in plan.inputs[node_name]:
                if control:
                    controls.append(input_map.get(f"^{src}") or created[src])
                    continue
                mapped = input_map.get(f"{src}:{index}")
                producer = created.get(src)
                if producer is not None and index >= len(producer.outputs):
                    raise _error(node_name, node.op, f"input {src}:{index} does not exist: {src} has "
                                 f"{len(producer.outputs)} outputs")
                if mapped is not None:
                    if producer is not None and producer.outputs[index].dtype is not mapped.dtype:
                        raise _error(node_name, node.op, f"input_map replaces {src}:{index} "
                                     f"({producer.outputs[index].dtype.name}) with {mapped.name} "
                                     f"({mapped.dtype.name})")
                    inputs.append(mapped)
                else:
                    inputs.append(producer.outputs[index])
            created[node_name] = _create(graph, node, plan.attrs[node_name], inputs, controls, site)
        _remap_colocation(graph, plan, created)

    if return_elements is None:
        return None
    out = []
    for element in wanted:
        src, index, _ = _parse_input(element)
        op = created[src]
        if ":" not in element:
            out.append(op)
        elif index < len(op.outputs):
            out.append(op.outputs[index])
        else:
            raise ValueError(f"Requested return_element {element!r} not found in graph_def.")
    return out


def _create(graph, node, attrs, inputs, controls, site):
    where = f"import_graph_def node {node.name!r}"
    if site is not None:
        where = f"{site} ({where})"
    try:
        if controls:
            with graph.control_dependencies(controls):
                return graph.create_op(node.op, inputs, attrs, name=node.name, device=node.device or None,
                                       site=where)
        return graph.create_op(node.op, inputs, attrs, name=node.name, device=node.device or None, site=where)
    except errors.OpError:
        raise
    except RuntimeError:
        raise
    except Exception as e:  # a shape rule rejecting the node's attrs or inputs
        raise _error(node.name, node.op, f"{type(e).__name__}: {e}") from None


def _remap_colocation(graph, plan, created):
    """`loc:@x` groups name nodes of the GraphDef; point them at the ops created for them."""
    for node_name, op in created.items():
        groups = op._attrs.get("_class")
        if not groups:
            continue
        remapped = []
        for group in groups:
            group = group.encode() if isinstance(group, str) else group
            if group.startswith(b"loc:@"):
                target = group[5:].decode("utf-8", "replace")
                if target in created:
                    group = f"loc:@{created[target].name}".encode()
                elif not _has_op(graph, target):
                    raise _error(node_name, op.type, f"colocated with {target!r}, which is neither in the "
                                 "GraphDef nor in the graph")
            remapped.append(group)
        if remapped != list(groups):
            op._attrs["_class"] = remapped


def _has_op(graph, name):
    try:
        graph.get_operation_by_name(name)
    except KeyError:
        return False
    return True


# -- files -------------------------------------------------------------------------------------

def atomic_write(path, data, on_step=None):
    """Writes `data` (bytes) to `path` so readers see the old file or the whole new one: a temp
    file in the same directory, flushed and fsynced, then renamed over `path`.

    `on_step(step)`, if given, is called between the steps ("temp written" before the rename,
    "renamed" before the directory's fsync), so tests can interrupt the sequence there."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    # The temp name says which host and process wrote it: `remove_stale_temp_files` can then tell
    # one a killed writer left behind from one being written now.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.{_writer_tag()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if on_step is not None:
            on_step("temp written")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if on_step is not None:
        on_step("renamed")
    try:  # make the rename itself durable; not every platform lets a directory be opened
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


_TEMP_NAME = re.compile(r"^\..+\.tw-(?P<host>[A-Za-z0-9_-]{1,64})-(?P<pid>\d{1,10})\.[^.]+\.tmp$")
STALE_TEMP_SECONDS = 24 * 3600


def _writer_tag():
    return f"tw-{_host_tag()}-{os.getpid()}"


def _host_tag():
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host"


def remove_stale_temp_files(directory, now=None):
    """Deletes the temp files of `atomic_write`s in `directory` whose writer died mid-write (a
    SIGKILL leaves one behind): those written from this host by a process that no longer exists,
    and any older than a day (another host's writer cannot be asked). Returns their names."""
    removed = []
    now = time.time() if now is None else now
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None:
            continue
        path = os.path.join(directory, name)
        try:
            stale = now - os.stat(path).st_mtime > STALE_TEMP_SECONDS
            if not stale and match["host"] == _host_tag():
                stale = not process_exists(int(match["pid"]))
            if stale:
                os.unlink(path)
                removed.append(name)
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


def process_exists(pid):
    """Whether process `pid` of this machine still runs (this process counts as running; one that
    is not ours to signal does too). For files named after the process that writes them."""
    if pid == os.getpid():
        return True  # another thread of this process may be writing it now
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; no pid is past the C int range
        return False
    except PermissionError:
        return True
    return True


def write_graph(graph_or_graph_def, logdir, name, as_text=True):
    """`tf.train.write_graph`: writes a graph (or GraphDef) to `logdir/name`; returns the path."""
    graph_def = graph_or_graph_def.as_graph_def() if isinstance(graph_or_graph_def, Graph) \
        else graph_or_graph_def
    if not isinstance(graph_def, graph_pb2.GraphDef):
        raise TypeError(f"write_graph needs a Graph or GraphDef, got {type(graph_or_graph_def).__name__}")
    logdir = os.fspath(logdir)
    os.makedirs(logdir, exist_ok=True)
    path = os.path.join(logdir, name)
    data = text_format.MessageToString(graph_def).encode() if as_text else graph_def.SerializeToString()
    atomic_write(path, data)
    return path
