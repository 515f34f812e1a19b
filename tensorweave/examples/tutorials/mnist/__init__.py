"""TF1's `tensorflow.examples.tutorials.mnist`: `from ...mnist import input_data`."""
