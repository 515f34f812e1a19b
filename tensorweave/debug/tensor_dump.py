"""Dumping the tensors of one step to `.npy` files, for inspection with NumPy alone.

    results = tensorweave.debug.dump(sess, train_op, {x: batch}, "dumps/step_100")
    # dumps/step_100/layer1_Relu_0.npy, ..., and dumps/step_100/index.json

Each file holds one tensor, written with `np.save` and readable with `np.load` without
`allow_pickle` (string tensors are stored as fixed-width bytes). `index.json` lists, per tensor,
its name, file, dtype, shape, the op that produced it, its type and where it was created, and
the count of NaN and Inf elements of float tensors, so a bad value can be traced from the index.
"""

import json
import os
import re

import numpy as np

from tensorweave.framework.operation import Operation
from tensorweave.framework.tensor import Tensor
from tensorweave.runtime.fetches import flatten_fetches

INDEX_FILE = "index.json"


def dump(sess, fetches, feed_dict=None, directory="tensorweave_dump", tensors=None):
    """Runs one step, `sess.run(fetches, feed_dict)`, and writes tensors of that step to `directory`.

    `tensors`: the tensors (or tensor names) to write; by default every tensor the step computes
    (what `fetches` depend on, stopping at fed tensors, whose fed values are written). Ops run
    once, so a training step dumped is also a training step taken; a variable's own tensor
    (`w:0`) holds its value after the step, its read (`w/read:0`) the value the step used.
    Returns the step's results, as `sess.run` would.
    """
    graph = sess.graph
    elements, _ = flatten_fetches(graph, fetches)
    fed = {graph.as_graph_element(k, allow_operation=False) if not isinstance(k, Tensor) else k
           for k in (feed_dict or {})}
    if tensors is None:
        chosen = _computed_tensors(elements, fed)
    else:
        chosen = [graph.as_graph_element(t, allow_operation=False) if not isinstance(t, Tensor) else t
                  for t in tensors]
    results, values = sess.run((fetches, {t.name: t for t in chosen}), feed_dict)
    os.makedirs(directory, exist_ok=True)
    entries, used = [], set()
    for t in chosen:
        array = _saveable(values[t.name])
        file = _file_name(t.name, used)
        np.save(os.path.join(directory, file), array, allow_pickle=False)
        entries.append(_entry(t, file, array))
    with open(os.path.join(directory, INDEX_FILE), "w", encoding="utf-8") as f:
        json.dump({"tensors": entries}, f, indent=1)
    return results


def load_dump(directory):
    """{tensor name: array} of a dump written by `dump`."""
    with open(os.path.join(directory, INDEX_FILE), encoding="utf-8") as f:
        index = json.load(f)
    return {e["name"]: np.load(os.path.join(directory, e["file"]), allow_pickle=False) for e in index["tensors"]}


def _computed_tensors(elements, fed):
    """The tensors the step computes for `elements`, in creation order (fed ones included)."""
    seen, stack = set(), [e if isinstance(e, Operation) else e.op for e in elements]
    tensors = {t for t in elements if isinstance(t, Tensor)}
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        tensors.update(op.outputs)
        for t in op.inputs:
            if t in fed:
                tensors.add(t)
            else:
                stack.append(t.op)
        stack.extend(op.control_inputs)
    tensors = {t for t in tensors if t in fed or t.op in seen}
    return sorted(tensors, key=lambda t: (t.op._id, t.value_index))


def _saveable(value):
    array = np.asarray(value)
    if array.dtype.kind == "V" or array.dtype.name == "bfloat16":  # ml_dtypes: plain NumPy reads float32
        return array.astype(np.float32)
    if array.dtype == object:  # strings: fixed-width bytes, so no pickle is needed to read them
        flat = [v.encode() if isinstance(v, str) else bytes(v) for v in array.reshape(-1)]
        array = np.array(flat, dtype=bytes).reshape(array.shape) if flat else np.zeros(array.shape, "S1")
    return array


def _file_name(tensor_name, used):
    """'layer1/Relu:0' -> 'layer1_Relu_0.npy' (with a suffix if two names clean up the same)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", tensor_name)
    name, n = f"{stem}.npy", 1
    while name in used:
        name, n = f"{stem}__{n}.npy", n + 1
    used.add(name)
    return name


def _entry(tensor, file, array):
    entry = {"name": tensor.name, "file": file, "dtype": tensor.dtype.name, "shape": list(array.shape),
             "op": tensor.op.name, "op_type": tensor.op.type, "defined_at": tensor.op.creation_site}
    if array.dtype.kind == "f" or tensor.dtype.is_floating:
        values = np.asarray(array, dtype=np.float64)
        entry["nan"] = int(np.count_nonzero(np.isnan(values)))
        entry["inf"] = int(np.count_nonzero(np.isinf(values)))
    return entry
