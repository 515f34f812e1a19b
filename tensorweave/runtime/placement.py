"""Placement: which device runs each op, as TF's placer decides it. A pure function of the graph.

    place(ops, devices, default_device=...)  ->  {op: "/job:J/replica:0/task:T/device:CPU:0"}

An op's requested device (`op.device`, set by `tf.device` scopes, possibly partial such as
"/job:ps" or "/device:GPU:0") matches the available devices that agree on every field it sets.
Ops that must share a device are placed together as one group:
  - ops sharing a colocation group (`loc:@name`: a variable, its initializer's Assign, the
    optimizer's apply op, its slots' updates ...),
  - an op that takes a variable by reference (an `OpDef.ref_inputs` position) and that variable:
    the kernel writes the variable's memory, which lives on one device.
A group's request is the union of its members' requests; two members asking for different
values of one field conflict. A group with no request goes to `default_device`.
"""

from tensorweave.framework import errors
from tensorweave.framework.device_spec import DeviceSpec

_FIELDS = ("job", "replica", "task", "device_type", "device_index")


def place(ops, devices, *, default_device, allow_soft_placement=False, device_filters=None):
    """Assigns every op in `ops` one of `devices`; returns `{op: full device name}`.

    devices: the available device names in full form ("/job:worker/replica:0/task:1/device:CPU:0").
    default_device: where ops (and colocation groups) that request nothing go, usually the
        client's task CPU; must be one of `devices` that passes `device_filters`.
    allow_soft_placement: as `tf.ConfigProto(allow_soft_placement=True)`: a request no device
        satisfies first loses its device type and index (GPU -> CPU of the same task), then falls
        back to `default_device`; conflicting requests inside a colocation group are resolved in
        favour of the variable (or the first member) instead of raising.
    device_filters: as `ConfigProto.device_filters`: only devices matching one of these partial
        names are available.

    Of several matching devices, the first in this order is chosen: on the default device's
    task, then by job, replica and task, then CPU before other types, then by type and index.
    So "/job:worker/task:1" means that task's CPU:0.

    Raises `InvalidArgumentError` naming the op, its request and the available devices when no
    device matches (without soft placement), and naming both ops when a colocation group holds
    conflicting requests.
    """
    ops = list(ops)
    available = _available(devices, device_filters)
    default = DeviceSpec.from_string(default_device)
    if not any(_same(default, d) for d in available):
        raise errors.InvalidArgumentError(
            None, None, f"Default device '{default_device}' is not among the available devices "
            f"{_names(available)} (device_filters: {list(device_filters or [])})")
    placement = {}
    for members in _colocation_groups(ops):
        request, origin = _group_request(members, allow_soft_placement)
        device = _resolve(request, origin, members, available, default, allow_soft_placement)
        for op in members:
            placement[op] = device
    return {op: placement[op] for op in ops}


# -- devices -------------------------------------------------------------------------------------

def _available(devices, device_filters):
    out = []
    for name in devices:
        spec = DeviceSpec.from_string(name)
        missing = [f for f in _FIELDS if getattr(spec, f) is None]
        if missing:
            raise ValueError(f"Available device {name!r} must be a full device name (it lacks {missing})")
        if not any(_same(spec, d) for d in out):
            out.append(spec)
    if device_filters:
        filters = [DeviceSpec.from_string(f) for f in device_filters]
        out = [d for d in out if any(_matches(f, d) for f in filters)]
    return out


def _matches(request, device):
    """Whether full `device` agrees with `request` on every field `request` sets."""
    return all(getattr(request, f) is None or getattr(request, f) == getattr(device, f) for f in _FIELDS)


def _same(a, b):
    return all(getattr(a, f) == getattr(b, f) for f in _FIELDS)


def _names(devices):
    return [d.to_string() for d in devices]


def _choose(request, available, default):
    candidates = [d for d in available if _matches(request, d)]
    if not candidates:
        return None
    home = (default.job, default.replica, default.task)
    return min(candidates, key=lambda d: ((d.job, d.replica, d.task) != home, d.job, d.replica, d.task,
                                          d.device_type != "CPU", d.device_type, d.device_index))


# -- colocation groups -----------------------------------------------------------------------------

def _colocation_groups(ops):
    """The ops partitioned into groups that must share a device, in order of their first member."""
    parent = {op: op for op in ops}

    def root(op):
        while parent[op] is not op:
            parent[op] = parent[parent[op]]
            op = parent[op]
        return op

    def union(a, b):
        ra, rb = root(a), root(b)
        if ra is not rb:
            parent[rb] = ra

    first_in_group = {}
    for op in ops:
        for group in op.colocation_groups():
            union(first_in_group.setdefault(group, op), op)
        ref_inputs = op.op_def.ref_inputs
        for i, t in enumerate(op.inputs):
            if i in ref_inputs and t.op.op_def.ref_outputs and t.op in parent:
                union(t.op, op)
    groups = {}
    for op in ops:
        groups.setdefault(root(op), []).append(op)
    return list(groups.values())


def _group_request(members, allow_soft_placement):
    """The union of the members' requests, and for each field the op that set it.

    Variables (ops owning state) are merged first, so under soft placement a conflicting
    request of a member yields to the variable's."""
    request, origin = DeviceSpec(), {}
    for op in sorted(members, key=lambda op: not op.op_def.ref_outputs):
        if not op.device:
            continue
        own = DeviceSpec.from_string(op.device)
        clash = [f for f in _FIELDS if getattr(own, f) is not None and getattr(request, f) is not None
                 and getattr(own, f) != getattr(request, f)]
        if clash:
            if allow_soft_placement:
                continue
            other = origin[clash[0]]
            raise op.error(errors.InvalidArgumentError,
                           f"Cannot colocate nodes {other.name} and {op.name}: they share a colocation "
                           f"group (or a reference edge) but {other.name} requests device "
                           f"'{other.device}' and {op.name} requests '{op.device}'")
        for f in _FIELDS:
            if getattr(own, f) is not None and getattr(request, f) is None:
                setattr(request, f, getattr(own, f))
                origin[f] = op
    return request, origin


def _resolve(request, origin, members, available, default, allow_soft_placement):
    if not origin:
        return default.to_string()
    device = _choose(request, available, default)
    if device is None and allow_soft_placement:
        loose = DeviceSpec(request.job, request.replica, request.task)
        device = _choose(loose, available, default) or default
    if device is None:
        op = next(iter(origin.values()))
        merged = request.to_string()
        detail = ""
        if len(members) > 1:
            detail = (f" (it is colocated with {[m.name for m in members if m is not op]}, so together they "
                      f"request '{merged}')")
        raise op.error(errors.InvalidArgumentError,
                       f"Cannot assign a device for operation {op.name}: could not satisfy explicit device "
                       f"specification '{op.device}'{detail} because no device matching it is available "
                       f"(available: {', '.join(_names(available))}). Pass "
                       "tf.ConfigProto(allow_soft_placement=True) to fall back to an available device")
    return device.to_string()
