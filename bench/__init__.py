"""Benchmarks: TensorWeave against TensorFlow 1.x graph mode, PyTorch and NumPy.

Run ``python -m bench`` (see ``bench/__main__.py``); one pair alone with
``python -m bench.run_one --framework tf --workload softmax``.
"""
