"""Compatibility namespaces: `tensorweave.compat.v1` is the TF1 API (`import tensorweave.compat.v1 as tf`)."""
