"""Device names: `/job:worker/replica:0/task:1/device:GPU:0` and the short forms `/cpu:0`, `/gpu:1`."""

import re

_SHORT = re.compile(r"^(cpu|gpu):(\d+|\*)$", re.IGNORECASE)


class DeviceSpec:
    """A possibly partial device name; unset fields are None."""

    __slots__ = ("job", "replica", "task", "device_type", "device_index")

    def __init__(self, job=None, replica=None, task=None, device_type=None, device_index=None):
        self.job = job
        self.replica = None if replica is None else int(replica)
        self.task = None if task is None else int(task)
        self.device_type = device_type.upper() if isinstance(device_type, str) else device_type
        self.device_index = device_index

    @classmethod
    def from_string(cls, spec):
        """Parses a device name; raises ValueError naming the bad part."""
        out = cls()
        if not spec:
            return out
        for part in spec.split("/"):
            if not part:
                continue
            short = _SHORT.match(part)
            if short:
                out.device_type = short.group(1).upper()
                out.device_index = None if short.group(2) == "*" else int(short.group(2))
                continue
            key, _, value = part.partition(":")
            if key == "job" and value:
                out.job = value
            elif key == "replica" and value.isdigit():
                out.replica = int(value)
            elif key == "task" and value.isdigit():
                out.task = int(value)
            elif key == "device" and value:
                dtype, _, index = value.partition(":")
                out.device_type = dtype.upper()
                out.device_index = None if index in ("", "*") else int(index)
            else:
                raise ValueError(f"Unknown device specification part {part!r} in {spec!r}")
        return out

    def merged_with(self, other):
        """A copy of self with every field that `other` sets taken from `other`."""
        out = DeviceSpec(self.job, self.replica, self.task, self.device_type, self.device_index)
        for field in self.__slots__:
            value = getattr(other, field)
            if value is not None:
                setattr(out, field, value)
        if other.device_type is not None and other.device_index is None:
            out.device_index = None
        return out

    def to_string(self):
        parts = []
        if self.job is not None:
            parts.append(f"/job:{self.job}")
        if self.replica is not None:
            parts.append(f"/replica:{self.replica}")
        if self.task is not None:
            parts.append(f"/task:{self.task}")
        if self.device_type is not None:
            index = "*" if self.device_index is None else self.device_index
            parts.append(f"/device:{self.device_type}:{index}")
        return "".join(parts)

    def __str__(self):
        return self.to_string()

    def __repr__(self):
        return f"DeviceSpec({self.to_string()!r})"

    def __eq__(self, other):
        return isinstance(other, DeviceSpec) and self.to_string() == other.to_string()

    def __hash__(self):
        return hash(self.to_string())


def canonical_name(spec):
    """The canonical form of a device string (short forms expanded)."""
    if isinstance(spec, DeviceSpec):
        return spec.to_string()
    return DeviceSpec.from_string(spec or "").to_string()


def merge_device(outer, inner):
    """The device an op gets when `inner` (its own or a nested scope's) sits inside `outer`."""
    return DeviceSpec.from_string(outer).merged_with(DeviceSpec.from_string(inner)).to_string()
