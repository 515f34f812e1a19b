"""`python -m bench.inference` runs end to end and prints the three runtimes side by side."""

import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_inference_benchmark_prints_a_row_per_batch_size():
    result = subprocess.run([sys.executable, "-m", "bench.inference", "--quick", "--batches", "4,1", "--threads", "1"],
                            check=False, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("ONNX Runtime" in line and "TW inference" in line and "TW tf.Session" in line for line in lines)
    assert sum(line.startswith(("batch 4 ", "batch 1 ")) and "failed" not in line for line in lines) == 2
    assert any(line.startswith("check: outputs agree") for line in lines)
