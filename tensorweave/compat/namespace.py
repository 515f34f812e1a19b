"""Lazily resolved namespaces (PEP 562): `tf.placeholder` imports its module on first use, so
importing `tensorweave` (or `tensorweave.inference`) loads no training or distributed code."""

import importlib
import types


class LazyNamespace(types.ModuleType):
    """A module whose attributes come from `table`: name -> "module:attr", "module" or a namespace."""

    def __init__(self, name, table, doc=None):
        super().__init__(name, doc)
        self._table = table

    def __getattr__(self, attr):
        try:
            target = self._table[attr]
        except KeyError:
            raise AttributeError(f"module '{self.__name__}' has no attribute '{attr}'") from None
        value = resolve(target)
        setattr(self, attr, value)
        return value

    def __dir__(self):
        return sorted(set(self._table) | set(super().__dir__()))


def resolve(target):
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


def module_getattr(table, module_name):
    """A PEP 562 `__getattr__` for a real module, resolving names through `table`."""
    def __getattr__(attr):
        try:
            target = table[attr]
        except KeyError:
            raise AttributeError(f"module '{module_name}' has no attribute '{attr}'") from None
        return resolve(target)
    return __getattr__
