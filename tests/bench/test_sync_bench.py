"""The sync/async benchmark (`python -m bench.sync`, suite `sync` of `python -m bench`): its table
and ratios from made-up results, and one quick run end to end through `python -m bench`."""

import argparse
import os
import re
import subprocess
import sys

import pytest

from bench import sync

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = [label for _, label, *_ in sync.CONFIGS]


def _opts():
    return argparse.Namespace(hidden=0, last_step=500, max_s=40.0, slow_ms=40.0, target=0.9)


def _row(key, rate, median, reached=None):
    label = next(label for k, label, *_ in sync.CONFIGS if k == key)
    return dict(key=key, label=label, ok=True, steps_per_s=rate, median_ms=median, p90_ms=median * 1.5,
                time_to_target_s=reached, step_at_target=100 if reached else None, final_accuracy=0.91,
                foreign_load=0.0, per_worker=[dict(index=0, steps=10, finished=True),
                                              dict(index=1, steps=4, finished=False)])


def test_the_table_has_a_row_per_configuration_and_the_backup_speedup(capsys):
    rows = [_row("async2", 400.0, 5.0, 1.0), _row("sync2", 200.0, 5.0, 2.0), _row("sync3", 150.0, 7.5),
            _row("sync_slow", 20.0, 45.0, 6.0), _row("sync_backup", 100.0, 6.0, 2.0),
            dict(key="async3", label=LABELS[2], ok=False, error="worker 1 exited")]
    sync.print_table(rows, _opts())
    out = capsys.readouterr().out
    lines = out.splitlines()
    slow = next(line for line in lines if line.startswith(LABELS[5]))
    assert "20.0" in slow and "45.0" in slow and "67.5" in slow and "6.0 s" in slow and "0.9100" in slow
    assert "not reached" in next(line for line in lines if line.startswith(LABELS[3]))
    assert "error" in next(line for line in lines if line.startswith(LABELS[2]))
    assert not any(line.startswith(LABELS[4]) for line in lines)  # async_slow: not measured
    assert "sync / async global steps/s, 2 workers: 0.50x" in out
    assert "sync / async global steps/s, 3 workers: -" in out
    assert "median step time without / with backup): 7.50x" in out
    assert "global steps/s with / without backup: 5.00x" in out
    assert "accuracy without / with backup: 3.00x" in out
    assert "local steps per worker: 10, 4*; median ms: -, -" in out


def test_summary_leaves_out_warmup_steps_and_finds_the_time_to_accuracy():
    t_go = 1000.0
    chief = [(t_go + 0.01 * (i + 1), 0.5 if i < 2 else 0.010, 2 * i) for i in range(10)]
    other = [(t_go + 0.01 * (i + 1) + 0.005, 0.5 if i < 2 else 0.030, 2 * i + 1) for i in range(10)]
    results = [dict(index=0, steps=chief, finished=True,
                    snapshots=[(t_go + 0.02, 4, 0.5), (t_go + 0.05, 10, 0.92), (t_go + 0.1, 18, 0.95)]),
               dict(index=1, steps=other, finished=False, snapshots=[])]
    s = sync.summarize(results, t_go, 0.9)
    assert s["median_ms"] == pytest.approx(20.0) and s["p90_ms"] == pytest.approx(30.0)
    # From the first step after a warm-up (the chief's 2nd: global step 2, t=0.02) to the last
    # step of any worker (the other's: 19, t=0.105).
    assert s["steps_per_s"] == pytest.approx(17 / 0.085)
    assert s["time_to_target_s"] == pytest.approx(0.05) and s["step_at_target"] == 10
    assert s["final_accuracy"] == 0.95 and s["global_step"] == 19
    assert [w["steps"] for w in s["per_worker"]] == [10, 10]
    assert [w["median_ms"] for w in s["per_worker"]] == pytest.approx([10.0, 30.0])


@pytest.mark.slow
def test_quick_run_through_the_suite_prints_every_row():
    p = subprocess.run([sys.executable, "-m", "bench", "--suite", "sync", "--quick"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    for label in LABELS:
        row = next((line for line in lines if line.startswith(label) and "local steps" not in line), None)
        assert row is not None, (label, p.stdout)
        rate, median, p90 = row[len(label):].split()[:3]
        assert float(rate.rstrip("~")) > 0 and 0 < float(median) <= float(p90), row
        steps = next(line for line in lines if line.startswith(label) and "local steps" in line)
        n_workers = 3 if "3 workers" in label else 2
        counts = steps.split("per worker:", 1)[1].split(";")[0].split(",")
        counts = [int(c.strip(" *")) for c in counts]  # a worker may not finish its first step in time
        assert len(counts) == n_workers and min(counts) >= 0 and sum(counts) >= sync.QUICK["last_step"], steps
    for ratio in ("sync / async global steps/s, 2 workers", "sync / async global steps/s, 3 workers",
                  "median step time without / with backup", "global steps/s with / without backup"):
        line = next(line for line in lines if ratio in line)
        assert re.search(r"\d+\.\d\dx$", line), line
    # The straggler holds up sync without a backup; with one, the other workers go on.
    backup = next(line for line in lines if "median step time without / with backup" in line)
    assert float(backup.rsplit(" ", 1)[1].rstrip("x")) > 1.0, p.stdout
