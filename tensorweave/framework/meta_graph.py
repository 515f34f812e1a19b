"""Meta graphs: a `GraphDef` with its collections and saver, as TensorFlow's `MetaGraphDef`.

Collections are written as TF writes them: objects with a registered proto (variables, savers)
as serialized protos in `bytes_list`, ops and tensors as names in `node_list`, numbers and
strings as their lists. An item that fits none of these is skipped with a warning, as in TF.
The layer that defines an object registers its proto functions here
(`register_proto_function`), so this module never imports the layers above it.
"""

import logging
import os

from google.protobuf import message as _message
from google.protobuf import text_format
from tensorboard.compat.proto import meta_graph_pb2, op_def_pb2

from tensorweave.framework import errors, graph_io
from tensorweave.framework.graph import get_default_graph
from tensorweave.framework.operation import Operation
from tensorweave.framework.tensor import Tensor

_logger = logging.getLogger("tensorweave")  # tf.logging's logger; framework code logs directly
_PROTO_FUNCTIONS = {}  # collection key -> (proto_type, to_proto, from_proto)


def register_proto_function(collection_name, proto_type=None, to_proto=None, from_proto=None):
    """Teaches meta graphs to (de)serialize collection `collection_name`:
    `to_proto(item, export_scope=None)` and `from_proto(proto, import_scope=None)`."""
    if collection_name in _PROTO_FUNCTIONS:
        raise KeyError(f"Proto functions for collection {collection_name!r} are already registered")
    _PROTO_FUNCTIONS[collection_name] = (proto_type, to_proto, from_proto)


def get_collection_proto_type(collection_name):
    return _PROTO_FUNCTIONS.get(collection_name, (None, None, None))[0]


# -- names under scopes ------------------------------------------------------------------------

def _split_marker(name):
    for marker in ("^", "loc:@"):
        if name.startswith(marker):
            return marker, name[len(marker):]
    return "", name


def strip_name_scope(name, export_scope):
    """`name` ("x", "x:0", "^x", "loc:@x") without the leading `export_scope/`."""
    if not export_scope:
        return name
    marker, bare = _split_marker(name)
    prefix = export_scope.rstrip("/") + "/"
    return marker + bare[len(prefix):] if bare.startswith(prefix) else name


def prepend_name_scope(name, import_scope):
    """`name` ("x", "x:0", "^x", "loc:@x") under `import_scope/`."""
    if not import_scope:
        return name
    marker, bare = _split_marker(name)
    return f"{marker}{import_scope.rstrip('/')}/{bare}"


def _in_scope(name, export_scope):
    return not export_scope or _split_marker(name)[1].startswith(export_scope.rstrip("/") + "/")


def _scoped_graph_def(graph_def, export_scope):
    """The nodes of `graph_def` under `export_scope`, with the scope stripped from every name."""
    out = type(graph_def)()
    out.versions.CopyFrom(graph_def.versions)
    for node in graph_def.node:
        if not _in_scope(node.name, export_scope):
            continue
        new = out.node.add()
        new.CopyFrom(node)
        new.name = strip_name_scope(node.name, export_scope)
        del new.input[:]
        new.input.extend(strip_name_scope(i, export_scope) for i in node.input)
        if "_class" in node.attr:
            groups = [strip_name_scope(g.decode(), export_scope).encode() for g in node.attr["_class"].list.s]
            del new.attr["_class"].list.s[:]
            new.attr["_class"].list.s.extend(groups)
    return out


# -- export ------------------------------------------------------------------------------------

