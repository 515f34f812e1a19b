"""The TF1 namespace: every public name resolves, lazily, in both `tensorweave` and `compat.v1`."""

import subprocess
import sys
import types

import pytest

import tensorweave
import tensorweave.compat.v1 as v1
from tensorweave.compat.namespace import LazyNamespace
from tensorweave.compat.v1_api import ROOT


def _walk(prefix, namespace, names):
    for name in names:
        value = getattr(namespace, name)
        yield f"{prefix}.{name}", value
        if isinstance(value, LazyNamespace) or (isinstance(value, types.ModuleType)
                                                 and hasattr(value, "_TABLE")):
            table = value._table if isinstance(value, LazyNamespace) else value._TABLE
            yield from _walk(f"{prefix}.{name}", value, sorted(table))


@pytest.mark.parametrize("root", [tensorweave, v1], ids=["tensorweave", "compat.v1"])
def test_every_public_name_resolves(root):
    missing = []
    for name in sorted(ROOT):
        try:
            list(_walk("tf", root, [name]))
        except (AttributeError, ImportError) as e:
            missing.append(f"{name}: {e}")
    assert not missing, "\n".join(missing)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_tf_name'"):
        tensorweave.not_a_tf_name  # noqa: B018


def test_import_is_lazy():
    code = ("import sys, tensorweave as tf\n"
            "assert 'tensorweave.ops.math_ops' not in sys.modules\n"
            "assert 'tensorweave.train.optimizer' not in sys.modules\n"
            "tf.placeholder\n"
            "assert 'tensorweave.train.optimizer' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_tf1_style_program_preamble():
    import tensorweave.compat.v1 as tf
    tf.disable_v2_behavior()
    tf.disable_eager_execution()
    assert tf.executing_eagerly() is False
    assert tf.compat.v1.placeholder is tf.placeholder
    with pytest.raises(NotImplementedError, match="eager"):
        tf.enable_eager_execution()
