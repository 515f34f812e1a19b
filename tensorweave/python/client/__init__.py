"""`tensorflow.python.client`: `from tensorweave.python.client import timeline` as in TF1."""
