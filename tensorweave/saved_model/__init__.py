"""`tf.saved_model`: `simple_save` and `loader.load`, resolved lazily (PEP 562), so reading the
layout (`saved_model.layout`) loads no training code."""

from tensorweave.compat.namespace import LazyNamespace as _LazyNamespace
from tensorweave.compat.namespace import module_getattr as _module_getattr

_L = "tensorweave.saved_model.layout"
_TABLE = {
    "simple_save": "tensorweave.saved_model.builder:simple_save",
    "load": "tensorweave.saved_model.loader:load",
    "maybe_saved_model_directory": "tensorweave.saved_model.loader:maybe_saved_model_directory",
    "loader": "tensorweave.saved_model.loader",
    "tag_constants": _LazyNamespace("tensorweave.saved_model.tag_constants", {"SERVING": f"{_L}:SERVING"}),
    "signature_constants": _LazyNamespace("tensorweave.saved_model.signature_constants", {
        "DEFAULT_SERVING_SIGNATURE_DEF_KEY": f"{_L}:DEFAULT_SERVING_SIGNATURE_DEF_KEY",
        "PREDICT_METHOD_NAME": f"{_L}:PREDICT_METHOD_NAME"}),
    "SERVING": f"{_L}:SERVING",
    "DEFAULT_SERVING_SIGNATURE_DEF_KEY": f"{_L}:DEFAULT_SERVING_SIGNATURE_DEF_KEY",
}

__getattr__ = _module_getattr(_TABLE, __name__)


def __dir__():
    return sorted(_TABLE)
