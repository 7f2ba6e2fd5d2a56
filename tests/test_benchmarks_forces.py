"""The verdicts of benchmarks/forces_long_range.py follow its bars, both ways."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
forces_long_range = pytest.importorskip("forces_long_range")


def rows(data, **maes):
    return [{"dataset": data, "variant": v, "force_mae_mev_per_A": m} for v, m in maes.items()]


def test_long_range_bar_is_against_the_best_local_model():
    met = rows("salt", flt_local=60.0, schnet=50.0, flt_charges=34.9, flt_global=70.0)
    lines = forces_long_range.long_range_checks(met)
    charges = next(line for line in lines if "latent charges" in line)
    assert "= 0.698" in charges and charges.endswith("MET") and "NOT MET" not in charges
    assert not any(line.endswith("MET") for line in lines if "long range /" in line)
    missed = rows("salt", flt_local=60.0, schnet=50.0, flt_charges=35.5)
    assert forces_long_range.long_range_checks(missed)[0].endswith("NOT MET")
    assert forces_long_range.long_range_checks(rows("salt", flt_local=1.0, flt_charges=0.1)) == []


def test_short_range_bar_is_against_each_local_model():
    worse = rows("emt", flt_local=12.0, schnet=8.0, flt_charges=10.0)
    line = forces_long_range.long_range_checks(worse)[0]
    assert "= 0.833, 1.250" in line and line.endswith("NOT MET")
    fine = rows("emt", flt_local=12.0, schnet=8.0, flt_charges=7.9)
    assert forces_long_range.long_range_checks(fine)[0].endswith(": MET")


def test_cost_checks_need_flat_time_and_the_memory_bar_at_1e5():
    def curve(per_atom, peak):
        return [
            {"variant": "flt_charges", "n": n, "cpu_us_per_atom": t, "peak_rss_gb": peak}
            for n, t in zip((1_000, 10_000, 100_000), per_atom)
        ]

    flat, memory = forces_long_range.cost_checks(curve((100.0, 110.0, 125.0), 7.5))
    assert flat.endswith(": MET") and memory.endswith(": MET")
    flat, memory = forces_long_range.cost_checks(curve((100.0, 110.0, 150.0), 8.5))
    assert flat.endswith("NOT MET") and memory.endswith("NOT MET")


def test_machine_load_flags_more_runnable_processes_than_cores(monkeypatch):
    import os

    import _common

    monkeypatch.setattr(os, "getloadavg", lambda: (3.1, 2.6, 1.0))
    assert _common.machine_load(cpu_count=2) == {
        "load_average": [3.1, 2.6, 1.0],
        "oversubscribed": True,
    }
    assert _common.machine_load(cpu_count=4)["oversubscribed"] is False

    def missing():
        raise OSError("no load average")

    monkeypatch.setattr(os, "getloadavg", missing)
    assert _common.machine_load(cpu_count=2) == {"load_average": None, "oversubscribed": None}
