"""Example programs, and the TF1 tutorial helpers under `tensorweave.examples.tutorials`."""
