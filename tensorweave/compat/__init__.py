"""Compatibility namespaces: `tensorweave.compat.v1` is the TF1 API (`import tensorweave.compat.v1 as tf`)."""

import importlib


def __getattr__(name):
    # `tf.compat.v1` after a plain `import tensorweave as tf`, as TF1 programs write it.
    if name == "v1":
        return importlib.import_module(f"{__name__}.v1")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
