"""`tf.train.summary_iterator`: the `Event` protos of an event file, in order."""

import os

from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

from tensorweave.summary.writer import use_tensorboard_file_layer


def summary_iterator(path):
    """Yields every `Event` proto in the event file at `path`, in file order.

    A truncated last record (a writer still running) ends the iteration.
    """
    if not os.path.exists(path):
        raise FileNotFoundError("No event file at %s" % path)
    use_tensorboard_file_layer()
    yield from LegacyEventFileLoader(os.fspath(path)).Load()
