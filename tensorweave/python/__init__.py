"""Import paths of TF1's `tensorflow.python` that TF1 programs use directly (re-exports only)."""
