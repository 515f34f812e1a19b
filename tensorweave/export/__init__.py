"""Exporters of trained graphs: `tensorweave.export.onnx`."""
