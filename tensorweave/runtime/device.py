"""Devices as the runtime sees them: a name, a resource manager holding variables, per-op state."""

import threading


class ResourceMgr:
    """Resources of one device, keyed by (container, shared name) as in TF. `generation` grows
    on every clear, so a kernel holding a resource knows to look it up again (`cached`)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._resources = {}
        self.generation = 0

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

    def cached(self, container, name, factory):
        """A function returning the resource (created by `factory` on first use), looked up
        again only after a clear: a compiled plan keeps its variable until a
        `tf.Session.reset` drops the container, and then gets a fresh one."""
        held = (self.generation, self.lookup_or_create(container, name, factory))

        def get():
            nonlocal held
            generation, resource = held
            if generation != self.generation:
                generation = self.generation  # read before the lookup: a clear in between is seen next time
                held = (generation, self.lookup_or_create(container, name, factory))
                resource = held[1]
            return resource
        return get

    def clear(self, container=None):
        """Drops the resources of `container` (all of them when None)."""
        self.clear_containers(None if container is None else [container])

    def clear_containers(self, containers=None):
        """Drops the resources of each container in `containers` ("" is the default one); all
        containers when `containers` is None or empty, as TF1's `Session.reset` documents."""
        with self._lock:
            if not containers:
                self._resources.clear()
            else:
                names = set(containers)
                for key in [k for k in self._resources if k[0] in names]:
                    del self._resources[key]
            self.generation += 1


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

