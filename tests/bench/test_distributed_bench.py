"""The distributed benchmark (`python -m bench.distributed`): its tables from made-up results, and
one quick run end to end on TensorWeave alone (TF's start-up would double the time)."""

import json
import os
import subprocess
import sys

import pytest

from bench import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_ROWS = [label for _, label, _ in distributed.CONFIGS]


def _transfer(method, nbytes, seconds):
    return dict(method=method, bytes=nbytes, seconds=seconds, gbps=nbytes / seconds / 1e9, foreign_load=0.0)


def test_transfer_table_gives_ratios_against_the_plain_socket_and_verdicts(capsys):
    result = {"foreign_load": 0.0, "transfers": [
        _transfer("socket", 1024, 50e-6), _transfer("data_channel", 1024, 80e-6),
        _transfer("socket", 64 << 20, 0.02), _transfer("data_channel", 64 << 20, 0.04)]}
    distributed.print_transfer(result)
    lines = capsys.readouterr().out.splitlines()
    big = next(line for line in lines if line.startswith("64 MB"))
    assert "0.50x" in big and "MISSED" in big and big.rstrip().endswith("MISSED")
    rtt = next(line for line in lines if line.startswith("round trip, 1 KB"))
    assert "80 us" in rtt and "50 us" in rtt and "1.60x" in rtt and rtt.rstrip().endswith("met")


def test_training_table_divides_tensorweave_by_tf(capsys):
    def row(fw, key, rate):
        return dict(framework=fw, workers=0, ok=True, steps_per_s=rate, foreign_load=0.0,
                    per_worker=[{"steps_per_s": rate / 2}] * 2)

    results = {("tensorweave", "ps1w1"): row("tensorweave", "ps1w1", 52.0),
               ("tf", "ps1w1"): row("tf", "ps1w1", 40.0),
               ("tf", "single"): row("tf", "single", 98.0)}
    distributed.print_training(results, ["tensorweave", "tf"])
    lines = capsys.readouterr().out.splitlines()
    line = next(x for x in lines if x.startswith("1 PS + 1 worker"))
    assert "52.0" in line and "40.0" in line and "1.30x" in line and " met" in line
    single = next(x for x in lines if x.startswith("1 process"))
    assert "98.0" in single and "-" in single


def test_rounds_report_the_median_round_and_a_failed_round_stays_visible(capsys):
    def row(rate, ok=True):
        return dict(framework="tensorweave", workers=1, ok=ok, steps_per_s=rate, foreign_load=0.0,
                    error="" if ok else "worker died")

    median = distributed.median_trial([row(50.0), row(61.0), row(55.0)])
    assert median["steps_per_s"] == 55.0 and median["rounds"] == [50.0, 61.0, 55.0]
    assert distributed.median_trial([row(50.0), row(61.0)])["steps_per_s"] == 50.0  # the lower middle
    assert not distributed.median_trial([row(50.0), row(0.0, ok=False), row(55.0)])["ok"]
    distributed.print_training({("tensorweave", "ps1w1"): median}, ["tensorweave"])
    assert "median of 3 rounds" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_run_prints_every_row_and_writes_json(tmp_path):
    path = tmp_path / "dist.json"
    p = subprocess.run([sys.executable, "-m", "bench.distributed", "--quick", "--frameworks", "tensorweave",
                        "--measure-s", "0.5", "--json", str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    starts = ["1 KB", "1 MB", "4 MB", "round trip, 1 KB", *CONFIG_ROWS, *distributed.ENCODINGS]
    for start in starts:
        assert any(line.startswith(start) for line in lines), (start, p.stdout)

    doc = json.loads(path.read_text())
    measured = {(t["method"], t["bytes"]) for t in doc["transfer"]["transfers"]}
    assert measured == {(m, n) for m in ("socket", "data_channel", "grpc") for n in distributed.QUICK_SIZES}
    assert all(t["gbps"] > 0 for t in doc["transfer"]["transfers"])
    assert {r["config"] for r in doc["training"]} == {key for key, _, _ in distributed.CONFIGS}
    assert all(r["ok"] and r["steps_per_s"] > 0 for r in doc["training"])
    two = next(r for r in doc["training"] if r["config"] == "ps1w2")
    assert len(two["per_worker"]) == 2

    by_encoding = {r["encoding"]: r for r in doc["compression"]}
    assert list(by_encoding) == list(distributed.ENCODINGS)
    full = by_encoding["none"]["bytes_per_step"]
    # Parameters to the worker and gradients to the PS: twice the MLP's 1.86 M float32 values.
    assert 14e6 < full < 16e6
    for encoding, ratio in {"bfloat16_truncate": 0.5, "bfloat16": 0.5, "float16": 0.5, "int8": 0.25}.items():
        assert by_encoding[encoding]["bytes_per_step"] == pytest.approx(full * ratio, rel=0.01), encoding