def export_meta_graph(filename=None, meta_info_def=None, graph_def=None, saver_def=None,
                      collection_list=None, as_text=False, graph=None, export_scope=None,
                      clear_devices=False, clear_extraneous_savers=False, strip_default_attrs=False,
                      save_debug_info=False, **kwargs):
    """`tf.train.export_meta_graph`: the graph (default: the default graph), its collections
    and `saver_def` as a `MetaGraphDef`; also written to `filename` if given (text if
    `as_text`). Returns the `MetaGraphDef`."""
    graph = graph or get_default_graph()
    source = graph.as_graph_def(add_shapes=True) if graph_def is None else graph_def
    graph_def = type(source)()
    graph_def.CopyFrom(source)
    if export_scope:
        graph_def = _scoped_graph_def(graph_def, export_scope)
    if clear_devices:
        for node in graph_def.node:
            node.device = ""
    if strip_default_attrs:
        graph_io.strip_default_attrs(graph_def)

    meta = meta_graph_pb2.MetaGraphDef()
    if meta_info_def is not None:
        meta.meta_info_def.CopyFrom(meta_info_def)
    else:
        from tensorweave.version import __version__
        meta.meta_info_def.tensorflow_version = f"tensorweave {__version__}"
        meta.meta_info_def.stripped_op_list.op.extend(
            op_def_pb2.OpDef(name=t) for t in sorted({node.op for node in graph_def.node}))
    meta.meta_info_def.stripped_default_attrs = bool(strip_default_attrs)
    meta.graph_def.CopyFrom(graph_def)
    if saver_def is not None:
        meta.saver_def.CopyFrom(saver_def)
    keys = graph.get_all_collection_keys() if collection_list is None else collection_list
    for key in keys:
        _add_collection_def(meta, key, graph, export_scope)
    if filename:
        write_meta_graph_file(meta, filename, as_text)
    return meta


def _add_collection_def(meta, key, graph, export_scope):
    items = graph.get_collection(key)
    if export_scope:
        items = [x for x in items if not hasattr(x, "name") or _in_scope(x.name, export_scope)]
    if not items:
        return
    proto_type, to_proto, _ = _PROTO_FUNCTIONS.get(key, (None, None, None))
    collection = meta.collection_def[key]
    try:
        if to_proto is not None:
            for item in items:
                proto = to_proto(item, export_scope=export_scope)
                if proto is not None:
                    collection.bytes_list.value.append(proto.SerializeToString())
            if not collection.bytes_list.value:
                del meta.collection_def[key]
            return
        kind = _kind_of(items)
        if kind == "node_list":
            collection.node_list.value.extend(strip_name_scope(_element_name(x), export_scope) for x in items)
        elif kind == "bytes_list":
            collection.bytes_list.value.extend(x.encode() if isinstance(x, str) else bytes(x) for x in items)
        elif kind == "int64_list":
            collection.int64_list.value.extend(int(x) for x in items)
        else:
            collection.float_list.value.extend(items)
    except Exception as e:  # noqa: BLE001 - TF skips what it cannot serialize, with a warning
        _logger.warning("Issue encountered when serializing %s.\nType is unsupported, or the types of the "
                        "items don't match field type in CollectionDef.\n%s", key, e)
        del meta.collection_def[key]


def _element_name(x):
    if isinstance(x, (Tensor, Operation)):
        return x.name
    element = x._as_graph_element() if hasattr(x, "_as_graph_element") else None
    if isinstance(element, (Tensor, Operation)):
        return element.name
    raise TypeError(f"{x!r} is not a graph element")


def _kind_of(items):
    kinds = set()
    for x in items:
        if isinstance(x, (str, bytes)):
            kinds.add("bytes_list")
        elif isinstance(x, int):  # bool too, as in TF
            kinds.add("int64_list")
        elif isinstance(x, float):
            kinds.add("float_list")
        else:
            _element_name(x)
            kinds.add("node_list")
    if len(kinds) != 1:
        raise TypeError(f"the items mix kinds {sorted(kinds)}")
    return kinds.pop()


def write_meta_graph_file(meta_graph_def, filename, as_text=False, on_step=None):
    """Writes `meta_graph_def` to `filename` (binary, or text format), atomically (`on_step`:
    see `graph_io.atomic_write`)."""
    data = text_format.MessageToString(meta_graph_def).encode() if as_text \
        else meta_graph_def.SerializeToString()
    directory = os.path.dirname(os.fspath(filename))
    if directory:
        os.makedirs(directory, exist_ok=True)
    graph_io.atomic_write(filename, data, on_step=on_step)


