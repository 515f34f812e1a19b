"""Helpers that TF1 tutorials import from `tensorflow.examples.tutorials`."""
