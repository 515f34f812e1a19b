"""Benchmarks: TensorWeave against TensorFlow 1.x graph mode, PyTorch and NumPy.

Run ``python -m bench`` (see ``bench/__main__.py``); one pair alone with
``python -m bench.run_one --framework tf --workload softmax``.
"""

import json


def write_json(doc, path, say=True):
    """Writes benchmark results `doc` to `path` as indented JSON and, if `say`, prints where."""
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    if say:
        print("results written to %s" % path)
