"""NumPy-only inference on frozen graphs: `tensorweave.inference.load(path).run(feeds)`.
Imports none of the training, autodiff or distributed code."""

from tensorweave.inference.model import Model, load  # noqa: F401
