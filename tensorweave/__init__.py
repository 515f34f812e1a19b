"""TensorWeave: TensorFlow 1.x graphs, from one process to a cluster. `import tensorweave as tf`."""

from tensorweave.compat.namespace import module_getattr as _module_getattr
from tensorweave.compat.v1_api import ROOT as _ROOT

__getattr__ = _module_getattr(_ROOT, __name__)


def __dir__():
    return sorted(_ROOT)
