"""`tensorweave checkpoint inspect PATH`: what a checkpoint holds, every checksum verified (TF's
`inspect_checkpoint` tool, for TensorWeave's safetensors checkpoints)."""

import json

import numpy as np

from tensorweave.train import saver as saver_lib


def resolve(path):
    """The checkpoint prefix `path` names: a prefix, its `.safetensors` file, or a directory
    (its latest checkpoint). Raises NotFoundError when a directory holds none."""
    return saver_lib._resolve(path)


def summary(array):
    """min, max and mean of `array` as text (complex: of the magnitudes), or "empty"."""
    if array.size == 0:
        return "empty"
    values = np.abs(array) if np.iscomplexobj(array) else array.astype(np.float64)
    label = "|x| " if np.iscomplexobj(array) else ""
    return f"{label}min {values.min():.6g}  max {values.max():.6g}  mean {values.mean():.6g}"


def describe(path, values=False):
    """The report on checkpoint `path` (see `resolve`): its file, global step, and one line per
    variable with dtype and shape (and `summary` when `values`). Reading it verifies every
    checksum, so a corrupted file raises DataLossError naming the file and tensor."""
    prefix = resolve(path)
    tensors, metadata = saver_lib.read_checkpoint(prefix)
    kinds = json.loads(metadata["dtypes"])
    step = metadata.get("global_step") or "(none)"
    lines = [f"checkpoint: {saver_lib.checkpoint_path(prefix)}", f"global step: {step}",
             f"variables: {len(tensors)}, checksums verified"]
    rows = [(name, kinds[name], "[" + ", ".join(str(d) for d in tensors[name].shape) + "]")
            for name in sorted(tensors)]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for name, kind, shape in rows:
        line = f"  {name:<{widths[0]}}  {kind:<{widths[1]}}  {shape:<{widths[2]}}"
        if values:
            line = f"{line}  {summary(tensors[name])}"
        lines.append(line.rstrip())
    return "\n".join(lines)
