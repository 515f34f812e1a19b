"""`bench.tracing` measures the three ways of running a step and reports their ratios."""

from bench import tracing


def test_the_tracing_benchmark_measures_each_mode(capsys):
    result = tracing.measure("chain", rounds=3, block_s=0.005)
    assert set(result["step_ms"]) == {"baseline", "off", "on"}
    assert all(len(v) == 3 and min(v) > 0 for v in result["ms_all"].values())
    assert result["n_ops"] == tracing.CHAIN_LEN and result["traced_ops"] >= tracing.CHAIN_LEN
    assert result["on_ratio"] == result["step_ms"]["on"] / result["step_ms"]["baseline"]
    tracing.report([result])
    out = capsys.readouterr().out
    assert "chain of 1000 ops" in out and "off/base" in out