def read_meta_graph_file(filename):
    """The `MetaGraphDef` in `filename` (binary or text format).

    Raises `NotFoundError` for a missing file and `DataLossError` for one that parses as neither."""
    filename = os.fspath(filename)
    try:
        with open(filename, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise errors.NotFoundError(None, None, f"File {filename} does not exist.") from None
    meta = meta_graph_pb2.MetaGraphDef()
    try:
        meta.ParseFromString(data)
        return meta
    except (_message.DecodeError, RuntimeError, ValueError):
        pass
    try:
        text_format.Merge(data.decode("utf-8"), meta)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise errors.DataLossError(None, None, f"Cannot parse {filename} as a MetaGraphDef (binary or "
                                   f"text): {e}") from None
    return meta


# -- import ------------------------------------------------------------------------------------

def import_scoped_meta_graph(meta_graph_or_file, clear_devices=False, graph=None, import_scope=None,
                             input_map=None, return_elements=None,
                             restore_collections_predicate=lambda key: True):
    """Imports a meta graph's graph and collections into `graph` (default: the default graph).

    Op names get the prefix `import_scope/` (made unique if the scope is taken; none if None).
    Returns (the MetaGraphDef, the prefix used, the requested `return_elements` or None).
    """
    meta = read_meta_graph_file(meta_graph_or_file) if isinstance(meta_graph_or_file, (str, os.PathLike)) \
        else meta_graph_or_file
    if not isinstance(meta, meta_graph_pb2.MetaGraphDef):
        raise TypeError(f"Expected a MetaGraphDef or a file name, got {type(meta_graph_or_file).__name__}")
    graph = graph or get_default_graph()
    graph_def = meta.graph_def
    if clear_devices:
        graph_def = type(graph_def)()
        graph_def.CopyFrom(meta.graph_def)
        for node in graph_def.node:
            node.device = ""
    with graph.as_default():
        prefix = graph.unique_name(import_scope.rstrip("/")) if import_scope else ""
        elements = graph_io.import_graph_def(graph_def, input_map=input_map, return_elements=return_elements,
                                             name=f"{prefix}/" if prefix else "")
        memo = {}  # one object per serialized item, however many collections list it
        for key in meta.collection_def:
            if restore_collections_predicate(key):
                _restore_collection(graph, key, meta.collection_def[key], prefix, memo)
    return meta, prefix, elements


def _restore_collection(graph, key, collection, prefix, memo):
    kind = collection.WhichOneof("kind")
    if kind is None:
        _logger.warning("Cannot identify data type for collection %s. Skipping.", key)
        return
    proto_type, _, from_proto = _PROTO_FUNCTIONS.get(key, (None, None, None))
    values = getattr(collection, kind).value
    if kind == "bytes_list" and from_proto is not None:
        for value in values:
            memo_key = (proto_type, bytes(value))
            obj = memo.get(memo_key)
            if obj is None:
                proto = proto_type()
                try:
                    proto.ParseFromString(value)
                except _message.DecodeError as e:
                    raise errors.DataLossError(None, None, f"Collection {key!r} holds a malformed "
                                               f"{proto_type.__name__}: {e}") from None
                try:
                    obj = from_proto(proto, import_scope=prefix or None)
                except (KeyError, ValueError, TypeError) as e:
                    raise ValueError(f"Cannot restore an item of collection {key!r}: {e}") from None
                memo[memo_key] = obj
            graph.add_to_collection(key, obj)
    elif kind == "node_list":
        for name in values:
            try:
                graph.add_to_collection(key, graph.as_graph_element(prepend_name_scope(name, prefix)))
            except (KeyError, ValueError) as e:
                raise ValueError(f"Collection {key!r} names {name!r}, which is not in the graph: {e}") from None
    elif kind == "bytes_list":
        for value in values:
            graph.add_to_collection(key, bytes(value))
    elif kind in ("int64_list", "float_list"):
        for value in values:
            graph.add_to_collection(key, value)
    else:
        _logger.warning("Collection %s of kind %s cannot be restored. Skipping.", key, kind)
