"""`tensorweave.inference.load(path)`: runs a frozen graph with NumPy alone.

The model is a straight-line program compiled once per set of fed inputs: constants are
evaluated at compile time, every other op becomes its registered NumPy kernel (the same one a
`Session` runs), and each value is dropped after its last reader. Only stateless ops run here;
a variable, a random op or a queue makes loading fail with the op's name and type.
"""

import os

import numpy as np

from tensorweave.framework import dtypes, errors
from tensorweave.framework.op_def import call_kernel
from tensorweave.inference import frozen_graph
from tensorweave.saved_model import layout


class Model:
    """A frozen graph ready to run: `model.run({"x": batch})` -> {output name: array}.

    `inputs` and `outputs` map the names used in feeds and results to tensor names of the graph.
    """

    def __init__(self, graph_def, inputs, outputs):
        self.graph = frozen_graph.import_frozen(graph_def)
        self.inputs = {key: frozen_graph.tensor_of(self.graph, name) for key, name in inputs.items()}
        self.outputs = {key: frozen_graph.tensor_of(self.graph, name) for key, name in outputs.items()}
        self._programs = {}

    def run(self, feeds, outputs=None):
        """Evaluates `outputs` (keys of `self.outputs`; default all) given `feeds` {input key or
        tensor name: array}; returns {output key: array}."""
        keys = tuple(self.outputs) if outputs is None else tuple(outputs)
        fed = {self._input_tensor(k): v for k, v in feeds.items()}
        program = self._program(frozenset(fed), keys)
        return program(fed)

    __call__ = run

    def _input_tensor(self, key):
        if key in self.inputs:
            return self.inputs[key]
        return frozen_graph.tensor_of(self.graph, key)

    def _program(self, fed, keys):
        cache_key = (fed, keys)
        if cache_key not in self._programs:
            try:
                fetches = [self.outputs[k] for k in keys]
            except KeyError as e:
                raise KeyError(f"No output {e.args[0]!r}; the model has {sorted(self.outputs)}") from None
            self._programs[cache_key] = _Program(fed, dict(zip(keys, fetches, strict=True)))
        return self._programs[cache_key]


class _Program:
    """The compiled steps for one set of fed tensors and fetched outputs."""

    def __init__(self, fed, fetches):
        self.fetches = fetches
        self.constants = {}
        self.steps = []  # (op, kernel, input tensors, output tensors, tensors that die after it)
        for op in frozen_graph.needed_ops(list(fed), list(fetches.values())):
            d = op.op_def
            if d.stateful or d.step_kernel or d.ref_outputs:
                what = "a placeholder that is not fed" if op.type == "Placeholder" else "stateful"
                raise op.error(errors.InvalidArgumentError, f"cannot run in the inference path: {what}")
            try:
                kernel = d.make_kernel(op, None)
            except errors.OpError:
                raise
            except Exception as e:
                raise op.error(errors.InvalidArgumentError, f"cannot build kernel: {e}") from e
            if all(t in self.constants for t in op.inputs) and not op.control_inputs:
                self._store(self.constants, op, call_kernel(op, kernel, [self.constants[t] for t in op.inputs]))
            else:
                self.steps.append([op, kernel, op.inputs, op.outputs, ()])
        keep = set(fetches.values()) | set(self.constants)
        last_reader = {}
        for index, step in enumerate(self.steps):
            for t in step[2]:
                last_reader[t] = index
        for t, index in last_reader.items():
            if t not in keep:
                self.steps[index][4] += (t,)
        self._donate(fed, keep)

    def _donate(self, fed, keep):
        """Uses an op's in-place kernel (as the runtime's plans do) where the array it would
        overwrite is fresh from a kernel that returns no views, read by this op alone, and
        neither fed, fetched nor constant."""
        producers = {t: step[0] for step in self.steps for t in step[3]}
        readers = {}
        for step in self.steps:
            for t in step[2]:
                readers[t] = readers.get(t, 0) + 1
        for step in self.steps:
            op, d = step[0], step[0].op_def
            if d.make_inplace_kernel is None:
                continue
            t = op.inputs[d.inplace_input]
            source = producers.get(t)
            if (source is not None and source.op_def.fresh_outputs and readers[t] == 1 and t not in keep
                    and t not in fed):
                step[1] = d.make_inplace_kernel(op, None)

    @staticmethod
    def _store(values, op, result):
        if len(op.outputs) == 1:
            values[op.outputs[0]] = result
        else:
            values.update(zip(op.outputs, result, strict=True))

    def __call__(self, fed):
        values = dict(self.constants)
        for tensor, value in fed.items():
            values[tensor] = _checked_feed(tensor, value)
        with np.errstate(all="ignore"):
            for op, kernel, ins, _, dead in self.steps:
                self._store(values, op, call_kernel(op, kernel, [values[t] for t in ins]))
                for t in dead:
                    del values[t]
        return {key: np.asarray(values[t]) for key, t in self.fetches.items()}


def _checked_feed(tensor, value):
    np_dtype = np.dtype(tensor.dtype.as_numpy_dtype) if tensor.dtype is not dtypes.string else np.dtype(object)
    array = np.asarray(value)
    if array.dtype != np_dtype:
        if not np.can_cast(array.dtype, np_dtype, casting="same_kind"):
            raise errors.InvalidArgumentError(None, tensor.op, f"Cannot feed {array.dtype} to tensor "
                                              f"{tensor.name} of dtype {tensor.dtype.name}")
        array = array.astype(np_dtype)
    if not tensor.shape.is_compatible_with(array.shape):
        raise errors.InvalidArgumentError(None, tensor.op, f"Cannot feed value of shape {array.shape} for tensor "
                                          f"{tensor.name}, which has shape {tensor.shape}")
    return array


def load(path, inputs=None, outputs=None, signature_def_key=layout.DEFAULT_SERVING_SIGNATURE_DEF_KEY):
    """Loads a frozen graph for NumPy inference: a `simple_save` directory (inputs and outputs
    from its signature, variables frozen on load) or a frozen `GraphDef` file (`.pb` or
    `.pbtxt`; `outputs` required: tensor names, `inputs` defaults to its placeholders).

    `inputs`/`outputs` are lists of tensor names or dicts {key: tensor name}. Returns a `Model`.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        graph_def, signature = frozen_graph.load_saved_model(path, signature_def_key)
        inputs = inputs or {k: v["name"] for k, v in signature["inputs"].items()}
        outputs = outputs or {k: v["name"] for k, v in signature["outputs"].items()}
    else:
        graph_def = frozen_graph.read_graph_def(path)
        if not outputs:
            raise ValueError("load() of a GraphDef file needs outputs=[tensor names]")
        if inputs is None:
            inputs = [f"{node.name}:0" for node in graph_def.node if node.op == "Placeholder"]
    as_dict = lambda names: dict(names) if isinstance(names, dict) else {n: n for n in names}
    return Model(graph_def, as_dict(inputs), as_dict(outputs))
