"""Devices as the runtime sees them: a name, a resource manager holding variables, per-op state."""

import threading


class ResourceMgr:
    """Resources of one device, keyed by (container, shared name) as in TF."""

    def __init__(self):
        self._lock = threading.Lock()
        self._resources = {}

    def lookup_or_create(self, container, name, factory):
        key = (container, name)
        with self._lock:
            res = self._resources.get(key)
            if res is None:
                res = self._resources[key] = factory()
            return res

    def lookup(self, container, name):
        return self._resources.get((container, name))

    def items(self):
        with self._lock:
            return list(self._resources.items())

    def clear(self, container=None):
        with self._lock:
            if container is None:
                self._resources.clear()
            else:
                for key in [k for k in self._resources if k[0] == container]:
                    del self._resources[key]


class Device:
    """A compute device of a process: resources (variables) and the state of stateful ops."""

    def __init__(self, name, device_type="CPU"):
        self.name = name
        self.device_type = device_type
        self.resources = ResourceMgr()
        self._op_state = {}
        self._lock = threading.Lock()

    def op_state(self, op, factory):
        """Per-op state that outlives plans (e.g. a random op's generator), created once."""
        key = op.name
        with self._lock:
            state = self._op_state.get(key)
            if state is None:
                state = self._op_state[key] = factory()
            return state

