"""`Operation`: a node of the graph: its type, inputs, attributes, device and outputs."""

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_call_site():
    """`file:line` of the innermost caller outside the tensorweave package, for error messages."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class Operation:
    """A node in a `Graph`. Created through `Graph.create_op`; immutable except for control inputs."""

    def __init__(self, graph, op_def, name, inputs, attrs, device, control_inputs, site):
        self._graph = graph
        self._op_def = op_def
        self._name = name
        self._inputs = tuple(inputs)
        self._attrs = attrs
        self._device = device
        self._control_inputs = list(control_inputs)
        self._outputs = ()
        self._site = site
        self._id = None
        self._control_outputs = []
        for t in self._inputs:
            t._consumers.append(self)
        for c in self._control_inputs:
            c._control_outputs.append(self)

    @property
    def name(self):
        return self._name

    @property
    def type(self):
        return self._op_def.type

    @property
    def op_def(self):
        return self._op_def

    @property
    def graph(self):
        return self._graph

    @property
    def inputs(self):
        return self._inputs

    @property
    def outputs(self):
        return self._outputs

    def values(self):
        return self._outputs

    @property
    def control_inputs(self):
        return list(self._control_inputs)

    @property
    def device(self):
        return self._device

    @property
    def creation_site(self):
        return self._site

    @property
    def traceback(self):
        return [self._site]

    @property
    def attrs(self):
        return dict(self._attrs)

    def get_attr(self, name):
        try:
            return self._attrs[name]
        except KeyError:
            raise ValueError(f"Operation {self._name!r} ({self.type}) has no attr named {name!r}") from None

    def _set_device(self, device):
        self._device = device
        self._graph._mutated()

    def _set_attr(self, name, value):
        self._attrs[name] = value
        self._graph._mutated()

    def colocation_groups(self):
        """The `loc:@name` groups this op belongs to (default: its own)."""
        groups = self._attrs.get("_class")
        return list(groups) if groups else [f"loc:@{self._name}".encode()]

    def _add_control_input(self, op):
        self._add_control_inputs([op])

    def _add_control_inputs(self, ops):
        for op in ops:
            if op not in self._control_inputs:
                self._control_inputs.append(op)
                op._control_outputs.append(self)
        self._graph._mutated()

    @property
    def node_def(self):
        from tensorweave.framework.graph_io import node_def_of
        return node_def_of(self)

    def run(self, feed_dict=None, session=None):
        """Runs this op (and what it depends on) in `session`, default: the default session."""
        from tensorweave.framework.graph import run_in_session
        run_in_session(self, feed_dict, session)

    def error(self, cls, message):
        """An exception of class `cls` naming this op and where the user created it."""
        return cls(None, self, f"{message} (op {self._name!r} of type {self.type})")

    def __repr__(self):
        return f"<tw.Operation '{self._name}' type={self.type}>"

    __hash__ = object.__hash__

