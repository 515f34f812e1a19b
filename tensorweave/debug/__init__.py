"""Offline inspection of a step's tensors: `tensorweave.debug.dump(sess, fetches, feed_dict, directory)`."""

from tensorweave.debug.tensor_dump import dump, load_dump

__all__ = ["dump", "load_dump"]
