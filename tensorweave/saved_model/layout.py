"""The directory `tf.saved_model.simple_save` writes, and its signature file.

    export_dir/
      saved_model.json                   format, tags and signatures (below)
      saved_model.meta                   the graph, as TF's MetaGraphDef (variables, collections, SaverDef)
      variables/variables.safetensors    the variables' values, in tf.train.Saver's checkpoint format

`saved_model.json` is plain JSON, so any language reads the signature without protobuf:

    {"format": "tensorweave.saved_model", "format_version": "1", "tags": ["serve"],
     "signature_def": {"serving_default": {"method_name": "tensorflow/serving/predict",
        "inputs":  {"x": {"name": "x:0", "dtype": "float32", "shape": [null, 784]}},
        "outputs": {"y": {"name": "y:0", "dtype": "float32", "shape": [null, 10]}}}}}

A shape is a list with `null` for unknown dimensions, or `null` for an unknown rank. This module
imports nothing of TensorWeave, so the NumPy-only inference path reads the layout through it.
"""

import json
import os

FORMAT = "tensorweave.saved_model"
FORMAT_VERSION = "1"
SIGNATURE_FILENAME = "saved_model.json"
META_GRAPH_FILENAME = "saved_model.meta"
VARIABLES_DIRECTORY = "variables"
VARIABLES_PREFIX = os.path.join(VARIABLES_DIRECTORY, "variables")  # + ".safetensors"
SERVING = "serve"
DEFAULT_SERVING_SIGNATURE_DEF_KEY = "serving_default"
PREDICT_METHOD_NAME = "tensorflow/serving/predict"


def is_saved_model_dir(path):
    """Whether `path` is a directory holding a saved model's signature file."""
    return os.path.isfile(os.path.join(os.fspath(path), SIGNATURE_FILENAME))


def read_signature_file(export_dir):
    """The parsed `saved_model.json` of `export_dir`; raises OSError if it is missing and
    ValueError if it is not a saved model of a format this version reads."""
    path = os.path.join(os.fspath(export_dir), SIGNATURE_FILENAME)
    with open(path, encoding="utf-8") as f:
        try:
            info = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a TensorWeave saved model signature file")
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {info.get('format_version')!r}; this TensorWeave reads "
                         f"version {FORMAT_VERSION}")
    return info


def signature(info, signature_def_key=DEFAULT_SERVING_SIGNATURE_DEF_KEY):
    """The signature `signature_def_key` of a parsed signature file ({"inputs", "outputs", ...})."""
    signatures = info.get("signature_def") or {}
    if signature_def_key not in signatures:
        raise KeyError(f"The saved model has no signature {signature_def_key!r} (it has "
                       f"{sorted(signatures)})")
    return signatures[signature_def_key]
