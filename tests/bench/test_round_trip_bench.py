"""The round-trip breakdown benchmark: four clients against one server process."""

import json
import os
import subprocess
import sys

import pytest

from bench import round_trip

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_quick_run_times_every_client_and_writes_json(tmp_path):
    path = tmp_path / "rt.json"
    core = min(os.sched_getaffinity(0))  # a core this process may use (a container may not have 0)
    p = subprocess.run([sys.executable, "-m", "bench.round_trip", "--quick", "--pin", str(core), "--json", str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"both processes on core {core}" in p.stdout
    for name in round_trip.METHODS:
        assert any(line.strip().startswith(name) for line in p.stdout.splitlines()), (name, p.stdout)
    doc = json.loads(path.read_text())
    assert doc["pin"] == core and set(doc["microseconds"]) == set(round_trip.METHODS)
    assert all(us > 0 for us in doc["microseconds"].values())


def test_measure_times_each_method_in_turns():
    calls = []
    result = round_trip.measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                repeats=3, target_s=0.0, warmup_s=0.0, min_warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # one warm-up step each, then one-step blocks in turns
    assert set(result) == {"a", "b"} and all(us >= 0 for us in result.values())
